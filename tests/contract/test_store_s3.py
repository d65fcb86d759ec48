from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest

from cargohold.storage import Connection

from ..support.servers import Server
from .suite import StoreContract, generated, read


def moto_connection(server: Server) -> Connection:
    # moto accepts any key pair; the endpoint carries its scheme and port as users may write it.
    return Connection("minio", endpoint=server.url, access_key="testing", secret_key="testing")


@pytest.fixture
def connection(moto_server: Server) -> Connection:
    return moto_connection(moto_server)


@pytest.fixture
def leave_unfinished_upload(moto_server: Server, bucket_name: str) -> Callable[[int], None]:
    """What an upload killed half-way leaves: a multipart upload with a part, never completed."""

    def leave(size: int) -> None:
        client = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        upload = client.create_multipart_upload(Bucket=bucket_name, Key="killed/upload.bin")
        client.upload_part(Bucket=bucket_name, Key="killed/upload.bin", UploadId=upload["UploadId"], PartNumber=1,
                           Body=b"x" * size)

    return leave


@pytest.fixture
def put_foreign(moto_server: Server, bucket_name: str) -> Callable[[str, bytes], bool]:
    client = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")

    def put(key: str, data: bytes) -> bool:
        client.put_object(Bucket=bucket_name, Key=key, Body=data)
        return True

    return put


class TestS3(StoreContract):
    uploads_dated = False  # moto: every multipart upload began 2010-11-10


async def test_objects_over_the_single_copy_limit_are_copied_in_parts(moto_server: Server, bucket_name: str) -> None:
    """AWS copies at most 5 GiB per CopyObject (moto does not enforce it): with the limit lowered, renames
    of a larger object go through boto3's multipart copy, byte for byte, replacing what was there."""
    from cargohold.storage.s3 import open_s3

    store = open_s3(moto_connection(moto_server), bucket_name, copy_limit=1024 * 1024)
    await store.ensure_bucket()
    size = 70 * 1024 * 1024  # over boto3's multipart threshold used for these copies (64 MiB)
    await store.put("big/src.bin", generated(size))
    expected = await read(store, "big/src.bin")
    await store.put("big/renamed.bin", b"to be replaced")
    await store.rename("big/src.bin", "big/renamed.bin")
    await store.rename("big/renamed.bin", "big/again.bin")
    assert await read(store, "big/again.bin") == expected
    assert [m.key async for page in store.list("big") for m in page] == ["big/again.bin"]


async def test_a_listing_goes_on_past_the_page_obstore_could_not_parse(moto_server: Server, bucket_name: str) -> None:
    """obstore asks for 1,000 keys a request: a key it cannot parse in the second answer fails that answer;
    the listing goes on with boto3 from the last key listed, every key once and in order."""
    from concurrent.futures import ThreadPoolExecutor

    from cargohold.storage.s3 import open_s3

    store = open_s3(moto_connection(moto_server), bucket_name)
    await store.ensure_bucket()
    client = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    keys = [f"k/{i:04d}" for i in range(1010)] + ["k/tab\there", "k/zz"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket_name, Key=key, Body=b"x"), keys))
    pages = [[m.key for m in page] async for page in store.list("k", page_size=400)]
    assert [key for page in pages for key in page] == sorted(keys)
    assert all(len(page) <= 400 for page in pages), [len(page) for page in pages]

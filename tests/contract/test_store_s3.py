from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cargohold.storage import Connection, Store, open_store

from ..support.servers import Server
from .suite import StoreContract


def moto_connection(server: Server) -> Connection:
    # moto accepts any key pair; the endpoint carries its scheme and port as users may write it.
    return Connection("minio", endpoint=server.url, access_key="testing", secret_key="testing")


@pytest.fixture
async def store(moto_server: Server, bucket_name: str) -> AsyncIterator[Store]:
    store = open_store(moto_connection(moto_server), bucket_name)
    await store.ensure_bucket()
    yield store
    await store.close()


class TestS3(StoreContract):
    pass


async def test_objects_over_the_single_copy_limit_are_copied_in_parts(moto_server: Server, bucket_name: str) -> None:
    """AWS copies at most 5 GiB per CopyObject (moto does not enforce it): with the limit lowered, a
    rename and a copy of a larger object go through boto3's multipart copy, byte for byte."""
    from cargohold.storage.s3 import open_s3

    from .suite import generated, read

    store = open_s3(moto_connection(moto_server), bucket_name, copy_limit=1024 * 1024)
    await store.ensure_bucket()
    size = 70 * 1024 * 1024  # over boto3's multipart threshold used for these copies (64 MiB)
    await store.put("big/src.bin", generated(size))
    expected = await read(store, "big/src.bin")
    await store.rename("big/src.bin", "big/renamed.bin")
    await store.copy("big/renamed.bin", "big/copied.bin")
    assert await read(store, "big/renamed.bin") == expected
    assert await read(store, "big/copied.bin") == expected
    assert [m.key async for page in store.list("big") for m in page] == ["big/copied.bin", "big/renamed.bin"]

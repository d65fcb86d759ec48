"""S3-compatible storage (``minio``): AWS S3, MinIO, Ceph and friends, on obstore.

Static keys or an IAM role (keys from the instance metadata service). AWS endpoints use
virtual-hosted addressing; any other endpoint path-style, as MinIO and most others require.
Buckets are created with boto3, since creating a bucket is not an object-store call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from obstore.store import S3Store

from ..errors import AlreadyExists, BackendUnavailable, ConfigError, Forbidden, NotFound, StoreTimeout
from .base import META_TIMEOUT, ObjectMeta
from .connection import Connection
from .imds import ImdsCredentials
from .obstore_store import ObstoreStore, meta_client_options, translated

DEFAULT_REGION = "us-east-1"


def is_aws(endpoint_url: str) -> bool:
    return not endpoint_url or endpoint_url.rstrip("/").endswith(".amazonaws.com")


def open_s3(
    conn: Connection, bucket: str, *, retries: int = 3, credentials: ImdsCredentials | None = None,
    copy_limit: int | None = None,
) -> ObstoreStore:
    """``credentials``: a role's key provider to use instead of the one made from ``conn.iam_role``;
    ``copy_limit``: objects larger than this are copied in parts (default: S3's 5 GiB)."""
    copy_limit = SINGLE_COPY_LIMIT if copy_limit is None else copy_limit
    endpoint = conn.endpoint_url()
    region = conn.region or DEFAULT_REGION
    options: dict[str, Any] = {"region": region, "virtual_hosted_style_request": is_aws(endpoint)}
    if endpoint:
        options["endpoint"] = endpoint
    if credentials is None and conn.iam_role:
        credentials = ImdsCredentials(conn.iam_role, conn.metadata_endpoint)
    elif credentials is None and conn.access_key and conn.secret_key:
        options["access_key_id"] = conn.access_key
        options["secret_access_key"] = conn.secret_key
    elif credentials is None:
        raise ConfigError(conn.key("access_key"), "S3 needs static keys or an IAM role",
                          "set access and secret keys, or an IAM role on an AWS instance")
    allow_http = endpoint.startswith("http://")
    raw = S3Store(
        bucket,
        client_options={"allow_http": allow_http, "connect_timeout": "5s", "timeout": "300s"},
        retry_config={"max_retries": retries, "retry_timeout": timedelta(seconds=30)},
        credential_provider=credentials,
        **options,
    )
    meta = S3Store(bucket, credential_provider=credentials, **meta_client_options(allow_http), **options)

    async def create_bucket() -> None:
        keys = await credentials() if credentials else None
        await asyncio.to_thread(_create_bucket, conn, bucket, endpoint, region, keys)

    async def unfinished(before: datetime, abort: bool) -> list[tuple[str, int]]:
        keys = await credentials() if credentials else None
        return await asyncio.to_thread(_unfinished_uploads, conn, bucket, endpoint, region, keys, before, abort)

    async def large_copy(src: str, dst: str) -> None:
        keys = await credentials() if credentials else None
        await asyncio.to_thread(_multipart_copy, conn, bucket, endpoint, region, keys, src, dst)

    async def list_keys(folder: str, after: str | None, page_size: int) -> AsyncIterator[list[ObjectMeta]]:
        keys = await credentials() if credentials else None
        client = await asyncio.to_thread(_boto_client, conn, endpoint, region, keys, META_TIMEOUT)
        while True:
            page, more = await asyncio.to_thread(_list_page, client, bucket, folder, after, page_size)
            if page:
                yield page
                after = page[-1].key
            if not more or not page:
                return

    return ObstoreStore(raw, name=bucket, provider="minio", create_bucket=create_bucket, unfinished=unfinished,
                        large_copy=(copy_limit, large_copy), list_keys=list_keys, meta=meta)


def _list_page(
    client: Any, bucket: str, folder: str, after: str | None, page_size: int
) -> tuple[list[ObjectMeta], bool]:
    """One page of ListObjectsV2 after the key ``after``, keys as S3 holds them (boto3 asks for them
    URL-encoded, so that XML can carry every character, and decodes them)."""
    import botocore.exceptions

    what = f"list {bucket}/{folder}"
    try:
        answer = client.list_objects_v2(Bucket=bucket, Prefix=folder, MaxKeys=page_size,
                                        **({"StartAfter": after} if after else {}))
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise NotFound(f"{what}: the bucket does not exist") from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise Forbidden(f"{what}: the credentials are refused ({code})") from exc
        raise BackendUnavailable(f"{what}: {code or exc}") from exc
    except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as exc:
        raise StoreTimeout(f"{what}: no answer in time ({exc})") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise BackendUnavailable(f"{what}: {exc}") from exc
    page = [ObjectMeta(o["Key"], o["Size"], o.get("ETag"), o["LastModified"].astimezone(UTC))
            for o in answer.get("Contents", [])]
    return page, bool(answer.get("IsTruncated"))


SINGLE_COPY_LIMIT = 5 * 1024**3
"""S3 copies at most 5 GiB in one CopyObject; larger objects are copied in parts (UploadPartCopy)."""


def _multipart_copy(conn: Connection, bucket: str, endpoint: str, region: str, keys: Any, src: str, dst: str) -> None:
    import boto3.s3.transfer
    import botocore.exceptions

    client = _boto_client(conn, endpoint, region, keys)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=64 * 1024**2, multipart_chunksize=512 * 1024**2)
    try:
        client.copy({"Bucket": bucket, "Key": src}, bucket, dst, Config=config)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise BackendUnavailable(f"copy {bucket}/{src} to {dst} in parts: {code or exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise BackendUnavailable(f"copy {bucket}/{src} to {dst} in parts: {exc}") from exc


def _boto_client(conn: Connection, endpoint: str, region: str, keys: Any, timeout: float | None = None) -> Any:
    """``timeout``: seconds to connect and for each answer, one retry (a metadata call); else boto3's defaults."""
    import boto3
    import botocore.config

    session = boto3.session.Session(
        aws_access_key_id=keys["access_key_id"] if keys else conn.access_key,
        aws_secret_access_key=keys["secret_access_key"] if keys else conn.secret_key,
        aws_session_token=keys.get("token") if keys else None,
        region_name=region,
    )
    return session.client(
        "s3",
        endpoint_url=endpoint or None,
        config=botocore.config.Config(
            s3={"addressing_style": "virtual" if is_aws(endpoint) else "path"},
            retries={"max_attempts": 2},
            connect_timeout=min(5, timeout or 5),
            read_timeout=timeout or 60,  # 60: botocore's default
        ),
    )


def _unfinished_uploads(
    conn: Connection, bucket: str, endpoint: str, region: str, keys: Any, before: datetime, abort: bool
) -> list[tuple[str, int]]:
    """Multipart uploads begun before ``before`` and never completed: their parts are invisible but
    stored (and billed) until aborted."""
    import botocore.exceptions

    client = _boto_client(conn, endpoint, region, keys)
    found = []
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= before:
                    continue
                parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                size = sum(part["Size"] for part in parts.get("Parts", []))
                found.append((f"{bucket}/{upload['Key']} (multipart upload {upload['UploadId'][:12]}...)", size))
                if abort:
                    client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("AccessDenied", "NotImplemented"):
            return []  # the credentials may not list uploads; a lifecycle rule has to clean them
        raise BackendUnavailable(f"list unfinished uploads in {bucket!r}: {code or exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise BackendUnavailable(f"list unfinished uploads in {bucket!r}: {exc}") from exc
    return found


def _create_bucket(conn: Connection, bucket: str, endpoint: str, region: str, keys: Any) -> None:
    import botocore.exceptions

    client = _boto_client(conn, endpoint, region, keys)
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != DEFAULT_REGION:
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        with translated(f"create bucket {bucket!r}"):
            client.create_bucket(**kwargs)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "BucketAlreadyOwnedByYou":
            return
        if code == "BucketAlreadyExists":
            raise AlreadyExists(
                f"bucket {bucket!r} belongs to another account; choose another STORAGE_BUCKET_PREFIX"
            ) from exc
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
            raise Forbidden(
                f"bucket {bucket!r} is missing and these credentials may not create it ({code}); "
                "create it by hand or grant s3:CreateBucket"
            ) from exc
        raise BackendUnavailable(f"create bucket {bucket!r}: {code or exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise BackendUnavailable(f"create bucket {bucket!r}: {exc}") from exc

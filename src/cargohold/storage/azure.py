"""Azure Blob Storage on obstore: account name and key; real Azure or an emulator (Azurite).

An endpoint given without a path is taken as an emulator's (``http://127.0.0.1:10000``), whose
URLs carry the account name as their first segment. Containers are created with azure-storage-blob.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from obstore.store import AzureStore

from ..errors import BackendUnavailable, ConfigError, Forbidden, NotFound, StoreTimeout
from .base import META_TIMEOUT, ObjectMeta
from .connection import Connection
from .obstore_store import ObstoreStore, meta_client_options


def account_url(conn: Connection) -> str:
    endpoint = conn.endpoint_url()
    if not endpoint:
        return f"https://{conn.access_key}.blob.core.windows.net"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if not parts.path and not host.startswith(f"{conn.access_key}."):
        return f"{endpoint}/{conn.access_key}"
    return endpoint


def open_azure(conn: Connection, container: str, *, retries: int = 3) -> ObstoreStore:
    if not conn.access_key or not conn.secret_key:
        raise ConfigError(conn.key("access_key"), "Azure needs the account name and key",
                          "set the access key to the storage account name and the secret key to its key")
    url = account_url(conn)
    allow_http = url.startswith("http://")
    raw = AzureStore(
        container,
        account_name=conn.access_key,
        account_key=conn.secret_key,
        endpoint=url,
        client_options={"allow_http": allow_http, "connect_timeout": "5s", "timeout": "300s"},
        retry_config={"max_retries": retries, "retry_timeout": timedelta(seconds=30)},
    )
    # HEAD, listings (a browse) and DELETE with short limits: a dead endpoint fails them in seconds,
    # not after obstore's 300 s request timeout and retries.
    meta = AzureStore(container, account_name=conn.access_key, account_key=conn.secret_key, endpoint=url,
                      **meta_client_options(allow_http))

    async def create_container() -> None:
        await asyncio.to_thread(_create_container, conn, url, container)

    async def sign_url(key: str, expires_in: timedelta) -> str:
        return _sign_blob_url(conn, url, container, key, expires_in)

    async def list_keys(folder: str, after: str | None, page_size: int) -> AsyncIterator[list[ObjectMeta]]:
        client = _client(conn, url, META_TIMEOUT)
        try:
            pages = client.get_container_client(container).list_blobs(
                name_starts_with=folder or None, results_per_page=page_size).by_page()
            while (page := await asyncio.to_thread(_next_page, pages, f"list {container}/{folder}")) is not None:
                # Azure has no "start after": the pages before the key already listed are read again.
                found = [meta for meta in page if after is None or meta.key > after]
                if found:
                    yield found
        finally:
            client.close()

    return ObstoreStore(
        raw, name=container, provider="azure", create_bucket=create_container, sign_url=sign_url,
        suffix_ranges=False, list_keys=list_keys, meta=meta,
    )


def _next_page(pages: Iterator[Any], what: str) -> list[ObjectMeta] | None:
    """The next page of a List Blobs, names as Azure holds them; None after the last."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestTimeoutError,
        ServiceResponseTimeoutError,
    )

    try:
        page = next(pages, None)
        if page is None:
            return None
        return [ObjectMeta(b.name, b.size, _quoted(b.etag), b.last_modified) for b in page]
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what}: the container does not exist") from exc
    except ClientAuthenticationError as exc:
        raise Forbidden(f"{what}: the account key is refused") from exc
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise Forbidden(f"{what}: the account key is refused") from exc
        raise BackendUnavailable(f"{what}: {exc.message}") from exc
    except (ServiceRequestTimeoutError, ServiceResponseTimeoutError) as exc:
        raise StoreTimeout(f"{what}: no answer in time ({exc})") from exc
    except AzureError as exc:
        raise BackendUnavailable(f"{what}: {exc}") from exc


def _quoted(etag: str | None) -> str | None:
    """The ETag as obstore reports it, quoted (the SDK strips the quotes): one version reads the same
    whichever listed it."""
    return None if not etag else etag if etag.startswith('"') else f'"{etag}"'


def _client(conn: Connection, url: str, timeout: float | None = None) -> Any:
    """azure-storage-blob's client; ``timeout``: seconds to connect and for each answer, one retry."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(
        account_url=url,
        credential={"account_name": conn.access_key, "account_key": conn.secret_key},
        connection_timeout=min(5, timeout or 5),
        retry_total=1,
        read_timeout=timeout or 60,  # 60: the SDK's default
    )


def _sign_blob_url(conn: Connection, url: str, container: str, key: str, expires_in: timedelta) -> str:
    # The SDK's SAS, not obstore's: obstore 0.12 signs the percent-encoded blob name, and Azure
    # (Azurite too) refuses its URLs for names with spaces or non-ASCII letters.
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    now = datetime.now(UTC)
    sas = generate_blob_sas(
        conn.access_key, container, key, account_key=conn.secret_key,
        permission=BlobSasPermissions(read=True), start=now - timedelta(minutes=5), expiry=now + expires_in,
    )
    return f"{url}/{container}/{quote(key)}?{sas}"


def _create_container(conn: Connection, url: str, container: str) -> None:
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceExistsError

    client = _client(conn, url)
    try:
        client.create_container(container)
    except ResourceExistsError:
        return
    except ClientAuthenticationError as exc:
        raise Forbidden(f"container {container!r}: the account key is refused") from exc
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise Forbidden(f"container {container!r} is missing and this key may not create it") from exc
        raise BackendUnavailable(f"create container {container!r}: {exc.message}") from exc
    except AzureError as exc:
        raise BackendUnavailable(f"create container {container!r}: {exc}") from exc
    finally:
        client.close()

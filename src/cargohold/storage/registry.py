"""Which module opens which provider: the one place that maps a provider name to a ``Store``."""

from __future__ import annotations

from .base import Store
from .connection import Connection
from .local import LocalStore


def open_store(conn: Connection, bucket: str) -> Store:
    """A store for one bucket of ``conn``. Library imports are deferred to the provider in use."""
    if conn.provider in ("http", "fs"):
        assert conn.root is not None, "a folder provider needs its root"
        return LocalStore(conn.root / bucket if conn.provider == "http" else conn.root,
                          read_only=conn.provider == "fs")
    if conn.provider == "minio":
        from .s3 import open_s3

        return open_s3(conn, bucket)
    if conn.provider == "azure":
        from .azure import open_azure

        return open_azure(conn, bucket)
    from .gcs import GcsStore

    return GcsStore(conn, bucket)

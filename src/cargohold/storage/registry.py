"""Opening a store: the one function that turns a connection and a bucket into a ``Store``."""

from __future__ import annotations

from .base import Store
from .connection import Connection
from .providers import PROVIDERS


def open_store(conn: Connection, bucket: str) -> Store:
    """A store for one bucket of ``conn``, by its provider's opener (``providers.py``). Library imports are
    deferred to the provider in use."""
    return PROVIDERS[conn.provider].open(conn, bucket)

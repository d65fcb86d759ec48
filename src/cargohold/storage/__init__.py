"""Object storage: one ``Store`` protocol and its providers. Knows nothing of datasets or HTTP."""

from .base import ByteRange, Download, Features, ObjectMeta, Store
from .connection import Connection
from .own import OwnStorage
from .registry import open_store

__all__ = ["ByteRange", "Connection", "Download", "Features", "ObjectMeta", "OwnStorage", "Store", "open_store"]

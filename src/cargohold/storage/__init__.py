"""Object storage: one ``Store`` protocol and its providers. Knows nothing of datasets or HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import ByteRange, Download, Features, ObjectMeta, Store
from .connection import Connection
from .registry import open_store

if TYPE_CHECKING:
    from .own import OwnStorage

__all__ = ["ByteRange", "Connection", "Download", "Features", "ObjectMeta", "OwnStorage", "Store", "open_store"]


def __getattr__(name: str) -> Any:
    # own.py reads settings.py, which reads the provider table of this package: OwnStorage is imported when
    # first asked for, so that importing settings.py first does not import it half-made.
    if name == "OwnStorage":
        from .own import OwnStorage

        return OwnStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

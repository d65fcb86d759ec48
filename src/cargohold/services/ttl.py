"""``TTLCache``: a map whose entries expire, bounded in size: the process's short-lived memories
(``services/memo.py``) are all one of these."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
Clock = Callable[[], float]


class TTLCache(Generic[K, V]):
    """Values kept ``ttl`` seconds after they were put (``math.inf``: until pushed out), at most
    ``max_entries`` of them: a put into a full cache drops the entry put longest ago. A ``ttl`` of 0 or
    less keeps nothing. ``clock`` (seconds, never going back) is there for tests."""

    def __init__(self, ttl: float, max_entries: int, clock: Clock = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("a TTLCache holds at least one entry")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[K, tuple[float, V]] = {}  # in the order put: the first expires first

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if self.clock() > found[0]:
            del self._entries[key]
            return None
        return found[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        entries = self._entries
        entries.pop(key, None)  # put again: to the end, with its new expiry
        if len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[key] = (self.clock() + self.ttl, value)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        """Entries held, expired ones not yet looked up included."""
        return len(self._entries)

"""A seekable, read-only file over ranged reads, for PyAV (FFmpeg reads a container by small reads and seeks).

Standard library only: the SDK uses it (``Client.iter_frames``, over HTTP ``Range`` requests) as the server does
(``media/video.py``, over a store's ranged reads).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any


class KeptBlocks:
    """Blocks fetched by one ``RangedFile`` while it was ``keeping``, for the next one over the same bytes: a
    video's index, which FFmpeg reads again at every open, is fetched once. At most ``limit`` bytes are kept.
    Readers of one video in several threads share it (two frames asked at once): a lock keeps it whole."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self._blocks: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def find(self, pos: int) -> tuple[int, bytes] | None:
        with self._lock:
            for start, data in self._blocks.items():
                if start <= pos < start + len(data):
                    return start, data
        return None

    def keep(self, start: int, data: bytes) -> None:
        with self._lock:
            if start not in self._blocks and self.size + len(data) <= self.limit:
                self._blocks[start] = data
                self.size += len(data)


class RangedFile(io.RawIOBase):
    """``fetch(start, end)`` returns the bytes ``[start, end)``; each read fetches at least ``block`` bytes and the
    last block is kept. ``fetched`` counts the bytes fetched, so that a test or a metric sees what reading cost.
    With ``kept``, blocks found there are not fetched, and what is fetched while ``keeping`` is added to it.
    A fetch that fails raises once and is kept as ``failure``."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, block: int,
                 kept: KeptBlocks | None = None) -> None:
        self._fetch, self._size, self._block_size = fetch, size, block
        self._pos = 0
        self._start, self._block = 0, b""
        self.fetched = 0
        self.kept = kept
        self.keeping = kept is not None
        self.failure: Exception | None = None
        """The first fetch that failed: later reads answer the end of the file, so whoever reads must raise it."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        if not self._start <= self._pos < self._start + len(self._block):
            found = self.kept.find(self._pos) if self.kept is not None else None
            if found is not None:
                self._start, self._block = found
            elif self.failure is not None:
                return 0  # told once: its reader raises it (PyAV prints an exception raised twice, and drops one)
            else:
                try:
                    data = self._fetch(self._pos, min(self._size, self._pos + max(want, self._block_size)))
                except Exception as exc:
                    self.failure = exc
                    raise
                self.fetched += len(data)
                self._start, self._block = self._pos, data
                if self.keeping and self.kept is not None:  # keeping: only with kept, mypy cannot tell
                    self.kept.keep(self._pos, data)
        at = self._pos - self._start
        piece = self._block[at:at + want]
        buffer[:len(piece)] = piece
        self._pos += len(piece)
        return len(piece)

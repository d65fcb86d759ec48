"""An entry being written: one writer, any number of readers following its bytes as they land.

Readers read the temporary file through a descriptor of their own (``os.dup`` of the fill's), so the
rename into place, or the removal of a failed fill, never pulls the file from under them. A reader
that reaches the end of what is written waits for more; if the fill fails, the reader gets the
error instead of a short body.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadGateway
from ..storage.base import CHUNK_SIZE


@dataclass
class Entry:
    """A whole file of a tier, in place under its key."""

    key: str
    path: Path
    size: int
    last_used: float


class Fill:
    def __init__(self, key: str, tmp: Path) -> None:
        self.key = key
        self.tmp = tmp
        self.written = 0
        self.expected: int | None = None
        self.done = False
        self.error: BaseException | None = None
        self.entry: Entry | None = None
        self.task: asyncio.Task[None] | None = None
        self._write_fd: int | None = None
        self._read_fd: int | None = None
        self._changed = asyncio.Event()

    # -- the writer's side ------------------------------------------------------------------------

    def create(self) -> None:
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._write_fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._read_fd = os.open(self.tmp, os.O_RDONLY)

    def probe(self, size: int) -> None:
        """Writes ``size`` zero bytes and takes them back: raises the disk's OSError if it refuses them."""
        assert self._write_fd is not None
        written = 0
        while written < size:
            written += os.pwrite(self._write_fd, bytes(min(size - written, 65536)), written)
        os.ftruncate(self._write_fd, 0)

    def write(self, data: bytes | memoryview) -> None:
        assert self._write_fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._write_fd, view)
            view = view[n:]
        self.advance(len(data))

    def advance(self, n: int) -> None:
        self.written += n
        self._wake()

    def finish_writing(self) -> None:
        """Called when the writer is done: the size is what the file holds (a writer may have filled it
        by other means than ``write``), and must be what was expected."""
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        self.written = self.tmp.stat().st_size
        if self.expected is not None and self.written != self.expected:
            raise BadGateway(f"the source sent {self.written} of {self.expected} bytes; nothing was kept")

    def fail(self, exc: BaseException) -> None:
        self.error = exc

    def release(self) -> None:
        self.done = True
        for fd in (self._write_fd, self._read_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._write_fd = self._read_fd = None
        self._wake()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the readers' side ------------------------------------------------------------------------

    async def wait(self) -> Entry | None:
        """Waits for the end of the fill: its entry (None if it was too large to keep), or its error."""
        while not self.done:
            await self._changed.wait()
        if self.error is not None:
            raise self.error
        return self.entry

    async def started(self) -> None:
        """Waits for the first byte (or the end): the moment a reader can commit to an answer."""
        while not self.done and self.written == 0 and self.expected is None:
            await self._changed.wait()
        if self.error is not None:
            raise self.error

    def follow(self, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Bytes ``[start, end)`` as the writer lands them. Takes its descriptor now, while the fill is
        still running (the caller checks ``done`` first)."""
        if self._read_fd is None:
            raise RuntimeError("the fill is over; read its entry instead")
        fd = os.dup(self._read_fd)

        async def chunks() -> AsyncGenerator[bytes, None]:
            try:
                pos = start
                while pos < end:
                    if pos >= self.written:
                        if self.error is not None:
                            raise self.error
                        if self.done:
                            raise BadGateway("the source ended early")
                        await self._changed.wait()
                        continue
                    chunk = os.pread(fd, min(CHUNK_SIZE, end - pos, self.written - pos), pos)
                    if not chunk:
                        raise BadGateway("the cached copy shrank while being read")
                    pos += len(chunk)
                    if pos >= end and not self.done:
                        # The last bytes go out once the entry is in place (or the fill failed): a
                        # request that follows this one is then a hit, never a second miss.
                        while not self.done:
                            await self._changed.wait()
                        if self.error is not None:
                            raise self.error
                    yield chunk
            finally:
                os.close(fd)

        return chunks()

"""Reading a file's bytes without stalling the event loop: from the page cache in place, from a thread
when they would wait for the disk. Used by local-disk stores and by the HTTP sender."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator

from .base import CHUNK_SIZE

_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def in_page_cache(fd: int, offset: int) -> bool:
    """Whether the byte at ``offset`` can be read without waiting for the disk (Linux RWF_NOWAIT)."""
    if _NOWAIT is None:
        return False
    try:
        return os.preadv(fd, [bytearray(1)], offset, _NOWAIT) == 1
    except OSError:  # BlockingIOError when not cached; EOPNOTSUPP on some file systems
        return False


async def read_range(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes ``[start, end)`` of the open file ``fd`` in chunks of up to ``CHUNK_SIZE``; ``fd`` stays open.

    A chunk already in the page cache is read on the event loop: a thread hop per chunk costs more
    than the read (bench/storage.py). A chunk that would wait for the disk goes to a thread, so a cold
    file never stalls the server. The probe looks at the chunk's last byte; read-ahead fills pages in
    order, so the ones before it are almost always there too.
    """
    pos = start
    while pos < end:
        want = min(CHUNK_SIZE, end - pos)
        if in_page_cache(fd, pos + want - 1):
            chunk = os.pread(fd, want, pos)
        else:
            chunk = await asyncio.to_thread(os.pread, fd, want, pos)
        if not chunk:
            raise OSError(errno.EIO, "the file shrank while being read")
        pos += len(chunk)
        yield chunk

"""One tier of the disk cache: files in a folder, an index that survives restarts, a size cap with
least-recently-used eviction, expiry after a time unused (nginx's ``inactive``), and one fill for
any number of concurrent misses of the same key.

Entries are written to ``.tmp/`` and renamed into place, so a reader never opens a partial entry.
The index (SQLite, beside the entries) is the only proof that a file is a whole entry: on open, a
file the index does not know, or whose size differs from the index, is deleted, never served.
Index writes are batched and flushed about once a second; a crash loses at most that second, and
every way it can lose it is safe (an unindexed file is removed as foreign, an indexed file that is
gone is forgotten, a lost "last used" time only makes the entry expire sooner).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .fill import Entry, Fill

log = logging.getLogger("cargohold.cache")

Clock = Callable[[], float]
Writer = Callable[[Fill], Awaitable[None]]
"""Writes an entry's bytes into ``fill.tmp``, calling ``fill.advance(n)`` as bytes land."""

INDEX_FILE = "index.sqlite3"
TMP_DIR = ".tmp"
FLUSH_EVERY = 1.0
DISK_PROBE = 64 * 1024
"""Bytes a fill writes first, and takes back, while the tier's disk refuses writes (full, read-only)."""


@dataclass
class TierStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expired: int = 0
    fills: int = 0
    fill_errors: int = 0
    bytes_served: int = 0


@dataclass
class Tier:
    name: str
    root: Path
    max_size: int
    expires: float
    clock: Clock = time.time
    stats: TierStats = field(default_factory=TierStats)

    def __post_init__(self) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._fills: dict[str, Fill] = {}
        self._dirty: dict[str, Entry | None] = {}  # index rows to write (None: to delete), by file name
        self._flusher: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._flush_lock = asyncio.Lock()
        self._disk_error: OSError | None = None  # the last write the disk refused, until a fill lands again
        self._index_error = False

    # -- life cycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._load)
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"cache-{self.name}-index")

    async def close(self) -> None:
        if self._flusher is not None:
            async with self._flush_lock:  # not while it writes: its thread would go on beside ours
                self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        for fill in list(self._fills.values()):
            fill.cancel()
        await self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _load(self) -> None:
        self._entries.clear()  # a tier closed and opened again starts from its index alone
        self._bytes = 0
        self._dirty.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / TMP_DIR, ignore_errors=True)  # fills cut short by a crash or a stop
        (self.root / TMP_DIR).mkdir()
        self._db = sqlite3.connect(self.root / INDEX_FILE, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (file TEXT PRIMARY KEY, key TEXT NOT NULL, size INTEGER NOT NULL, "
            "last_used REAL NOT NULL)"
        )
        rows = self._db.execute("SELECT file, key, size, last_used FROM entries ORDER BY last_used").fetchall()
        on_disk = self._files_on_disk()
        now = self.clock()
        forget: list[str] = []
        for file, key, size, last_used in rows:
            path = self.path_for(key)  # where the entry was put: a file of the same name elsewhere is foreign
            found = path in on_disk
            on_disk.discard(path)
            if not found or path.stat().st_size != size or now - last_used > self.expires:
                # Missing, truncated or grown (a partial or foreign write), or unused too long.
                forget.append(file)
                if found:
                    path.unlink(missing_ok=True)
                continue
            self._entries[key] = Entry(key, path, size, last_used)
            self._bytes += size
        for path in on_disk:  # not in the index: never known to be a whole entry
            path.unlink(missing_ok=True)
        self._db.executemany("DELETE FROM entries WHERE file = ?", [(f,) for f in forget])
        if forget or on_disk:
            log.info("cache %s: dropped %d stale index rows and %d unindexed files", self.name, len(forget),
                     len(on_disk))
        self._evict_to(self.max_size)

    def _files_on_disk(self) -> set[Path]:
        files: set[Path] = set()
        for top in self.root.iterdir():
            if top.name in (TMP_DIR,) or top.name.startswith(INDEX_FILE):
                continue
            if not top.is_dir():
                top.unlink()
                continue
            for path in top.rglob("*"):
                if path.is_file() or path.is_symlink():
                    files.add(path)
        return files

    # -- reading ----------------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / digest[2:4] / digest

    def lookup(self, key: str, count: bool = True) -> Entry | None:
        """The entry of ``key`` if it is whole and fresh; marks it used. ``count`` adds a hit or a miss."""
        entry = self._entries.get(key)
        if entry is not None:
            now = self.clock()
            if now - entry.last_used > self.expires:
                self._drop(entry)
                self.stats.expired += 1
                entry = None
            else:
                entry.last_used = now
                self._entries.move_to_end(key)
                self._dirty[entry.path.name] = entry
        if count:
            if entry is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
        return entry

    def discard(self, key: str) -> None:
        """Forgets an entry found broken when read (its file shorter or longer than the index says)."""
        entry = self._entries.get(key)
        if entry is not None:
            log.warning("cache %s: %s does not match its index entry; dropped", self.name, entry.path)
            self._drop(entry)

    def served(self, n: int) -> None:
        self.stats.bytes_served += n

    # -- filling ----------------------------------------------------------------------------------

    def filling(self, key: str) -> Fill | None:
        return self._fills.get(key)

    def fill(self, key: str, writer: Writer) -> Fill:
        """The fill of ``key``: the one already running, or a new one. It runs on its own, whoever waits
        for it: a client that goes away does not cut short the fetch the next client needs."""
        running = self._fills.get(key)
        if running is not None:
            return running
        tmp = self.root / TMP_DIR / f"{self.path_for(key).name}.{os.getpid()}.{time.monotonic_ns()}"
        fill = Fill(key, tmp)
        self.stats.fills += 1
        try:
            fill.create()  # now, not in the task: a reader may follow the fill before its writer first runs
            if self._disk_error is not None:
                # The disk refused a write before: try it with a few bytes before the source is read for a
                # fill bound to fail (and read again for the answer).
                fill.probe(DISK_PROBE)
        except OSError as exc:  # the cache's disk (full, read-only): handed to the waiters like any failure
            self.stats.fill_errors += 1
            self._disk_failed(exc)
            fill.fail(exc)
            fill.release()
            with contextlib.suppress(OSError):
                fill.tmp.unlink(missing_ok=True)
            return fill
        self._fills[key] = fill
        fill.task = asyncio.create_task(self._run_fill(fill, writer), name=f"cache-{self.name}-fill")
        fill.task.add_done_callback(functools.partial(self._fill_ended, fill))
        return fill

    def _fill_ended(self, fill: Fill, task: asyncio.Task[None]) -> None:
        """A fill cancelled before its first step never ran ``_run_fill``: it ends here, or its waiters
        would wait forever."""
        if not fill.done:
            self.stats.fill_errors += 1
            fill.fail(asyncio.CancelledError())
            fill.tmp.unlink(missing_ok=True)
            if self._fills.get(fill.key) is fill:
                del self._fills[fill.key]
            fill.release()

    async def _run_fill(self, fill: Fill, writer: Writer) -> None:
        try:
            await writer(fill)
            fill.finish_writing()
            fill.entry = self._admit(fill)
        except BaseException as exc:  # handed to every waiter; re-raised only if cancelled
            self.stats.fill_errors += 1
            if isinstance(exc, OSError):
                self._disk_failed(exc)
            fill.fail(exc)
            with contextlib.suppress(OSError):
                fill.tmp.unlink(missing_ok=True)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            del self._fills[fill.key]
            fill.release()

    def _admit(self, fill: Fill) -> Entry | None:
        """Renames a finished fill into place and indexes it; None when it is larger than the whole tier
        (its followers still get every byte, but nothing is kept)."""
        size = fill.written
        if size > self.max_size:
            fill.tmp.unlink(missing_ok=True)
            return None
        old = self._entries.get(fill.key)
        if old is not None:  # replaced below: its size must not make others be evicted
            self._drop(old)
        self._evict_to(self.max_size - size)
        path = self.path_for(fill.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fill.tmp, path)
        entry = Entry(fill.key, path, size, self.clock())
        self._entries[fill.key] = entry
        self._bytes += size
        self._dirty[path.name] = entry
        if self._disk_error is not None:
            log.warning("cache %s: %s takes writes again; copies are kept again", self.name, self.root)
            self._disk_error = None
        return entry

    def _disk_failed(self, exc: OSError) -> None:
        """A write to the tier's disk failed (full, read-only, gone). Logged once, not per request, until
        a fill lands again; meanwhile answers come from the source and nothing is kept."""
        if self._disk_error is None:
            log.error("cache %s: cannot write to %s (%s); answering from the source without keeping copies "
                      "until it can", self.name, self.root, exc.strerror or exc)
        self._disk_error = exc

    # -- eviction ---------------------------------------------------------------------------------

    def _drop(self, entry: Entry) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            self._bytes -= entry.size
        entry.path.unlink(missing_ok=True)  # a reader that has it open keeps reading (POSIX)
        self._dirty[entry.path.name] = None

    def _evict_to(self, limit: int) -> None:
        while self._bytes > limit and self._entries:
            self._drop(next(iter(self._entries.values())))
            self.stats.evictions += 1

    def sweep(self) -> int:
        """Drops every entry unused for longer than the expiry; the least recently used come first."""
        cutoff = self.clock() - self.expires
        dropped = 0
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.last_used >= cutoff:
                break
            self._drop(oldest)
            dropped += 1
        self.stats.expired += dropped
        return dropped

    def clear(self) -> int:
        dropped = len(self._entries)
        for entry in list(self._entries.values()):
            self._drop(entry)
        return dropped

    # -- index ------------------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def flush(self) -> None:
        async with self._flush_lock:
            if not self._dirty or self._db is None:
                return
            dirty, self._dirty = self._dirty, {}  # under the lock: a flush cancelled while waiting loses nothing
            try:
                await asyncio.to_thread(self._write_index, dirty)
            except BaseException:
                self._dirty = dirty | self._dirty  # newer changes win; written at the next flush
                raise

    def _write_index(self, dirty: dict[str, Entry | None]) -> None:
        assert self._db is not None
        upserts = [(name, e.key, e.size, e.last_used) for name, e in dirty.items() if e is not None]
        deletes = [(name,) for name, e in dirty.items() if e is None]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM entries WHERE file = ?", deletes)
            self._db.executemany(
                "INSERT INTO entries (file, key, size, last_used) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (file) DO UPDATE SET size = excluded.size, last_used = excluded.last_used",
                upserts,
            )

    async def _flush_loop(self) -> None:
        sweep_every = max(1.0, min(60.0, self.expires / 4))
        next_sweep = time.monotonic() + sweep_every
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            if time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + sweep_every
            try:
                await self.flush()
            except (sqlite3.Error, OSError) as exc:  # a full disk, say: the cache goes on, the index catches up
                if not self._index_error:  # logged once, not every second
                    log.warning("cache %s: index not written: %s (retried every %g s)", self.name, exc, FLUSH_EVERY)
                self._index_error = True
            else:
                if self._index_error:
                    log.warning("cache %s: index written again", self.name)
                self._index_error = False

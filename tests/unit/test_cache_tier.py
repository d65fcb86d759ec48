"""The disk cache tier (cache/tier.py, cache/fill.py) against a real folder, with an injected clock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from cargohold.cache import tier as tier_module
from cargohold.cache.fill import Fill
from cargohold.cache.tier import INDEX_FILE, TMP_DIR, Entry, Tier
from cargohold.errors import BadGateway

Writer = Callable[[Fill], Awaitable[None]]
OpenTier = Callable[..., Awaitable[Tier]]

START = 1_000_000.0


class SourceBroke(Exception):
    pass


@pytest.fixture
def now() -> list[float]:
    return [START]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "tier"


@pytest.fixture
async def open_tier(root: Path, now: list[float]) -> AsyncIterator[OpenTier]:
    opened: list[Tier] = []

    async def make(max_size: int = 100_000, expires: float = 3600.0) -> Tier:
        tier = Tier("test", root, max_size, expires, clock=lambda: now[0])
        await tier.open()
        opened.append(tier)
        return tier

    yield make
    for tier in opened:
        await tier.close()


def writing(data: bytes) -> Writer:
    async def writer(fill: Fill) -> None:
        fill.write(data)

    return writer


async def put(tier: Tier, key: str, data: bytes) -> Entry | None:
    return await tier.fill(key, writing(data)).wait()


def files_in(root: Path) -> set[Path]:
    """Every file in the tier's folder but the index."""
    return {p for p in root.rglob("*") if p.is_file() and not p.name.startswith(INDEX_FILE)}


def entry_files(root: Path) -> set[Path]:
    return {p for p in files_in(root) if TMP_DIR not in p.relative_to(root).parts}


def body(n: int, fill_byte: int) -> bytes:
    return bytes([fill_byte]) * n


# -- size cap and LRU ------------------------------------------------------------------------------


async def test_lru_eviction_at_the_size_cap(open_tier: OpenTier, root: Path, now: list[float]) -> None:
    tier = await open_tier(max_size=300)
    for i, key in enumerate("abc"):
        now[0] = START + i
        assert await put(tier, key, body(100, i)) is not None
    assert tier.bytes == 300
    assert tier.stats.evictions == 0

    now[0] = START + 10
    assert tier.lookup("a") is not None  # a is now the most recently used; b the least
    b_path = tier.path_for("b")
    assert b_path.exists()

    now[0] = START + 11
    assert await put(tier, "d", body(100, 3)) is not None

    assert not b_path.exists()
    assert tier.lookup("b") is None
    for i, key in ((0, "a"), (2, "c"), (3, "d")):
        entry = tier.lookup(key)
        assert entry is not None, key
        assert entry.path.read_bytes() == body(100, i)
    assert tier.stats.evictions == 1
    assert tier.entries == 3
    assert tier.bytes == 300 <= tier.max_size
    assert entry_files(root) == {tier.path_for(k) for k in "acd"}


async def test_eviction_frees_as_much_as_the_new_entry_needs(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(max_size=300)
    for i, key in enumerate("abc"):
        now[0] = START + i
        await put(tier, key, body(100, i))
    await put(tier, "big", body(250, 9))
    assert [k for k in "abc" if tier.lookup(k, count=False) is not None] == []
    assert tier.stats.evictions == 3
    assert tier.bytes == 250


async def test_refilling_a_key_replaces_it_without_evicting_others(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(max_size=300)
    for i, key in enumerate("abc"):
        now[0] = START + i
        await put(tier, key, body(100, i))
    entry = await put(tier, "c", body(100, 7))
    assert entry is not None
    assert entry.path.read_bytes() == body(100, 7)
    assert tier.stats.evictions == 0
    assert all(tier.lookup(k) is not None for k in "abc")
    assert tier.bytes == 300


async def test_an_entry_larger_than_the_tier_is_not_kept(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier(max_size=300)
    await put(tier, "small", body(100, 1))
    data = bytes(range(256)) + bytes(range(144))  # 400 bytes

    async def writer(fill: Fill) -> None:
        for i in range(0, len(data), 100):
            await asyncio.sleep(0)
            fill.write(data[i : i + 100])

    fill = tier.fill("huge", writer)
    await fill.started()
    got = b"".join([chunk async for chunk in fill.follow(0, len(data))])

    assert got == data  # the follower still got every byte
    assert await fill.wait() is None
    assert tier.lookup("huge") is None
    assert not tier.path_for("huge").exists()
    assert entry_files(root) == {tier.path_for("small")}  # and the small one was not evicted for nothing
    assert files_in(root / TMP_DIR) == set()
    assert tier.bytes == 100
    assert tier.stats.evictions == 0


# -- expiry ----------------------------------------------------------------------------------------


async def test_an_entry_unused_longer_than_expiry_is_a_miss(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(expires=100)
    entry = await put(tier, "a", b"hello")
    assert entry is not None
    now[0] = START + 100  # exactly the expiry: still fresh
    assert tier.lookup("a") is not None
    now[0] = START + 200.5
    assert tier.lookup("a") is None
    assert not entry.path.exists()
    assert tier.stats.expired == 1
    assert tier.stats.misses == 1
    assert tier.bytes == 0
    assert tier.entries == 0


async def test_lookups_keep_an_entry_fresh(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(expires=100)
    await put(tier, "used", b"used")
    await put(tier, "unused", b"unused")
    for t in (60, 120, 180, 240):  # each look-up within the expiry of the one before
        now[0] = START + t
        entry = tier.lookup("used")
        assert entry is not None
        assert entry.last_used == now[0]
    assert tier.lookup("unused") is None
    assert tier.lookup("used") is not None
    assert tier.stats.expired == 1


async def test_sweep_drops_expired_entries_without_lookups(
    open_tier: OpenTier, root: Path, now: list[float]
) -> None:
    tier = await open_tier(expires=100)
    await put(tier, "old1", b"1")
    await put(tier, "old2", b"22")
    now[0] = START + 80
    await put(tier, "new", b"333")
    now[0] = START + 150  # old ones unused for 150 s, the new one for 70 s
    assert tier.sweep() == 2
    assert entry_files(root) == {tier.path_for("new")}
    assert tier.stats.expired == 2
    assert tier.stats.hits == tier.stats.misses == 0
    assert tier.entries == 1
    assert tier.bytes == 3
    assert tier.sweep() == 0


# -- single flight and followers -------------------------------------------------------------------


async def test_concurrent_misses_run_one_fill(open_tier: OpenTier) -> None:
    tier = await open_tier()
    calls = 0

    async def writer(fill: Fill) -> None:
        nonlocal calls
        calls += 1
        for _ in range(5):
            await asyncio.sleep(0)
            fill.write(b"x" * 10)

    async def miss() -> Entry | None:
        return await tier.fill("k", writer).wait()

    entries = await asyncio.gather(*(miss() for _ in range(50)))
    assert calls == 1
    assert entries[0] is not None
    assert all(e is entries[0] for e in entries)
    assert entries[0].path.read_bytes() == b"x" * 50
    assert tier.stats.fills == 1
    assert tier.filling("k") is None


async def test_a_follower_gets_the_bytes_as_they_land(open_tier: OpenTier) -> None:
    tier = await open_tier()
    chunks = [body(10, i) for i in range(5)]
    gates = [asyncio.Event() for _ in chunks]

    async def writer(fill: Fill) -> None:
        fill.expected = 50
        for chunk, gate in zip(chunks, gates, strict=True):
            await gate.wait()
            fill.write(chunk)

    fill = tier.fill("k", writer)
    follower = fill.follow(0, 50)  # joins the moment the fill exists, before its writer ran
    for i, gate in enumerate(gates):
        gate.set()
        assert await anext(follower) == chunks[i]
        if i < len(gates) - 1:
            assert not fill.done  # each chunk arrived while the fill was still running
    assert [c async for c in follower] == []
    entry = await fill.wait()
    assert entry is not None
    assert entry.path.read_bytes() == b"".join(chunks)


async def test_followers_and_writer_interleave(open_tier: OpenTier) -> None:
    tier = await open_tier()
    chunks = [body(1000, i) for i in range(5)]

    async def writer(fill: Fill) -> None:
        for chunk in chunks:
            fill.write(chunk)
            await asyncio.sleep(0)

    fill = tier.fill("k", writer)
    await fill.started()

    async def read(start: int, end: int) -> list[bytes]:
        return [c async for c in fill.follow(start, end)]

    whole, part = await asyncio.gather(read(0, 5000), read(1500, 3500))
    assert b"".join(whole) == b"".join(chunks)
    assert len(whole) > 1  # followed the fill rather than reading a finished file
    assert b"".join(part) == b"".join(chunks)[1500:3500]


async def test_a_failed_fill_fails_its_followers(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()

    async def writer(fill: Fill) -> None:
        fill.expected = 50
        for _ in range(2):
            fill.write(b"y" * 10)
            await asyncio.sleep(0)
        raise SourceBroke("connection reset")

    fill = tier.fill("k", writer)
    got: list[bytes] = []
    with pytest.raises(SourceBroke):
        async for chunk in fill.follow(0, 50):
            got.append(chunk)
    assert b"".join(got) == b"y" * 20  # what had landed, then the error: never a short end
    with pytest.raises(SourceBroke):
        await fill.wait()
    assert fill.entry is None
    assert tier.lookup("k") is None
    assert files_in(root) == set()  # neither the entry nor its temporary file
    assert tier.stats.fill_errors == 1
    assert tier.filling("k") is None
    assert tier.bytes == 0

    entry = await put(tier, "k", b"z" * 50)  # the next miss tries again
    assert entry is not None
    assert tier.stats.fills == 2


async def test_a_short_body_is_an_error_and_not_kept(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()

    async def writer(fill: Fill) -> None:
        fill.expected = 100
        fill.write(b"a" * 30)
        await asyncio.sleep(0)
        fill.write(b"b" * 30)

    fill = tier.fill("k", writer)
    with pytest.raises(BadGateway):
        async for _ in fill.follow(0, 100):
            pass
    with pytest.raises(BadGateway, match="60 of 100"):
        await fill.wait()
    assert tier.lookup("k") is None
    assert files_in(root) == set()
    assert tier.stats.fill_errors == 1


async def test_a_follower_asking_past_the_end_gets_an_error(open_tier: OpenTier) -> None:
    tier = await open_tier()

    async def writer(fill: Fill) -> None:  # no expected size: the fill itself succeeds with 60 bytes
        fill.write(b"a" * 30)
        await asyncio.sleep(0)
        fill.write(b"b" * 30)

    fill = tier.fill("k", writer)
    got: list[bytes] = []
    with pytest.raises(BadGateway, match="ended early"):
        async for chunk in fill.follow(0, 100):
            got.append(chunk)
    assert b"".join(got) == b"a" * 30 + b"b" * 30
    entry = await fill.wait()
    assert entry is not None
    assert entry.size == 60


async def test_a_disk_error_at_the_start_is_the_fills_error(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()
    (root / TMP_DIR).rmdir()
    (root / TMP_DIR).write_bytes(b"")  # no temporary file can be made: an OSError, as a full disk gives
    fill = tier.fill("k", writing(b"data"))
    with pytest.raises(OSError):
        await fill.started()  # where a caller learns it must do without the cache
    with pytest.raises(OSError):
        await fill.wait()
    assert tier.filling("k") is None
    assert tier.stats.fill_errors == 1
    (root / TMP_DIR).unlink()
    assert await put(tier, "k", b"data") is not None


async def test_a_fill_cancelled_before_it_started_releases_its_waiters(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()
    fill = tier.fill("k", writing(b"data"))
    fill.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(fill.wait(), 2)  # not a hang (TimeoutError)
    assert tier.filling("k") is None
    assert files_in(root) == set()
    assert await put(tier, "k", b"data") is not None


async def test_a_reader_keeps_reading_an_evicted_entry(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(max_size=200)
    a = await put(tier, "a", body(100, 1))
    assert a is not None
    with a.path.open("rb") as f:
        assert f.read(10) == body(10, 1)
        now[0] = START + 1
        await put(tier, "b", body(100, 2))
        await put(tier, "c", body(100, 3))
        assert not a.path.exists()
        assert f.read() == body(90, 1)


# -- clear and discard -----------------------------------------------------------------------------


async def test_clear_and_discard(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()
    for key in "abc":
        await put(tier, key, key.encode() * 10)
    tier.discard("b")
    tier.discard("no-such-key")
    assert tier.lookup("b") is None
    assert entry_files(root) == {tier.path_for("a"), tier.path_for("c")}
    assert tier.bytes == 20

    assert tier.clear() == 2
    assert entry_files(root) == set()
    assert tier.entries == tier.bytes == 0
    assert tier.lookup("a") is None
    await tier.close()

    reopened = await open_tier()  # the index forgot them too
    assert reopened.entries == 0


# -- restarts --------------------------------------------------------------------------------------


async def test_open_checks_every_file_against_the_index(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()
    data = {key: key.encode() * 100 for key in ("intact1", "intact2", "truncated", "deleted")}
    for key, value in data.items():
        await put(tier, key, value)
    await tier.close()

    truncated = tier.path_for("truncated")
    with truncated.open("r+b") as f:
        f.truncate(50)
    tier.path_for("deleted").unlink()
    foreign = [
        tier.path_for("intact1").parent / "a-random-name",
        root / "zz" / "yy" / "x" / "another",
        root / "stray-at-the-top",
    ]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an entry")
    (root / TMP_DIR / "half-written.123.456").write_bytes(b"half")

    reopened = await open_tier()
    assert reopened.lookup("truncated") is None
    assert not truncated.exists()
    assert reopened.lookup("deleted") is None
    for path in foreign:
        assert not path.exists(), path
    assert list((root / TMP_DIR).iterdir()) == []
    for key in ("intact1", "intact2"):
        entry = reopened.lookup(key)
        assert entry is not None
        assert entry.path.read_bytes() == data[key]
    assert entry_files(root) == {reopened.path_for("intact1"), reopened.path_for("intact2")}
    assert reopened.entries == 2
    assert reopened.bytes == 2 * len(data["intact1"])


async def test_a_file_named_like_an_entry_elsewhere_is_not_served(open_tier: OpenTier, root: Path) -> None:
    tier = await open_tier()
    await put(tier, "a", b"A" * 100)
    await tier.close()
    real = tier.path_for("a")
    impostor = root / "zz" / real.name
    impostor.parent.mkdir()
    impostor.write_bytes(b"B" * 100)  # same name and size, wrong place
    real.unlink()

    reopened = await open_tier()
    assert reopened.lookup("a") is None
    assert not impostor.exists()


async def test_unflushed_entries_are_removed_after_a_crash(open_tier: OpenTier, root: Path) -> None:
    first = await open_tier()
    await put(first, "flushed", b"f" * 10)
    await first.flush()
    await put(first, "unflushed1", b"u" * 10)
    await put(first, "unflushed2", b"v" * 10)
    # A crash: the index rows of the last two were never written.
    assert first._flusher is not None
    first._flusher.cancel()
    await asyncio.gather(first._flusher, return_exceptions=True)
    first._flusher = None
    assert first.path_for("unflushed1").exists()

    second = await open_tier()
    assert second.lookup("unflushed1") is None
    assert second.lookup("unflushed2") is None
    assert not first.path_for("unflushed1").exists()
    assert not first.path_for("unflushed2").exists()
    flushed = second.lookup("flushed")
    assert flushed is not None
    assert flushed.path.read_bytes() == b"f" * 10
    assert entry_files(root) == {second.path_for("flushed")}
    first._dirty.clear()  # the crashed tier writes nothing more


async def test_last_used_times_survive_a_restart(open_tier: OpenTier, root: Path, now: list[float]) -> None:
    tier = await open_tier(expires=100)
    await put(tier, "recent", b"r" * 10)
    await put(tier, "stale", b"s" * 10)
    now[0] = START + 80
    assert tier.lookup("recent") is not None
    await tier.close()

    now[0] = START + 150  # "recent" last used 70 s ago, "stale" 150 s ago
    reopened = await open_tier(expires=100)
    assert reopened.entries == 1
    assert not reopened.path_for("stale").exists()
    assert reopened.lookup("stale", count=False) is None
    recent = reopened.lookup("recent", count=False)
    assert recent is not None
    assert recent.path.read_bytes() == b"r" * 10
    await reopened.close()

    with sqlite3.connect(root / INDEX_FILE) as db:  # and the stale row is gone from the index
        assert [r[0] for r in db.execute("SELECT key FROM entries")] == ["recent"]


async def test_lru_order_survives_a_restart(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(max_size=300)
    for i, key in enumerate("abc"):
        now[0] = START + i
        await put(tier, key, body(100, i))
    now[0] = START + 10
    tier.lookup("a")
    await tier.close()

    reopened = await open_tier(max_size=300)
    now[0] = START + 20
    await put(reopened, "d", body(100, 3))
    assert reopened.lookup("b") is None
    assert all(reopened.lookup(k) is not None for k in "acd")


async def test_a_smaller_cap_at_open_evicts_the_least_recently_used(open_tier: OpenTier, now: list[float]) -> None:
    tier = await open_tier(max_size=300)
    for i, key in enumerate("abc"):
        now[0] = START + i
        await put(tier, key, body(100, i))
    await tier.close()

    reopened = await open_tier(max_size=150)
    assert reopened.entries == 1
    assert reopened.lookup("c") is not None
    assert not reopened.path_for("a").exists()
    assert not reopened.path_for("b").exists()


async def test_closing_and_reopening_the_same_tier(open_tier: OpenTier) -> None:
    tier = await open_tier()
    await put(tier, "a", b"a" * 100)
    await put(tier, "b", b"b" * 100)
    await tier.close()
    await tier.open()
    assert tier.entries == 2
    assert tier.bytes == 200


async def test_close_waits_for_an_index_write_in_progress(
    open_tier: OpenTier, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tier_module, "FLUSH_EVERY", 0.01)
    tier = await open_tier()
    write_index = tier._write_index
    in_write = threading.Event()

    def slow_write_index(dirty: dict[str, Entry | None]) -> None:
        if not in_write.is_set():  # the flusher's first write holds its transaction open a while
            assert tier._db is not None
            with tier._db:
                tier._db.execute("BEGIN")
                in_write.set()
                time.sleep(0.3)
        write_index(dirty)

    tier._write_index = slow_write_index  # type: ignore[method-assign]
    await put(tier, "a", b"a" * 10)
    for _ in range(200):
        if in_write.is_set():
            break
        await asyncio.sleep(0.01)
    assert in_write.is_set()
    await put(tier, "b", b"b" * 10)
    await tier.close()  # neither fails nor writes beside the flusher's transaction

    reopened = await open_tier()
    assert reopened.lookup("a") is not None
    assert reopened.lookup("b") is not None

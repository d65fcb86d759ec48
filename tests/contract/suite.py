"""The contract every ``Store`` passes, whatever the provider.

A provider opts in with a test module that defines a ``store`` fixture (an empty, ready bucket)
and subclasses ``StoreContract``; the suite skips nothing unless the store's ``features`` say it
cannot do a thing. (After rclone's fstests.)
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from cargohold.errors import InvalidKey, NotFound, RangeNotSatisfiable, Unsupported
from cargohold.storage import ByteRange, Store
from cargohold.storage.base import PART_SIZE

ODD_KEYS = [
    "with space/and more spaces.jpg",
    "unicode/日本語/ñandú-Ωmega.png",
    "plus+sign/a+b=c.txt",
    "percent/100%/a%20b%2Fc.txt",
    "deep/" + "/".join(f"level{i}" for i in range(12)) + "/leaf.bin",
    "punctuation/(x) [y] {z} !$&',;=@~.txt",
]


def pattern(size: int, seed: int = 0) -> bytes:
    """Bytes that differ at every offset, so a misplaced range shows."""
    block = hashlib.sha256(str(seed).encode()).digest() * 64
    return (block * (size // len(block) + 1))[:size]


async def generated(size: int, chunk: int = 1024 * 1024, fail_at: int | None = None) -> AsyncIterator[bytes]:
    """A stream of ``size`` deterministic bytes; raises after ``fail_at`` bytes if given."""
    block = pattern(chunk)
    sent = 0
    while sent < size:
        if fail_at is not None and sent >= fail_at:
            raise ConnectionResetError("the client went away")
        n = min(chunk, size - sent)
        yield block[:n]
        sent += n


async def read(store: Store, key: str, byte_range: ByteRange | None = None) -> bytes:
    return await (await store.get(key, byte_range)).read()


async def all_keys(store: Store, prefix: str = "", page_size: int = 1000) -> list[str]:
    return sorted([m.key async for page in store.list(prefix, page_size) for m in page])


class StoreContract:
    async def test_put_get_head_small(self, store: Store) -> None:
        meta = await store.put("a/hello.txt", b"hello world")
        assert meta.key == "a/hello.txt"
        assert meta.size == 11
        head = await store.head("a/hello.txt")
        assert head.size == 11
        assert head.etag
        download = await store.get("a/hello.txt")
        assert (download.start, download.end, download.meta.size) == (0, 11, 11)
        assert await download.read() == b"hello world"

    async def test_zero_byte_object(self, store: Store) -> None:
        await store.put("empty", b"")
        assert (await store.head("empty")).size == 0
        assert await read(store, "empty") == b""
        assert await all_keys(store) == ["empty"]

    @pytest.mark.timeout(300)
    async def test_100mb_object_streams_both_ways(self, store: Store) -> None:
        size = 100 * 1024 * 1024 + 17  # not a whole number of parts
        expected = hashlib.sha256()
        async for chunk in generated(size):
            expected.update(chunk)
        meta = await store.put("big/blob.bin", generated(size))
        assert meta.size == size
        digest = hashlib.sha256()
        largest = 0
        async for chunk in await store.get("big/blob.bin"):
            digest.update(chunk)
            largest = max(largest, len(chunk))
        assert digest.hexdigest() == expected.hexdigest()
        assert largest <= 2 * PART_SIZE, "a download must stream, not arrive whole"

    async def test_ranges(self, store: Store) -> None:
        data = pattern(1000)
        await store.put("r.bin", data)
        assert await read(store, "r.bin", ByteRange(0, 1)) == data[:1]
        assert await read(store, "r.bin", ByteRange(999)) == data[999:]
        assert await read(store, "r.bin", ByteRange(100, 200)) == data[100:200]
        assert await read(store, "r.bin", ByteRange(990, 5000)) == data[990:]
        assert await read(store, "r.bin", ByteRange.last(10)) == data[-10:]
        assert await read(store, "r.bin", ByteRange.last(5000)) == data
        download = await store.get("r.bin", ByteRange(100, 200))
        assert (download.start, download.end, download.meta.size) == (100, 200, 1000)
        await download.read()
        with pytest.raises(RangeNotSatisfiable):
            await read(store, "r.bin", ByteRange(1000))
        with pytest.raises(RangeNotSatisfiable):
            await read(store, "r.bin", ByteRange(5000, 6000))

    async def test_listing_spans_pages_and_respects_folders(self, store: Store) -> None:
        keys = [f"many/{i:03d}.bin" for i in range(25)]
        for key in keys:
            await store.put(key, key.encode())
        await store.put("many-not/x.bin", b"x")
        await store.put("man/y.bin", b"y")
        pages = [page async for page in store.list("many", page_size=10)]
        assert len(pages) >= 3
        assert sorted(m.key for page in pages for m in page) == keys
        assert await all_keys(store, "many/") == keys
        assert await all_keys(store, "man") == ["man/y.bin"]
        assert len(await all_keys(store)) == 27
        sizes = {m.key: m.size async for page in store.list("many") for m in page}
        assert sizes["many/007.bin"] == len(b"many/007.bin")

    async def test_odd_keys_round_trip_unchanged(self, store: Store) -> None:
        for i, key in enumerate(ODD_KEYS):
            await store.put(key, pattern(100 + i, seed=i))
        for i, key in enumerate(ODD_KEYS):
            assert (await store.head(key)).key == key
            assert await read(store, key) == pattern(100 + i, seed=i)
        assert await all_keys(store) == sorted(ODD_KEYS)
        assert await all_keys(store, "unicode/日本語") == ["unicode/日本語/ñandú-Ωmega.png"]
        assert await all_keys(store, "percent/100%") == ["percent/100%/a%20b%2Fc.txt"]

    async def test_missing_key(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.head("no/such/key")
        with pytest.raises(NotFound):
            await read(store, "no/such/key")
        assert await all_keys(store, "no") == []

    async def test_overwrite_replaces_whole_object(self, store: Store) -> None:
        await store.put("k", b"first version, longer")
        await store.put("k", b"second")
        assert await read(store, "k") == b"second"
        assert (await store.head("k")).size == 6

    async def test_delete_and_delete_missing(self, store: Store) -> None:
        await store.put("d/x", b"x")
        await store.delete("d/x")
        with pytest.raises(NotFound):
            await store.head("d/x")
        await store.delete("d/x")
        await store.delete("never/was/here")
        assert await all_keys(store) == []

    async def test_copy(self, store: Store) -> None:
        await store.put("src/a.bin", pattern(5000))
        await store.copy("src/a.bin", "dst/b.bin")
        assert await read(store, "dst/b.bin") == pattern(5000)
        assert await read(store, "src/a.bin") == pattern(5000)
        with pytest.raises(NotFound):
            await store.copy("src/missing", "dst/c.bin")

    async def test_rename(self, store: Store) -> None:
        await store.put("stage/x.bin", pattern(3000))
        await store.put("final/y.bin", b"to be replaced")
        await store.rename("stage/x.bin", "final/y.bin")
        assert await read(store, "final/y.bin") == pattern(3000)
        with pytest.raises(NotFound):
            await store.head("stage/x.bin")
        assert await all_keys(store) == ["final/y.bin"]
        with pytest.raises(NotFound):
            await store.rename("stage/x.bin", "final/z.bin")

    async def test_interrupted_put_leaves_nothing_visible(self, store: Store) -> None:
        size = 3 * PART_SIZE
        with pytest.raises(ConnectionResetError):
            await store.put("half/new.bin", generated(size, fail_at=2 * PART_SIZE))
        with pytest.raises(NotFound):
            await store.head("half/new.bin")
        await store.put("half/old.bin", b"the old bytes")
        with pytest.raises(ConnectionResetError):
            await store.put("half/old.bin", generated(size, fail_at=2 * PART_SIZE))
        assert await read(store, "half/old.bin") == b"the old bytes"
        assert await all_keys(store) == ["half/old.bin"]

    async def test_bad_keys_refused(self, store: Store) -> None:
        for key in ["../escape", "a/../../b", "a//b", "/abs", "trailing/", "nul\x00byte", ""]:
            with pytest.raises(InvalidKey):
                await store.put(key, b"x")

    async def test_signed_url(self, store: Store) -> None:
        await store.put("signed/ä b+c.txt", b"signed bytes")
        if not store.features.sign_urls:
            with pytest.raises(Unsupported):
                await store.sign_url("signed/ä b+c.txt", timedelta(minutes=5))
            return
        url = await store.sign_url("signed/ä b+c.txt", timedelta(minutes=5))
        async with httpx.AsyncClient() as client:
            answer = await client.get(url)
        assert answer.status_code == 200, answer.text
        assert answer.content == b"signed bytes"

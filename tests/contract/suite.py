"""The contract every ``Store`` passes, whatever the provider (after rclone's fstests).

A provider opts in with a test module of a few lines: a ``connection`` fixture (the ``Connection`` whose
buckets the tests may create) and a class that subclasses ``StoreContract``. A store cargohold only
reads (an ``fs://`` mount) subclasses ``ReadOnlyStoreContract`` instead, its ``connection`` reaching a
folder filled beforehand with ``MOUNTED`` (``fill``) and ``missing_connection`` one that does not exist.

The suite skips by capability, never by provider: what ``store.features`` says the store cannot do.
A store whose features offer ``unfinished`` uploads also gives a ``leave_unfinished_upload(size)``
fixture, leaving one behind as its provider keeps them. Every module gives a ``put_foreign(key, data)``
fixture, writing an object by the provider's own means, past cargohold's key rules, as another tool would
(False for a key that provider cannot hold at all).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cargohold.errors import BadInput, Forbidden, InvalidKey, NotFound, RangeNotSatisfiable
from cargohold.storage import ByteRange, Connection, Store, open_store
from cargohold.storage.base import (
    PART_SIZE,
    FolderListing,
    InPlaceWrites,
    SharedFile,
    SigningStore,
    UnfinishedUploads,
)

ODD_KEYS = [
    "with space/and more spaces.jpg",
    "unicode/日本語/ñandú-Ωmega.png",
    "plus+sign/a+b=c.txt",
    "percent/100%/a%20b%2Fc.txt",
    "deep/" + "/".join(f"level{i}" for i in range(12)) + "/leaf.bin",
    "punctuation/(x) [y] {z} !$&',;=@~.txt",
]
FOREIGN_KEYS = ["foreign/a.txt", "foreign/tab\there.txt", "foreign/double//slash.txt", "foreign/z.txt"]
"""Keys another tool may write that cargohold would not (``check_key``); obstore cannot parse the middle two."""
FOLDER_TREE = ["top.txt", "a/1.txt", "a/2.txt", "a/deep/3.txt", "b/4.txt", "c.txt", "d/5.txt"]
PAGED = [f"paged/{i}.txt" for i in range(5)] + [f"paged/sub{i}/x.txt" for i in range(3)]
"""One level of 5 objects and 3 sub-folders, for paging ``list_folder`` 2 entries at a time."""
CAPABILITIES = {"signing": SigningStore, "folders": FolderListing, "unfinished": UnfinishedUploads,
                "in_place": InPlaceWrites}
"""Each optional capability's field in ``Features``, and the protocol a store offering it implements."""


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


def folders_of(store: Store) -> FolderListing:
    folders = store.features.folders
    if folders is None:
        pytest.skip(f"{store.provider} has no folder listing")
    return folders


def level(keys: Iterable[str], prefix: str) -> tuple[list[str], list[str]]:
    """What ``list_folder(prefix)`` must show of a bucket holding ``keys``: sub-folders, object keys."""
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    folders, objects = set(), []
    for key in keys:
        if key.startswith(prefix):
            name, slash, _ = key[len(prefix):].partition("/")
            if slash:
                folders.add(prefix + name + "/")
            else:
                objects.append(key)
    return sorted(folders), sorted(objects)


async def folder_pages(
    folders: FolderListing, prefix: str, page_size: int
) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """Every page of one folder level: its sub-folders, its object keys, and (sub-folders, objects) per page."""
    names: list[str] = []
    keys: list[str] = []
    pages: list[tuple[int, int]] = []
    cursor = None
    while len(pages) < 100:
        more_folders, more_objects, cursor = await folders.list_folder(prefix, cursor, page_size)
        names += more_folders
        keys += [m.key for m in more_objects]
        pages.append((len(more_folders), len(more_objects)))
        if cursor is None:
            break
    assert cursor is None, "the pages never end"
    return names, keys, pages


async def check_folder_levels(store: Store, keys: Iterable[str], prefixes: Iterable[str]) -> None:
    """Each level of ``prefixes`` in one page, exactly as ``level`` says, each entry once."""
    folders = folders_of(store)
    keys = list(keys)
    for prefix in prefixes:
        names, objects, pages = await folder_pages(folders, prefix, 1000)
        assert (sorted(names), sorted(objects)) == level(keys, prefix), prefix
        assert len(pages) == 1, prefix
    assert await folders.list_folder("nothing-here") == ([], [], None)
    _, objects, _ = await folders.list_folder("a/deep/")
    assert [(m.key, m.size) for m in objects] == [("a/deep/3.txt", len(MOUNTED["a/deep/3.txt"]))]
    assert objects[0].last_modified is not None


async def check_folder_pages(store: Store, keys: Iterable[str], exact: bool) -> None:
    """``paged/`` 2 entries a page: every entry once over the pages, a cursor good for asking again."""
    folders = folders_of(store)
    names, objects, pages = await folder_pages(folders, "paged", 2)
    expected_folders, expected_objects = level(keys, "paged")
    assert sorted(objects) == expected_objects
    assert all(n_objects <= 2 for _, n_objects in pages), pages
    assert len(pages) >= 3, pages  # 5 objects
    if exact:
        assert sorted(names) == expected_folders
        assert all(n_folders + n_objects <= 2 for n_folders, n_objects in pages), pages
        assert len(pages) == 4, pages  # 8 entries
    else:
        assert sorted(set(names)) == expected_folders
    cursor = (await folders.list_folder("paged", None, 2))[2]
    assert cursor is not None
    assert await folders.list_folder("paged/", cursor, 2) == await folders.list_folder("paged", cursor, 2)


def check_features(store: Store) -> None:
    """Each capability offered is the store itself, implementing that capability's protocol."""
    for field, protocol in CAPABILITIES.items():
        offered = getattr(store.features, field)
        assert offered is None or (offered is store and isinstance(store, protocol)), field


class StoreContract:
    """A bucket cargohold reads and writes. Where the server the tests run against differs from the
    provider it stands for, its module says so, and the suite checks less there:"""

    folder_pages_exact = True
    """Pages of ``list_folder`` hold at most ``page_size`` entries, sub-folders included, each sub-folder on
    one page (GCS and the others). fake-gcs-server counts only objects and repeats every sub-folder on every page."""
    uploads_dated = True
    """Unfinished uploads carry the time they began. moto dates every multipart upload 2010-11-10."""

    @pytest.fixture
    async def store(self, connection: Connection, bucket_name: str) -> AsyncIterator[Store]:
        """An empty bucket of its own, created for the test."""
        store = open_store(connection, bucket_name)
        await store.ensure_bucket()
        yield store
        await store.close()


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

    async def test_listing_shows_keys_other_tools_wrote(self, store: Store,
                                                        put_foreign: Callable[[str, bytes], bool]) -> None:
        """A key cargohold would refuse (a control character, an empty segment) is listed as the bucket holds
        it, and the keys after it too, page after page: one such key never fails a whole listing."""
        held = [key for key in FOREIGN_KEYS if put_foreign(key, key.encode())]
        assert "foreign/tab\there.txt" in held
        ours = [f"foreign/m{i:02d}.txt" for i in range(7)]
        for key in ours:
            await store.put(key, key.encode())
        pages = [page async for page in store.list("foreign", page_size=3)]
        assert all(len(page) <= 3 for page in pages) and len(pages) >= 4, [len(page) for page in pages]
        assert sorted(m.key for page in pages for m in page) == sorted(held + ours)
        sizes = {m.key: m.size for page in pages for m in page}
        assert sizes["foreign/tab\there.txt"] == len(b"foreign/tab\there.txt")

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

    async def test_ensure_bucket_without_create(self, store: Store, connection: Connection, bucket_name: str) -> None:
        await store.ensure_bucket(create=False)  # the fixture's bucket exists
        missing = open_store(connection, f"{bucket_name}-missing")
        try:
            for _ in range(2):  # and looking did not create it
                with pytest.raises(NotFound) as refused:
                    await missing.ensure_bucket(create=False)
                assert f"{bucket_name}-missing" in str(refused.value), "the error names the bucket"
            await missing.ensure_bucket()
            await missing.ensure_bucket(create=False)
        finally:
            await missing.close()

    async def test_features_are_what_the_store_implements(self, store: Store) -> None:
        check_features(store)

    async def test_local_path(self, store: Store) -> None:
        await store.put("lp/a.bin", b"on this machine?")
        path = store.local_path("lp/a.bin")
        if store.features.local_paths:
            assert path is not None and path.read_bytes() == b"on this machine?"
            assert store.local_path("lp/missing.bin") is None
        else:
            assert path is None

    async def test_list_folder(self, store: Store) -> None:
        assert await folders_of(store).list_folder("") == ([], [], None), "an empty bucket"
        keys = FOLDER_TREE + PAGED
        for key in keys:
            await store.put(key, MOUNTED[key])
        await check_folder_levels(store, keys, ["", "a", "a/", "a/deep", "paged", "c.txt"])

    async def test_list_folder_pages(self, store: Store) -> None:
        folders_of(store)
        for key in PAGED:
            await store.put(key, MOUNTED[key])
        await check_folder_pages(store, PAGED, self.folder_pages_exact)

    async def test_unfinished_uploads_listed_and_aborted(self, store: Store, request: pytest.FixtureRequest) -> None:
        uploads = store.features.unfinished
        if uploads is None:
            pytest.skip(f"{store.provider} has no unfinished uploads")
        leave: Callable[[int], None] = request.getfixturevalue("leave_unfinished_upload")
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert await uploads.unfinished_uploads(later, abort=False) == []
        leave(1234)
        if self.uploads_dated:
            earlier = datetime.now(UTC) - timedelta(hours=1)
            assert await uploads.unfinished_uploads(earlier, abort=False) == [], "one begun after `before` is left"
        found = await uploads.unfinished_uploads(later, abort=False)
        assert [size for _, size in found] == [1234], found
        assert await uploads.unfinished_uploads(later, abort=False) == found, "listing alone aborts nothing"
        assert await uploads.unfinished_uploads(later, abort=True) == found
        assert await uploads.unfinished_uploads(later, abort=False) == []
        assert await all_keys(store) == [], "never an object"

    async def test_in_place_writes_and_links(self, store: Store) -> None:
        in_place = store.features.in_place
        if in_place is None:
            pytest.skip(f"{store.provider} writes no object in place")

        async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        one, two = pattern(3000, 1), pattern(2000, 2)
        assert await in_place.write_at("ip/parts", 3000, chunks(two[:1000], two[1000:]), 2000) == 2000
        assert await in_place.write_at("ip/parts", 0, chunks(one), 3000) == 3000
        with pytest.raises(BadInput):  # past what it announced: refused before a byte lands past its range
            await in_place.write_at("ip/parts", 5000, chunks(b"x" * 10, b"y" * 10), 15)
        await in_place.link("ip/parts", "ip/object", 5000)
        assert await read(store, "ip/object") == one + two
        with pytest.raises(SharedFile):  # it is an object now: never written again, by either name
            await in_place.write_at("ip/parts", 5000, chunks(b"late"), 4)
        with pytest.raises(SharedFile):
            await in_place.write_at("ip/object", 0, chunks(b"late"), 4)
        with pytest.raises(SharedFile):  # linked already: never cut to another size (that object may be in use)
            await in_place.link("ip/parts", "ip/shorter", 3000)
        await in_place.link("ip/parts", "ip/again", 5000)  # the same size again: a retried completion
        assert await read(store, "ip/again") == one + two
        await store.delete("ip/parts")
        assert await read(store, "ip/object") == one + two
        assert (await store.head("ip/object")).size == 5000

    async def test_signed_url(self, store: Store) -> None:
        signing = store.features.signing
        if signing is None:
            pytest.skip(f"{store.provider} has no provider-signed URLs")
        await store.put("signed/ä b+c.txt", b"signed bytes")
        url = await signing.sign_url("signed/ä b+c.txt", timedelta(minutes=5))
        async with httpx.AsyncClient() as client:
            answer = await client.get(url)
        assert answer.status_code == 200, answer.text
        assert answer.content == b"signed bytes"


MOUNTED: dict[str, bytes] = {
    **{key: key.encode() for key in FOLDER_TREE + PAGED},
    **{key: pattern(100 + i, seed=i) for i, key in enumerate(ODD_KEYS)},
    **{f"many/{i:03d}.bin": pattern(i) for i in range(25)},
    "r.bin": pattern(1000),
    "empty": b"",
}
"""What a read-only store's folder holds (``fill``); the writable contract puts some of it too."""


def fill(folder: Path) -> Path:
    """``folder`` holding ``MOUNTED``, each key a file, as a mount someone else filled."""
    for key, data in MOUNTED.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)
    return folder


class ReadOnlyStoreContract:
    """A store cargohold only reads, over what ``fill`` wrote: reads, listings and browsing work, every
    write is refused with ``Forbidden`` and changes nothing."""

    folder_pages_exact = True

    @pytest.fixture
    async def store(self, connection: Connection) -> AsyncIterator[Store]:
        store = open_store(connection, "mounted")
        yield store
        await store.close()

    async def test_reads(self, store: Store) -> None:
        for key, data in MOUNTED.items():
            meta = await store.head(key)
            assert (meta.key, meta.size) == (key, len(data)), key
            assert meta.etag and meta.last_modified, key
            assert await read(store, key) == data, key
        data = MOUNTED["r.bin"]
        assert await read(store, "r.bin", ByteRange(100, 200)) == data[100:200]
        assert await read(store, "r.bin", ByteRange(990)) == data[990:]
        assert await read(store, "r.bin", ByteRange.last(10)) == data[-10:]
        with pytest.raises(RangeNotSatisfiable):
            await read(store, "r.bin", ByteRange(1000))
        for missing in ("no/such/key", "a", "a/deep"):  # a folder is not an object
            with pytest.raises(NotFound):
                await store.head(missing)
            with pytest.raises(NotFound):
                await read(store, missing)

    async def test_list(self, store: Store) -> None:
        assert await all_keys(store) == sorted(MOUNTED)
        pages = [page async for page in store.list("many", page_size=10)]
        assert len(pages) >= 3
        assert sorted(m.key for page in pages for m in page) == sorted(k for k in MOUNTED if k.startswith("many/"))
        assert await all_keys(store, "a") == ["a/1.txt", "a/2.txt", "a/deep/3.txt"]
        assert await all_keys(store, "unicode/日本語") == ["unicode/日本語/ñandú-Ωmega.png"]
        assert await all_keys(store, "nothing") == []
        sizes = {m.key: m.size async for page in store.list("") for m in page}
        assert sizes == {key: len(data) for key, data in MOUNTED.items()}

    async def test_list_folder(self, store: Store) -> None:
        await check_folder_levels(store, MOUNTED, ["", "a", "a/deep", "paged", "unicode/日本語", "deep/level0",
                                                  "c.txt"])

    async def test_list_folder_pages(self, store: Store) -> None:
        await check_folder_pages(store, MOUNTED, self.folder_pages_exact)

    async def test_writes_are_refused(self, store: Store) -> None:
        async def stream() -> AsyncIterator[bytes]:
            yield b"streamed"

        writes: list[Callable[[], Awaitable[object]]] = [
            lambda: store.put("new.txt", b"x"), lambda: store.put("top.txt", b"overwritten"),
            lambda: store.put("streamed.txt", stream()), lambda: store.delete("top.txt"),
            lambda: store.delete("never/was/here"), lambda: store.rename("top.txt", "moved.txt"),
            lambda: store.rename("a/1.txt", "a/2.txt"),
        ]
        for write in writes:
            with pytest.raises(Forbidden, match="read-only"):
                await write()
        assert await all_keys(store) == sorted(MOUNTED)
        assert await read(store, "top.txt") == MOUNTED["top.txt"]
        assert await read(store, "a/2.txt") == MOUNTED["a/2.txt"]

    async def test_ensure_bucket(self, store: Store, missing_connection: Connection) -> None:
        await store.ensure_bucket(create=False)
        await store.ensure_bucket()  # checks only: a read-only store creates nothing
        missing = open_store(missing_connection, "mounted")
        try:
            for create in (False, True):
                with pytest.raises(NotFound):
                    await missing.ensure_bucket(create=create)
        finally:
            await missing.close()

    async def test_features_are_what_the_store_implements(self, store: Store) -> None:
        check_features(store)
        assert store.features.unfinished is None, "aborting uploads would write"

    async def test_local_path(self, store: Store) -> None:
        path = store.local_path("a/1.txt")
        if store.features.local_paths:
            assert path is not None and path.read_bytes() == MOUNTED["a/1.txt"]
            assert store.local_path("no/such/key") is None
            assert store.local_path("a") is None
        else:
            assert path is None

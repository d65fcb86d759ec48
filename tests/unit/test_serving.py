"""The serving use cases (services/serving/) in-process: content and previews against local disk and an
in-memory remote, each rule of docs/CACHE.md that serving itself keeps.

The Context is opened as the server opens it (``Context.open(..., serve=True)``: settings from a fresh
home, SQLite catalog, the three cache tiers), with own storage on local disk, or on a remote (a
``MemoryStore`` handed in as ``create_app`` would take it). Linked objects live in the bucket ``remote``
of a connection in ``remote_links.yml``. The one seam patched is ``open_store`` (storage/registry.py,
the one place that maps a provider to a store) as the connection registry calls it, so that
connection's store is a ``MemoryStore`` too. Remote requests are counted at the store.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image

from cargohold.errors import BadGateway, GatewayTimeout
from cargohold.media import Limits, isolated
from cargohold.media.preview import PreviewSpec
from cargohold.services import blobs, serving
from cargohold.services import items as items_svc
from cargohold.services import links as links_svc
from cargohold.services.context import Context
from cargohold.services.serving import Representation
from cargohold.settings import load_settings
from cargohold.storage import ByteRange, OwnStorage, Store, registry
from cargohold.storage.connection import Connection

from ..support.memory_store import MemoryStore
from .test_media_isolated import rle8_bmp

LINKED_BUCKET = "remote"
FETCH_TIMEOUT = 0.3
"""CACHE_FETCH_TIMEOUT here: how long a silent remote is waited for."""
UNUSED_ENDPOINT = "http://127.0.0.1:9"
"""What the settings and remote_links.yml name as the remote's endpoint; never contacted."""


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@dataclass
class Remote:
    """An item whose original is on a remote: which store holds it, under which key."""

    id: int
    store: MemoryStore
    key: str

    @property
    def gets(self) -> int:
        return self.store.gets[self.key]


@dataclass
class Rig:
    ctx: Context
    dataset: int
    linked_bucket: MemoryStore
    own: MemoryStore | None
    """Own storage's public bucket when own storage is on a remote; None: on local disk."""
    link_clock: Clock
    """The clock that ``CACHE_LINKS_REVALIDATE`` is counted on."""

    async def stored(self, name: str, data: bytes) -> int:
        """Uploaded as the upload route does it."""
        settings = self.ctx.settings
        blob = await blobs.store_blob(self.ctx.storage.public, name, _once(data), settings.upload_max_size,
                                      Limits.of(settings))
        _, item = await items_svc.add_stored_item(self.ctx, self.dataset, name, blob, "rename")
        return item.id

    async def linked(self, key: str, data: bytes) -> int:
        """Written into the linked bucket, then added as a link, verified, as the links route does it."""
        self.linked_bucket.write(key, data)
        entries = links_svc.json_entries([f"s3://{LINKED_BUCKET}/{key}"])
        report = await links_svc.add_links(self.ctx, self.dataset, entries)
        assert report.added == 1, report.as_dict()
        item = await items_svc.find_item(self.ctx, self.dataset, key)
        assert item is not None
        return item.id

    async def on_remote(self, name: str, data: bytes) -> Remote:
        """An item on the remote: stored in own storage when that is the remote, else linked. Counts start at 0."""
        if self.own is not None:
            item_id = await self.stored(name, data)
            view = await serving.item_view(self.ctx, item_id)
            found = Remote(item_id, self.own, blobs.content_key(view.sha256 or ""))
        else:
            found = Remote(await self.linked(name, data), self.linked_bucket, name)
        found.store.gets.clear()
        found.store.heads.clear()
        return found

    def later(self, seconds: float) -> None:
        self.link_clock.now += seconds


@pytest.fixture
def linked_bucket(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    store = MemoryStore(LINKED_BUCKET)

    def open_store(conn: Connection, bucket: str) -> Store:
        if (conn.provider, bucket) == ("minio", LINKED_BUCKET):
            return store  # type: ignore[return-value]  # the part of the protocol serving uses
        return registry.open_store(conn, bucket)

    monkeypatch.setattr("cargohold.storage.connections.open_store", open_store)
    return store


def new_home(tmp_path: Path) -> Path:
    """An instance home whose remote_links.yml connects the bucket ``remote``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(
        f"memory:\n  provider: minio\n  endpoint: {UNUSED_ENDPOINT}\n  access_key: k\n  secret_key: s\n"
        f"  buckets: [{LINKED_BUCKET}]\n")
    return home


async def open_rig(home: Path, linked_bucket: MemoryStore, own: Literal["disk", "remote"],
                   **settings: str) -> Rig:
    env = {"CACHE_FETCH_TIMEOUT": f"{int(FETCH_TIMEOUT * 1000)}ms", **settings}
    storage = None
    own_store = None
    if own == "remote":
        env |= {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": UNUSED_ENDPOINT, "STORAGE_ACCESS_KEY": "k",
                "STORAGE_SECRET_KEY": "s"}
        own_store = MemoryStore("own-public")
        storage = OwnStorage(own_store, MemoryStore("own-private"))  # type: ignore[arg-type]
    ctx = await Context.open(load_settings(home=home, environ=env), storage, serve=True)
    clock = Clock()
    ctx.link_versions.clock = clock
    info = await items_svc.create_dataset(ctx, "d")
    return Rig(ctx, info.dataset.id, linked_bucket, own_store, clock)


def _settings_of(request: pytest.FixtureRequest) -> dict[str, str]:
    marker = request.node.get_closest_marker("settings")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
async def rig(tmp_path: Path, linked_bucket: MemoryStore, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """Own storage on local disk (the default ``http`` provider), links to the in-memory bucket."""
    opened = await open_rig(new_home(tmp_path), linked_bucket, "disk", **_settings_of(request))
    try:
        yield opened
    finally:
        await opened.ctx.close()


@pytest.fixture(params=["stored", "linked"])
async def remote_rig(tmp_path: Path, linked_bucket: MemoryStore,
                     request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """A rig whose ``on_remote`` items are stored in own storage on a remote, or linked to the remote bucket."""
    own: Literal["disk", "remote"] = "remote" if request.param == "stored" else "disk"
    opened = await open_rig(new_home(tmp_path), linked_bucket, own, **_settings_of(request))
    try:
        yield opened
    finally:
        await opened.ctx.close()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def noise(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def read(rep: Representation, byte_range: ByteRange | None = None) -> bytes:
    body = await rep.open(byte_range)
    if body.fd is not None:
        try:
            return os.pread(body.fd, body.end - body.start, body.start)
        finally:
            os.close(body.fd)
    assert body.chunks is not None
    return b"".join([chunk async for chunk in body.chunks])


async def content(ctx: Context, item_id: int) -> bytes:
    return await read(await serving.content(ctx, item_id))


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.001)


# -- local disk ---------------------------------------------------------------------------------------


async def test_an_item_on_local_disk_is_read_in_place_never_copied(rig: Rig) -> None:
    data = noise(100_000)
    item_id = await rig.stored("blob.bin", data)
    rep = await serving.content(rig.ctx, item_id)
    body = await rep.open(None)
    assert body.fd is not None and body.path is not None and body.tier is None
    os.close(body.fd)
    assert body.path.is_relative_to(rig.ctx.settings.data_path / "storage")
    assert await read(rep) == data and await read(rep, ByteRange(10, 20)) == data[10:20]
    assert rig.ctx.cache.storage.entries == 0 and rig.ctx.cache.storage.stats.misses == 0


async def test_a_preview_of_an_item_on_local_disk_is_made_from_the_file_itself(rig: Rig) -> None:
    item_id = await rig.stored("photo.jpg", jpeg(640, 480))
    made = await read(await serving.preview(rig.ctx, item_id, PreviewSpec(64, 64)))
    assert Image.open(io.BytesIO(made)).size == (64, 48)
    assert rig.ctx.cache.storage.entries == 0 and rig.ctx.cache.previews.entries == 1


async def test_images_pillow_decodes_in_python_are_made_in_a_process_of_their_own(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    real = isolated.run

    def run(func: Callable[..., None], *args: object, **kwargs: object) -> None:
        sent.append(str(args[0]))
        real(func, *args, **kwargs)

    monkeypatch.setattr(isolated, "run", run)
    bmp = await rig.stored("scan.bmp", rle8_bmp(600, 400))
    photo = await rig.stored("photo.jpg", jpeg(640, 480))
    assert Image.open(io.BytesIO(await read(await serving.preview(rig.ctx, bmp, PreviewSpec(64, 64))))).size == (64, 43)
    converted = await read(await serving.content(rig.ctx, bmp, "png"))
    assert Image.open(io.BytesIO(converted)).size == (600, 400)
    assert len(sent) == 2  # the BMP's preview and conversion; the JPEG's preview stays in the image threads
    await read(await serving.preview(rig.ctx, photo, PreviewSpec(64, 64)))
    assert len(sent) == 2


# -- the storage tier -----------------------------------------------------------------------------------


async def test_a_miss_fetches_the_original_once_into_the_storage_tier_then_hits(remote_rig: Rig) -> None:
    data = noise(300_000)
    item = await remote_rig.on_remote("blob.bin", data)
    tier = remote_rig.ctx.cache.storage
    assert await content(remote_rig.ctx, item.id) == data
    assert item.gets == 1 and tier.entries == 1 and tier.bytes == len(data)
    rep = await serving.content(remote_rig.ctx, item.id)
    body = await rep.open(ByteRange(1000, 2000))
    assert body.tier is tier and body.fd is not None, "a hit is the cached file"
    os.close(body.fd)
    assert await read(rep) == data and await read(rep, ByteRange.last(100)) == data[-100:]
    assert item.gets == 1, "a hit does not contact the remote"
    assert (tier.stats.misses, tier.stats.hits) == (1, 3)


async def test_concurrent_misses_share_one_fetch(remote_rig: Rig) -> None:
    data = noise(1_000_000, seed=2)
    item = await remote_rig.on_remote("shared.bin", data)
    await serving.content(remote_rig.ctx, item.id)  # the item and its version known: only the bytes are missing
    tier = remote_rig.ctx.cache.storage
    item.store.hold = asyncio.Event()
    readers = [asyncio.create_task(content(remote_rig.ctx, item.id)) for _ in range(8)]
    await until(lambda: tier.stats.misses == 8)  # each missed, then joined the one fill, held at the remote
    item.store.hold.set()
    assert await asyncio.gather(*readers) == [data] * 8
    assert item.gets == 1 and tier.stats.fills == 1 and tier.entries == 1


# -- a linked object's version -----------------------------------------------------------------------------


async def test_a_changed_linked_object_is_served_in_its_new_version_once_revalidated(rig: Rig) -> None:
    first, second = noise(50_000, seed=3), noise(60_000, seed=4)
    item = await rig.on_remote("changing.bin", first)
    old = await serving.content(rig.ctx, item.id)
    assert await read(old) == first and item.store.heads[item.key] == 1
    rig.linked_bucket.write(item.key, second)
    again = await serving.content(rig.ctx, item.id)
    assert await read(again) == first and again.etag == old.etag, "trusted for CACHE_LINKS_REVALIDATE (1m)"
    assert item.store.heads[item.key] == 1 and item.gets == 1
    rig.later(61)
    new = await serving.content(rig.ctx, item.id)
    assert await read(new) == second and new.size == len(second) and new.etag != old.etag
    assert item.store.heads[item.key] == 2 and item.gets == 2


@pytest.mark.settings(CACHE_LINKS_REVALIDATE="0")
async def test_revalidate_0_asks_the_linked_objects_version_on_every_request(rig: Rig) -> None:
    item = await rig.on_remote("asked.bin", b"one")
    assert await content(rig.ctx, item.id) == b"one"
    assert await content(rig.ctx, item.id) == b"one"
    rig.linked_bucket.write(item.key, b"two!")
    assert await content(rig.ctx, item.id) == b"two!"
    assert item.store.heads[item.key] == 3 and item.gets == 2


# -- when the remote fails ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "silent"])
async def test_a_cached_copy_is_served_while_the_remote_fails(remote_rig: Rig,
                                                              fault: Literal["down", "silent"]) -> None:
    data = noise(80_000, seed=5)
    item = await remote_rig.on_remote("kept.bin", data)
    assert await content(remote_rig.ctx, item.id) == data
    item.store.state = fault
    remote_rig.later(61)  # a link's version is asked again, and cannot be: served in the version last seen
    started = time.monotonic()
    assert await content(remote_rig.ctx, item.id) == data
    assert await content(remote_rig.ctx, item.id) == data
    assert item.gets == 1
    assert time.monotonic() - started < 4 * FETCH_TIMEOUT


async def test_a_miss_while_the_remote_is_down_is_bad_gateway(remote_rig: Rig) -> None:
    item = await remote_rig.on_remote("lost.bin", noise(10_000))
    item.store.state = "down"
    with pytest.raises(BadGateway, match="the minio store is unreachable: connection refused"):
        await content(remote_rig.ctx, item.id)
    assert remote_rig.ctx.cache.storage.entries == 0


async def test_a_miss_while_the_remote_is_silent_is_gateway_timeout(remote_rig: Rig) -> None:
    item = await remote_rig.on_remote("late.bin", noise(10_000))
    item.store.state = "silent"
    started = time.monotonic()
    with pytest.raises(GatewayTimeout, match=r"the minio store sent nothing for 0.3 s \(CACHE_FETCH_TIMEOUT\)"):
        await content(remote_rig.ctx, item.id)
    assert FETCH_TIMEOUT <= time.monotonic() - started < 10 * FETCH_TIMEOUT
    assert remote_rig.ctx.cache.storage.entries == 0


# -- previews of remote originals ---------------------------------------------------------------------------


async def test_a_preview_is_made_from_the_storage_tiers_copy_without_the_remote(remote_rig: Rig) -> None:
    item = await remote_rig.on_remote("photo.jpg", jpeg(800, 600))
    await content(remote_rig.ctx, item.id)
    item.store.state = "down"  # any request to the remote would fail the preview
    made = await read(await serving.preview(remote_rig.ctx, item.id, PreviewSpec(128, 128, format="png")))
    assert Image.open(io.BytesIO(made)).size == (128, 96)
    assert item.gets == 1 and remote_rig.ctx.cache.previews.entries == 1


async def test_a_preview_on_a_miss_fetches_the_original_once_for_the_content_that_follows(remote_rig: Rig) -> None:
    data = jpeg(800, 600)
    item = await remote_rig.on_remote("first.jpg", data)
    made = await read(await serving.preview(remote_rig.ctx, item.id, PreviewSpec(64, 64)))
    assert Image.open(io.BytesIO(made)).size == (64, 48)
    assert item.gets == 1 and remote_rig.ctx.cache.storage.entries == 1
    assert await content(remote_rig.ctx, item.id) == data
    assert item.gets == 1 and remote_rig.ctx.cache.storage.stats.hits == 1

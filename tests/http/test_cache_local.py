"""Originals on local disk are read in place: own storage on ``http`` and ``fs://`` links never enter
the storage tier, and their previews are made straight from the file."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from ..support.api_server import RunningServer


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    nas = tmp_path / "nas"
    (nas / "cams").mkdir(parents=True)
    (nas / "cams" / "a.jpg").write_bytes(jpeg((255, 0, 0)))
    return nas


@pytest.fixture
def server(tmp_path: Path, folder: Path) -> Iterator[RunningServer]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(f"nas:\n  provider: fs\n  path: {folder}\n  storage_id: nas\n")
    running = RunningServer(home, {}).start()
    try:
        yield running
    finally:
        running.stop()


def tiers(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in client.get("/cache").json()["tiers"]}


def pixel(data: bytes) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    value = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(value, tuple)
    return value


def test_stored_items_on_local_disk_are_read_in_place(server: RunningServer) -> None:
    data = jpeg((0, 255, 0))
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "local"}).json()["id"]
        item = client.post(f"/datasets/{ds}/items", files=[("files", ("g.jpg", data))]).json()["results"][0]["item"]
        assert client.get(f"/items/{item['id']}/content").content == data
        preview = client.get(f"/items/{item['id']}/preview", params={"w": 32})
        assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (32, 24)
        assert pixel(preview.content)[1] > 200
        head = client.head(f"/items/{item['id']}/content")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
        counts = tiers(client)
        assert counts["storage"]["entries"] == 0 and counts["storage"]["misses"] == 0
        assert counts["previews"]["entries"] == 1
    cached = [p for p in (server.home / "data" / "cache" / "storage").rglob("*") if len(p.name) == 64]
    assert cached == [], "no copy of a local original in the storage tier"


def test_a_linked_server_file_is_read_in_place_and_a_change_is_seen_at_once(server: RunningServer,
                                                                             folder: Path) -> None:
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "nas"}).json()["id"]
        assert client.post(f"/datasets/{ds}/links", content=b"fs://nas/cams/a.jpg\n").json()["added"] == 1
        item = client.get(f"/datasets/{ds}/items").json()["items"][0]
        first = client.get(f"/items/{item['id']}/content")
        assert first.content == jpeg((255, 0, 0))
        assert pixel(client.get(f"/items/{item['id']}/preview").content)[0] > 200
        # The file changes on the server: other bytes and a later modification time.
        path = folder / "cams" / "a.jpg"
        path.write_bytes(jpeg((0, 0, 255), (320, 241)))
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
        second = client.get(f"/items/{item['id']}/content")
        assert second.content == jpeg((0, 0, 255), (320, 241)) and second.headers["etag"] != first.headers["etag"]
        assert pixel(client.get(f"/items/{item['id']}/preview").content)[2] > 200
        assert tiers(client)["storage"]["entries"] == 0
        path.unlink()
        gone = client.get(f"/items/{item['id']}/content")
        assert gone.status_code == 404 and "no longer exists" in gone.json()["error"]["message"]


def test_images_whose_header_is_far_from_the_start_are_images(server: RunningServer) -> None:
    import pyvips  # type: ignore[import-untyped]

    # libtiff writes the TIFF header (IFD) after the pixels; a prepress CMYK JPEG carries a large
    # ICC profile before its size. Both must be recognised from the upload stream.
    tiff = (pyvips.Image.black(1500, 1000, bands=3) + 60).cast("uchar").tiffsave_buffer()
    assert int.from_bytes(tiff[4:8], "little") > 2 * 1024 * 1024
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 10, 10)).save(out, "JPEG", icc_profile=os.urandom(900_000))
    with server.client() as client:
        ds = client.post("/datasets", json={"name": "far"}).json()["id"]
        for name, blob, size in (("scan.tif", tiff, (1500, 1000)), ("profiled.jpg", out.getvalue(), (640, 480))):
            item = client.post(f"/datasets/{ds}/items", files=[("files", (name, blob))]).json()["results"][0]["item"]
            assert item["kind"] == "image" and (item["width"], item["height"]) == size, item
        tif_item = client.get(f"/datasets/{ds}/items", params={"name": "scan"}).json()["items"][0]
        preview = client.get(f"/items/{tif_item['id']}/preview", params={"w": 128, "h": 128})
        assert preview.status_code == 200 and Image.open(io.BytesIO(preview.content)).size == (128, 85)

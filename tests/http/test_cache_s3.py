"""The caching proxy against the real S3 server (moto): each rule of docs/CACHE.md, over HTTP.

A real ``cargohold up`` process keeps its own storage on moto through ``RecordingProxy``, which
records every request that reaches the S3 server: "the remote was not contacted" is counted there,
and stopping the proxy is the S3 server going away.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image

from ..support.api_server import RunningServer
from ..support.fake_services import RecordingProxy
from ..support.servers import Server

KEY_RE = re.compile(r"/sha256/../../([0-9a-f]{64})")


@pytest.fixture
def proxy(moto_server: Server) -> Iterator[RecordingProxy]:
    with RecordingProxy(moto_server.url) as recording:
        yield recording


_numbers = iter(range(1, 10_000))


def start_server(home: Path, proxy: RecordingProxy, **settings: str) -> RunningServer:
    env = {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": proxy.url, "STORAGE_ACCESS_KEY": "testing",
           "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": f"cache-{next(_numbers):04d}", **settings}
    return RunningServer(home, env).start()


@pytest.fixture
def server(tmp_path: Path, proxy: RecordingProxy, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    marker = request.node.get_closest_marker("settings")
    running = start_server(tmp_path / "home", proxy, **(marker.kwargs if marker else {}))
    try:
        yield running
    finally:
        running.stop()


def write_connection(home: Path, name: str, endpoint: str, bucket: str) -> None:
    """remote_links.yml with one S3 connection (keys k / s) listing ``bucket``."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "remote_links.yml").write_text(
        f"{name}:\n  provider: minio\n  endpoint: {endpoint}\n  access_key: k\n  secret_key: s\n"
        f"  buckets: [{bucket}]\n")


def noise(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def jpeg(width: int, height: int, colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB",
         exif: Image.Exif | None = None) -> bytes:
    image = Image.new(mode, (width, height), colour)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def upload(client: httpx.Client, dataset: int, name: str, data: bytes) -> dict[str, Any]:
    answer = client.post(f"/datasets/{dataset}/items", files=[("files", (name, data))])
    assert answer.status_code == 201, answer.text
    item: dict[str, Any] = answer.json()["results"][0]["item"]
    return item


def dataset(client: httpx.Client, name: str = "d") -> int:
    answer = client.post("/datasets", json={"name": name})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def object_gets(proxy: RecordingProxy, sha256: str) -> int:
    """GETs of one stored object that reached the S3 server."""
    return sum(1 for r in proxy.requests if r.method == "GET" and sha256 in r.path and "/staging/" not in r.path)


def tier(client: httpx.Client, name: str) -> dict[str, Any]:
    tiers = {t["name"]: t for t in client.get("/cache").json()["tiers"]}
    return dict(tiers[name])


def image_of(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- the storage tier -------------------------------------------------------------------------------


def test_remote_content_is_fetched_once_then_served_from_the_storage_tier(server: RunningServer,
                                                                          proxy: RecordingProxy) -> None:
    data = noise(300_000)
    with server.client() as client:
        item = upload(client, dataset(client), "blob.bin", data)
        for _ in range(3):
            answer = client.get(f"/items/{item['id']}/content")
            assert answer.status_code == 200 and answer.content == data
        part = client.get(f"/items/{item['id']}/content", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == data[1000:2000]
        assert object_gets(proxy, item["sha256"]) == 1
        storage = tier(client, "storage")
        assert storage["entries"] == 1 and storage["bytes"] == len(data)
        # A request arriving after the last byte reached the client but before the fill was renamed into
        # place counts a miss, and joins that fill (still one GET, asserted above).
        assert storage["misses"] + storage["hits"] == 4 and storage["hits"] >= 2


def test_a_range_on_a_miss_is_answered_from_the_remote_while_the_whole_object_is_fetched(
        server: RunningServer, proxy: RecordingProxy) -> None:
    data = noise(2_000_000, seed=2)
    with server.client() as client:
        item = upload(client, dataset(client), "big.bin", data)
        part = client.get(f"/items/{item['id']}/content", headers={"Range": "bytes=-100"})
        assert part.status_code == 206 and part.content == data[-100:]
        deadline = time.monotonic() + 20
        while tier(client, "storage")["entries"] == 0:
            assert time.monotonic() < deadline, "the background fetch never landed"
            time.sleep(0.05)
        gets = object_gets(proxy, item["sha256"])
        assert gets == 2  # the range, and the one whole fetch
        again = client.get(f"/items/{item['id']}/content", headers={"Range": "bytes=0-9"})
        assert again.content == data[:10]
        assert object_gets(proxy, item["sha256"]) == gets


@pytest.mark.settings(CACHE_STORAGE_SIZE="250k")
def test_least_recently_used_go_first_at_the_size_limit(server: RunningServer, proxy: RecordingProxy) -> None:
    with server.client() as client:
        ds = dataset(client)
        items = {n: upload(client, ds, f"{n}.bin", noise(100_000, seed=i)) for i, n in enumerate("abc")}

        def read(name: str) -> None:
            assert client.get(f"/items/{items[name]['id']}/content").content == noise(100_000, seed="abc".index(name))

        read("a")
        read("b")
        read("a")  # a is now more recent than b
        read("c")  # 300 KB > 250 KB: the least recently used, b, goes
        storage = tier(client, "storage")
        assert storage["evictions"] == 1 and storage["entries"] == 2 and storage["bytes"] == 200_000
        before = {n: object_gets(proxy, items[n]["sha256"]) for n in "abc"}
        read("a")
        read("c")
        assert {n: object_gets(proxy, items[n]["sha256"]) for n in "ac"} == {n: before[n] for n in "ac"}
        read("b")
        assert object_gets(proxy, items["b"]["sha256"]) == before["b"] + 1


@pytest.mark.settings(CACHE_STORAGE_EXPIRES="2s")
def test_an_entry_unused_longer_than_its_expiry_is_dropped(server: RunningServer, proxy: RecordingProxy) -> None:
    with server.client() as client:
        item = upload(client, dataset(client), "x.bin", noise(50_000))
        client.get(f"/items/{item['id']}/content")
        client.get(f"/items/{item['id']}/content")
        assert object_gets(proxy, item["sha256"]) == 1
        time.sleep(2.5)
        assert client.get(f"/items/{item['id']}/content").content == noise(50_000)
        assert object_gets(proxy, item["sha256"]) == 2
        assert tier(client, "storage")["expired"] >= 1


async def test_fifty_concurrent_misses_make_one_fetch_and_one_preview(server: RunningServer,
                                                                      proxy: RecordingProxy) -> None:
    data = noise(3_000_000, seed=5)
    picture = jpeg(1600, 1200)
    with server.client() as client:
        ds = dataset(client)
        blob, photo = upload(client, ds, "blob.bin", data), upload(client, ds, "photo.jpg", picture)
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.api, headers=headers, timeout=60,
                                 limits=httpx.Limits(max_connections=60)) as client:
        answers = await asyncio.gather(*(client.get(f"/items/{blob['id']}/content") for _ in range(50)))
        assert all(a.status_code == 200 and a.content == data for a in answers)
        previews = await asyncio.gather(*(client.get(f"/items/{photo['id']}/preview") for _ in range(50)))
        assert all(p.status_code == 200 for p in previews)
        assert len({p.content for p in previews}) == 1
        metrics = (await client.get(server.url + "/metrics")).text
    assert object_gets(proxy, blob["sha256"]) == 1
    assert object_gets(proxy, photo["sha256"]) == 1
    assert re.search(r'cargohold_previews_made_total\{format="jpeg"\} 1\.0', metrics), metrics


def test_restart_drops_a_truncated_or_foreign_cache_file(tmp_path: Path, proxy: RecordingProxy) -> None:
    home = tmp_path / "home"
    server = start_server(home, proxy)
    data, other = noise(400_000, seed=7), noise(100_000, seed=8)
    try:
        with server.client() as client:
            ds = dataset(client)
            item, kept = upload(client, ds, "t.bin", data), upload(client, ds, "k.bin", other)
            client.get(f"/items/{item['id']}/content")
            client.get(f"/items/{kept['id']}/content")
    finally:
        server.stop()
    files = [p for p in (home / "data" / "cache" / "storage").rglob("*") if p.is_file() and len(p.name) == 64]
    assert len(files) == 2
    victim = next(p for p in files if p.stat().st_size == len(data))
    with victim.open("r+b") as fh:
        fh.truncate(1000)
    foreign = victim.parent / ("0" * 64)
    foreign.write_bytes(b"not an entry")
    server.env["SERVER_PORT"] = str(server.port)
    server.start()
    try:
        with server.client() as client:
            assert client.get(f"/items/{item['id']}/content").content == data
            assert client.get(f"/items/{kept['id']}/content").content == other
        assert object_gets(proxy, item["sha256"]) == 2  # fetched again, never served short
        assert object_gets(proxy, kept["sha256"]) == 1  # the intact entry survived the restart
        assert not foreign.exists()
    finally:
        server.stop()


def test_when_the_s3_server_is_gone_cached_items_are_served_and_misses_answer_502(
        tmp_path: Path, moto_server: Server) -> None:
    proxy = RecordingProxy(moto_server.url).start()
    server = start_server(tmp_path / "home", proxy)
    try:
        with server.client() as client:
            ds = dataset(client)
            cached, missing = upload(client, ds, "c.jpg", jpeg(640, 480)), upload(client, ds, "m.bin", noise(10_000))
            client.get(f"/items/{cached['id']}/content")
            proxy.stop()  # the S3 server goes away
            answer = client.get(f"/items/{cached['id']}/content")
            assert answer.status_code == 200 and answer.content == jpeg(640, 480)
            preview = client.get(f"/items/{cached['id']}/preview", params={"w": 64})
            assert preview.status_code == 200 and image_of(preview.content).size == (64, 48)
            miss = client.get(f"/items/{missing['id']}/content")
            assert miss.status_code == 502, miss.text
            assert miss.json()["error"]["code"] == "bad_gateway"
            assert "unreachable" in miss.json()["error"]["message"]
    finally:
        server.stop()
        proxy.stop()


# -- previews ---------------------------------------------------------------------------------------


def test_a_preview_of_a_cached_original_never_contacts_the_remote(server: RunningServer,
                                                                   proxy: RecordingProxy) -> None:
    with server.client() as client:
        item = upload(client, dataset(client), "p.jpg", jpeg(1200, 800))
        client.get(f"/items/{item['id']}/content")  # the original is now in the storage tier
        seen = len(proxy.requests)
        for params in ({}, {"w": 100, "h": 100, "fit": "cover"}, {"w": 300, "format": "webp"},
                       {"w": 50, "h": 80, "fit": "fill", "format": "png"}):
            answer = client.get(f"/items/{item['id']}/preview", params=params)
            assert answer.status_code == 200, answer.text
        assert len(proxy.requests) == seen, proxy.requests[seen:]
        assert tier(client, "previews")["entries"] == 4


def test_a_preview_miss_fetches_the_original_once_into_the_storage_tier(server: RunningServer,
                                                                         proxy: RecordingProxy) -> None:
    picture = jpeg(1000, 500)
    with server.client() as client:
        item = upload(client, dataset(client), "q.jpg", picture)
        small = client.get(f"/items/{item['id']}/preview", params={"w": 128})
        assert small.headers["content-type"] == "image/jpeg" and image_of(small.content).size == (128, 64)
        assert object_gets(proxy, item["sha256"]) == 1
        assert client.get(f"/items/{item['id']}/content").content == picture
        assert object_gets(proxy, item["sha256"]) == 1
        # Conditional: the same preview again is 304 on its ETag, with no body.
        again = client.get(f"/items/{item['id']}/preview", params={"w": 128},
                           headers={"If-None-Match": small.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert "must-revalidate" in small.headers["cache-control"]


def test_exif_rotation_and_cmyk_previews_by_pixel_values(server: RunningServer) -> None:
    # Stored 200 x 100, red on the left half; orientation 6 shows it turned 90° clockwise: 100 x 200,
    # red on the top half.
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif)
    cmyk = jpeg(300, 200, colour=(0, 255, 255, 0), mode="CMYK")  # no cyan, full magenta and yellow: red
    with server.client() as client:
        ds = dataset(client)
        rotated, cmyk_item = upload(client, ds, "rotated.jpg", buffer.getvalue()), upload(client, ds, "cmyk.jpg", cmyk)
        preview = image_of(client.get(f"/items/{rotated['id']}/preview", params={"format": "png"}).content)
        assert preview.size == (100, 200)
        top, bottom = preview.convert("RGB").getpixel((50, 40)), preview.convert("RGB").getpixel((50, 160))
        assert isinstance(top, tuple) and isinstance(bottom, tuple)
        assert top[0] > 200 and top[2] < 60, top
        assert bottom[2] > 200 and bottom[0] < 60, bottom
        red = image_of(client.get(f"/items/{cmyk_item['id']}/preview", params={"format": "png"}).content)
        assert red.mode in ("RGB", "RGBA")
        pixel = red.convert("RGB").getpixel((red.width // 2, red.height // 2))
        assert isinstance(pixel, tuple)
        assert pixel[0] > 180 and pixel[1] < 90 and pixel[2] < 90, pixel


def png_bomb(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def test_a_bomb_is_refused_without_decoding(server: RunningServer, moto_server: Server, tmp_path: Path) -> None:
    # Uploads refuse it at the door (the header is read as it arrives); a link added without
    # verification reaches the preview route, which reads the header again before any decode.
    with server.client() as client:
        ds = dataset(client)
        refused = client.post(f"/datasets/{ds}/items", files=[("files", ("bomb.png", png_bomb(50_000, 50_000)))])
        assert refused.status_code == 422 and "IMAGE_MAX_PIXELS" in refused.text
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="k", aws_secret_access_key="s",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="bombs")
    s3.put_object(Bucket="bombs", Key="bomb.png", Body=png_bomb(50_000, 50_000))
    server.stop()
    write_connection(server.home, "bombs", moto_server.url, "bombs")
    server.start()
    with server.client() as client:
        ds = dataset(client, "links")
        report = client.post(f"/datasets/{ds}/links", params={"verify": "false"},
                             content=b"s3://bombs/bomb.png\n").json()
        assert report["added"] == 1, report
        item = client.get(f"/datasets/{ds}/items").json()["items"][0]
        answer = client.get(f"/items/{item['id']}/preview")
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert "50000 x 50000" in message and "IMAGE_MAX_PIXELS" in message and "not decoded" in message
        assert httpx.get(server.url + "/healthz").status_code == 200  # still serving
        assert client.get(f"/items/{item['id']}").json()["name"] == "bomb.png"


def test_a_changed_linked_object_is_never_answered_from_a_stale_entry(
        tmp_path: Path, proxy: RecordingProxy, moto_server: Server) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="k", aws_secret_access_key="s",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="changing")
    s3.put_object(Bucket="changing", Key="a.jpg", Body=jpeg(320, 240, (255, 0, 0)))
    home = tmp_path / "home"
    write_connection(home, "src", moto_server.url, "changing")
    server = start_server(home, proxy, CACHE_LINKS_REVALIDATE="0")
    try:
        with server.client() as client:
            ds = dataset(client)
            assert client.post(f"/datasets/{ds}/links", content=b"s3://changing/a.jpg\n").json()["added"] == 1
            item = client.get(f"/datasets/{ds}/items").json()["items"][0]
            first = client.get(f"/items/{item['id']}/content")
            assert first.content == jpeg(320, 240, (255, 0, 0))
            red = image_of(client.get(f"/items/{item['id']}/preview", params={"format": "png"}).content)
            s3.put_object(Bucket="changing", Key="a.jpg", Body=jpeg(320, 240, (0, 0, 255)))
            second = client.get(f"/items/{item['id']}/content")
            assert second.content == jpeg(320, 240, (0, 0, 255))
            assert second.headers["etag"] != first.headers["etag"]
            blue = image_of(client.get(f"/items/{item['id']}/preview", params={"format": "png"}).content)
            assert red.convert("RGB").getpixel((10, 10))[0] > 200  # type: ignore[index]
            assert blue.convert("RGB").getpixel((10, 10))[2] > 200  # type: ignore[index]
    finally:
        server.stop()


# -- the converter, operating it ------------------------------------------------------------------


def test_formats_a_browser_cannot_show_are_converted_once(server: RunningServer, proxy: RecordingProxy) -> None:
    tiff = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 10)).save(tiff, "TIFF")
    plain = jpeg(64, 64)
    with server.client() as client:
        ds = dataset(client)
        item, photo = upload(client, ds, "scan.tiff", tiff.getvalue()), upload(client, ds, "plain.jpg", plain)
        for _ in range(2):
            answer = client.get(f"/items/{item['id']}/content", params={"format": "jpeg"})
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
            converted = image_of(answer.content)
            assert converted.format == "JPEG" and converted.size == (300, 200)
            pixel = converted.convert("RGB").getpixel((150, 100))
            assert isinstance(pixel, tuple) and pixel[1] > 180 and pixel[0] < 40
        converter = tier(client, "image-converter")
        assert converter["entries"] == 1 and converter["hits"] == 1 and converter["misses"] == 1
        # A JPEG asked as a JPEG is the original, unchanged.
        same = client.get(f"/items/{photo['id']}/content", params={"format": "jpeg"})
        assert same.content == plain
        assert client.get(f"/items/{item['id']}/content", params={"format": "gif"}).status_code == 400


def test_cache_api_cli_and_metrics(server: RunningServer, tmp_path: Path) -> None:
    with server.client() as client:
        ds = dataset(client)
        item = upload(client, ds, "m.jpg", jpeg(400, 300))
        client.get(f"/items/{item['id']}/preview")
        client.get(f"/items/{item['id']}/preview")
        previews = tier(client, "previews")
        assert previews["entries"] == 1 and previews["hits"] == 1 and previews["limit"] == 1024**3
        user = subprocess.run([sys.executable, "-m", "cargohold", "token", "create", "--name", "viewer"],
                              env={**os.environ, "CARGOHOLD_HOME": str(server.home)}, capture_output=True,
                              text=True, check=True).stdout.strip()
        with server.client(token=user) as viewer:
            assert viewer.get("/cache").status_code == 200
            assert viewer.delete("/cache/previews").status_code == 403
            assert viewer.get(server.url + "/metrics").status_code == 403
        assert httpx.get(server.url + "/metrics").status_code == 401
        metrics = client.get(server.url + "/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        assert 'cargohold_cache_hits_total{tier="previews"} 1.0' in metrics.text
        assert 'cargohold_cache_limit_bytes{tier="storage"} 1.073741824e+10' in metrics.text
        assert "cargohold_remote_fetch_seconds_count" in metrics.text
        env = {**os.environ, "CARGOHOLD_HOME": str(server.home), "COLUMNS": "200"}
        stats = subprocess.run([sys.executable, "-m", "cargohold", "cache", "stats", "--url", server.url],
                               env=env, capture_output=True, text=True, timeout=60)
        assert stats.returncode == 0, stats.stderr
        assert re.search(r"previews\s+│\s+1\s+│", stats.stdout), stats.stdout
        cleared = subprocess.run([sys.executable, "-m", "cargohold", "cache", "clear", "previews", "--url",
                                  server.url], env=env, capture_output=True, text=True, timeout=60)
        assert cleared.returncode == 0 and "previews: 1 entries removed" in cleared.stdout, cleared.stderr
        assert tier(client, "previews")["entries"] == 0
        assert client.delete("/cache/nonsense").status_code == 400


def test_signed_preview_urls_open_only_what_they_were_signed_for(server: RunningServer) -> None:
    with server.client() as client:
        ds = dataset(client)
        item, other = upload(client, ds, "s.jpg", jpeg(300, 300)), upload(client, ds, "o.jpg", jpeg(30, 30))
        url = client.post(f"/items/{item['id']}/sign",
                          json={"expires_in": 60, "preview": {"w": 64, "h": 64, "format": "webp"}}).json()["url"]
        content_url = client.post(f"/items/{item['id']}/sign", json={"expires_in": 60}).json()["url"]
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    assert image_of(answer.content).size == (64, 64)
    assert httpx.get(url.replace("w=64", "w=65")).status_code == 401
    assert httpx.get(url.replace(f"/items/{item['id']}/", f"/items/{other['id']}/")).status_code == 401
    assert httpx.get(url.replace("/preview?", "/content?")).status_code == 401
    assert httpx.get(content_url).content == jpeg(300, 300)
    assert httpx.get(content_url + "&format=png").status_code == 401
    assert httpx.get(url.split("?")[0]).status_code == 401


def test_a_remote_that_says_nothing_answers_504_in_cache_fetch_timeout(tmp_path: Path, proxy: RecordingProxy) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are queued by the kernel and never answered
    home = tmp_path / "home"
    write_connection(home, "silent", f"http://127.0.0.1:{silent.getsockname()[1]}", "quiet")
    server = start_server(home, proxy, CACHE_FETCH_TIMEOUT="1s")
    try:
        with server.client() as client:
            ds = dataset(client)
            report = client.post(f"/datasets/{ds}/links", params={"verify": "false"},
                                 content=b"s3://quiet/a.jpg\n").json()
            assert report["added"] == 1, report
            item = client.get(f"/datasets/{ds}/items").json()["items"][0]
            answer = client.get(f"/items/{item['id']}/content")
            assert answer.status_code == 504, answer.text
            assert "CACHE_FETCH_TIMEOUT" in answer.json()["error"]["message"]
    finally:
        server.stop()
        silent.close()

"""Videos uploaded to a real ``cargohold up`` (local disk) are probed before their row is written (issue 16):
the item answers its duration, frame rates, frame count, displayed size and codecs; a file that is not a
readable video, or declares frames over IMAGE_MAX_PIXELS, is refused with its reason (422) and leaves nothing."""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import boto3
import httpx
import pytest
from azure.storage.blob import BlobServiceClient
from PIL import Image

from cargohold.media import Limits
from cargohold.media.video import READ_AHEAD, probe_video

from ..support.api import assert_error, create_dataset, make_image, upload_results
from ..support.api_server import RunningServer
from ..support.servers import AZURITE_ACCOUNT, AZURITE_KEY, Server
from ..support.videos import declaring, frame_number, make_video, write_large_video

S3_SECRET = "video-secret-7d1e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("video") / "home", {}).start()
    try:
        yield running
    finally:
        running.stop()


def test_an_uploaded_video_is_probed(server: RunningServer) -> None:
    with server.client() as client:
        ds = create_dataset(client, "clips")["id"]
        [mp4, mkv] = upload_results(client, ds, [("turned.mp4", make_video(30, rotation=90, audio=True)),
                                                 ("hevc.mkv", make_video(30, container="matroska",
                                                                         codec="libx265"))])
        item = mp4["item"]
        assert (item["kind"], item["mime_type"], item["width"], item["height"]) == ("video", "video/mp4", 48, 64)
        assert item["video"] | {"bit_rate": 0} == {
            "duration": 1.2, "frame_rate": 25.0, "nominal_frame_rate": 25.0, "frame_count": 30,
            "frame_count_from": "container", "width": 48, "height": 64, "rotation": 90, "codec": "h264",
            "pixel_format": "yuv420p", "bit_rate": 0, "audio_codec": "aac"}
        assert mkv["item"]["video"]["codec"] == "hevc" and mkv["item"]["video"]["frame_count_from"] == "counted"
        listed = client.get(f"/datasets/{ds}/items").json()["items"]
        assert [i["video"]["frame_count"] for i in listed] == [30, 30]
        assert client.get(f"/items/{item['id']}").json()["video"] == item["video"]


@pytest.mark.reliability(kind="bad input", cases=3, what="videos that are not readable (truncated, not a video) "
                         "or declare 15,000 x 15,000 frames: 422 with the reason, nothing stored")
def test_unreadable_videos_are_refused_and_leave_nothing(server: RunningServer,
                                                         request: pytest.FixtureRequest) -> None:
    data = make_video(30)
    with server.client() as client:
        ds = create_dataset(client, "refused")["id"]
        for name, body, reason in [("half.mp4", data[: len(data) // 2], "not a readable video"),
                                   ("text.mp4", b"not a video at all", "not a readable video"),
                                   ("bomb.avi", declaring(15000, 15000), "IMAGE_MAX_PIXELS")]:
            answer = client.post(f"/datasets/{ds}/items", files=[("files", (name, body))])
            assert_error(answer, 422)
            assert reason in answer.text, answer.text
        assert client.get(f"/datasets/{ds}/items").json()["items"] == []
    public = Path(server.home) / "data" / "storage" / "cargohold-public"
    assert not list(public.rglob(".staging/*")), "a refused upload leaves no staging copy"
    request.node.user_properties.append(("reliability_result", (
        "a truncated MP4, a text file named .mp4 and an AVI declaring 15,000 x 15,000: each 422 naming why, "
        "no item, no staging copy")))


def _video_read(metrics: str, provider: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'cargohold_video_read_bytes_total{{provider="{provider}"}}'):
            return float(line.split()[-1])
    return 0.0


def _gop_bytes(path: Path, first: int, frames: int = 10) -> int:
    with av.open(str(path)) as container:
        entries = container.streams.video[0].index_entries
        return sum(entries[n].size for n in range(first, first + frames))


def test_linked_videos_are_read_by_their_index_and_one_gop(moto_server: Server, azurite_server: Server,
                                                          tmp_path: Path) -> None:
    """A 200 MB MP4 (9 MB a GOP), its index at the end, linked from S3 (moto), Azure (Azurite) and a server folder:
    the probe, the poster and frame 123 each read what they need by ranges, counted by the server
    (``cargohold_video_read_bytes``): the probe under 1% of the file, the poster and the frame under one GOP's
    bytes plus the index; nothing lands in the storage tier, and the linked files are unchanged."""
    path = tmp_path / "a.mp4"
    write_large_video(path, 240)
    size = path.stat().st_size
    assert size > 200_000_000
    data = path.read_bytes()
    index = size - (data.rfind(b"moov") - 4)
    digest = hashlib.sha256(data).hexdigest()
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="AKIAVIDEO",
                      aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    s3.create_bucket(Bucket="videos-s3")
    s3.upload_file(str(path), "videos-s3", "cam/a.mp4")
    azure = BlobServiceClient(f"{azurite_server.url}/{AZURITE_ACCOUNT}",
                              credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY})
    azure.create_container("videos-az")
    with path.open("rb") as body:
        azure.get_container_client("videos-az").upload_blob("cam/a.mp4", body, max_concurrency=2)
    del data
    folder = tmp_path / "nas"
    (folder / "cam").mkdir(parents=True)
    path.rename(folder / "cam" / "a.mp4")
    home = tmp_path / "home"
    home.mkdir()
    (home / "remote_links.yml").write_text(f"""
vid-s3:
  provider: minio
  endpoint: {moto_server.url}
  access_key: AKIAVIDEO
  secret_key: {S3_SECRET}
  region: us-east-1
  buckets: [videos-s3]
vid-azure:
  provider: azure
  endpoint: {azurite_server.url}
  access_key: {AZURITE_ACCOUNT}
  secret_key: {AZURITE_KEY}
  buckets: [videos-az]
vid-folder:
  provider: fs
  path: {folder}
  storage_id: vidnas
""")
    poster_gop = _gop_bytes(folder / "cam" / "a.mp4", 20)  # the poster: frame 24, a tenth of 240
    middle_gop = _gop_bytes(folder / "cam" / "a.mp4", 120)
    read: dict[str, dict[str, float]] = {}
    server = RunningServer(home, {}).start()
    try:
        with server.client() as client:
            ds = create_dataset(client, "linked-videos")["id"]
            for uri, provider in (("s3://videos-s3/cam/a.mp4", "minio"), ("azure://videos-az/cam/a.mp4", "azure"),
                                  ("fs://vidnas/cam/a.mp4", "fs")):
                before = _video_read(client.get(server.url + "/metrics").text, provider)
                report = client.post(f"/datasets/{ds}/links", json={"links": [uri]}).json()
                assert report["added"] + report["renamed"] == 1 and report["refused"] == [], report
                probed = _video_read(client.get(server.url + "/metrics").text, provider)
                item = next(i for i in client.get(f"/datasets/{ds}/items").json()["items"] if i["uri"] == uri)
                assert (item["kind"], item["source"], item["size"], item["width"], item["height"]) == \
                    ("video", "link", size, 1280, 720), item
                assert item["video"]["frame_count"] == 240 and item["video"]["codec"] == "h264", item
                for what, expected in (("preview", 24), ("frames/123", 123)):
                    answer = client.get(f"/items/{item['id']}/{what}", params={"w": 256, "format": "png"})
                    assert answer.status_code == 200, answer.text
                    shown = Image.open(io.BytesIO(answer.content))
                    assert frame_number(shown.crop((0, 0, 100, shown.height))) == expected, (uri, what)
                    read.setdefault(provider, {})[what] = _video_read(client.get(server.url + "/metrics").text,
                                                                      provider)
                read[provider]["probe"] = probed - before
                read[provider]["frames/123"] -= read[provider]["preview"]
                read[provider]["preview"] -= probed
            metrics = client.get(server.url + "/metrics").text
            assert 'cargohold_cache_entries{tier="storage"} 0.0' in metrics
    finally:
        server.stop()
    print(f"\n{size:,}-byte linked MP4, bytes read by ranges: {read} (poster GOP {poster_gop:,}, frame 123's GOP "
          f"{middle_gop:,}, index {index:,})")
    for provider in ("minio", "azure", "fs"):
        assert 0 < read[provider]["probe"] < size / 100, read
    for provider in ("minio", "azure"):
        assert 0 < read[provider]["preview"] < poster_gop + index + READ_AHEAD * 4, read  # a GOP's start
        assert 0 < read[provider]["frames/123"] <= middle_gop + READ_AHEAD, read  # the index is kept
    assert read["fs"]["preview"] == read["fs"]["frames/123"] == 0, read  # the folder's file, opened in place
    assert hashlib.sha256(s3.get_object(Bucket="videos-s3", Key="cam/a.mp4")["Body"].read()).hexdigest() == digest
    blob = azure.get_container_client("videos-az").download_blob("cam/a.mp4", max_concurrency=2).readall()
    assert hashlib.sha256(blob).hexdigest() == digest
    assert _sha256_file(folder / "cam" / "a.mp4") == digest


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def test_a_video_preview_is_its_poster(server: RunningServer) -> None:
    """``/items/{id}/preview`` of a video: the frame at a tenth of its duration (frame 10 of 100, its number in
    its pixels), as shown (rotation applied), sized and encoded as an image's preview, cached."""
    with server.client() as client:
        ds = create_dataset(client, "posters")["id"]
        [flat, turned] = upload_results(client, ds, [("flat.mp4", make_video(100, size=(96, 64))),
                                                     ("turned.mkv", make_video(100, size=(96, 64), rotation=90,
                                                                               container="matroska"))])
        for result, shown in ((flat, (96, 64)), (turned, (64, 96))):
            answer = client.get(f"/items/{result['item']['id']}/preview", params={"w": 200, "h": 200,
                                                                                   "format": "png"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "image/png"
            image = Image.open(io.BytesIO(answer.content))
            assert image.size == shown  # never enlarged; rotated as shown
            assert frame_number(image) == 10
            again = client.get(f"/items/{result['item']['id']}/preview", params={"w": 200, "h": 200,
                                                                                  "format": "png"})
            assert again.content == answer.content and again.headers["etag"] == answer.headers["etag"]
        small = client.get(f"/items/{flat['item']['id']}/preview", params={"w": 64, "format": "jpeg"})
        assert small.status_code == 200 and Image.open(io.BytesIO(small.content)).size == (64, 43)


def _frame(client: Any, item_id: int, path: str, **params: Any) -> Image.Image:
    answer = client.get(f"/items/{item_id}/{path}", params={"format": "png", "w": 256, **params})
    assert answer.status_code == 200, answer.text
    return Image.open(io.BytesIO(answer.content))


@pytest.mark.parametrize(("name", "kwargs"), [
    # Read by GOP (the index lists every frame: media/video.Gops):
    ("bframes.mp4", {}),  # H.264, B-frames, a keyframe every 10, its index at the end
    ("variable.mp4", {"variable": True}),  # 1, 2 or 3 ticks between frames
    ("hevc.mov", {"container": "mov", "codec": "libx265"}),
    ("mpeg4.avi", {"container": "avi", "codec": "mpeg4", "bframes": False}),
    # Read from the frames' times (Matroska's cues name keyframes only):
    ("variable.mkv", {"container": "matroska", "variable": True}),
    ("hevc.mkv", {"container": "matroska", "codec": "libx265"}),
])
def test_frames_are_exact(server: RunningServer, name: str, kwargs: dict[str, Any]) -> None:
    """Each frame carries its number in its pixels: ``/frames/{n}`` must answer that very frame, first, last,
    around keyframes and at random, and ``?t=`` the frame shown at that time."""
    count = 60
    with server.client() as client:
        ds = create_dataset(client, f"frames-{name.replace('.', '-')}")["id"]
        [result] = upload_results(client, ds, [(name, make_video(count, **kwargs))])
        item = result["item"]
        rng = random.Random(name)
        for n in [0, 1, 9, 10, 11, 19, 20, 21, count - 1, *rng.sample(range(count), 8)]:
            assert frame_number(_frame(client, item["id"], f"frames/{n}")) == n, (name, n)
        assert frame_number(_frame(client, item["id"], "frames/10")) == 10  # again: from the previews tier
        gone = client.get(f"/items/{item['id']}/frames/{count}")
        assert_error(gone, 404)
        assert f"0 to {count - 1}" in gone.text
        if not kwargs.get("variable"):  # 25 fps: frame n is shown from n / 25 s
            for n in (0, 7, 33, count - 1):
                assert frame_number(_frame(client, item["id"], "frames", t=n / 25 + 0.01)) == n, (name, n)
        else:  # frame n is shown from sum(1 + k % 3 for k < n) / 25 s (tests/support/videos.py)
            starts = [sum(1 + k % 3 for k in range(n)) / 25 for n in range(count)]
            for n in (0, 5, 31, count - 1):
                assert frame_number(_frame(client, item["id"], "frames", t=starts[n] + 0.005)) == n, (name, n)
        assert_error(client.get(f"/items/{item['id']}/frames", params={"t": "soon"}), 400)
        assert_error(client.get(f"/items/{item['id']}/frames"), 400)


def test_a_signed_frame_url_opens_without_a_token(server: RunningServer) -> None:
    with server.client() as client:
        ds = create_dataset(client, "signed-frames")["id"]
        [result] = upload_results(client, ds, [("clip.mp4", make_video(30))])
        item = result["item"]["id"]
        signed = client.post(f"/items/{item}/sign", json={"frame": 17, "preview": {"w": 128, "h": 128,
                                                                                    "fit": "contain",
                                                                                    "format": "png", "q": 80}})
        assert signed.status_code == 200, signed.text
        url = signed.json()["url"]
        assert f"/items/{item}/frames/17?" in url
        opened = httpx.get(url)
        assert opened.status_code == 200 and opened.headers["content-type"] == "image/png"
        assert frame_number(Image.open(io.BytesIO(opened.content))) == 17
        assert httpx.get(url.replace("/frames/17?", "/frames/18?")).status_code == 401  # the path is signed
        assert_error(client.post(f"/items/{item}/sign", json={"frame": 1, "format": "jpeg"}), 400)


def _until_ready(client: Any, url: str, seen: list[float]) -> httpx.Response:
    deadline = time.monotonic() + 120
    while True:
        answer = client.get(url)
        if answer.status_code != 202:
            return answer
        assert answer.headers["retry-after"].isdigit()
        body = answer.json()["error"]
        assert body["code"] == "preparing" and 0 <= body["progress"] <= 1, body
        seen.append(body["progress"])
        assert time.monotonic() < deadline, "the conversion did not finish in 2 minutes"
        time.sleep(0.2)


@pytest.mark.reliability(kind="load", cases=20, what="20 concurrent requests for the same unconverted video "
                         "(?format=mp4): 202 with progress and Retry-After, one conversion, then the file")
def test_a_video_is_made_playable_once(server: RunningServer, request: pytest.FixtureRequest) -> None:
    """HEVC in Matroska is transcoded, H.264 in Matroska remuxed: both come back as MP4 with their index first
    that every browser plays, with every frame; 20 requests at once start one conversion."""
    with server.client() as client:
        ds = create_dataset(client, "playback")["id"]
        [hevc, h264] = upload_results(client, ds, [
            ("hevc.mkv", make_video(60, container="matroska", codec="libx265", audio=True)),
            ("h264.mkv", make_video(60, container="matroska"))])
        before = {t["name"]: t for t in client.get("/cache").json()["tiers"]}["image-converter"]["fills"]
        url = f"/items/{hevc['item']['id']}/content?format=mp4"
        with ThreadPoolExecutor(20) as pool:
            first = list(pool.map(lambda _: client.get(url).status_code, range(20)))
        assert set(first) <= {202, 200} and 202 in first, first
        seen: list[float] = []
        ready = _until_ready(client, url, seen)
        assert ready.status_code == 200 and ready.headers["content-type"] == "video/mp4", ready.text[:300]
        fills = {t["name"]: t for t in client.get("/cache").json()["tiers"]}["image-converter"]["fills"]
        assert fills - before == 1, "one conversion for 20 requests"
        data = ready.content
        assert data.find(b"moov") < data.find(b"mdat"), "faststart: the index first"
        info = probe_video(io.BytesIO(data), "out.mp4", Limits(10**8))
        assert (info.codec, info.frame_count, info.audio_codec) == ("h264", 60, "aac")
        part = client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == data[:100]
        remuxed = _until_ready(client, f"/items/{h264['item']['id']}/content?format=mp4", [])
        assert remuxed.status_code == 200
        assert probe_video(io.BytesIO(remuxed.content), "out.mp4", Limits(10**8)).frame_count == 60
        assert_error(client.get(f"/items/{ds and upload_results(client, ds, [('still.png', _png())])[0]['item']['id']}"
                                f"/content?format=mp4"), 422)
    request.node.user_properties.append(("reliability_result", (
        f"20 concurrent ?format=mp4 requests of one HEVC/MKV video: {first.count(202)} x 202 with Retry-After "
        f"and progress, 1 conversion, then 200 video/mp4 (H.264 + AAC, 60 frames, index first, ranges)")))


def _png() -> bytes:
    return make_image("PNG", (8, 8))


@pytest.mark.reliability(kind="attack", cases=2, what="video frames and posters over the memory budget: each decode "
                         "admitted by IMAGE_MEMORY_BUDGET from the probed size (a 1280x720 frame's about 35 MB over a "
                         "16 MiB budget: 422 naming it), a small video's frames still made")
def test_frame_decoding_is_admitted_by_the_image_memory_budget(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "home", {"IMAGE_MEMORY_BUDGET": "16m"}).start()
    try:
        with server.client() as client:
            ds = create_dataset(client, "budget")["id"]
            [large, small] = upload_results(client, ds, [("large.mp4", make_video(12, size=(1280, 720))),
                                                         ("small.mp4", make_video(12))])
            for what in ("frames/3", "preview"):
                refused = client.get(f"/items/{large['item']['id']}/{what}", params={"format": "png"})
                assert_error(refused, 422)
                assert "IMAGE_MEMORY_BUDGET" in refused.text, refused.text
            assert frame_number(_frame(client, small["item"]["id"], "frames/3")) == 3
    finally:
        server.stop()

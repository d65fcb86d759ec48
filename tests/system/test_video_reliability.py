"""Videos under crashes, faults and files that never end (issue 16), on real ``cargohold up`` processes: a
conversion killed with ``kill -9`` leaves nothing half-written and runs again; a video longer than
VIDEO_MAX_DURATION (declared, or never saying) is refused where it is read, never read to its end; the store
of a linked video going away while a frame is read is a clear 502, and frames already made are still served."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image

from cargohold.media import Limits
from cargohold.media.video import probe_video

from ..support.api import assert_error, create_dataset, upload_results
from ..support.api_server import RunningServer
from ..support.fake_services import Fault, FaultProxy
from ..support.servers import Server
from ..support.videos import frame_number, make_video, write_large_video

NO_HANG = 30.0
"""Seconds an answer under a fault may take at most (CACHE_FETCH_TIMEOUT is 2 s here)."""


def _converter_files(home: Path) -> tuple[list[Path], list[Path]]:
    """The image-converter tier's entries and its temporary files."""
    [root] = list(home.rglob("image-converter"))
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith("index.sqlite3")]
    temporary = [p for p in files if ".tmp" in p.parts]
    return [p for p in files if p not in temporary], temporary


def _playable(client: httpx.Client, item: int, seen: list[float], deadline: float = 120) -> httpx.Response:
    ends = time.monotonic() + deadline
    while True:
        answer = client.get(f"/items/{item}/content", params={"format": "mp4"})
        if answer.status_code != 202:
            return answer
        seen.append(answer.json()["error"]["progress"])
        assert time.monotonic() < ends, "the conversion did not finish"
        time.sleep(0.05)


@pytest.mark.reliability(kind="crash", cases=1, what="a video conversion (`?format=mp4`, MPEG-4 transcoded to "
                         "H.264) killed with `kill -9` mid-way: nothing of it visible in the image-converter tier, its "
                         "temporary file gone at the next start, converted whole at the next request")
def test_a_conversion_killed_mid_way_leaves_nothing_and_runs_again(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "home", {}).start()
    try:
        with server.client() as client:
            ds = create_dataset(client, "killed-conversion")["id"]
            video = make_video(1000, container="avi", codec="mpeg4", bframes=False, size=(640, 360), noise=True)
            [result] = upload_results(client, ds, [("long.avi", video)])
            item = result["item"]["id"]
            progress: list[float] = []
            deadline = time.monotonic() + 60
            while not progress or progress[-1] < 0.2:
                answer = client.get(f"/items/{item}/content", params={"format": "mp4"})
                assert answer.status_code == 202, answer.text
                progress.append(answer.json()["error"]["progress"])
                assert time.monotonic() < deadline
                time.sleep(0.02)
        assert progress[-1] < 0.9, f"the conversion ended before the kill: {progress[-5:]}"
        _, temporary = _converter_files(server.home)
        assert temporary, "the conversion writes to the tier's temporary folder"
        server.kill()
        entries, temporary = _converter_files(server.home)
        assert entries == [], f"a killed conversion left an entry: {entries}"
        server.start()
        entries, temporary = _converter_files(server.home)
        assert entries == [] and temporary == [], (entries, temporary)
        with server.client() as client:
            again: list[float] = []
            answer = _playable(client, item, again)
            assert answer.status_code == 200 and answer.headers["content-type"] == "video/mp4", answer.text
            assert again and again[0] < 0.9, "converted again from the start"
            info = probe_video(io.BytesIO(answer.content), "out.mp4", Limits(10**8))
            assert (info.codec, info.frame_count) == ("h264", 1000), info
            assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()


@pytest.mark.reliability(kind="bad input", cases=4, what="videos that never end: one declaring 10 s and one "
                         "saying nothing (a live Matroska, its frames counted) over VIDEO_MAX_DURATION=4s, refused "
                         "(422 naming the setting, no item); a conversion and a frame count of a video stored "
                         "before the limit stop at it (422)")
def test_videos_past_the_longest_are_refused_where_they_are_read(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "home", {}).start()
    long_mkv = make_video(250, container="matroska", options={"live": "1"}, bframes=False)  # 10 s, no duration
    try:
        with server.client() as client:
            ds = create_dataset(client, "longest")["id"]
            [stored] = upload_results(client, ds, [("before.mkv", long_mkv)])
        server.stop()
        server.env = {"VIDEO_MAX_DURATION": "4s"}
        server.start()
        with server.client() as client:
            for name, data, says in (("declared.mp4", make_video(250, bframes=False), "declares 10 s"),
                                     ("live.mkv", long_mkv, "runs past")):
                started = time.monotonic()
                answer = client.post(f"/datasets/{ds}/items", files=[("files", (name, data))])
                assert_error(answer, 422)
                assert "VIDEO_MAX_DURATION" in answer.text and says in answer.text, answer.text
                assert time.monotonic() - started < NO_HANG
            names = [i["name"] for i in client.get(f"/datasets/{ds}/items").json()["items"]]
            assert names == ["before.mkv"], names
            item = stored["item"]["id"]
            refused = _playable(client, item, [])
            assert_error(refused, 422)
            assert "VIDEO_MAX_DURATION" in refused.text
            counted = client.get(f"/items/{item}/frames/3")  # Matroska: its frames' times counted, bounded too
            assert_error(counted, 422)
            assert "VIDEO_MAX_DURATION" in counted.text
            entries, temporary = _converter_files(server.home)
            assert entries == [] and temporary == [], (entries, temporary)
    finally:
        server.stop()


def _shown(answer: httpx.Response) -> int:
    image = Image.open(io.BytesIO(answer.content))
    return frame_number(image.crop((0, 0, image.width // 3, image.height)))


@pytest.mark.reliability(kind="fault", cases=4, what="the S3 store of a linked video stopped or cutting answers "
                         "while frames are read by ranges: a clear 502 in bounded time, frames and the poster made "
                         "before still 200, the next frame right once the store is back")
def test_the_store_going_away_mid_frame_is_a_clear_502(moto_server: Server, tmp_path: Path) -> None:
    path = tmp_path / "cam.mp4"
    write_large_video(path, 60, size=(640, 360))
    s3 = boto3.client("s3", endpoint_url=moto_server.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="video-faults")
    s3.upload_file(str(path), "video-faults", "cam.mp4")
    home = tmp_path / "home"
    home.mkdir()
    with FaultProxy(moto_server.url) as proxy:
        (home / "remote_links.yml").write_text(
            f"src:\n  provider: minio\n  endpoint: {proxy.url}\n  access_key: testing\n  secret_key: testing\n"
            "  buckets: [video-faults]\n")
        server = RunningServer(home, {"CACHE_FETCH_TIMEOUT": "2s"}).start()
        try:
            with server.client() as client:
                ds = create_dataset(client, "video-faults")["id"]
                report = client.post(f"/datasets/{ds}/links", json={"links": ["s3://video-faults/cam.mp4"]}).json()
                assert report["added"] == 1, report
                [item] = [i["id"] for i in client.get(f"/datasets/{ds}/items").json()["items"]]

                def get(what: str) -> tuple[httpx.Response, float]:
                    started = time.monotonic()
                    answer = client.get(f"/items/{item}/{what}", params={"w": 256, "format": "png"})
                    return answer, time.monotonic() - started

                made, _ = get("frames/5")
                poster, _ = get("preview")
                assert made.status_code == poster.status_code == 200 and _shown(made) == 5
                faults: list[tuple[str, Any]] = [("cut", Fault.cut(after=0)), ("down", None)]  # cut: no byte of a body
                for kind, fault in faults:
                    if fault is None:
                        proxy.down()
                    else:
                        proxy.fail(fault, method="GET")
                    answer, took = get("frames/33")
                    assert_error(answer, 502)
                    assert took < NO_HANG and "Traceback" not in answer.text, (kind, took)
                    again, _ = get("frames/5")
                    assert again.status_code == 200 and again.content == made.content, kind
                    assert get("preview")[0].content == poster.content, kind
                    proxy.heal()
                answer, _ = get("frames/33")
                assert answer.status_code == 200 and _shown(answer) == 33, answer.text
            assert "Traceback" not in server.log.read_text()
        finally:
            server.stop()

"""Videos (issue 16, docs/VIDEO.md), each part against its reference in one run: probing a linked video in
place, random exact frames, and a transcode for playback.

**Probe.** A linked ``--size-mb`` MP4 with its ``moov`` index at the end, probed in place, against PyAV over
the whole local file.

The video: ``--frames`` frames of 1280x720 H.264 with B-frames made here with PyAV (tests/support/videos.py),
then ``--size-mb`` MiB in all with a ``free`` box between its frames and its index (the frames' offsets stay
right), so that its index is at the end of a large file, as a camera or an editor writes one. Its bytes are
put in a moto server's bucket.

- **cargohold**: ``media.video.probe_ranged`` (what link verification and a stored video's probe run) over
  cargohold's own S3 store (``open_store``, obstore) of that bucket: every read a ranged GET to moto; timed
  from the first request to the probe's answer, the bytes fetched counted. Also over the same file as an
  ``fs://`` link's store (``LocalStore``, read-only): ranged reads with no network.
- **the reference**: ``probe_video``'s calls, bare: PyAV opening the local file (ffprobe's reads:
  FFmpeg seeks to the index itself), the stream's fields and one decoded frame; the bytes FFmpeg read
  counted by a file wrapper. The local disk has no round trips: the ratio is what remote reads cost.
- **through the server**: ``POST /datasets/{id}/links`` of that one link with verification, on a
  ``cargohold up`` with a connection to the bucket: the whole request, shown without a ratio.

**Frames.** A stored 1280x720 H.264 MP4 (``--frame-video-frames`` frames at 25 fps, a keyframe every 50,
B-frames; a noisy patch moving over a flat frame), 50 random frame numbers a round:

- **cargohold**: ``GET /items/{id}/frames/{n}?w=1280&h=720&format=jpeg`` on a ``cargohold up`` (local disk, read
  in place), one after the other with keep-alive: cold (each ``n`` asked for the first time), then the same 50
  again (from the previews tier), against 50 cached posters (``/preview``) of the same video.
- **the reference**: bare PyAV on the local file, what a loader does for frame ``n`` of a constant-rate video:
  seek to its time (the keyframe before it), decode forward to it. Shown beside it: the same plus the frame
  encoded as a JPEG of the same size (Pillow), the answer a client gets.

**Transcode.** A 1920x1080 HEVC Matroska of ``--transcode-seconds`` at 25 fps (a keyframe every 50, the
same kind of pictures), stored, then ``GET /items/{id}/content?format=mp4`` until it answers 200 (the 202s
polled every 0.1 s), against bare PyAV decoding it and encoding H.264 with the same settings (libx264
``veryfast``, CRF 23, yuv420p, MP4 with ``faststart``). The image-converter tier is cleared between rounds.

``--runs`` rounds, alternating, medians (``--transcode-runs`` for the transcode). Targets (issue 16): the
probe fetches under 1% of the file; cold frames at least 0.9 of bare PyAV; cached frames as fast as cached
posters (ratio at least 0.9); the transcode at least 0.9 of bare PyAV. It reports, it never fails on a missed
target.

    .venv/bin/python bench/video.py [--size-mb 1024] [--frames 300] [--runs 5] [--frame-video-frames 1500]
                                    [--transcode-seconds 60] [--transcode-runs 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import obstore
from _harness import (
    MiB,
    Row,
    Table,
    Target,
    api_client,
    at_least,
    bare_s3,
    log,
    main,
    ms,
    started,
)

from cargohold.media import Limits
from cargohold.media.video import probe_ranged
from cargohold.storage import ByteRange, Connection, open_store
from cargohold.storage.local import LocalStore
from tests.support.api_server import RunningServer
from tests.support.servers import moto
from tests.support.videos import frame_image, frame_number, make_video, write_video

BUCKET = "videos"
KEY = "cam/long.mp4"
LIMIT = Limits(100_000_000)
FETCHED_TARGET = 1.0
"""Percent of the file a probe may fetch."""
FRAMES_ASKED = 50
RATE = 25
GOP = 50


class Counting(io.FileIO):
    """A local file that counts the bytes read from it (PyAV calls ``read``)."""

    read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data or b"")
        return data or b""


def make_file(path: Path, frames: int, size: int) -> int:
    video = make_video(frames, size=(1280, 720), bframes=True)
    at = video.rfind(b"moov") - 4
    pad = size - len(video)
    if pad < 8:
        raise SystemExit(f"--size-mb is smaller than the {len(video):,}-byte video itself")
    with path.open("wb") as out:
        out.write(video[:at])
        out.write(pad.to_bytes(4, "big") + b"free")
        zero = bytes(MiB)
        left = pad - 8
        while left > 0:
            out.write(zero[: min(MiB, left)])
            left -= MiB
        out.write(video[at:])
    return len(video)


def bare(path: Path) -> dict[str, Any]:
    import av

    began = time.perf_counter()
    with Counting(path, "r") as fh, av.open(fh, "r") as container:
        stream = container.streams.video[0]
        fields = (stream.frames, stream.average_rate, stream.codec_context.width, container.duration)
        next(container.decode(stream))
        read = fh.read_bytes
    return {"seconds": time.perf_counter() - began, "bytes": read, "fields": str(fields)}


async def ours(endpoint: str | None, folder: Path, size: int) -> dict[str, Any]:
    """On S3 (``endpoint``), else on the local folder (an ``fs://`` link's store)."""
    store = open_store(Connection("minio", endpoint=endpoint, access_key="testing", secret_key="testing",
                                  region="us-east-1"), BUCKET) if endpoint else LocalStore(folder, read_only=True)
    try:
        ranges: list[tuple[int, int]] = []

        async def fetch(start: int, end: int) -> bytes:
            ranges.append((start, end))
            return await (await store.get(KEY, ByteRange(start, end))).read()

        began = time.perf_counter()
        info, fetched = await probe_ranged(fetch, size, KEY, LIMIT)
        seconds = time.perf_counter() - began
        replay = None
        if endpoint:  # the same ranged GETs, one after the other, by obstore alone: what the reads themselves cost
            bare_store = bare_s3(BUCKET, endpoint)
            began = time.perf_counter()
            for start, end in ranges:
                await obstore.get_range_async(bare_store, KEY, start=start, end=end)
            replay = time.perf_counter() - began
        return {"seconds": seconds, "bytes": fetched, "requests": len(ranges), "frame_count": info.frame_count,
                "replay_seconds": replay}
    finally:
        await store.close()


def moving_image(n: int, size: tuple[int, int]) -> Any:
    """``frame_image(n)`` with a noisy patch (a quarter of each side) moving over its right half: pictures a
    codec has work with, whose left third still tells ``n`` (``frame_number``)."""
    from PIL import Image

    image = frame_image(n, size)
    tile = (size[0] // 4, size[1] // 4)
    x = size[0] // 2 + (n * 8) % (size[0] // 2 - tile[0])
    y = (n * 5) % (size[1] - tile[1])
    image.paste(Image.frombytes("RGB", tile, os.urandom(tile[0] * tile[1] * 3)), (x, y))
    return image


def encode(path: Path, frames: int, size: tuple[int, int], codec: str, container: str) -> None:
    options = ({"preset": "ultrafast", "x265-params": f"keyint={GOP}:bframes=2:log-level=none"} if codec == "libx265"
               else {"preset": "veryfast", "g": str(GOP), "bf": "2"})
    write_video(path, frames, moving_image, size=size, codec=codec, container=container, options=options, rate=RATE)


def bare_frame(path: Path, n: int, jpeg: bool) -> float:
    """Frame ``n`` of a constant-rate video, bare PyAV: seek to its time, decode forward; seconds."""
    import av

    began = time.perf_counter()
    with av.open(str(path), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        target = round(n / RATE / stream.time_base) + (stream.start_time or 0)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is not None and frame.pts >= target:
                break
        if jpeg:
            out = io.BytesIO()
            frame.to_image().save(out, "JPEG", quality=80)
    seconds = time.perf_counter() - began
    if frame_number(frame.to_image().crop((0, 0, frame.width // 3, frame.height))) != n:
        raise RuntimeError(f"bare PyAV's seek gave another frame than {n}")
    return seconds


def frames_round(api: Any, item: int, path: Path, numbers: list[int]) -> dict[str, float]:
    from PIL import Image

    def get(what: str, check: bool = True) -> float:
        began = time.perf_counter()
        answer = api.get(f"/items/{item}/{what}", params={"w": 1280, "h": 720, "format": "jpeg"})
        seconds = time.perf_counter() - began
        if answer.status_code != 200:
            raise RuntimeError(f"{what}: {answer.status_code} {answer.text[:300]}")
        if check and what.startswith("frames/"):
            image = Image.open(io.BytesIO(answer.content))
            n = int(what.split("/")[1])
            if frame_number(image.crop((0, 0, image.width // 3, image.height))) != n:
                raise RuntimeError(f"cargohold answered another frame than {n}")
        return seconds

    cold = sum(get(f"frames/{n}") for n in numbers)
    bare = sum(bare_frame(path, n, False) for n in numbers)
    bare_jpeg = sum(bare_frame(path, n, True) for n in numbers)
    get("preview")
    cached = posters = 0.0
    for n in numbers:  # alternating, neither checked: the same work around each
        cached += get(f"frames/{n}", check=False)
        posters += get("preview", check=False)
    return {"cold": cold, "bare": bare, "bare_jpeg": bare_jpeg, "cached": cached, "posters": posters}


def bare_transcode(source: Path, dest: Path) -> float:
    """What ``?format=mp4`` does for HEVC, bare: PyAV decoding, libx264 encoding with the same settings."""
    import av

    began = time.perf_counter()
    with av.open(str(source), "r") as inp, av.open(str(dest), "w", format="mp4",
                                                    options={"movflags": "+faststart"}) as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate or RATE)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.options = {"preset": "veryfast", "crf": "23"}
        for frame in inp.decode(vin):
            for packet in vout.encode(frame):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)
    return time.perf_counter() - began


def ours_transcode(api: Any, item: int) -> float:
    api.delete("/cache/image-converter")
    began = time.perf_counter()
    while True:
        answer = api.get(f"/items/{item}/content", params={"format": "mp4"})
        if answer.status_code == 200:
            return time.perf_counter() - began
        if answer.status_code != 202:
            raise RuntimeError(f"?format=mp4: {answer.status_code} {answer.text[:300]}")
        time.sleep(0.1)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    size = args.size_mb * MiB
    with tempfile.TemporaryDirectory(prefix="cargohold-video-bench-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        folder = tmp / "nas"
        path = folder / KEY
        path.parent.mkdir(parents=True)
        video_bytes = make_file(path, args.frames, size)
        log(f"made a {size / MiB:,.0f} MiB MP4 ({video_bytes:,} bytes of video, its index at the end)")
        store = started(stack, moto(tmp / "moto"))
        s3 = boto3.client("s3", endpoint_url=store.url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(path), BUCKET, KEY)
        home = tmp / "home"
        home.mkdir()
        (home / "remote_links.yml").write_text(
            f"cams:\n  provider: minio\n  endpoint: {store.url}\n  access_key: testing\n  secret_key: testing\n"
            f"  region: us-east-1\n  buckets: [{BUCKET}]\n")
        server = started(stack, RunningServer(home, {}))
        records: dict[str, list[dict[str, Any]]] = {"cargohold": [], "cargohold-fs": [], "bare": [], "server": []}
        with api_client(server) as api:
            for run in range(1, args.runs + 1):
                records["bare"].append(bare(path))
                records["cargohold"].append(asyncio.run(ours(store.url, folder, size)))
                records["cargohold-fs"].append(asyncio.run(ours(None, folder, size)))
                dataset = api.post("/datasets", json={"name": f"videos-{run}"}).json()["id"]
                began = time.perf_counter()
                answer = api.post(f"/datasets/{dataset}/links", json={"links": [f"s3://{BUCKET}/{KEY}"]})
                seconds = time.perf_counter() - began
                report = answer.json()
                if answer.status_code != 200 or report.get("added") != 1:
                    raise RuntimeError(f"the link was not added: {answer.status_code} {answer.text[:300]}")
                item = api.get(f"/datasets/{dataset}/items").json()["items"][0]
                if (item["video"] or {}).get("frame_count") != args.frames:
                    raise RuntimeError(f"the linked item's probe is not the video's: {item['video']}")
                records["server"].append({"seconds": seconds})
                mine, theirs = records["cargohold"][-1], records["bare"][-1]
                log(f"  run {run}/{args.runs}: cargohold {mine['seconds'] * 1e3:.1f} ms ({mine['bytes']:,} bytes), "
                    f"bare {theirs['seconds'] * 1e3:.1f} ms ({theirs['bytes']:,} bytes), server {seconds * 1e3:.1f} ms")
            if records["cargohold"][0]["frame_count"] != args.frames:
                raise RuntimeError("cargohold's probe did not count the video's frames")
            frames = measure_frames(args, api, tmp)
            transcode = measure_transcode(args, api, tmp)

    def median(name: str, field: str) -> float:
        return float(statistics.median(r[field] for r in records[name]))

    return {"size_mb": args.size_mb, "frames": args.frames, "runs": args.runs, "file_bytes": size,
            "cargohold": {"seconds": median("cargohold", "seconds"), "bytes": median("cargohold", "bytes"),
                          "requests": median("cargohold", "requests"),
                          "replay_seconds": median("cargohold", "replay_seconds")},
            "cargohold_fs": {"seconds": median("cargohold-fs", "seconds"), "bytes": median("cargohold-fs", "bytes")},
            "bare": {"seconds": median("bare", "seconds"), "bytes": median("bare", "bytes")},
            "server": {"seconds": median("server", "seconds")}, "frame_access": frames, "transcode": transcode}


def _upload(api: Any, dataset: int, path: Path) -> int:
    with path.open("rb") as body:
        answer = api.post(f"/datasets/{dataset}/items", files=[("files", (path.name, body))])
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"upload of {path.name}: {answer.status_code} {answer.text[:300]}")
    return int(answer.json()["results"][0]["item"]["id"])


def measure_frames(args: argparse.Namespace, api: Any, tmp: Path) -> dict[str, Any]:
    path = tmp / "frames.mp4"
    encode(path, args.frame_video_frames, (1280, 720), "libx264", "mp4")
    dataset = api.post("/datasets", json={"name": "frames"}).json()["id"]
    item = _upload(api, dataset, path)
    log(f"frames: a {path.stat().st_size / MiB:,.1f} MiB 1280x720 H.264 MP4 of {args.frame_video_frames} frames")
    rng = random.Random(16)
    left = list(range(args.frame_video_frames))
    rng.shuffle(left)
    rounds = []
    for run in range(1, args.runs + 1):
        numbers, left = left[:FRAMES_ASKED], left[FRAMES_ASKED:]  # never asked before: cold
        if len(numbers) < FRAMES_ASKED:
            raise SystemExit("--frame-video-frames is too small for --runs rounds of 50 new frames")
        rounds.append(frames_round(api, item, path, numbers))
        r = rounds[-1]
        log(f"  run {run}/{args.runs}: 50 cold frames {r['cold'] * 1e3:.0f} ms, bare PyAV {r['bare'] * 1e3:.0f} ms "
            f"(+ JPEG {r['bare_jpeg'] * 1e3:.0f} ms), cached {r['cached'] * 1e3:.1f} ms, posters "
            f"{r['posters'] * 1e3:.1f} ms")
    return {"video_frames": args.frame_video_frames, "bytes": path.stat().st_size,
            **{k: float(statistics.median(r[k] for r in rounds)) for k in rounds[0]}}


def measure_transcode(args: argparse.Namespace, api: Any, tmp: Path) -> dict[str, Any]:
    source = tmp / "minute.mkv"
    frames = args.transcode_seconds * RATE
    began = time.perf_counter()
    encode(source, frames, (1920, 1080), "libx265", "matroska")
    log(f"transcode: a {source.stat().st_size / MiB:,.1f} MiB 1920x1080 HEVC Matroska of {args.transcode_seconds} s "
        f"made in {time.perf_counter() - began:.0f} s")
    dataset = api.post("/datasets", json={"name": "transcode"}).json()["id"]
    item = _upload(api, dataset, source)
    rounds = []
    for run in range(1, args.transcode_runs + 1):
        mine = ours_transcode(api, item)
        theirs = bare_transcode(source, tmp / "bare.mp4")
        rounds.append({"cargohold": mine, "bare": theirs})
        log(f"  run {run}/{args.transcode_runs}: cargohold {mine:.1f} s, bare PyAV/libx264 {theirs:.1f} s")
    converted = api.get(f"/items/{item}/content", params={"format": "mp4"})
    import av

    with av.open(io.BytesIO(converted.content), "r") as container:
        got = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    if got != frames:
        raise RuntimeError(f"the playable copy has {got} frames, not {frames}")
    return {"seconds": args.transcode_seconds, "frames": frames, "source_bytes": source.stat().st_size,
            **{k: float(statistics.median(r[k] for r in rounds)) for k in rounds[0]}, "runs": args.transcode_runs}


def table(f: dict[str, Any]) -> Table:
    ours_, bare_ = f["cargohold"], f["bare"]
    share = 100 * ours_["bytes"] / f["file_bytes"]
    return Table(
        about=(f"Probe: a {f['size_mb']:,} MiB MP4 (1280x720 H.264, {f['frames']} frames, B-frames) with its index at "
               f"the end, probed in place on S3 (moto) vs PyAV over the local file; median of {f['runs']}. Frames: "
               f"{FRAMES_ASKED} random of a stored {f['frame_access']['video_frames']}-frame 1280x720 H.264 MP4 "
               f"({f['frame_access']['bytes'] / MiB:,.0f} MiB, a keyframe every {GOP}) vs bare PyAV. Transcode: "
               f"{f['transcode']['seconds']} s of 1920x1080 HEVC vs bare PyAV/libx264."),
        rows=[
            Row("probe of a linked video on S3 (moto), ms", ms(ours_["seconds"] * 1e3),
                f"{ms(bare_['seconds'] * 1e3)}: PyAV over the local file", bare_["seconds"] / ours_["seconds"]),
            Row("the same, against its own ranged GETs replayed by obstore alone, ms", ms(ours_["seconds"] * 1e3),
                f"{ms(ours_['replay_seconds'] * 1e3)}: {ours_['requests']:.0f} GETs, bare obstore",
                ours_["replay_seconds"] / ours_["seconds"]),
            Row("probe of the same video linked from a server folder (fs://), ms",
                ms(f["cargohold_fs"]["seconds"] * 1e3), f"{ms(bare_['seconds'] * 1e3)}: PyAV over the local file",
                bare_["seconds"] / f["cargohold_fs"]["seconds"]),
            Row("bytes fetched by the probe, % of the file",
                f"{share:.3f}% ({ours_['bytes']:,.0f} bytes in {ours_['requests']:.0f} ranged GETs)",
                f"{100 * bare_['bytes'] / f['file_bytes']:.3f}% ({bare_['bytes']:,.0f} bytes read by FFmpeg)",
                target=Target("<", FETCHED_TARGET, "%", on_ratio=False), value=share),
            Row("the same link added with verification through the API, ms", ms(f["server"]["seconds"] * 1e3)),
            *frame_rows(f["frame_access"], f["runs"]),
            *transcode_rows(f["transcode"]),
        ],
        notes=["The probe's reference reads a local disk: no round trip per read. cargohold's reads are ranged GETs "
               "of at least 256 KiB (media/video.py READ_AHEAD), each a request to moto.",
               "Frames: cargohold's figure is the whole request (HTTP, the frame found by its GOP, decoded, turned "
               "to RGB and written as an uncompressed TIFF, sized and encoded as JPEG by the preview path, kept in "
               "the previews tier); the bare figure decodes only."])


def frame_rows(f: dict[str, Any], runs: int) -> list[Row]:
    per = FRAMES_ASKED
    return [
        Row(f"{per} random cold frames of a stored 1280x720 H.264 video, ms each (median of {runs} rounds)",
            ms(f["cold"] * 1e3 / per), f"{ms(f['bare'] * 1e3 / per)}: bare PyAV seek and decode",
            f["bare"] / f["cold"], target=at_least(0.9)),
        Row("the same cold frames, against bare PyAV that also encodes the JPEG, ms each", ms(f["cold"] * 1e3 / per),
            f"{ms(f['bare_jpeg'] * 1e3 / per)}: bare PyAV + Pillow JPEG", f["bare_jpeg"] / f["cold"]),
        Row("the same frames asked again (previews tier), ms each", ms(f["cached"] * 1e3 / per),
            f"{ms(f['posters'] * 1e3 / per)}: the cached poster", f["posters"] / f["cached"], target=at_least(0.9)),
    ]


def transcode_rows(f: dict[str, Any]) -> list[Row]:
    return [Row(f"?format=mp4 of a 1920x1080 HEVC video of {f['seconds']} s, s (median of {f['runs']})",
                f"{f['cargohold']:.1f}", f"{f['bare']:.1f}: bare PyAV decode + libx264 veryfast CRF 23",
                f["bare"] / f["cargohold"], target=at_least(0.9))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB of the MP4")
    parser.add_argument("--frames", type=int, default=300, help="frames of video in it")
    parser.add_argument("--runs", type=int, default=5, help="rounds (medians)")
    parser.add_argument("--frame-video-frames", type=int, default=1500, help="frames of the video read by frame")
    parser.add_argument("--transcode-seconds", type=int, default=60, help="seconds of the HEVC video transcoded")
    parser.add_argument("--transcode-runs", type=int, default=1, help="rounds of the transcode (medians)")
    main(parser, measure, table)

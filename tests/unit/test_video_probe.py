"""media/video.py on real files made with PyAV (tests/support/videos.py): what a probe says of constant and
variable frame rates, B-frames, rotation, HEVC in Matroska, MPEG-4 in AVI, audio; what it refuses and why; and
that over ranged reads it fetches the index and one frame, not the file."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from cargohold.errors import Unprocessable
from cargohold.media import Limits
from cargohold.media.video import (
    READ_AHEAD,
    RangeReader,
    frame_at,
    frame_times,
    numbered_frames,
    open_gops,
    probe_video,
    write_nth,
)
from cargohold.ranged import RangedFile

from ..support.videos import declaring, frame_number, make_video

LIMIT = Limits(100_000_000)


def probed(data: bytes) -> dict[str, object]:
    return probe_video(io.BytesIO(data), "clip", LIMIT).as_json()


def test_an_mp4_with_b_frames_and_its_index_at_the_end() -> None:
    data = make_video(30, bframes=True)
    assert data.rfind(b"moov") > data.find(b"mdat"), "the muxer's default: moov after the frames"
    assert probed(data) == {
        "duration": 1.2, "frame_rate": 25.0, "nominal_frame_rate": 25.0, "frame_count": 30,
        "frame_count_from": "container", "width": 64, "height": 48, "rotation": 0, "codec": "h264",
        "pixel_format": "yuv420p", "bit_rate": probed(data)["bit_rate"], "audio_codec": None}
    assert isinstance(probed(data)["bit_rate"], int)


def test_rotation_swaps_the_displayed_size() -> None:
    info = probed(make_video(10, rotation=90))
    assert (info["rotation"], info["width"], info["height"]) == (90, 48, 64)


@pytest.mark.parametrize(("container", "codec", "name", "counted"), [
    ("matroska", "libx265", "hevc", "counted"),  # Matroska keeps no frame count: counted from packets
    ("avi", "mpeg4", "mpeg4", "container"),
])
def test_other_containers_and_codecs(container: str, codec: str, name: str, counted: str) -> None:
    info = probed(make_video(30, container=container, codec=codec, bframes=False))
    assert (info["codec"], info["frame_count"], info["frame_count_from"]) == (name, 30, counted)
    assert info["duration"] == pytest.approx(1.2, abs=0.05) and info["frame_rate"] == pytest.approx(25, rel=0.05)


def test_a_variable_frame_rate_averages_frames_over_time() -> None:
    info = probed(make_video(30, container="matroska", variable=True))
    assert info["frame_count"] == 30
    assert info["duration"] is not None and info["frame_rate"] is not None
    assert info["frame_rate"] == pytest.approx(30 / float(info["duration"]), rel=0.01)  # type: ignore[arg-type]
    assert info["frame_rate"] < info["nominal_frame_rate"]  # type: ignore[operator]


def test_audio_is_named() -> None:
    assert probed(make_video(25, audio=True))["audio_codec"] == "aac"
    assert probed(make_video(25))["audio_codec"] is None


def test_what_is_not_a_readable_video_is_refused_with_its_reason() -> None:
    data = make_video(30)
    with pytest.raises(Unprocessable, match="not a readable video: Invalid data"):
        probed(data[: len(data) // 2])  # truncated: its index (at the end) is gone
    with pytest.raises(Unprocessable, match="not a readable video"):
        probed(b"plain text, named like a video")
    with pytest.raises(Unprocessable, match=r"15000 x 15000 = 225,000,000 pixels per frame.*IMAGE_MAX_PIXELS"):
        probed(declaring(15000, 15000))
    with pytest.raises(Unprocessable, match="declares no frame size FFmpeg accepts"):
        probed(declaring(50000, 50000))  # over FFmpeg's own limits: it keeps no size at all


def test_over_ranged_reads_a_probe_fetches_its_index_and_a_frame_not_the_file() -> None:
    data = make_video(30)
    padded = _padded_mp4(data)
    fetched: list[tuple[int, int]] = []

    async def run() -> RangeReader:
        async def fetch(start: int, end: int) -> bytes:
            fetched.append((start, end))
            return padded[start:end]

        reader = RangeReader(asyncio.get_running_loop(), fetch, len(padded))
        info = await asyncio.to_thread(probe_video, reader, "big.mp4", LIMIT)
        assert (info.frame_count, info.width) == (30, 64)
        return reader

    reader = asyncio.run(run())
    assert reader.fetched <= 4 * READ_AHEAD < len(padded) // 50, (reader.fetched, len(padded), fetched)
    assert any(start > len(padded) - READ_AHEAD for start, _ in fetched), "the index at the end was read there"


def _padded_mp4(data: bytes) -> bytes:
    """The file with 64 MiB of a ``free`` box between its frames and its ``moov`` index (the offsets of the
    frames stay right): an MP4 much bigger than what a probe must read, its index at the end."""
    free = 64 * 1024 * 1024
    at = data.rfind(b"moov") - 4
    return data[:at] + free.to_bytes(4, "big") + b"free" + bytes(free - 8) + data[at:]


def test_a_video_longer_than_the_longest_is_refused_declared_or_counted() -> None:
    four_seconds = Limits(LIMIT.pixels, 4.0)
    with pytest.raises(Unprocessable, match=r"declares 10 s, longer than VIDEO_MAX_DURATION \(4 s\)"):
        probe_video(io.BytesIO(make_video(250)), "declared.mp4", four_seconds)
    live = make_video(250, container="matroska", options={"live": "1"}, bframes=False)  # says no duration
    with pytest.raises(Unprocessable, match=r"runs past VIDEO_MAX_DURATION \(4 s\); it was not read further"):
        probe_video(io.BytesIO(live), "live.mkv", four_seconds)
    with pytest.raises(Unprocessable, match="runs past VIDEO_MAX_DURATION"):
        frame_times(io.BytesIO(live), 4.0)
    assert probe_video(io.BytesIO(live), "live.mkv", Limits(LIMIT.pixels, 11.0)).frame_count == 250


class Unreachable(Exception):
    pass


def test_a_failed_ranged_read_is_raised_never_taken_for_the_end_of_the_file(tmp_path: Path) -> None:
    """FFmpeg may treat a read error as the end of the file and go on with the frames it has: the store's
    failure must come out of every reader (at its first read, midway, at its last), never a frame or a probe
    made of what came before it."""
    data = make_video(120, noise=True)  # about 430 KB: dozens of reads of 4 KiB
    gops = open_gops(io.BytesIO(data))
    assert gops is not None

    def reader(fails_at: int | None, calls: list[int]) -> RangedFile:
        def fetch(start: int, end: int) -> bytes:
            calls.append(start)
            if fails_at is not None and len(calls) >= fails_at:
                raise Unreachable("the store went away")
            return data[start:end]

        return RangedFile(fetch, len(data), 4096)

    runs: dict[str, Callable[[RangedFile], object]] = {
        "probe": lambda r: probe_video(r, "v.mp4", LIMIT),
        "frame": lambda r: write_nth(r, tmp_path / "f.png", gops, 100, LIMIT.pixels),
        "frame_at": lambda r: frame_at(r, gops, 3.0),
    }
    for name, run in runs.items():
        calls: list[int] = []
        run(reader(None, calls))
        reads = len(calls)
        assert reads >= 3, (name, reads)
        for fails_at in sorted({1, reads // 2, reads}):
            with pytest.raises(Unreachable):
                run(reader(fails_at, []))


@pytest.mark.parametrize(("kwargs", "indexed"), [({}, True), ({"variable": True}, True),
                                                ({"container": "matroska"}, False)])
def test_numbered_frames_start_at_the_gop_of_the_first_asked(kwargs: dict[str, object], indexed: bool) -> None:
    """What ``Client.iter_frames`` decodes: from the GOP holding frame 33 where the index lists every frame (the
    keyframe before it, as the index says), from frame 0 in Matroska; numbered exactly either way."""
    import av

    with av.open(io.BytesIO(make_video(60, **kwargs)), "r") as container:  # type: ignore[arg-type]
        stream = container.streams.video[0]
        keyframes = [n for n, entry in enumerate(stream.index_entries) if entry.is_keyframe]
        first = max(n for n in keyframes if n <= 33) if indexed else 0
        assert first > 0 or not indexed
        numbered = [(n, frame_number(frame.to_image())) for n, frame in numbered_frames(container, stream, 33)]
    assert [n for n, _ in numbered] == list(range(first, 60))
    assert all(n == shown for n, shown in numbered), numbered

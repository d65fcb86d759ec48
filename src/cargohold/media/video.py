"""What a video is: duration, frame rates, frame count, displayed size, rotation, codecs (issue 16).

Read with PyAV (FFmpeg, bundled in the ``av`` wheels) from a seekable reader, so only the bytes the
container's index and one frame need are read: an MP4 whose ``moov`` index is at the end is read from its
head and its tail (``RangeReader`` counts what it fetched). The size a stream declares is checked against
``IMAGE_MAX_PIXELS`` before a frame is decoded; one frame is decoded, for its rotation (the display matrix
is side data FFmpeg hands over with frames). A container that does not say how many frames it holds has them
counted once, from its packets (no decoding), and the count is marked ``counted``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import Unprocessable
from ..ranged import KeptBlocks, RangedFile
from . import Limits

MAX_COUNTED_PACKETS = 10_000_000
"""Packets counted at most for a container that gives no frame count (about 46 h at 60 fps)."""
READ_AHEAD = 256 * 1024
"""A remote read fetches at least this much: FFmpeg reads in small pieces (32 KiB and less)."""


@dataclass(frozen=True)
class VideoInfo:
    duration: float | None
    """Seconds."""
    frame_rate: float | None
    """Average frames per second (frames / duration, as the container gives it)."""
    nominal_frame_rate: float | None
    """The stream's own rate (FFmpeg's ``r_frame_rate``): the same as the average unless the rate varies."""
    frame_count: int | None
    frame_count_from: str | None
    """``container`` (its index says) or ``counted`` (its packets were counted once)."""
    width: int
    height: int
    """As displayed: the rotation applied."""
    rotation: int
    """Degrees, counter-clockwise, as the display matrix says (0, 90, 180, 270)."""
    codec: str
    pixel_format: str | None
    bit_rate: int | None
    audio_codec: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _rate(value: Fraction | None) -> float | None:
    return round(float(value), 6) if value else None


def probe_video(source: Any, name: str, limits: Limits) -> VideoInfo:
    """``source``: a path or a seekable binary file. Raises Unprocessable with the reason when it is not a
    readable video, declares more than ``limits.pixels`` per frame, or is longer than ``limits.video_seconds``
    (declared, or found counting its packets). Blocking: run it in a thread."""
    import av  # a large extension module: loaded on the first video, not at start

    with _read_failures(source):
        try:
            container = av.open(source, "r")
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise Unprocessable(f"{name!r} is not a readable video: {_reason(exc)}") from None
        try:
            return _probed(container, name, limits)
        finally:
            container.close()


def _probed(container: Any, name: str, limits: Limits) -> VideoInfo:
    max_pixels = limits.pixels
    if not container.streams.video:
        raise Unprocessable(f"{name!r} is not a readable video: it holds no video stream")
    stream = container.streams.video[0]
    context = stream.codec_context
    coded_w, coded_h = context.width or 0, context.height or 0
    if coded_w <= 0 or coded_h <= 0:
        raise Unprocessable(f"{name!r} is not a readable video: its video stream declares no frame size FFmpeg "
                            "accepts (none, or one over its own limits)")
    if coded_w * coded_h > max_pixels:
        raise Unprocessable(f"{name!r} declares {coded_w} x {coded_h} = {coded_w * coded_h:,} pixels per frame, "
                            f"over the limit of {max_pixels:,} (IMAGE_MAX_PIXELS)")
    duration = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / 1_000_000
    elif stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    if duration is not None and duration > limits.video_seconds:
        raise Unprocessable(f"{name!r} declares {duration:,.0f} s, longer than VIDEO_MAX_DURATION "
                            f"({limits.video_seconds:,.0f} s)")
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    rotation = _first_frame_rotation(container, stream, name)
    count, counted_from = (stream.frames, "container") if stream.frames else (None, None)
    if count is None:
        container.seek(0)
        count, counted_from = _count_packets(container, stream, name, limits.video_seconds), "counted"
    # The average is frames over time wherever both are known: a variable-rate Matroska file's
    # avg_frame_rate is its nominal one.
    average = Fraction(count) / Fraction(duration) if count and duration else stream.average_rate
    swapped = rotation % 180 == 90
    return VideoInfo(
        duration=round(duration, 6) if duration is not None else None,
        frame_rate=_rate(average), nominal_frame_rate=_rate(stream.guessed_rate or stream.base_rate),
        frame_count=count, frame_count_from=counted_from if count is not None else None,
        width=coded_h if swapped else coded_w, height=coded_w if swapped else coded_h, rotation=rotation,
        codec=context.name, pixel_format=context.format.name if context.format else None,
        bit_rate=context.bit_rate or container.bit_rate or None, audio_codec=audio)


def _first_frame_rotation(container: Any, stream: Any, name: str) -> int:
    import av

    try:
        for frame in container.decode(stream):
            return round(float(getattr(frame, "rotation", 0) or 0)) % 360
    except (av.error.FFmpegError, ValueError) as exc:
        raise Unprocessable(f"{name!r} is not a readable video: its first frame does not decode "
                            f"({_reason(exc)})") from None
    raise Unprocessable(f"{name!r} is not a readable video: it holds no frame")


def _count_packets(container: Any, stream: Any, name: str, max_seconds: float) -> int | None:
    count = 0
    for packet in _bounded(container.demux(stream), stream, max_seconds, name):
        if packet.size:
            count += 1
            if count > MAX_COUNTED_PACKETS:
                return None
    return count


def _bounded(packets: Iterator[Any], stream: Any, max_seconds: float, name: str) -> Iterator[Any]:
    """``packets`` until one of ``stream`` is timed past ``max_seconds`` (VIDEO_MAX_DURATION): then Unprocessable,
    so a video that never ends (a live recording, a crafted file) is not read to its end."""
    limit = max_seconds / float(stream.time_base) if stream.time_base and max_seconds != math.inf else None
    start = stream.start_time or 0
    for packet in packets:
        if limit is not None and packet.stream is stream and packet.pts is not None and packet.pts - start > limit:
            raise Unprocessable(f"{name!r} runs past VIDEO_MAX_DURATION ({max_seconds:,.0f} s); it was not read "
                                "further")
        yield packet


def _reason(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).strip() or type(exc).__name__
    return text[:200]


async def probe_ranged(fetch: Callable[[int, int], Awaitable[bytes]], size: int, name: str,
                       limits: Limits) -> tuple[VideoInfo, int]:
    """``probe_video`` over ranged reads (``fetch(start, end)``: the bytes ``[start, end)``) of a ``size``-byte
    object, in a worker thread; returns the probe and the bytes it fetched."""
    reader = RangeReader(asyncio.get_running_loop(), fetch, size)
    return await asyncio.to_thread(probe_video, reader, name, limits), reader.fetched


class RangeReader(RangedFile):
    """A ``RangedFile`` for PyAV in a worker thread: ``fetch(start, end)`` is a coroutine run on ``loop`` (the
    store's, e.g. ``store.get`` with a ``ByteRange``), waited for by the thread. With ``kept``, what opening the
    container reads (its index) is kept there for the next reader of the same video."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fetch: Callable[[int, int], Awaitable[bytes]],
                 size: int, kept: KeptBlocks | None = None) -> None:
        def blocking(start: int, end: int) -> bytes:
            return asyncio.run_coroutine_threadsafe(fetch(start, end), loop).result()  # type: ignore[arg-type]

        super().__init__(blocking, size, READ_AHEAD, kept)


DECODER_REFERENCES = 16
"""Frames a decoder may keep for reference: H.264's and HEVC's most."""
LARGEST_FRAME = 8192 * 4320
"""Pixels of a frame assumed for a video whose size is not known (one stored before probing): 8K, the largest
H.264 and HEVC levels allow."""


def frame_cost(pixels: int | None) -> int:
    """Bytes decoding one frame of a video with ``pixels`` a frame may hold at its peak (IMAGE_MEMORY_BUDGET):
    the decoder's frames in 4:2:0 (1.5 bytes a pixel; its references and one a decoding thread), then the frame
    as RGB three times (swscale's, Pillow's copy, the still written)."""
    threads = (os.cpu_count() or 2) + 1
    return int((pixels or LARGEST_FRAME) * (1.5 * (DECODER_REFERENCES + threads) + 9))


POSTER_AT = 0.1
"""Where in a video its poster is taken: a tenth of its duration (past a black or title first frame)."""


def write_still(source: Any, dest: Path, max_pixels: int, at: float = POSTER_AT) -> None:
    """The frame shown at ``at`` of the video's duration, as shown (rotation applied), to ``dest`` as a still for
    the image preview path to size and encode (a poster). Blocking."""
    def when(container: Any, stream: Any) -> int:
        duration = container.duration / 1_000_000 if container.duration else 0.0
        # A microsecond of slack: the duration's tenth and a frame's time are both floats.
        return int((duration * at + 1e-6) / stream.time_base) if duration and stream.time_base else 0

    _write_shown(source, dest, max_pixels, when)


def frame_times(source: Any, max_seconds: float = math.inf) -> tuple[list[int], Fraction]:
    """Every frame's presentation time, in order (the stream's time base, given too), from the packets: no
    decoding. Frame ``n`` is the ``n``-th of them, whatever the decode order (B-frames), the rate (variable) or
    the edit list (packets it discards are left out). Reads the whole file once: for a container whose index
    does not list every frame (``Gops.of`` is None), and callers keep the answer."""

    with _read_failures(source), _open(source) as container:
        stream = _video_stream(container)
        packets = _bounded(container.demux(stream), stream, max_seconds, "the video")
        times = [packet.pts for packet in packets if packet.pts is not None and packet.size and not packet.is_discard]
        return sorted(times), stream.time_base or Fraction(1, 1)


@dataclass(frozen=True)
class Gops:
    """A video's groups of pictures, from its container's index when that lists every frame (MP4, MOV, AVI;
    not Matroska, whose cues name keyframes only): how many frames there are, and for each keyframe how many
    come before it and its decode time (the packets' ``dts``). Frame ``n`` is then found by reading one GOP's
    packets: frames of GOP ``k`` are shown after every frame of the GOPs before it (open GOPs included), so
    frame ``n`` is GOP ``k``'s ``n - starts[k]``-th in presentation order."""

    count: int
    starts: tuple[int, ...]
    stamps: tuple[int, ...]

    @classmethod
    def of(cls, stream: Any) -> Gops | None:
        entries = stream.index_entries
        if not stream.frames or len(entries) < stream.frames:
            return None
        starts, stamps = [], []
        count = 0
        for entry in entries:
            if entry.is_keyframe:
                starts.append(count)
                stamps.append(entry.timestamp)
            if not entry.is_discard:
                count += 1
        if not starts or starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(stamps)):
            return None
        return cls(count, tuple(starts), tuple(stamps))

    def frames_in(self, k: int) -> int:
        return (self.starts[k + 1] if k + 1 < len(self.starts) else self.count) - self.starts[k]


def open_gops(source: Any) -> Gops | None:
    """The GOPs of a video (its index read, nothing decoded), or None when its container's index does not
    list every frame. Blocking."""

    with _read_failures(source), _open(source) as container:
        return Gops.of(_video_stream(container))


def frame_at(source: Any, gops: Gops, seconds: float) -> int:
    """The number of the frame shown at ``seconds`` (the last one whose time has come; the first before it,
    the last after the end), from the index and one GOP's packets. Blocking."""

    with _read_failures(source), _open(source) as container:
        stream = _video_stream(container)
        when = int((seconds + 1e-6) / float(stream.time_base or 1))
        container.seek(max(when, 0), stream=stream, backward=True, any_frame=False)
        packets = (packet for packet in container.demux(stream) if packet.size)
        first = next(packets, None)  # the keyframe FFmpeg's seek chose: its GOP is read from where it stands
        k = bisect.bisect_left(gops.stamps, first.dts) if first is not None and first.dts is not None else -1
        if first is None or not 0 <= k < len(gops.stamps) or gops.stamps[k] != first.dts:
            raise Unprocessable("the video's index and its packets disagree; it cannot be read by frame")
        gop = _frames_from(first, packets, gops.frames_in(k))
        shown = sorted(p.pts for p in gop if not p.is_discard and p.pts is not None)
        number = gops.starts[k] + bisect.bisect_right(shown, when) - 1
        if k + 1 < len(gops.starts) and number == gops.starts[k + 1] - 1:
            # Past this GOP's last frame: the next GOP's leading frames (an open GOP's, shown before their
            # keyframe, decoded right after it) may be shown by then.
            keyframe = next(packets, None)
            for packet in packets:
                if keyframe is None or packet.pts is None or keyframe.pts is None or packet.pts > keyframe.pts:
                    break
                if packet.pts <= when and not packet.is_discard:
                    number += 1
        return min(max(number, 0), gops.count - 1)


def _frames_from(first: Any, packets: Iterator[Any], frames: int) -> list[Any]:
    """``first`` and the packets after it, up to ``frames`` frames (discarded packets besides)."""
    taken, counted = [first], 0 if first.is_discard else 1
    while counted < frames and (packet := next(packets, None)) is not None:
        taken.append(packet)
        counted += not packet.is_discard
    return taken


def write_nth(source: Any, dest: Path, gops: Gops, number: int, max_pixels: int) -> None:
    """Frame ``number`` (presentation order), as shown (rotation applied), to ``dest`` as a still: its GOP's
    packets read (``Gops``), its presentation time found among them, and decoded from its keyframe; a leading
    frame of an open GOP (shown before its keyframe) from the GOP before. Blocking."""

    with _read_failures(source), _open(source) as container:
        stream = _video_stream(container, max_pixels)
        k = bisect.bisect_right(gops.starts, number) - 1
        packets = _gop_packets(container, stream, gops, k, gops.frames_in(k))
        shown = sorted(p.pts for p in packets if not p.is_discard and p.pts is not None)
        if number - gops.starts[k] >= len(shown):
            raise Unprocessable("the video's index and its packets disagree; it cannot be read by frame")
        pts = shown[number - gops.starts[k]]
        if k > 0 and packets[0].pts is not None and pts < packets[0].pts:
            packets = _gop_packets(container, stream, gops, k - 1, gops.frames_in(k - 1) + gops.frames_in(k))
        stream.thread_type = "AUTO"
        chosen = _shown_at(_decoded(stream, packets), pts)
        if chosen.pts != pts:  # the decoder gave no frame of that time (a damaged GOP): never another frame
            raise Unprocessable(f"frame {number} of the video does not decode")
        _save_shown(chosen, dest)


def numbered_frames(container: Any, stream: Any, start: int = 0) -> Iterator[tuple[int, Any]]:
    """``(n, frame)`` in presentation order, from the GOP that holds frame ``start`` on (its packets found by
    ``Gops``, as ``write_nth`` finds them), so frames before it are neither read nor decoded; from the first
    frame when the container's index does not list every frame, or when the GOP's first frame out of the
    decoder is not the one its packets say (an open GOP's frames that need the GOP before). Blocking."""
    gops = Gops.of(stream) if start > 0 else None
    if gops is not None and start < gops.count:
        k = bisect.bisect_right(gops.starts, start) - 1
        packets = _gop_packets(container, stream, gops, k, gops.frames_in(k))
        first = min((p.pts for p in packets if not p.is_discard and p.pts is not None), default=None)
        # Lazily: the packets after the GOP are read as the frames are asked for, never the rest of the file at once.
        frames = _decoded(stream, itertools.chain(packets, (p for p in container.demux(stream) if p.size)))
        head = next(frames, None)
        if head is not None and head.pts == first:
            yield gops.starts[k], head
            yield from enumerate(frames, gops.starts[k] + 1)
            return
        container.seek(0, stream=stream, backward=True, any_frame=False)
    yield from enumerate(container.decode(stream))


def _decoded(stream: Any, packets: Iterable[Any]) -> Iterator[Any]:
    for packet in packets:
        yield from stream.codec_context.decode(packet)
    yield from stream.codec_context.decode(None)  # the decoder's last frames


LAST = 1 << 62
"""A time past any video's end: a seek there lands on its last keyframe."""


def _gop_packets(container: Any, stream: Any, gops: Gops, k: int, frames: int) -> list[Any]:
    """The packets from keyframe ``k`` on (decode order) that hold ``frames`` frames (discarded ones besides).
    FFmpeg seeks by presentation time and the index gives decode times: just before the next keyframe's decode
    time lands on keyframe ``k``; if it does not, its own decode time lands at or before it, and the packets
    before it are passed over."""
    after = gops.stamps[k + 1] - 1 if k + 1 < len(gops.stamps) else LAST
    for target in (after, gops.stamps[k]):
        container.seek(target, stream=stream, backward=True, any_frame=False)
        packets = (packet for packet in container.demux(stream) if packet.size)
        for packet in packets:
            if packet.dts == gops.stamps[k]:
                return _frames_from(packet, packets, frames)
            if target != gops.stamps[k] or packet.dts is None or packet.dts > gops.stamps[k]:
                break  # not keyframe k, nor before it
            # before keyframe k: passed over
    raise Unprocessable("the video's index and its packets disagree; it cannot be read by frame")


@contextlib.contextmanager
def _read_failures(source: Any) -> Iterator[None]:
    """A ranged read that failed (the store unreachable: ``RangedFile.failure``) raised as itself, whatever FFmpeg
    made of it: an error of its own, or the file's end (then the frames read so far would be taken for all)."""
    try:
        yield
    except Exception:
        failure = getattr(source, "failure", None)
        if failure is not None:
            raise failure from None
        raise
    failure = getattr(source, "failure", None)
    if failure is not None:
        raise failure


def _open(source: Any) -> Any:
    import av

    container = av.open(str(source) if isinstance(source, Path) else source, "r")
    if isinstance(source, RangedFile):
        source.keeping = False  # the index is read: what comes next is frames
    return container


def _video_stream(container: Any, max_pixels: int | None = None) -> Any:
    if not container.streams.video:
        raise Unprocessable("the file holds no video stream")
    stream = container.streams.video[0]
    context = stream.codec_context
    if max_pixels is not None and (context.width or 0) * (context.height or 0) > max_pixels:
        raise Unprocessable(f"the video declares {context.width} x {context.height} pixels per frame, over "
                            f"IMAGE_MAX_PIXELS ({max_pixels:,}); it was not decoded")
    return stream


def write_frame(source: Any, dest: Path, pts: int, max_pixels: int) -> None:
    """The frame presented at ``pts`` (one of ``frame_times``), as shown (rotation applied), to ``dest`` as a
    still. Blocking."""
    _write_shown(source, dest, max_pixels, lambda container, stream: pts)


def _write_shown(source: Any, dest: Path, max_pixels: int, when: Callable[[Any, Any], int]) -> None:
    """The frame shown at ``when(container, stream)`` (a time in the stream's time base): the last one whose
    time has come. Seeks to the keyframe at or before it and decodes forward: one GOP, not the video."""

    with _read_failures(source), _open(source) as container:
        stream = _video_stream(container, max_pixels)
        stream.thread_type = "AUTO"
        pts = when(container, stream)
        if pts > 0:
            container.seek(pts, stream=stream, backward=True, any_frame=False)
        _save_shown(_shown_at(container.decode(stream), pts), dest)


def _shown_at(frames: Iterator[Any], pts: int) -> Any:
    """Of decoded ``frames`` (presentation order), the one shown at ``pts``: the last whose time has come (the
    first, if none has), decoding stopped there. A decoding error after it is found does not matter."""
    import av

    chosen = None
    try:
        for frame in frames:
            if chosen is not None and frame.pts is not None and frame.pts > pts:
                break
            chosen = frame
            if frame.pts is not None and frame.pts >= pts:
                break
    except (av.error.FFmpegError, ValueError) as exc:
        if chosen is None:
            raise Unprocessable(f"the video's frames do not decode ({_reason(exc)})") from None
    if chosen is None:
        raise Unprocessable("the video holds no frame there")
    return chosen


def _save_shown(frame: Any, dest: Path) -> None:
    """The frame as an image (an uncompressed TIFF) for the preview path to size and encode."""
    from PIL import Image

    # swscale's RGB (0.4 ms for 1280x720) read by Pillow in one piece: PyAV's ``to_image`` gives the same pixels
    # in 11 ms.
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    image = Image.frombuffer("RGB", (rgb.width, rgb.height), bytes(plane), "raw", "RGB", plane.line_size, 1)
    rotation = round(float(getattr(frame, "rotation", 0) or 0)) % 360
    if rotation:
        image = image.rotate(rotation, expand=True)  # counter-clockwise, as the display matrix says
    # Uncompressed TIFF: the preview path reads it back at once (libvips); a PNG's compression cost about 20 ms
    # of a 1280x720 frame's 100 (bench/video.py, profiled with py-spy), the TIFF's writing 7.
    image.save(dest, format="TIFF")


PLAYABLE_VIDEO = ("h264",)
PLAYABLE_AUDIO = (None, "aac", "mp3")


def to_mp4(source: Path, dest: Path, limits: Limits, progress: Callable[[float], None]) -> None:
    """A copy of the video every browser plays, to ``dest``: MP4 with its index first (``faststart``), the streams
    copied when they are H.264 and AAC (a remux: MKV, MOV, an MP4 with its index at the end), else transcoded to
    H.264 (libx264, ``veryfast``, CRF 23, yuv420p) and AAC. ``progress(done)``, 0 to 1, as it goes; a video whose
    frames run past ``limits.video_seconds`` stops there (Unprocessable). Blocking."""
    import av

    with av.open(str(source), "r") as inp:
        if not inp.streams.video:
            raise Unprocessable(f"{source.name} holds no video stream")
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        width, height = vin.codec_context.width or 0, vin.codec_context.height or 0
        if width * height > limits.pixels:
            raise Unprocessable(f"the video declares {width} x {height} pixels per frame, over IMAGE_MAX_PIXELS")
        total = float(inp.duration or 0) / 1_000_000 or None
        remux = vin.codec_context.name in PLAYABLE_VIDEO and (ain.codec_context.name if ain else None) in PLAYABLE_AUDIO
        with av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            packets = _bounded(inp.demux([s for s in (vin, ain) if s is not None]), vin, limits.video_seconds,
                               source.name)
            if remux:
                _remux(packets, out, vin, ain, total, progress)
            else:
                _transcode(packets, out, vin, ain, total, progress)
    progress(1.0)


def _remux(packets: Iterator[Any], out: Any, vin: Any, ain: Any, total: float | None,
           progress: Callable[[float], None]) -> None:
    streams = {vin.index: out.add_stream_from_template(vin)}
    if ain is not None:
        streams[ain.index] = out.add_stream_from_template(ain)
    for packet in packets:
        if not packet.size:  # the demuxer's flush packets; a packet without a dts (Matroska B-frames) is kept
            continue
        if total and packet.stream is vin and packet.pts is not None and packet.time_base:
            progress(min(0.99, float(packet.pts * packet.time_base) / total))
        packet.stream = streams[packet.stream.index]
        out.mux(packet)


def _transcode(packets: Iterator[Any], out: Any, vin: Any, ain: Any, total: float | None,
               progress: Callable[[float], None]) -> None:
    import av

    vout = out.add_stream("libx264", rate=vin.average_rate or vin.guessed_rate or 25)
    vout.width, vout.height = (vin.codec_context.width // 2) * 2, (vin.codec_context.height // 2) * 2
    vout.pix_fmt = "yuv420p"
    vout.options = {"preset": "veryfast", "crf": "23"}
    aout = resampler = None
    if ain is not None:
        aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
        aout.layout = "stereo" if (ain.codec_context.channels or 2) > 1 else "mono"
        resampler = av.AudioResampler(format="fltp", layout=aout.layout, rate=aout.codec_context.sample_rate)
    rotated = False
    for packet in packets:
        for frame in packet.decode():
            if packet.stream is vin:
                if not rotated:
                    rotated = True
                    turn = round(float(getattr(frame, "rotation", 0) or 0)) % 360
                    if turn:
                        vout.set_display_rotation(turn)
                if frame.width != vout.width or frame.height != vout.height or frame.format.name != "yuv420p":
                    frame = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
                for encoded in vout.encode(frame):
                    out.mux(encoded)
                if total and frame.time is not None:
                    progress(min(0.99, frame.time / total))
            elif aout is not None and resampler is not None:
                for sound in resampler.resample(frame):
                    for encoded in aout.encode(sound):
                        out.mux(encoded)
    for encoded in vout.encode():
        out.mux(encoded)
    if aout is not None:
        for encoded in aout.encode():
            out.mux(encoded)

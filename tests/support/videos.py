"""Real video files made here with PyAV (no downloads): each frame carries its number in its pixels, so a
test can tell which frame it got back."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

SIZE = (64, 48)


def frame_image(n: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """Frame ``n`` (below 4,096): its number in the blue, red and green levels (n // 256, n // 16 % 16 and n % 16,
    16 levels apart)."""
    return Image.new("RGB", size, ((n // 16 % 16) * 16 + 8, (n % 16) * 16 + 8, (n // 256) * 16 + 8))


def noisy_image(n: int, size: tuple[int, int]) -> Image.Image:
    """``frame_image(n)`` whose right half is noise: ``frame_number`` of a crop of the left half tells ``n``."""
    image = frame_image(n, size)
    half = (size[0] // 2, size[1])
    image.paste(Image.frombytes("RGB", half, os.urandom(half[0] * half[1] * 3)), (half[0], 0))
    return image


def frame_number(image: Image.Image) -> int:
    r, g, b = image.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    return int(b // 16) * 256 + int(r // 16) * 16 + int(g // 16)


def make_video(frames: int = 30, *, container: str = "mp4", codec: str = "libx264", rate: int = 25,
               rotation: int = 0, audio: bool = False, bframes: bool = True, variable: bool = False,
               size: tuple[int, int] = SIZE, options: dict[str, str] | None = None, noise: bool = False,
               gop: int = 10) -> bytes:
    """``gop``: a keyframe every that many frames; ``noise``: the right half of each frame is noise
    (``noisy_image``: slow to encode, large); ``variable``: frame ``n`` lasts ``(1 + n % 3) / rate`` s (a
    variable frame rate: it starts at ``sum(1 + k % 3 for k < n) / rate``); MP4 is written with its ``moov``
    index at the end (the muxer's default) unless ``options`` say ``faststart``."""
    out = io.BytesIO()
    with av.open(out, "w", format=container, options=options or {}) as box:
        stream = box.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec in ("libx264", "libx265"):
            stream.options = {"bf": "2" if bframes else "0", "g": str(gop)} if codec == "libx264" else \
                {"x265-params": f"bframes={2 if bframes else 0}:keyint={gop}:log-level=none"}
        else:
            stream.options = {"g": str(gop)}
        if rotation:
            stream.set_display_rotation(rotation)
        tick = Fraction(1, rate * 3) if variable else Fraction(1, rate)
        sound = None
        if audio:
            sound = box.add_stream("aac", rate=16000)
            sound.layout = "mono"
        pts = 0
        for n in range(frames):
            frame = av.VideoFrame.from_image(noisy_image(n, size) if noise else frame_image(n, size))
            frame.pts, frame.time_base = pts, tick
            pts += (1 + n % 3) * 3 if variable else 1  # ticks of 1/(3 rate): n % 3 + 1 frame times
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
        if sound is not None:
            samples = av.AudioFrame(format="fltp", layout="mono", samples=16000 * frames // rate)
            for plane in samples.planes:
                plane.update(bytes(plane.buffer_size))
            samples.sample_rate, samples.pts = 16000, 0
            for packet in sound.encode(samples):
                box.mux(packet)
            for packet in sound.encode():
                box.mux(packet)
    return out.getvalue()


def declaring(width: int, height: int) -> bytes:
    """A tiny raw-video AVI whose headers declare ``width`` x ``height`` frames (patched after writing): a
    bomb's header, without its bytes."""
    real = make_video(2, container="avi", codec="rawvideo", size=(16, 16), bframes=False)
    small = (16).to_bytes(4, "little") * 2
    patched = real.replace(small, width.to_bytes(4, "little") + height.to_bytes(4, "little"))
    assert patched != real, "no width/height pair found in the AVI headers"
    return patched


def write_video(path: Path, frames: int, image: Callable[[int, tuple[int, int]], Image.Image], *,
                size: tuple[int, int], codec: str = "libx264", container: str = "mp4", options: dict[str, str],
                rotation: int = 0, rate: int = 25) -> None:
    """A video file of ``frames`` frames, frame ``n`` being ``image(n, size)``, encoded with ``options``: for videos
    too large to hold in memory (``make_video`` makes bytes)."""
    with av.open(str(path), "w", format=container) as box:
        stream = box.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        for n in range(frames):
            frame = av.VideoFrame.from_image(image(n, size))
            frame.pts = n
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)


def write_large_video(path: Path, frames: int, *, size: tuple[int, int] = (1280, 720), rotation: int = 0) -> None:
    """An H.264 MP4 of ``frames`` ``noisy_image`` frames of about 0.9 MB each at 1280 x 720 (lossless: about 9 MB
    a GOP of 10), its ``moov`` index at the end."""
    write_video(path, frames, noisy_image, size=size, rotation=rotation,
                options={"g": "10", "bf": "2", "preset": "ultrafast", "qp": "0"})

"""media/isolated.py: image work in a process of its own, for the files Pillow decodes in Python: which
files those are, the same file made there as in a thread, errors handed back as raised, a child that dies
an error at once."""

from __future__ import annotations

import functools
import os
import signal
import struct
import time
from pathlib import Path

import pytest
from PIL import Image

from cargohold.errors import ImageWorkFailed, Unprocessable
from cargohold.media import isolated
from cargohold.media.convert import convert_image
from cargohold.media.preview import PreviewSpec, make_preview, read_header
from cargohold.services.serving.fallback import write_image

LIMIT = 50_000_000


def rle8_bmp(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP of bands and blocks of colour: runs of 40 pixels, the index changing every run and
    every 30 rows."""
    lines = b""
    for y in range(height):
        for x in range(0, width, 40):
            lines += bytes([min(40, width - x), (x // 40 * 7 + y // 30 * 13) % 256])
        lines += b"\x00\x00"  # end of line
    pixels = lines + b"\x00\x01"  # end of bitmap
    palette = b"".join(bytes([i, (i * 5) % 256, 255 - i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def plain_ppm(width: int, height: int) -> bytes:
    values = " ".join(f"{(x * 3) % 256} {(y * 5) % 256} {(x + y) % 256}" for y in range(height) for x in range(width))
    return f"P3\n{width} {height}\n255\n{values}\n".encode()


@pytest.mark.parametrize(("name", "python"), [
    ("rle8.bmp", True), ("plain.ppm", True), ("12bit.pgm", True),
    ("rgb.bmp", False), ("binary.ppm", False), ("16bit.pgm", False), ("photo.jpg", False),
])
def test_the_header_says_which_files_pillow_decodes_in_python(tmp_path: Path, name: str, python: bool) -> None:
    path = tmp_path / name
    if name == "rle8.bmp":
        path.write_bytes(rle8_bmp(100, 60))
    elif name == "plain.ppm":
        path.write_bytes(plain_ppm(20, 10))
    elif name == "12bit.pgm":  # a maxval that is no bit depth: Pillow's PpmDecoder, in Python
        path.write_bytes(b"P5\n20 10\n4095\n" + struct.pack(">H", 3000) * 200)
    elif name == "16bit.pgm":
        path.write_bytes(b"P5\n20 10\n65535\n" + struct.pack(">H", 30000) * 200)
    else:
        Image.new("RGB", (20, 10), (10, 200, 30)).save(path)
    header = read_header(path)
    assert header.python_decoder is python
    assert header.copies == (3 if python else 1)  # bytearray, bytes, image


@pytest.mark.parametrize("name", ["rle8.bmp", "plain.ppm"])
def test_a_process_makes_the_same_file_a_thread_makes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(rle8_bmp(600, 400) if name == "rle8.bmp" else plain_ppm(120, 80))
    header = read_header(path)
    specs = (PreviewSpec(64, 64), PreviewSpec(128, 96, fit="cover", format="png"),
             PreviewSpec(fit="fill", format="webp"))
    for spec in specs:
        make_preview(path, tmp_path / "thread", spec, LIMIT, header)
        isolated.run(make_preview, path, tmp_path / "process", spec=spec, max_pixels=LIMIT, header=header)
        assert (tmp_path / "process").read_bytes() == (tmp_path / "thread").read_bytes(), spec
    convert_image(path, tmp_path / "thread", "png", LIMIT, header)
    isolated.run(functools.partial(convert_image, format="png", max_pixels=LIMIT), path, tmp_path / "process")
    assert (tmp_path / "process").read_bytes() == (tmp_path / "thread").read_bytes()
    assert Image.open(tmp_path / "process").size == (header.width, header.height)


def test_what_the_work_raises_is_raised_here(tmp_path: Path) -> None:
    bmp = tmp_path / "rle8.bmp"
    bmp.write_bytes(rle8_bmp(600, 400))
    with pytest.raises(Unprocessable, match=r"600 x 400 pixels .*above IMAGE_MAX_PIXELS"):
        isolated.run(make_preview, bmp, tmp_path / "out", PreviewSpec(), 1000)
    with pytest.raises(FileNotFoundError):
        isolated.run(make_preview, tmp_path / "gone.bmp", tmp_path / "out", PreviewSpec(), LIMIT)
    # A saver that cannot write: the libvips cause comes back too, so write_image still tells a disk that
    # takes no writes (OSError) from a bad image.
    made = functools.partial(isolated.run, make_preview, spec=PreviewSpec(), max_pixels=LIMIT)
    with pytest.raises(OSError, match="libvips could not write the image"):
        write_image(made, bmp, tmp_path / "no-such-folder" / "out")
    with pytest.raises(ImageWorkFailed, match=r"making this image failed: ValueError: invalid literal"):
        isolated.run(int, "not a number")


@pytest.mark.parametrize(("end", "how"), [
    ((signal.raise_signal, signal.SIGKILL), "killed by signal SIGKILL"),
    ((os.abort,), "killed by signal SIGABRT"),
    ((os._exit, 3), "exit code 3"),
])
def test_a_process_that_dies_is_an_error_at_once(end: tuple[object, ...], how: str) -> None:
    started = time.monotonic()
    with pytest.raises(ImageWorkFailed, match=f"ended without finishing it \\({how}\\); nothing was made"):
        isolated.run(*end)  # type: ignore[arg-type]
    assert time.monotonic() - started < 5

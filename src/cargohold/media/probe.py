"""What a file is, from its name and its first bytes: MIME type, kind, and an image's size.

Only the header is parsed (Pillow reads no pixels to learn the size), so a decompression bomb is
refused before anything is decoded.
"""

from __future__ import annotations

import functools
import io
import mimetypes
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import Unprocessable

HEAD_SIZE = 2 * 1024 * 1024
"""Bytes kept from the start of an upload to read an image header from: JPEG EXIF and ICC profiles
come before the size (a CMYK profile from a prepress tool is over 500 KB)."""
TAIL_SIZE = 1024 * 1024
"""Bytes kept from the end of a TIFF upload: TIFF writers often put the header (IFD) after the pixels."""
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")

# cargohold enforces IMAGE_MAX_PIXELS itself, with a clear message; Pillow's own global guard would
# raise its own error (or only warn) at other thresholds.
Image.MAX_IMAGE_PIXELS = None

OWN_TYPES = {
    # Machine-learning files: the system's table (/etc/mime.types) names none of them, or wrongly (`.pt`:
    # application/vnd.snesdev-page-table); their bytes are opaque to a browser.
    **dict.fromkeys((".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".npy", ".npz", ".pkl", ".pickle",
                     ".tfrecord", ".joblib"), "application/octet-stream"),
    ".parquet": "application/vnd.apache.parquet",
    # Videos Python's own table lacks: the same type on every machine, whatever its system table says.
    ".mkv": "video/x-matroska", ".m4v": "video/mp4", ".flv": "video/x-flv", ".wmv": "video/x-ms-wmv",
    ".ogv": "video/ogg",
}
"""cargohold's own types by suffix, over Python's and the system's."""

_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height when shown
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Probe:
    mime_type: str
    kind: str  # image | video | file
    width: int | None = None
    height: int | None = None
    video: dict[str, Any] | None = None
    """A video's ``VideoInfo`` (media/video.py), once its bytes are probed."""


def guess_type(name: str) -> str | None:
    """The MIME type a file's name says: ``OWN_TYPES``, else Python's table and the system's."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    own = OWN_TYPES.get(base[dot:].lower()) if dot > 0 else None
    return own or mimetypes.guess_type(base, strict=False)[0]


def probe(name: str, head: bytes, max_pixels: int, tail: bytes = b"", size: int = 0) -> Probe:
    """``tail``: the last bytes of a ``size``-byte file, for a TIFF whose header is at the end."""
    guessed = guess_type(name) or "application/octet-stream"
    image = _image_header(head)
    if image is None and tail and size > len(head) and head.startswith(TIFF_MAGIC):
        image = _image_header(_Sparse(head, tail, size))
    if image is not None:
        fmt, width, height = image
        if width * height > max_pixels:
            raise Unprocessable(
                f"{name!r} declares {width} x {height} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,} (IMAGE_MAX_PIXELS)"
            )
        mime = Image.MIME.get(fmt) or guessed
        return Probe(mime, "image", width, height)
    if guessed.startswith("video/"):
        return Probe(guessed, "video")
    return Probe(guessed, "file")


@functools.lru_cache(maxsize=1024)
def _by_suffix(suffix: str) -> Probe:
    mime = guess_type(f"x{suffix}") or "application/octet-stream"
    kind = "image" if mime.startswith("image/") else "video" if mime.startswith("video/") else "file"
    return Probe(mime, kind)


def probe_name(name: str) -> Probe:
    """What a file is from its name alone, for a link nothing was fetched of (sizes unknown)."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return _by_suffix(base[dot:].lower() if dot > 0 else "")  # cheaper than a PurePosixPath per link


class _Sparse(io.RawIOBase):
    """A file of ``size`` bytes of which only the head and the tail are known; the rest reads as zeros
    (a header parser that wanders there finds nothing and fails, as it should)."""

    def __init__(self, head: bytes, tail: bytes, size: int) -> None:
        self.head, self.tail, self.size, self.pos = head, tail, size, 0
        self.tail_start = size - len(tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.pos))
        out = bytearray(n)
        for start, data in ((0, self.head), (self.tail_start, self.tail)):
            lo, hi = max(self.pos, start), min(self.pos + n, start + len(data))
            if lo < hi:
                out[lo - self.pos:hi - self.pos] = data[lo - start:hi - start]
        buffer[:n] = out
        self.pos += n
        return n


def _image_header(head: bytes | io.RawIOBase) -> tuple[str, int, int] | None:
    if not head:
        return None  # Pillow would try every format on nothing
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = io.BytesIO(head) if isinstance(head, bytes) else io.BufferedReader(head)
            with Image.open(source) as im:
                width, height = im.size
                fmt = im.format or ""
                try:
                    orientation = im.getexif().get(_EXIF_ORIENTATION)
                except Exception:  # a broken EXIF block does not make a broken image
                    orientation = None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None
    if orientation in _ROTATED:
        width, height = height, width
    return fmt, width, height

"""Full-size conversions: an image a browser cannot show as stored (TIFF, BMP, 16-bit PNG, CMYK JPEG)
re-encoded as JPEG, PNG or WebP.

The reading is preview.py's (header and pixel limit first, libvips with shrink-on-load switched off by
asking for the image's own size, Pillow for BMP and PPM), so the same guarantees hold: nothing decoded
above IMAGE_MAX_PIXELS, truncated files refused, EXIF orientation applied, 8-bit sRGB out, first frame
of an animation, alpha kept for PNG and WebP and flattened on white for JPEG, metadata stripped.

Memory: rows stream from decoder to encoder, except for an image whose EXIF orientation turns or
mirrors it: that one is held in memory once (width x height x bands bytes) to be rotated.
``conversion_cost`` estimates it, and what the decoder holds, from the header alone, for the caller to
admit the work within IMAGE_MEMORY_BUDGET (services/serving/budget.py).

JPEG and WebP are written at quality 90: this stands in for the original, not for a thumbnail. A 12 MP
WebP costs about a second to encode (LAB.md), JPEG a tenth of that.
"""

from __future__ import annotations

from pathlib import Path

from .preview import (
    MEDIA_TYPES,
    Header,
    ImageFormat,
    check_pixels,
    load_bytes,
    pillow_decode_bytes,
    read_header,
    save,
    shrink,
    vips_errors,
)

BROWSER_SAFE: frozenset[str] = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"})
"""MIME types browsers show as they are. Not SVG: served from our origin it can run scripts."""

QUALITY = 90

# The header's kind for each asked format; an UltraHDR JPEG is a JPEG to a browser.
_KINDS: dict[str, frozenset[str]] = {
    "jpeg": frozenset({"jpeg", "uhdr"}),
    "png": frozenset({"png"}),
    "webp": frozenset({"webp"}),
}


def needs_conversion(source: Path, mime_type: str, format: ImageFormat) -> bool:
    """False when ``source`` can be sent unchanged for ``?format=<format>``: it is that format, 8-bit
    and RGB or grey (with or without alpha, any embedded ICC profile: browsers apply it). True
    otherwise. Reads only the header; raises Unprocessable when it is not an image."""
    if mime_type != MEDIA_TYPES[format] or mime_type not in BROWSER_SAFE:
        return True
    header = read_header(source)
    return not (
        header.kind in _KINDS[format]
        and header.band_format == "uchar"
        and header.interpretation in ("srgb", "b-w")
        and 1 <= header.bands <= 4
    )


def conversion_cost(header: Header) -> int:
    """Bytes a conversion of this image is expected to hold at its peak, from the header alone: what the
    decoder holds (Pillow: the whole image, and the pixels handed to libvips), and the 8-bit copy held to
    rotate an image whose EXIF orientation is not 1."""
    pixels = header.width * header.height
    out_bands = 4 if header.bands in (2, 4) else 3  # alpha kept; grey counted as colour, to be safe
    if header.pillow:
        return pillow_decode_bytes(header) + pixels * 4  # the buffer for libvips: 4 bytes at most a pixel
    held = load_bytes(header)
    return held + pixels * out_bands if header.orientation != 1 else held


def convert_image(source: Path, dest: Path, format: ImageFormat, max_pixels: int,
                  header: Header | None = None) -> None:
    """Write a full-size, browser-friendly ``format`` version of the image ``source`` to ``dest`` (the
    format does not come from dest's name). Synchronous and CPU-bound: call it in a thread. ``header``:
    ``source``'s, when the caller has read it already (to admit the work by its cost).

    Raises Unprocessable when the image declares more than ``max_pixels`` pixels (nothing is decoded
    then) or cannot be read as an image. On failure ``dest`` may hold a partial file.
    """
    header = header or read_header(source)
    check_pixels(header, max_pixels)
    with vips_errors():
        # A box the image already fits in: no shrink, but thumbnail's colour handling.
        side = max(header.width, header.height)
        image = shrink(source, header, side, side, size="down")
        if header.orientation != 1:
            image = image.copy_memory().autorot()
        save(image, dest, format, QUALITY)

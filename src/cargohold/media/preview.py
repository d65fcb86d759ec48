"""Image previews: a small JPEG, WebP or PNG of a stored image, made with libvips (pyvips).

The choices, and why:

- Header first. libvips has no pixel limit of its own and will stream a PNG that declares 50,000 x
  50,000 pixels, so the header is parsed (nothing decoded) and the declared size of one page is checked
  against IMAGE_MAX_PIXELS before any pixel is read.
- ``thumbnail`` shrinks on load (a JPEG is decoded at 1/2, 1/4 or 1/8 scale, a HEIF uses its embedded
  thumbnail), reads sequentially, and takes the first frame of an animation or the first page of a
  multi-page TIFF.
- Files are read through a ``pyvips.Source``, never by file name: libvips takes a name ending in
  ``[...]`` as loader options (``x.jpg[shrink=8]`` loads a different image, or nothing).
- Truncated files fail (``fail_on=truncated``) instead of being padded with grey; lesser warnings such
  as stray bytes between JPEG markers are tolerated, as browsers tolerate them. ``thumbnail_source``
  ignores its own ``fail_on`` argument in libvips 8.18 (only the file variant hands it to the loader),
  so it travels in the loader's option string.
- Colour: 16-bit images become 8-bit through libvips' colourspace conversion (scaled, not clipped to
  white). An image with an ICC profile, and any CMYK image, is resized in its own colour space and
  transformed to sRGB once, at the small size: converting CMYK first costs about 5x more at 1024 px. Outputs
  are sRGB with all metadata stripped, the profile included.
- Fit: ``contain`` fits inside the box keeping the aspect ratio and never enlarges, since a preview
  larger than its original only adds bytes; ``cover`` and ``fill`` always return exactly
  ``width x height`` (enlarging a small image), since a grid relies on that size. ``cover`` scales and
  then crops the centre itself, streaming: inside ``thumbnail(crop=...)`` a 20,000 x 1 strip asked at
  2048 x 2048 would first be scaled, in memory, to 84 gigapixels.
- Alpha is kept for PNG and WebP and flattened on white for JPEG. PNG is lossless: ``quality`` only
  applies to JPEG and WebP (it stays in the spec's name, one name per spec).
- Formats: JPEG, PNG, WebP, GIF, TIFF and HEIF/AVIF through libvips. libvips' other loaders (matrix,
  CSV text files; SVG, a document rather than a picture and a CPU sink) are refused. The pyvips-binary
  build has no BMP or PPM loader, so those are read with Pillow, after the same header check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import pyvips  # type: ignore[import-untyped]
from PIL import Image, UnidentifiedImageError

from ..errors import BadInput, Unprocessable

# A server decodes untrusted files: no operation cache (it would keep past requests' images and open
# files alive for nothing: no two requests share work), and the loaders libvips marks as unsafe for
# untrusted input (ImageMagick, MATLAB, FITS, vips native...) blocked.
pyvips.cache_set_max(0)
pyvips.block_untrusted_set(True)

# As in probe.py: cargohold enforces IMAGE_MAX_PIXELS itself, with a clear message; Pillow's own guard
# would refuse a BMP at other thresholds, before the header could be checked.
Image.MAX_IMAGE_PIXELS = None

Fit = Literal["contain", "cover", "fill"]
ImageFormat = Literal["jpeg", "webp", "png"]

FITS: tuple[Fit, ...] = get_args(Fit)
FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "webp": "image/webp", "png": "image/png"}

MAX_SIDE = 2048

_FAIL_ON = "truncated"
# libvips loader nicknames ("jpegload_source" -> "jpeg") read through libvips; "uhdr" is a JPEG with an
# UltraHDR gain map.
_VIPS_FORMATS = frozenset({"jpeg", "uhdr", "png", "webp", "gif", "tiff", "heif"})
# Pillow formats read when libvips has no loader for them.
_PILLOW_FORMATS = {"BMP": "bmp", "DIB": "bmp", "PPM": "ppm"}
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations shown rotated by 90 degrees
_HUGE = 10_000_000  # libvips' "ignore this side" size for thumbnail (its coordinate limit)


@dataclass(frozen=True)
class PreviewSpec:
    width: int = 256
    height: int = 256
    fit: Fit = "contain"
    format: ImageFormat = "jpeg"
    quality: int = 80

    def __post_init__(self) -> None:
        # Messages name the query parameters (w, h, fit, format, q): they are what the caller typed.
        _check_range("w", self.width, 1, MAX_SIDE)
        _check_range("h", self.height, 1, MAX_SIDE)
        _check_range("q", self.quality, 1, 100)
        _check_choice("fit", self.fit, FITS)
        _check_choice("format", self.format, FORMATS)

    @property
    def name(self) -> str:
        """Canonical file name, one per spec: ``256x256-contain-q80.jpeg``."""
        return f"{self.width}x{self.height}-{self.fit}-q{self.quality}.{self.format}"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def _check_range(param: str, value: object, low: int, high: int) -> None:
    # bool is an int to Python, not to a query string.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"{param} must be between {low} and {high}, not {value!r}")


def _check_choice(param: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInput(f"{param} must be one of {', '.join(allowed)}, not {value!r}")


def make_preview(source: Path, dest: Path, spec: PreviewSpec, max_pixels: int) -> None:
    """Write a preview of the image file ``source`` to ``dest`` (the format comes from ``spec``, not
    from dest's name). Synchronous and CPU-bound: call it in a thread.

    Raises Unprocessable when the image declares more than ``max_pixels`` pixels (nothing is decoded
    then) or cannot be read as an image. On failure ``dest`` may hold a partial file.
    """
    header = read_header(source)
    check_pixels(header, max_pixels)
    with vips_errors():
        image = _scaled(source, header, spec)
        save(image, dest, spec.format, spec.quality)


def _scaled(source: Path, header: Header, spec: PreviewSpec) -> pyvips.Image:
    # Sizes are asked in the stored orientation and the result rotated after: rotating needs the
    # image in memory, and after the crop that is only the preview itself.
    swap = header.orientation in _SWAPS_SIDES
    width, height = (spec.height, spec.width) if swap else (spec.width, spec.height)
    if spec.fit == "contain":
        image = shrink(source, header, width, height, size="down")
    elif spec.fit == "fill":
        image = shrink(source, header, width, height, size="force")
    else:
        # Scale so the box is covered, then cut the centre out (header sizes are stored ones too).
        if header.width * height > width * header.height:  # wider than the box: the heights must match
            image = shrink(source, header, _HUGE, height, size="both")
        else:
            image = shrink(source, header, width, _HUGE, size="both")
        scaled_w, scaled_h = int(image.width), int(image.height)
        left, top = max(0, (scaled_w - width) // 2), max(0, (scaled_h - height) // 2)
        image = image.crop(left, top, min(width, scaled_w), min(height, scaled_h))
        if (int(image.width), int(image.height)) != (width, height):
            # Only a strip over ~5000:1 gets here: its long side hit libvips' coordinate limit.
            image = image.resize(width / int(image.width), vscale=height / int(image.height))
    return image.copy_memory().autorot() if header.orientation != 1 else image


# Reading, shared with convert.py -----------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """What an image file's header says; nothing decoded."""

    kind: str  # "jpeg", "png", "webp", "gif", "tiff", "heif", "uhdr" (libvips) or "bmp", "ppm" (Pillow)
    width: int
    height: int  # of one page or frame
    orientation: int  # EXIF 1..8, 1 when absent
    interpretation: str  # libvips': "srgb", "b-w", "rgb16", "grey16", "cmyk", ...
    band_format: str  # libvips': "uchar", "ushort", "float", ...
    bands: int
    icc: bool  # an ICC profile is embedded
    pillow: bool  # read with Pillow, libvips having no loader for it

    @property
    def cmyk(self) -> bool:
        return self.interpretation == "cmyk"


def read_header(source: Path) -> Header:
    """Parse the header of ``source``. Raises Unprocessable when it is not an image this module reads."""
    with vips_errors():
        try:
            image = pyvips.Image.new_from_source(_source(source), "", access="sequential", fail_on=_FAIL_ON)
        except pyvips.Error as exc:
            if "not in a known format" not in str(exc.detail):
                raise
            return _pillow_header(source)
        loader = str(image.get("vips-loader"))
        kind = loader.partition("load")[0]
        if kind not in _VIPS_FORMATS:
            raise Unprocessable(f"cannot read this file as an image: {kind} files are not accepted")
        height = int(image.height)
        if image.get_typeof("page-height"):
            height = int(image.get("page-height"))
        return Header(
            kind=kind,
            width=int(image.width),
            height=height,
            orientation=_orientation(image),
            interpretation=str(image.interpretation),
            band_format=str(image.format),
            bands=int(image.bands),
            icc=bool(image.get_typeof("icc-profile-data")),
            pillow=False,
        )


def _orientation(image: pyvips.Image) -> int:
    orientation = int(image.get("orientation")) if image.get_typeof("orientation") else 1
    return orientation if 1 <= orientation <= 8 else 1  # a broken EXIF block shows the image as stored


def check_pixels(header: Header, max_pixels: int) -> None:
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise Unprocessable(
            f"the image declares {header.width} x {header.height} pixels ({pixels / 1e6:.1f} megapixels), "
            f"above IMAGE_MAX_PIXELS ({max_pixels / 1e6:.1f} megapixels); it was not decoded"
        )


def shrink(source: Path, header: Header, width: int, height: int, size: str) -> pyvips.Image:
    """``source`` scaled into ``width x height`` (``size`` is libvips': down, both or force), 8-bit sRGB
    or grey, alpha kept, EXIF orientation not applied yet: the image is still in stored orientation."""
    kwargs: dict[str, object] = {"height": height, "size": size, "no_rotate": True}
    if header.icc or header.cmyk:
        # Resize in the image's own space, then one transform at the small size (see the docstring).
        kwargs["output_profile"] = "srgb"
        if header.cmyk:
            kwargs["input_profile"] = "cmyk"  # only when the file embeds no profile
    if header.pillow:
        image = pyvips.Image.thumbnail_image(_pillow_pixels(source, header), width, **kwargs)
    else:
        # fail_on as a loader option: thumbnail_source's own fail_on argument is not passed on.
        image = pyvips.Image.thumbnail_source(_source(source), width, option_string=f"fail_on={_FAIL_ON}", **kwargs)
    if image.format != "uchar":
        image = image.cast("uchar")  # not met with 8- and 16-bit inputs: thumbnail already made them 8-bit
    return image


def save(image: pyvips.Image, dest: Path, format: ImageFormat, quality: int) -> None:
    """Encode ``image`` to ``dest`` with the saver for ``format``, metadata stripped."""
    if format == "jpeg" and image.hasalpha():
        image = image.flatten(background=[255] * (int(image.bands) - 1))
    target = pyvips.Target.new_to_file(str(dest))
    keep = pyvips.enums.ForeignKeep.NONE
    if format == "jpeg":
        image.jpegsave_target(target, Q=quality, optimize_coding=True, keep=keep)
    elif format == "webp":
        image.webpsave_target(target, Q=quality, keep=keep)
    else:
        image.pngsave_target(target, keep=keep)  # lossless: quality does not apply


@contextmanager
def vips_errors() -> Iterator[None]:
    """Translate a libvips failure (not an image, truncated, unsupported) into Unprocessable."""
    try:
        yield
    except pyvips.Error as exc:
        raise Unprocessable(f"cannot read this file as an image: {_reason(exc)}") from exc


def _reason(exc: pyvips.Error) -> str:
    # detail is libvips' error log, "VipsJpeg: premature end of JPEG image\n..."; its first line is the
    # cause, without the domain.
    for line in str(exc.detail or "").splitlines():
        line = line.strip()
        if line:
            domain, sep, text = line.partition(": ")
            reason = text if sep and " " not in domain else line
            return reason.replace("source is not in a known format", "not a known image format")
    return str(exc.message)


def _source(path: Path) -> pyvips.Source:
    # Opened by Python so that a missing file is a FileNotFoundError, not an "unreadable image"; libvips
    # keeps its own duplicate of the descriptor.
    with path.open("rb") as file:
        return pyvips.Source.new_from_descriptor(file.fileno())


# Pillow, for the formats libvips lacks here ----------------------------------------------------------


def _pillow_header(source: Path) -> Header:
    try:
        with _pillow_open(source) as im:
            kind = _PILLOW_FORMATS.get(im.format or "")
            if kind is None:
                raise Unprocessable("cannot read this file as an image: not a known image format")
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise Unprocessable("cannot read this file as an image: not a known image format") from exc
    return Header(kind, width, height, 1, "srgb", "uchar", 3, icc=False, pillow=True)


def _pillow_open(source: Path) -> Image.Image:
    # Only these plugins: Pillow would otherwise also try formats it hands to Ghostscript (EPS).
    return Image.open(source, formats=list(_PILLOW_FORMATS))


def _pillow_pixels(source: Path, header: Header) -> pyvips.Image:
    """Decode with Pillow (after check_pixels) into a libvips image: 8-bit grey or sRGB, or 16-bit grey
    for a 16-bit PGM, which libvips then scales to 8 bits."""
    try:
        with _pillow_open(source) as im:
            if im.size != (header.width, header.height):
                raise Unprocessable("cannot read this file as an image: it changed while being read")
            im.load()
            if im.mode.startswith("I"):  # a 16-bit PGM; Pillow's convert("L") would clip it to white
                data = im.convert("I").tobytes("raw", "I")
                image = pyvips.Image.new_from_memory(data, im.width, im.height, 1, "int")
                return image.cast("ushort").copy(interpretation="grey16")
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                has_alpha = "A" in im.mode or "transparency" in im.info
                grey = im.mode == "1"
                im = im.convert(("LA" if has_alpha else "L") if grey else ("RGBA" if has_alpha else "RGB"))
            data = im.tobytes()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise Unprocessable(f"cannot read this file as an image: {exc}") from exc
    bands = len(im.mode)
    image = pyvips.Image.new_from_memory(data, im.width, im.height, bands, "uchar")
    return image.copy(interpretation="b-w" if bands <= 2 else "srgb")

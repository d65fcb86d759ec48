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
- Sizes: a box is snapped up to one of a few (``PreviewSpec.snapped``, docs/CACHE.md) before anything
  is made, so an item has a bounded number of previews however many sizes are asked for: its longer
  side to the next of ``STEPS``, its shorter side scaled by the same factor and rounded up to an eighth
  of that step. The preview is then at least as large as asked (the browser scales it down), never
  blurred by being scaled up. Its quality is snapped up the same way, to the next of ``QUALITIES``.
- Memory: ``preview_cost`` estimates, from the header alone, what making a preview holds at its peak,
  so that the caller can admit the work within IMAGE_MEMORY_BUDGET (services/serving/budget.py).
- Alpha is kept for PNG and WebP and flattened on white for JPEG. PNG is lossless: ``quality`` only
  applies to JPEG and WebP, and a PNG's is snapped to 100, so one box makes one PNG whatever ``q`` asks.
- Formats: JPEG, PNG, WebP, GIF, TIFF and HEIF/AVIF through libvips. libvips' other loaders (matrix,
  CSV text files; SVG, a document rather than a picture and a CPU sink) are refused. The pyvips-binary
  build has no BMP or PPM loader, so those are read with Pillow, after the same header check. Where
  Pillow's decoder for a file is Python code (``Image.DECODERS``: RLE BMP, plain or odd-depth PNM), the
  header says so (``python_decoder``), since that decoder holds the GIL and its copies of the image: the
  server makes those images in a process of its own (``isolated.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

import pyvips  # type: ignore[import-untyped]
from PIL import Image, ImageFile, UnidentifiedImageError

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
STEPS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
"""The longer side of every preview box is one of these (``PreviewSpec.snapped``)."""
STEP_PARTS = 8
"""... and its shorter side a multiple of ``step // STEP_PARTS``."""
QUALITIES: tuple[int, ...] = (30, 50, 70, 80, 90, 95, 100)
"""A JPEG or WebP preview is made at the first of these at or above the ``q`` asked (``PreviewSpec.snapped``):
7 variants where 1..100 made 100, never below what was asked (as a box is never smaller). Finer at the top,
where one step of ``q`` changes a JPEG's bytes the most and where users ask (80, the default; 90, 95):
256 px JPEGs of the docs' screenshots grow 2.6x from q90 to q100, 1.3x from q30 to q50. Nothing below 30:
a placeholder asking q=10 gets q=30, some 40 bytes more at 32 px."""
PNG_QUALITY = 100
"""A PNG's quality, whatever is asked: lossless, so every ``q`` makes the same bytes."""

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

    def snapped(self) -> PreviewSpec:
        """This spec as previews are made, so that an item has a bounded number of them: its box scaled
        up to one of a few, the longer side to the next of ``STEPS``, the shorter one by the same factor,
        rounded up to a multiple of an eighth of that step (aspect kept within that eighth): 256x256
        stays; 100x60 becomes 128x80; 1x1 becomes 32x32. Its quality up to the next of ``QUALITIES``
        (75 becomes 80), ``PNG_QUALITY`` for a PNG. At most 7 x 15 boxes x 7 qualities per fit and
        format (x 1 for PNG)."""
        long, short = max(self.width, self.height), min(self.width, self.height)
        step = next(s for s in STEPS if s >= long)
        unit = step // STEP_PARTS
        snapped_short = min(step, -(-short * step // (long * unit)) * unit)
        width, height = (step, snapped_short) if self.width >= self.height else (snapped_short, step)
        quality = PNG_QUALITY if self.format == "png" else next(q for q in QUALITIES if q >= self.quality)
        if (width, height, quality) == (self.width, self.height, self.quality):
            return self
        return replace(self, width=width, height=height, quality=quality)

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


def make_preview(source: Path, dest: Path, spec: PreviewSpec, max_pixels: int, header: Header | None = None) -> None:
    """Write a preview of the image file ``source`` to ``dest`` (the format comes from ``spec``, not
    from dest's name). Synchronous and CPU-bound: call it in a thread. ``header``: ``source``'s, when
    the caller has read it already (to admit the work by its cost).

    Raises Unprocessable when the image declares more than ``max_pixels`` pixels (nothing is decoded
    then) or cannot be read as an image. On failure ``dest`` may hold a partial file.
    """
    header = header or read_header(source)
    check_pixels(header, max_pixels)
    with vips_errors():
        image = _scaled(source, header, spec)
        save(image, dest, spec.format, spec.quality)


def _box(header: Header, spec: PreviewSpec) -> tuple[int, int]:
    """The box in the stored orientation: sizes are asked of the image as shown."""
    return (spec.height, spec.width) if header.orientation in _SWAPS_SIDES else (spec.width, spec.height)


def preview_cost(header: Header, spec: PreviewSpec) -> int:
    """Bytes making this preview is expected to hold at its peak, from the header alone (docs/SECURITY.md,
    "Image work"): what the decoder holds at the size it loads (a JPEG's shrink-on-load applied), and
    the preview itself, held once to be rotated and encoded."""
    width, height = _box(header, spec)
    ratio = min(header.width / width, header.height / height)  # the least the image is shrunk by
    out = width * height * 4
    if header.pillow:
        k = pillow_reduce(ratio)
        return pillow_decode_bytes(header) + -(-header.width // k) * -(-header.height // k) * 4 + out
    shrink = jpeg_shrink(ratio) if header.kind == "jpeg" else 1
    return load_bytes(header, shrink) + out


def jpeg_shrink(ratio: float) -> int:
    """libvips' shrink-on-load for a JPEG shrunk by ``ratio``: 8, 4 or 2, leaving at least a factor of 2
    for the final resize (``vips_thumbnail_find_jpegshrink``)."""
    return 8 if ratio >= 16 else 4 if ratio >= 8 else 2 if ratio >= 4 else 1


def pillow_reduce(ratio: float) -> int:
    """The factor a Pillow-read image is reduced by while it is read, strip by strip, for a preview
    shrunk by ``ratio``; as libvips' shrink-on-load, it leaves a factor of 2 for the final resize."""
    return max(1, int(ratio // 2))


_SAMPLE_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4,
                 "complex": 8, "double": 8, "dpcomplex": 16}
# Loaders that hold a whole frame in memory however the pixels are read: libwebp and libheif decode it
# whole, GIF keeps a frame buffer, an interlaced PNG or progressive JPEG comes in passes.
_WHOLE_FRAME = frozenset({"webp", "gif", "heif", "uhdr"})
_WINDOW_ROWS = 512  # what a streaming decoder and libvips' line caches hold, in rows, at most


def load_bytes(header: Header, shrink: int = 1) -> int:
    """What the decoder (libvips) holds of ``header``'s image loaded at 1/``shrink`` scale."""
    sample = _SAMPLE_BYTES.get(header.band_format, 8) * header.bands
    width, height = -(-header.width // shrink), -(-header.height // shrink)
    if header.kind == "jpeg" and header.interlaced:
        return header.width * header.height * header.bands * 2  # libjpeg's coefficients, at full size
    if header.kind in _WHOLE_FRAME or header.interlaced:
        return width * height * sample
    return width * min(height, _WINDOW_ROWS) * sample


def pillow_decode_bytes(header: Header) -> int:
    """What Pillow holds of an image it decodes: one byte a pixel for palette and grey images, the
    sample size for one band of 16 or 32 bits, four bytes a pixel for every image of several bands;
    as many times as its decoder copies it."""
    per_pixel = _SAMPLE_BYTES.get(header.band_format, 4) if header.bands == 1 else 4
    return header.width * header.height * per_pixel * header.copies


def _scaled(source: Path, header: Header, spec: PreviewSpec) -> pyvips.Image:
    # Sizes are asked in the stored orientation and the result rotated after: rotating needs the
    # image in memory, and after the crop that is only the preview itself.
    width, height = _box(header, spec)
    reduce = pillow_reduce(min(header.width / width, header.height / height)) if header.pillow else 1
    if spec.fit == "contain":
        image = shrink(source, header, width, height, size="down", reduce=reduce)
    elif spec.fit == "fill":
        image = shrink(source, header, width, height, size="force", reduce=reduce)
    else:
        # Scale so the box is covered, then cut the centre out (header sizes are stored ones too).
        if header.width * height > width * header.height:  # wider than the box: the heights must match
            image = shrink(source, header, _HUGE, height, size="both", reduce=reduce)
        else:
            image = shrink(source, header, width, _HUGE, size="both", reduce=reduce)
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
    interlaced: bool = False  # an interlaced PNG or a progressive JPEG: decoded in passes, whole
    copies: int = 1  # full-size copies Pillow's decoder makes: 3 for a Python one (bytearray, bytes, image)
    python_decoder: bool = False  # Pillow decodes it in Python (RLE BMP, plain or odd-depth PNM), GIL held

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
            interlaced=bool(image.get_typeof("interlaced") and image.get("interlaced")),
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


def shrink(source: Path, header: Header, width: int, height: int, size: str, reduce: int = 1) -> pyvips.Image:
    """``source`` scaled into ``width x height`` (``size`` is libvips': down, both or force), 8-bit sRGB
    or grey, alpha kept, EXIF orientation not applied yet: the image is still in stored orientation.
    ``reduce``: a Pillow-read image is reduced by that factor while it is read (``pillow_reduce``)."""
    kwargs: dict[str, object] = {"height": height, "size": size, "no_rotate": True}
    if header.icc or header.cmyk:
        # Resize in the image's own space, then one transform at the small size (see the docstring).
        kwargs["output_profile"] = "srgb"
        if header.cmyk:
            kwargs["input_profile"] = "cmyk"  # only when the file embeds no profile
    if header.pillow:
        image = pyvips.Image.thumbnail_image(_pillow_pixels(source, header, reduce), width, **kwargs)
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
            bands, band_format = _PILLOW_MODES.get(im.mode, (4, "uchar"))
            python = any(tile.codec_name in Image.DECODERS for tile in im.tile)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise Unprocessable("cannot read this file as an image: not a known image format") from exc
    return Header(kind, width, height, 1, "srgb", band_format, bands, icc=False, pillow=True,
                  copies=3 if python else 1, python_decoder=python)


# Pillow's modes as they are stored (a palette image is one band of indices), for pillow_decode_bytes.
_PILLOW_MODES = {"1": (1, "uchar"), "L": (1, "uchar"), "P": (1, "uchar"), "LA": (2, "uchar"), "PA": (2, "uchar"),
                 "RGB": (3, "uchar"), "RGBA": (4, "uchar"), "I;16": (1, "ushort"), "I;16B": (1, "ushort"),
                 "I;16L": (1, "ushort"), "I": (1, "int"), "F": (1, "float")}
_STRIP_BYTES = 8 * 1024 * 1024  # of Pillow's pixels converted at a time


def _pillow_open(source: Path) -> ImageFile.ImageFile:
    # Only these plugins: Pillow would otherwise also try formats it hands to Ghostscript (EPS).
    return Image.open(source, formats=list(_PILLOW_FORMATS))


def _pillow_pixels(source: Path, header: Header, reduce: int = 1) -> pyvips.Image:
    """Decode with Pillow (after check_pixels) into a libvips image: 8-bit grey or sRGB, or 16-bit grey
    for a 16-bit PGM, which libvips then scales to 8 bits. Converted strip by strip, each reduced by
    ``reduce`` (a box average), into one buffer: Pillow's decoded image is held once, beside the
    (reduced) pixels handed to libvips, never a third full-size copy."""
    try:
        with _pillow_open(source) as im:
            if im.size != (header.width, header.height):
                raise Unprocessable("cannot read this file as an image: it changed while being read")
            im.load()
            if im.mode.startswith("I"):  # a 16-bit PGM; Pillow's convert("L") would clip it to white
                mode, sample = "I", 4
            elif im.mode in ("L", "LA", "RGB", "RGBA"):
                mode, sample = im.mode, 1
            else:
                has_alpha = "A" in im.mode or "transparency" in im.info
                grey = im.mode == "1"
                mode, sample = ("LA" if has_alpha else "L") if grey else ("RGBA" if has_alpha else "RGB"), 1
            data = _strips(im, mode, len(mode) * sample, reduce)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise Unprocessable(f"cannot read this file as an image: {exc}") from exc
    width = -(-header.width // reduce)
    height = len(data) // (width * len(mode) * sample)
    if mode == "I":
        image = pyvips.Image.new_from_memory(data, width, height, 1, "int")
        return image.cast("ushort").copy(interpretation="grey16")
    image = pyvips.Image.new_from_memory(data, width, height, len(mode), "uchar")
    return image.copy(interpretation="b-w" if len(mode) <= 2 else "srgb")


def _strips(im: Image.Image, mode: str, pixel_bytes: int, reduce: int) -> bytearray:
    width, height = im.size
    rows = max(1, _STRIP_BYTES // (width * 4) // reduce) * reduce  # a multiple of reduce
    out_width = -(-width // reduce)
    out = bytearray(out_width * -(-height // reduce) * pixel_bytes)  # full strips reduce exactly
    at = 0
    for top in range(0, height, rows):
        part = im.crop((0, top, width, min(height, top + rows)))
        if part.mode != mode:
            part = part.convert(mode)
        if reduce > 1:
            part = part.reduce(reduce)
        data = part.tobytes("raw", "I") if mode == "I" else part.tobytes()
        out[at:at + len(data)] = data
        at += len(data)
    if at != len(out):
        raise ValueError(f"decoded {at} bytes of {len(out)}")
    return out

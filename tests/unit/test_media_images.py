"""Image previews and conversions, checked by pixel values. Every input is made here, in tmp_path."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest
import pyvips  # type: ignore[import-untyped]
from PIL import Image

from cargohold.errors import BadInput, Unprocessable
from cargohold.media.convert import BROWSER_SAFE, convert_image, needs_conversion
from cargohold.media.preview import MEDIA_TYPES, PreviewSpec, make_preview

LIMIT = 200_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def preview(tmp_path: Path, source: Path, max_pixels: int = LIMIT, **spec: object) -> Image.Image:
    dest = tmp_path / "preview"  # no suffix: the format comes from the spec
    make_preview(source, dest, PreviewSpec(**spec), max_pixels)  # type: ignore[arg-type]
    return _read(dest)


def convert(tmp_path: Path, source: Path, fmt: str) -> Image.Image:
    dest = tmp_path / "converted"
    convert_image(source, dest, fmt, LIMIT)  # type: ignore[arg-type]
    return _read(dest)


def _read(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im


def close(pixel: object, expected: tuple[int, ...], tolerance: int = 8) -> bool:
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    return len(values) == len(expected) and all(abs(a - b) <= tolerance for a, b in zip(values, expected, strict=True))


def rgb(im: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(im.convert("RGB").getpixel(xy))  # type: ignore[arg-type]


def corners(im: Image.Image) -> dict[str, tuple[int, ...]]:
    w, h = im.size
    spots = {"top-left": (3, 3), "top-right": (w - 4, 3), "bottom-left": (3, h - 4), "bottom-right": (w - 4, h - 4)}
    return {name: rgb(im, xy) for name, xy in spots.items()}


# Orientation ---------------------------------------------------------------------------------------


def _oriented_jpeg(tmp_path: Path, orientation: int) -> Path:
    """400 x 200 as stored, white with a red square in the stored top-left corner."""
    im = Image.new("RGB", (400, 200), WHITE)
    im.paste(RED, (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    im.save(path, quality=95, exif=exif)
    return path


@pytest.mark.parametrize(
    ("orientation", "size", "red_corner"),
    [(1, (100, 50), "top-left"), (3, (100, 50), "bottom-right"), (6, (50, 100), "top-right"),
     (8, (50, 100), "bottom-left")],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, size: tuple[int, int], red_corner: str) -> None:
    out = preview(tmp_path, _oriented_jpeg(tmp_path, orientation), width=100, height=100, format="png")
    assert out.size == size
    found = corners(out)
    assert close(found.pop(red_corner), RED, 40)
    assert all(close(c, WHITE, 40) for c in found.values()), found
    full = convert(tmp_path, _oriented_jpeg(tmp_path, orientation), "png")
    assert full.size == (size[0] * 4, size[1] * 4)
    assert close(corners(full)[red_corner], RED, 40)


def test_exif_orientation_with_cover_and_fill(tmp_path: Path) -> None:
    source = _oriented_jpeg(tmp_path, 6)  # shown 200 wide, 400 high, red at the top right
    cover = preview(tmp_path, source, width=100, height=50, fit="cover", format="png")
    assert cover.size == (100, 50)
    assert all(close(c, WHITE, 40) for c in corners(cover).values())  # the middle of a tall picture
    fill = preview(tmp_path, source, width=100, height=50, fit="fill", format="png")
    assert fill.size == (100, 50)
    assert close(corners(fill)["top-right"], RED, 40)


# Colour ---------------------------------------------------------------------------------------------


@pytest.fixture
def cmyk_jpeg(tmp_path: Path) -> Path:
    """Left half full magenta+yellow (print red), right half full cyan."""
    im = Image.new("CMYK", (400, 300), (0, 255, 255, 0))
    im.paste((255, 0, 0, 0), (200, 0, 400, 300))
    path = tmp_path / "cmyk.jpg"
    im.save(path, quality=95)
    return path


def _is_red(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r > 200 and g < 70 and b < 80


def _is_cyan(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r < 50 and g > 120 and b > 190


def test_cmyk_jpeg_preview_is_srgb_with_the_right_colours(tmp_path: Path, cmyk_jpeg: Path) -> None:
    assert pyvips.Image.new_from_file(str(cmyk_jpeg)).interpretation == "cmyk"
    for fmt in ("jpeg", "png", "webp"):
        out = preview(tmp_path, cmyk_jpeg, width=100, height=100, format=fmt)
        assert out.mode == "RGB" and out.size == (100, 75)
        assert _is_red(out.getpixel((20, 40))), out.getpixel((20, 40))  # type: ignore[arg-type]
        assert _is_cyan(out.getpixel((80, 40))), out.getpixel((80, 40))  # type: ignore[arg-type]


def test_an_embedded_profile_is_applied_before_it_is_stripped(tmp_path: Path) -> None:
    # sRGB (0, 200, 0) stored as Display P3 numbers (about 90, 197, 58) with the P3 profile embedded.
    srgb = pyvips.Image.black(400, 300, bands=3).linear(1, [0, 200, 0]).cast("uchar").copy(interpretation="srgb")
    path = tmp_path / "p3.jpg"
    srgb.icc_transform("p3", input_profile="srgb").jpegsave(str(path), Q=95)
    assert pyvips.Image.new_from_file(str(path)).getpoint(5, 5)[0] > 80
    for fmt in ("jpeg", "png"):
        out = preview(tmp_path, path, format=fmt)
        assert "icc_profile" not in out.info
        assert close(rgb(out, (50, 50)), (0, 200, 0), 8)
    assert not needs_conversion(path, "image/jpeg", "jpeg")  # browsers apply the profile themselves


def test_16bit_grey_png_stays_mid_grey(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    Image.new("I;16", (400, 300), 30000).save(path)  # 30000 / 65535 of white: 117 in 8 bits
    assert pyvips.Image.new_from_file(str(path)).format == "ushort"
    for fmt in ("jpeg", "png", "webp"):
        assert close(rgb(preview(tmp_path, path, format=fmt), (50, 50)), (117, 117, 117), 3)


def _rgb16_png(tmp_path: Path, alpha: int | None = None) -> Path:
    image = pyvips.Image.black(400, 300, bands=3).linear(1, [65535, 32768, 0])
    if alpha is not None:
        image = image.bandjoin(alpha)
    path = tmp_path / "rgb16.png"
    image.cast("ushort").copy(interpretation="rgb16").pngsave(str(path), bitdepth=16)
    return path


def test_16bit_rgb_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    out = preview(tmp_path, _rgb16_png(tmp_path), format="png")
    assert out.mode == "RGB"
    assert close(out.getpixel((10, 10)), (255, 128, 0), 2)
    half = preview(tmp_path, _rgb16_png(tmp_path, alpha=32768), format="png")
    assert half.mode == "RGBA"
    assert close(half.getpixel((10, 10)), (255, 128, 0, 128), 2)


def test_8bit_grey_keeps_its_value(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (400, 300), 77).save(path)
    for fmt in ("jpeg", "png"):
        out = preview(tmp_path, path, format=fmt)
        assert out.size == (256, 192)
        assert close(rgb(out, (40, 40)), (77, 77, 77), 2)


def test_alpha_kept_for_png_and_webp_flattened_on_white_for_jpeg(tmp_path: Path) -> None:
    im = Image.new("RGBA", (400, 300), (*BLUE, 255))
    im.paste((*RED, 0), (0, 0, 200, 300))  # left half transparent (its colour must not show)
    path = tmp_path / "alpha.png"
    im.save(path)
    for fmt in ("png", "webp"):
        out = preview(tmp_path, path, width=100, height=100, format=fmt)
        assert out.mode == "RGBA"
        assert out.getpixel((10, 40))[3] == 0  # type: ignore[index]
        assert close(out.getpixel((90, 40)), (*BLUE, 255), 4)
    flat = preview(tmp_path, path, width=100, height=100, format="jpeg")
    assert flat.mode == "RGB"
    assert close(flat.getpixel((10, 40)), WHITE, 4)
    assert close(flat.getpixel((90, 40)), BLUE, 12)


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (200, 100), colour) for colour in (RED, BLUE, GREEN)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert pyvips.Image.new_from_file(str(path), n=-1).get("n-pages") == 3
    out = preview(tmp_path, path, width=100, height=100, format="png")
    assert out.size == (100, 50)
    assert close(rgb(out, (50, 25)), RED, 4)
    assert close(rgb(convert(tmp_path, path, "jpeg"), (100, 50)), RED, 8)


# Fit and formats ------------------------------------------------------------------------------------


@pytest.fixture
def banded(tmp_path: Path) -> Path:
    """400 x 200: a green band over the left quarter, red up to the middle, blue after."""
    im = Image.new("RGB", (400, 200), BLUE)
    im.paste(RED, (0, 0, 200, 200))
    im.paste(GREEN, (0, 0, 100, 200))
    path = tmp_path / "banded.png"
    im.save(path)
    return path


def test_fit_contain_keeps_aspect_inside_the_box(tmp_path: Path, banded: Path) -> None:
    out = preview(tmp_path, banded, width=100, height=100, fit="contain", format="png")
    assert out.size == (100, 50)
    assert close(rgb(out, (10, 25)), GREEN) and close(rgb(out, (40, 25)), RED) and close(rgb(out, (90, 25)), BLUE)


def test_fit_cover_fills_the_box_by_cropping_the_centre(tmp_path: Path, banded: Path) -> None:
    out = preview(tmp_path, banded, width=100, height=100, fit="cover", format="png")
    assert out.size == (100, 100)
    # Scaled to 200 x 100 and cut at x = 50..150: the green quarter (0..50) is gone, red | blue at 50.
    assert close(rgb(out, (2, 50)), RED) and close(rgb(out, (45, 50)), RED)
    assert close(rgb(out, (55, 50)), BLUE) and close(rgb(out, (97, 50)), BLUE)


def test_fit_fill_stretches_to_the_box(tmp_path: Path, banded: Path) -> None:
    out = preview(tmp_path, banded, width=100, height=100, fit="fill", format="png")
    assert out.size == (100, 100)
    assert close(rgb(out, (10, 90)), GREEN) and close(rgb(out, (40, 90)), RED) and close(rgb(out, (90, 90)), BLUE)


def test_small_images_are_not_enlarged_by_contain_but_are_by_cover_and_fill(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (40, 20), RED).save(path)
    assert preview(tmp_path, path, width=100, height=100, fit="contain").size == (40, 20)
    assert preview(tmp_path, path, width=100, height=100, fit="cover").size == (100, 100)
    assert preview(tmp_path, path, width=100, height=70, fit="fill").size == (100, 70)


def test_an_extreme_strip_still_covers_the_box(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    Image.new("RGB", (20000, 1), BLUE).save(path)
    out = preview(tmp_path, path, width=300, height=300, fit="cover", format="png")
    assert out.size == (300, 300)
    assert close(rgb(out, (150, 150)), BLUE, 2)


@pytest.mark.parametrize(
    ("fmt", "magic"), [("jpeg", b"\xff\xd8\xff"), ("png", b"\x89PNG\r\n\x1a\n"), ("webp", b"RIFF")]
)
def test_formats_are_chosen_by_the_spec_not_the_file_name(tmp_path: Path, banded: Path, fmt: str, magic: bytes) -> None:
    spec = PreviewSpec(format=fmt)  # type: ignore[arg-type]
    dest = tmp_path / "out.jpg"  # a misleading suffix must not matter
    make_preview(banded, dest, spec, LIMIT)
    data = dest.read_bytes()
    assert data.startswith(magic)
    if fmt == "webp":
        assert data[8:12] == b"WEBP"
    assert spec.media_type == MEDIA_TYPES[fmt] == f"image/{fmt}"
    assert Image.open(dest).format == fmt.upper()


def test_metadata_is_stripped(tmp_path: Path) -> None:
    source = _oriented_jpeg(tmp_path, 1)
    assert Image.open(source).getexif()
    for fmt in ("jpeg", "png", "webp"):
        out = preview(tmp_path, source, format=fmt)
        assert not out.getexif()
        assert "icc_profile" not in out.info and "exif" not in out.info


def test_a_file_name_with_brackets_is_a_name_not_loader_options(tmp_path: Path) -> None:
    # libvips reads "x.jpg[shrink=8]" as x.jpg with options when given a file name.
    path = tmp_path / "photo.jpg[shrink=8]"
    Image.new("RGB", (400, 300), RED).save(path, format="JPEG")
    assert preview(tmp_path, path, width=2048, height=2048).size == (400, 300)


def test_a_missing_file_is_not_reported_as_a_bad_image(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_preview(tmp_path / "absent", tmp_path / "out", PreviewSpec(), LIMIT)


# PreviewSpec ----------------------------------------------------------------------------------------


def test_spec_defaults_and_name() -> None:
    spec = PreviewSpec()
    assert spec.name == "256x256-contain-q80.jpeg"
    assert spec.media_type == "image/jpeg"
    assert PreviewSpec(100, 50, "cover", "webp", 70).name == "100x50-cover-q70.webp"
    names = {PreviewSpec(w, h, f, fmt, q).name for w in (1, 2) for h in (1, 2) for f in ("contain", "cover", "fill")
             for fmt in ("jpeg", "png") for q in (1, 100)}
    assert len(names) == 48
    assert all("/" not in n and " " not in n for n in names)


@pytest.mark.parametrize(
    ("kwargs", "param", "detail"),
    [
        ({"width": 0}, "w", "between 1 and 2048, not 0"),
        ({"width": 5000}, "w", "between 1 and 2048, not 5000"),
        ({"height": 2049}, "h", "between 1 and 2048"),
        ({"quality": 0}, "q", "between 1 and 100, not 0"),
        ({"quality": 101}, "q", "between 1 and 100"),
        ({"fit": "x"}, "fit", "contain, cover, fill, not 'x'"),
        ({"format": "gif"}, "format", "jpeg, webp, png, not 'gif'"),
        ({"width": True}, "w", "between 1 and 2048"),
    ],
)
def test_spec_validation_names_the_parameter(kwargs: dict[str, object], param: str, detail: str) -> None:
    with pytest.raises(BadInput) as caught:
        PreviewSpec(**kwargs)  # type: ignore[arg-type]
    assert caught.value.message.startswith(f"{param} must be ")
    assert detail in caught.value.message


# Bombs and broken files ----------------------------------------------------------------------------


def _png_declaring(tmp_path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 1000)  # a few hundred pixels of a row, nowhere near the whole
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _make(action: str, source: Path, tmp_path: Path, max_pixels: int = LIMIT) -> None:
    if action == "preview":
        make_preview(source, tmp_path / "out", PreviewSpec(), max_pixels)
    else:
        convert_image(source, tmp_path / "out", "png", max_pixels)


@pytest.mark.parametrize("action", ["preview", "convert"])
def test_png_bomb_is_refused_before_decoding(tmp_path: Path, action: str) -> None:
    bomb = _png_declaring(tmp_path, 50000, 50000)
    with pytest.raises(Unprocessable) as caught:
        _make(action, bomb, tmp_path)
    message = caught.value.message
    assert "50000 x 50000" in message and "2500.0 megapixels" in message
    assert "IMAGE_MAX_PIXELS (200.0 megapixels)" in message and "not decoded" in message
    # With the limit out of the way the same file does reach the decoder, which fails on its short
    # data: so it was the limit, and nothing else, that stopped it above.
    with pytest.raises(Unprocessable) as caught:
        _make(action, bomb, tmp_path, 50000 * 50000)
    assert caught.value.message.startswith("cannot read this file as an image")
    assert "IMAGE_MAX_PIXELS" not in caught.value.message


def _jpeg_declaring(tmp_path: Path, width: int, height: int) -> Path:
    path = tmp_path / "small.jpg"
    Image.new("RGB", (400, 300), GREEN).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    assert struct.unpack(">HH", data[sof + 5:sof + 9]) == (300, 400)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(bytes(data))
    return bomb


def test_jpeg_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(Unprocessable, match=r"50000 x 50000 pixels .*IMAGE_MAX_PIXELS"):
        make_preview(_jpeg_declaring(tmp_path, 50000, 50000), tmp_path / "out", PreviewSpec(), LIMIT)
    # A smaller lie, over a small limit: refused; under a larger one: decoded (libjpeg pads the
    # missing rows), so the limit is what refused it.
    bomb = _jpeg_declaring(tmp_path, 3000, 2000)
    with pytest.raises(Unprocessable, match="IMAGE_MAX_PIXELS"):
        make_preview(bomb, tmp_path / "out", PreviewSpec(), 5_000_000)
    try:
        out = preview(tmp_path, bomb, max_pixels=6_000_000)
    except Unprocessable as exc:
        assert "IMAGE_MAX_PIXELS" not in exc.message
    else:
        assert out.size == (256, 171)


@pytest.mark.parametrize("action", ["preview", "convert"])
def test_truncated_jpeg_is_refused(tmp_path: Path, action: str) -> None:
    path = tmp_path / "full.jpg"
    Image.effect_noise((400, 300), 60).convert("RGB").save(path, quality=90)
    data = path.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Unprocessable, match=r"cannot read this file as an image: .*end of JPEG"):
        _make(action, cut, tmp_path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"just some text\n", "not a known image format"), (b"2 2\n1 2\n3 4\n", "matrix files are not accepted"),
     (b"", "not a known image format")],
)
def test_files_that_are_not_images_are_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "file.mat"
    path.write_bytes(content)
    with pytest.raises(Unprocessable, match=f"cannot read this file as an image: {reason}"):
        make_preview(path, tmp_path / "out", PreviewSpec(), LIMIT)
    with pytest.raises(Unprocessable):
        needs_conversion(path, "image/jpeg", "jpeg")


# Pillow-read formats ---------------------------------------------------------------------------------


def test_bmp_preview_and_conversion(tmp_path: Path) -> None:
    path = tmp_path / "image.bmp"
    Image.new("RGB", (400, 300), (200, 30, 40)).save(path)
    assert close(rgb(preview(tmp_path, path, format="png"), (100, 100)), (200, 30, 40), 2)
    out = convert(tmp_path, path, "png")
    assert out.format == "PNG" and out.size == (400, 300) and out.mode == "RGB"
    assert out.getpixel((399, 299)) == (200, 30, 40)
    assert needs_conversion(path, "image/bmp", "png")


def test_bmp_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.bmp"
    Image.new("RGB", (40, 30), RED).save(path)
    data = bytearray(path.read_bytes())
    data[18:26] = struct.pack("<ii", 50000, 50000)  # BITMAPINFOHEADER width, height
    path.write_bytes(bytes(data))
    with pytest.raises(Unprocessable, match=r"50000 x 50000 pixels .*IMAGE_MAX_PIXELS"):
        make_preview(path, tmp_path / "out", PreviewSpec(), LIMIT)


def test_16bit_pgm_stays_mid_grey(tmp_path: Path) -> None:
    path = tmp_path / "grey16.pgm"
    path.write_bytes(b"P5\n40 20\n65535\n" + struct.pack(">H", 30000) * 800)
    assert close(rgb(preview(tmp_path, path, format="png"), (5, 5)), (117, 117, 117), 2)


# Conversion -----------------------------------------------------------------------------------------


def test_tiff_converts_to_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "image.tiff"
    im = Image.new("RGB", (400, 300), (20, 120, 220))
    im.paste(RED, (300, 200, 400, 300))
    im.save(path, compression="tiff_lzw")
    out = convert(tmp_path, path, "jpeg")
    assert out.format == "JPEG" and out.size == (400, 300) and out.mode == "RGB"
    assert close(rgb(out, (50, 50)), (20, 120, 220), 6) and close(rgb(out, (390, 290)), RED, 10)
    assert needs_conversion(path, "image/tiff", "jpeg")


def test_16bit_png_converts_to_8bit_png(tmp_path: Path) -> None:
    path = _rgb16_png(tmp_path)
    assert needs_conversion(path, "image/png", "png")
    out = convert(tmp_path, path, "png")
    assert out.mode == "RGB" and out.size == (400, 300)  # Pillow opens 16-bit RGB PNGs as RGB too: check the file
    assert (tmp_path / "converted").read_bytes()[24] == 8  # IHDR bit depth
    assert close(out.getpixel((10, 10)), (255, 128, 0), 1)


def test_cmyk_jpeg_converts_to_rgb_jpeg(tmp_path: Path, cmyk_jpeg: Path) -> None:
    assert needs_conversion(cmyk_jpeg, "image/jpeg", "jpeg")
    out = convert(tmp_path, cmyk_jpeg, "jpeg")
    assert out.mode == "RGB" and out.size == (400, 300)
    assert _is_red(out.getpixel((100, 150))) and _is_cyan(out.getpixel((300, 150)))  # type: ignore[arg-type]


def test_conversion_is_pixel_exact_for_an_8bit_source(tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    Image.effect_noise((400, 300), 60).convert("RGB").save(path, quality=90)
    out = convert(tmp_path, path, "png")
    with Image.open(path) as original:
        assert out.tobytes() == original.convert("RGB").tobytes()


def test_needs_conversion(tmp_path: Path) -> None:
    jpeg = tmp_path / "plain.jpg"
    Image.new("RGB", (400, 300), RED).save(jpeg)
    grey = tmp_path / "grey.png"
    Image.new("LA", (40, 30), (90, 128)).save(grey)
    assert not needs_conversion(jpeg, "image/jpeg", "jpeg")
    assert not needs_conversion(grey, "image/png", "png")
    assert needs_conversion(jpeg, "image/jpeg", "png")  # another format asked
    assert needs_conversion(jpeg, "image/png", "png")  # what the store says and what the file is disagree
    shutil.copy(jpeg, tmp_path / "jpeg-named.png")
    assert needs_conversion(tmp_path / "jpeg-named.png", "image/png", "png")
    assert "image/svg+xml" not in BROWSER_SAFE and {"image/jpeg", "image/png", "image/webp"} <= BROWSER_SAFE

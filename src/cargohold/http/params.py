"""The preview and format parameters of content URLs, declared once from ``media.preview``: the hot
route parses query strings with them, and the FastAPI routes and request bodies describe them with
the same bounds and defaults (OpenAPI)."""

from __future__ import annotations

import functools
import re
from dataclasses import fields
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BadInput
from ..media.preview import FORMATS, MAX_SIDE, Fit, ImageFormat, PreviewSpec
from ..services import signing

PREVIEW_PARAMS = {"w": "width", "h": "height", "fit": "fit", "format": "format", "q": "quality"}
"""Query parameter -> ``PreviewSpec`` field."""
DEFAULT = PreviewSpec()
_WHOLE = re.compile(r"[0-9]{1,9}")  # ASCII digits (isdigit() also takes '²', which int() refuses), and few of them
assert set(PREVIEW_PARAMS.values()) == {f.name for f in fields(PreviewSpec)}

Width = Annotated[int, Query(ge=1, le=MAX_SIDE, description="Width of the box")]
Height = Annotated[int, Query(ge=1, le=MAX_SIDE, description="Height of the box")]
FitParam = Annotated[Fit, Query(
    description="contain: inside the box; cover: fill the box, centre cropped; fill: stretched")]
Quality = Annotated[int, Query(ge=1, le=100, description="Quality (jpeg, webp)")]
Conversion = Annotated[ImageFormat | Literal["mp4"] | None, Query(
    description="A full-size version a browser can show (TIFF, 16-bit PNG, CMYK JPEG, BMP...), "
    "made once and kept in the image-converter tier; the original itself when it already is one. `mp4`: a "
    "video every browser plays (a remux, or a transcode to H.264/AAC), answered 202 with its progress and "
    "Retry-After until it is ready.")]


class PreviewIn(BaseModel):
    """A preview's parameters in a request body (``POST .../sign``)."""

    model_config = ConfigDict(strict=True)  # `true` is not a width, nor `1.5` a quality
    w: int = Field(default=DEFAULT.width, ge=1, le=MAX_SIDE)
    h: int = Field(default=DEFAULT.height, ge=1, le=MAX_SIDE)
    fit: Fit = DEFAULT.fit
    format: ImageFormat = DEFAULT.format
    q: int = Field(default=DEFAULT.quality, ge=1, le=100)


def preview_spec(query: dict[str, str]) -> PreviewSpec:
    return _preview_spec(tuple(sorted(query.items())))


@functools.lru_cache(maxsize=1024)
def _preview_spec(pairs: tuple[tuple[str, str], ...]) -> PreviewSpec:
    """Parsed once per distinct query: a page of thumbnails asks for the same size again and again."""
    query = {k: v for k, v in pairs if k not in signing.SIGNATURE_PARAMS}
    unknown = sorted(set(query) - set(PREVIEW_PARAMS))
    if unknown:
        raise BadInput(f"unknown preview parameter {unknown[0]!r}; use {', '.join(PREVIEW_PARAMS)}")
    values: dict[str, Any] = {}
    for param, field in PREVIEW_PARAMS.items():
        if param not in query:
            continue
        if param in ("w", "h", "q"):
            if not _WHOLE.fullmatch(query[param]):
                raise BadInput(f"{param} must be a whole number, not {query[param][:20]!r}")
            values[field] = int(query[param])
        else:
            values[field] = query[param]
    return PreviewSpec(**values)  # checks bounds and choices, naming the parameter


def content_format(query: dict[str, str]) -> ImageFormat | Literal["mp4"] | None:
    fmt = query.get("format")
    if fmt == "mp4":
        return "mp4"  # a video made playable (services/serving/playback.py)
    if fmt is not None and fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)} (mp4 for a video), not {fmt!r}")
    return fmt  # checked against FORMATS just above



def frame_position(what: str, query: dict[str, str]) -> tuple[int | None, float | None]:
    """Which frame ``/frames/<n>`` or ``/frames?t=SECONDS`` asks for: ``(n, None)`` or ``(None, seconds)``. ``t``
    is taken out of ``query``: what is left are the preview's parameters."""
    at = query.pop("t", None)
    _, _, number = what.partition("/")
    if number and at is not None:
        raise BadInput("ask for a frame by its number (/frames/<n>) or by a time (/frames?t=SECONDS), not both")
    if number:
        return int(number), None
    if at is None:
        raise BadInput("name the frame: /frames/<n> (0-based, in presentation order) or /frames?t=SECONDS")
    try:
        seconds = float(at)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 10**7 or seconds != seconds:
        raise BadInput(f"t is a time in seconds from the start, not {at[:20]!r}")
    return None, seconds

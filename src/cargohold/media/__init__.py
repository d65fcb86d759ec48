"""Images and videos: headers, probes, previews, conversions, frames."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """What a file may declare before it is decoded: pixels per image or video frame (``IMAGE_MAX_PIXELS``) and
    a video's length (``VIDEO_MAX_DURATION``: what a probe, a frame count or a conversion reads at most)."""

    pixels: int
    video_seconds: float = math.inf

    @classmethod
    def of(cls, settings: Any) -> Limits:
        return cls(settings.image_max_pixels, settings.video_max_duration)

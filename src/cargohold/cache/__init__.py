"""The disk cache: three tiers under ``DATA_PATH/cache`` (docs/CACHE.md)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, NotFound
from ..settings import Settings
from .fill import Entry, Fill
from .tier import Tier, TierStats

__all__ = ["TIER_NAMES", "CacheTiers", "Entry", "Fill", "Tier", "TierStats"]

TIER_NAMES = ("storage", "previews", "image-converter")


@dataclass
class CacheTiers:
    storage: Tier
    previews: Tier
    converter: Tier
    root: Path
    _lock_fd: int | None = field(default=None, init=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CacheTiers:
        root = settings.data_path / "cache"
        return cls(
            Tier("storage", root / "storage", settings.cache_storage_size, settings.cache_storage_expires),
            Tier("previews", root / "previews", settings.cache_previews_size, settings.cache_previews_expires),
            Tier("image-converter", root / "image-converter", settings.cache_image_converter_size,
                 settings.cache_image_converter_expires),
            root,
        )

    @property
    def all(self) -> tuple[Tier, Tier, Tier]:
        return self.storage, self.previews, self.converter

    def named(self, name: str) -> Tier:
        for tier in self.all:
            if tier.name == name:
                return tier
        raise NotFound(f"no cache tier {name!r}; the tiers are {', '.join(TIER_NAMES)}")

    async def open(self) -> None:
        self._lock()
        for tier in self.all:
            await tier.open()

    def _lock(self) -> None:
        # Each tier's index lives in this process's memory: two servers on one cache would delete each
        # other's fresh entries as foreign. The lock goes with the process, however it ends.
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError("DATA_PATH", f"another cargohold server is using the cache in {self.root}",
                              "stop it, or give each server (replica) its own DATA_PATH") from None
        self._lock_fd = fd

    async def close(self) -> None:
        for tier in self.all:
            await tier.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

"""Own storage: the two buckets cargohold writes, ``<prefix>-public`` and ``<prefix>-private``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..settings import Settings
from .base import Store
from .connection import own_connection
from .registry import open_store


@dataclass
class OwnStorage:
    public: Store
    """Dataset assets: images, videos."""
    private: Store
    """Team files: model weights, archives, anything else."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OwnStorage:
        conn = own_connection(settings)
        return cls(open_store(conn, settings.bucket("public")), open_store(conn, settings.bucket("private")))

    @property
    def buckets(self) -> tuple[Store, Store]:
        return self.public, self.private

    async def ensure_buckets(self) -> None:
        await asyncio.gather(*(store.ensure_bucket() for store in self.buckets))

    async def close(self) -> None:
        await asyncio.gather(*(store.close() for store in self.buckets))

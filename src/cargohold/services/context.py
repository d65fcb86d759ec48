"""What every use case needs, opened once per process: settings, own storage, the catalog, the secret."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..catalog.db import Catalog, migrate
from ..instance import instance_secret
from ..settings import Settings
from ..storage import OwnStorage
from ..storage.http_links import HttpLinks


@dataclass
class Context:
    settings: Settings
    storage: OwnStorage
    catalog: Catalog
    secret: bytes
    http_links: HttpLinks

    @classmethod
    async def open(cls, settings: Settings, storage: OwnStorage | None = None, ensure_buckets: bool = True) -> Context:
        catalog = Catalog(settings)
        await asyncio.to_thread(migrate, catalog.urls)
        storage = storage or OwnStorage.from_settings(settings)
        if ensure_buckets:
            await storage.ensure_buckets()
        http_links = HttpLinks(allow_private=settings.links_allow_private_networks)
        return cls(settings, storage, catalog, instance_secret(settings), http_links)

    async def close(self) -> None:
        await self.http_links.close()
        await self.catalog.close()
        await self.storage.close()

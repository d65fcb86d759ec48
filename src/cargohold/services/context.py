"""What every use case needs, opened once per process: settings, own storage, the catalog, the secret,
the connections (remote buckets by name)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..cache import CacheTiers
from ..catalog.connections import CatalogConnections
from ..catalog.db import Catalog, migrate
from ..instance import instance_secret
from ..settings import Settings
from ..storage import OwnStorage
from ..storage.connections import ConnectionRegistry
from ..storage.http_links import HttpLinks
from .memo import ItemMemo, LinkVersions
from .metrics import Metrics


@dataclass
class Context:
    settings: Settings
    storage: OwnStorage
    catalog: Catalog
    secret: bytes
    http_links: HttpLinks
    connections: ConnectionRegistry
    cache: CacheTiers
    metrics: Metrics
    memo: ItemMemo
    link_versions: LinkVersions

    @classmethod
    async def open(cls, settings: Settings, storage: OwnStorage | None = None, ensure_buckets: bool = True,
                   serve: bool = False) -> Context:
        """``serve``: this process answers content requests and owns the cache (the server); a CLI
        command leaves the cache to the server that may be running beside it."""
        catalog = Catalog(settings)
        await asyncio.to_thread(migrate, catalog.urls)
        storage = storage or OwnStorage.from_settings(settings)
        if ensure_buckets:
            await storage.ensure_buckets()
        http_links = HttpLinks(allow_private=settings.links_allow_private_networks)
        secret = instance_secret(settings)
        metadata = settings.aws_ec2_metadata_service_endpoint
        connections = ConnectionRegistry(settings.remote_links_path, metadata_endpoint=metadata,
                                         catalog=CatalogConnections.of(catalog, secret, settings).load)
        try:
            await connections.open()  # a bad remote_links.yml stops start-up, naming file, line and connection
            cache = CacheTiers.from_settings(settings)
            if serve:
                await cache.open()
        except BaseException:
            await connections.close()
            await http_links.close()
            await catalog.close()
            raise
        return cls(settings, storage, catalog, secret, http_links, connections, cache, Metrics(cache), ItemMemo(),
                   LinkVersions(settings.cache_links_revalidate))

    async def close(self) -> None:
        await self.cache.close()
        await self.connections.close()
        await self.http_links.close()
        await self.catalog.close()
        await self.storage.close()

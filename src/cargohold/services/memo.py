"""Short-lived memories that keep the hot read path off the catalog and off the remote.

``ItemMemo``: the few fields of an item that serving needs, kept ``ITEM_TTL`` seconds. A content or
preview hit then costs no database query. Deleting or replacing an item through this process forgets
it at once; another replica may answer for it up to ``ITEM_TTL`` longer (docs/CACHE.md).

``LinkVersions``: a linked file's version (ETag, size, last modified) as its store last told it,
trusted for ``CACHE_LINKS_REVALIDATE``; past that, one HEAD (no bytes) asks again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..catalog.models import Item
from ..storage import ObjectMeta

ITEM_TTL = 2.0


@dataclass(frozen=True)
class ItemView:
    id: int
    name: str
    kind: str
    size: int | None
    sha256: str | None
    mime_type: str
    width: int | None
    height: int | None
    source: str
    uri: str | None
    created_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemView:
        return cls(item.id, item.name, item.kind, item.size, item.sha256, item.mime_type, item.width, item.height,
                   item.source, item.uri, item.created_at)


class ItemMemo:
    def __init__(self, ttl: float = ITEM_TTL) -> None:
        self.ttl = ttl
        self._items: dict[int, tuple[float, ItemView]] = {}
        self.originals: dict[str, Any] = {}
        self.principals: dict[str, tuple[float, Any]] = {}
        """Checked tokens by digest, with when to check them again (services/tokens.py, TOKEN_TTL)."""
        """Where a stored item's bytes are (``services.serving.Original``), by item id and SHA-256."""

    def remember(self, key: str, original: Any) -> None:
        if len(self.originals) > 100_000:
            self.originals.clear()
        self.originals[key] = original

    def get(self, item_id: int) -> ItemView | None:
        found = self._items.get(item_id)
        if found is None:
            return None
        if time.monotonic() > found[0]:
            del self._items[item_id]
            return None
        return found[1]

    def put(self, item: ItemView) -> None:
        if len(self._items) > 100_000:  # a crawl over many items: start over rather than grow without end
            self._items.clear()
        self._items[item.id] = (time.monotonic() + self.ttl, item)

    def forget(self, item_id: int | None = None) -> None:
        if item_id is None:
            self._items.clear()
        else:
            self._items.pop(item_id, None)


class LinkVersions:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._seen: dict[str, tuple[float, ObjectMeta]] = {}

    def get(self, uri: str) -> ObjectMeta | None:
        found = self._seen.get(uri)
        if found is None or time.monotonic() > found[0]:
            return None
        return found[1]

    def put(self, uri: str, meta: ObjectMeta) -> None:
        if self.ttl <= 0:
            return
        if len(self._seen) > 100_000:
            self._seen.clear()
        self._seen[uri] = (time.monotonic() + self.ttl, meta)

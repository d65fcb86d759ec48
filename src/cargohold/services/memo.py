"""Short-lived memories that keep the hot read path off the catalog and off the remote, each a
``TTLCache`` (``services/ttl.py``) held by the ``Context``.

``ItemMemo.items``: the few fields of an item that serving needs, kept ``ITEM_TTL`` seconds. A content or
preview hit then costs no database query. Deleting or replacing an item through this process forgets
it at once; another replica may answer for it up to ``ITEM_TTL`` longer (docs/CACHE.md).

``ItemMemo.originals``: where an item's bytes are (``services.serving.originals.Original``), by a key
that carries their version: never stale, kept until pushed out.

``ItemMemo.videos``: what reading a video by frame needs again (``VideoMemory``: its GOPs or its frames'
times, and the bytes of its index when it is remote), by the same versioned key.

``LinkVersions``: a linked file's version (ETag, size, last modified) as its store last told it,
trusted for ``CACHE_LINKS_REVALIDATE``; past that, one HEAD (no bytes) asks again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..catalog.models import Item
from ..ranged import KeptBlocks
from ..storage import ObjectMeta
from .ttl import Clock, TTLCache

if TYPE_CHECKING:  # serving imports this module (through the Context) at run time
    from .serving.originals import Original

ITEM_TTL = 2.0
TOKEN_TTL = 1.0
"""How long a checked token is trusted without asking the catalog again. A catalog query per request
cost about 1.3 ms here (SQLite through aiosqlite) and capped token requests at ~600/s; a revoked
token, and the URLs it signed (``live_tokens``), now stop working within this time on every replica."""
VIDEOS = 32
"""Videos whose frame index is remembered; each keeps at most ``VIDEO_INDEX_BYTES`` of a remote index."""
VIDEO_INDEX_BYTES = 4 * 2**20
MAX_ENTRIES = 100_000
"""Per memory: a crawl over many items pushes the oldest out rather than growing without end."""


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
    dataset_id: int
    """What a limited token is checked against (services/access.py)."""

    @classmethod
    def of(cls, item: Item) -> ItemView:
        return cls(item.id, item.name, item.kind, item.size, item.sha256, item.mime_type, item.width, item.height,
                   item.source, item.uri, item.created_at, item.dataset_id)


@dataclass
class VideoMemory:
    """A video's frame index: ``Gops`` (from its container's index) or its frames' times (counted from its packets,
    for a container whose index lists keyframes only), and ``kept``, its index's bytes when it is read remotely."""

    kept: KeptBlocks
    index: Any = None


class ItemMemo:
    def __init__(self, ttl: float = ITEM_TTL, clock: Clock = time.monotonic) -> None:
        self.items: TTLCache[int, ItemView] = TTLCache(ttl, MAX_ENTRIES, clock)
        self.originals: TTLCache[str, Original] = TTLCache(math.inf, MAX_ENTRIES, clock)
        self.principals: TTLCache[str, Any] = TTLCache(TOKEN_TTL, 10_000, clock)
        """Checked tokens' principals by digest (services/tokens.py)."""
        self.live_tokens: TTLCache[int, bool] = TTLCache(TOKEN_TTL, 10_000, clock)
        """Whether a token id still exists, by id: the signer of a signed URL (services/tokens.check_live)."""
        self.s3_keys: TTLCache[str, Any] = TTLCache(TOKEN_TTL, 10_000, clock)
        """Checked S3 access keys' tokens and secrets, by access key id (services/s3_keys.py)."""
        self.videos: TTLCache[str, VideoMemory] = TTLCache(math.inf, VIDEOS, clock)
        self.buckets: TTLCache[str, Any] = TTLCache(ttl, MAX_ENTRIES, clock)
        """Datasets by S3 bucket name (services/buckets.py); found ones only."""
        self.names: TTLCache[tuple[int, str], Any] = TTLCache(ttl, MAX_ENTRIES, clock)
        """Items by (dataset id, name), the S3 endpoint's lookups (services/items.find_item_remembered); found
        ones only, so an item made needs no forgetting. Keyed by name, so any item's change forgets them all."""

    def forget(self, item_id: int | None = None) -> None:
        """An item changed or deleted through this process (every item, and every dataset: None)."""
        self.names.clear()
        if item_id is None:
            self.items.clear()
            self.buckets.clear()
        else:
            self.items.discard(item_id)


class LinkVersions(TTLCache[str, ObjectMeta]):
    """A linked object's metadata by URI, trusted ``ttl`` seconds (``CACHE_LINKS_REVALIDATE``; 0: never)."""

    def __init__(self, ttl: float, clock: Clock = time.monotonic) -> None:
        super().__init__(ttl, MAX_ENTRIES, clock)

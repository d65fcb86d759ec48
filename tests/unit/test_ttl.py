"""``TTLCache`` (services/ttl.py): expiry on its clock, the size bound, and what the memories built on it do."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from cargohold.services.memo import ItemMemo, ItemView, LinkVersions
from cargohold.services.ttl import TTLCache
from cargohold.storage import ObjectMeta


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_kept_for_its_ttl_then_gone() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(2.0, 10, clock)
    cache.put("a", 1)
    clock.now += 2.0
    assert cache.get("a") == 1, "kept up to its ttl"
    clock.now += 0.001
    assert cache.get("a") is None
    assert len(cache) == 0, "an expired entry found is dropped"


def test_put_again_gives_a_new_value_and_a_new_expiry() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(2.0, 10, clock)
    cache.put("a", 1)
    clock.now += 1.5
    cache.put("a", 2)
    clock.now += 1.5
    assert cache.get("a") == 2


def test_a_full_cache_drops_the_entry_put_longest_ago() -> None:
    cache: TTLCache[int, str] = TTLCache(math.inf, 3, Clock())
    for key in (1, 2, 3):
        cache.put(key, str(key))
    cache.put(1, "one")  # put again: now the newest
    cache.put(4, "4")
    assert [cache.get(k) for k in (1, 2, 3, 4)] == ["one", None, "3", "4"]
    assert len(cache) == 3


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(0, 10, Clock())
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0


def test_discard_and_clear() -> None:
    cache: TTLCache[str, int] = TTLCache(10, 10, Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    cache.discard("a")
    cache.discard("missing")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.clear()
    assert len(cache) == 0


def view(item_id: int) -> ItemView:
    return ItemView(item_id, f"{item_id}.jpg", "image", 1, None, "image/jpeg", 1, 1, "stored", None,
                    datetime.now(UTC), 1)


def test_the_item_memo_forgets_one_item_or_all() -> None:
    clock = Clock()
    memo = ItemMemo(ttl=2.0, clock=clock)
    memo.items.put(1, view(1))
    memo.items.put(2, view(2))
    memo.forget(1)
    assert memo.items.get(1) is None and memo.items.get(2) is not None
    memo.forget()
    assert len(memo.items) == 0
    memo.items.put(3, view(3))
    clock.now += 2.5
    assert memo.items.get(3) is None, "items are kept ITEM_TTL seconds"


def test_link_versions_are_trusted_for_their_ttl_and_never_with_0() -> None:
    clock = Clock()
    meta = ObjectMeta("k", 1, '"e"')
    versions = LinkVersions(60.0, clock)
    versions.put("s3://b/k", meta)
    clock.now += 59
    assert versions.get("s3://b/k") == meta
    clock.now += 2
    assert versions.get("s3://b/k") is None
    never = LinkVersions(0, clock)
    never.put("s3://b/k", meta)
    assert never.get("s3://b/k") is None

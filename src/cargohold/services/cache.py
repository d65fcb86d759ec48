"""Operating the cache: what each tier holds, and clearing one."""

from __future__ import annotations

from typing import Any

from .context import Context


def stats(ctx: Context) -> list[dict[str, Any]]:
    out = []
    for tier in ctx.cache.all:
        s = tier.stats
        asked = s.hits + s.misses
        out.append({
            "name": tier.name, "entries": tier.entries, "bytes": tier.bytes, "limit": tier.max_size,
            "expires_seconds": tier.expires, "hits": s.hits, "misses": s.misses,
            "hit_rate": round(s.hits / asked, 4) if asked else None, "evictions": s.evictions, "expired": s.expired,
            "fills": s.fills, "fill_errors": s.fill_errors, "bytes_served": s.bytes_served,
        })
    return out


async def clear(ctx: Context, name: str) -> int:
    tier = ctx.cache.named(name)
    removed = tier.clear()
    await tier.flush()
    return removed

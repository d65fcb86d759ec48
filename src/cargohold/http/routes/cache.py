"""The cache tiers: usage and counters (any token), clearing a tier (admin), Prometheus metrics (admin)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from ...services import cache as svc
from ...services.context import Context
from ...services.metrics import CONTENT_TYPE
from ..auth import context, require_admin, require_user

router = APIRouter(tags=["cache"])
metrics_router = APIRouter(tags=["system"])
Ctx = Annotated[Context, Depends(context)]
TierName = Literal["storage", "previews", "image-converter"]


class TierOut(BaseModel):
    name: str
    entries: int
    bytes: int
    limit: int
    expires_seconds: float
    hits: int
    misses: int
    hit_rate: float | None
    evictions: int
    expired: int
    fills: int
    fill_errors: int
    bytes_served: int


class CacheOut(BaseModel):
    tiers: list[TierOut]


class ClearedOut(BaseModel):
    tier: str
    removed: int


@router.get("/cache", dependencies=[Depends(require_user)])
async def cache_stats(ctx: Ctx) -> CacheOut:
    """Per tier: entries and bytes against the size cap, hits, misses, evictions."""
    return CacheOut(tiers=[TierOut(**t) for t in svc.stats(ctx)])


@router.delete("/cache/{tier}", dependencies=[Depends(require_admin)])
async def clear_tier(tier: TierName, ctx: Ctx) -> ClearedOut:
    """Removes every entry of the tier; the next request of each fetches or makes it again."""
    return ClearedOut(tier=tier, removed=await svc.clear(ctx, tier))


@metrics_router.get("/metrics", dependencies=[Depends(require_admin)], response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(ctx: Ctx) -> Response:
    """Prometheus text format; scrape with the admin token (``authorization: credentials: <token>``)."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)

"""Health (no token) and the storage overview (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ... import __version__
from ...services.health import Health
from ..auth import require_admin

public = APIRouter(tags=["system"])
admin = APIRouter(tags=["system"], dependencies=[Depends(require_admin)])


def _health(request: Request) -> Health:
    health: Health = request.app.state.health
    return health


@public.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Provider and bucket status; 503 when a bucket cannot be listed. Needs no token."""
    healthy, body = await _health(request).current()
    s3 = request.app.state.ctx.settings.s3_url
    return JSONResponse({**body, "s3_endpoint": s3, "version": __version__}, status_code=200 if healthy else 503)


@admin.get("/storage")
async def storage(request: Request) -> dict[str, Any]:
    """The provider, the two buckets and their health."""
    ctx = request.app.state.ctx
    _, body = await _health(request).current()
    return {
        **body,
        "bucket_prefix": ctx.settings.storage_bucket_prefix,
        "endpoint": ctx.settings.storage_endpoint or None,
        "data_path": str(ctx.settings.data_path),
    }

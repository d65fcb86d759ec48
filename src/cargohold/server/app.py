"""The ASGI application. For now it answers ``/healthz``; the API and web UI mount here later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import __version__
from ..errors import CargoholdError
from ..settings import Settings
from ..storage import OwnStorage

HEALTH_TTL = 2.0
"""Seconds a health answer is reused, so a busy probe does not become load on the object store."""
HEALTH_TIMEOUT = 5.0


class Health:
    def __init__(self, settings: Settings, storage: OwnStorage) -> None:
        self.settings = settings
        self.storage = storage
        self._answer: tuple[float, int, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[int, dict[str, Any]]:
        async with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] > HEALTH_TTL:
                status, body = await self._measure()
                self._answer = (now, status, body)
            return self._answer[1], self._answer[2]

    async def _measure(self) -> tuple[int, dict[str, Any]]:
        async def bucket_status(store: Any) -> dict[str, Any]:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(store.ensure_bucket(create=False), HEALTH_TIMEOUT)
                state, error = "ok", None
            except TimeoutError:
                state, error = "unavailable", f"no answer within {HEALTH_TIMEOUT:.0f}s"
            except CargoholdError as exc:
                state, error = exc.code, exc.message
            answer: dict[str, Any] = {"name": store.name, "status": state,
                                      "ms": round((time.perf_counter() - start) * 1000, 1)}
            if error:
                answer["error"] = error
            return answer

        buckets = await asyncio.gather(*(bucket_status(s) for s in self.storage.buckets))
        healthy = all(b["status"] == "ok" for b in buckets)
        body = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "provider": self.settings.storage_provider,
            "buckets": buckets,
        }
        return (200 if healthy else 503), body


def create_app(settings: Settings, storage: OwnStorage | None = None, ensure_buckets: bool = True) -> Starlette:
    storage = storage or OwnStorage.from_settings(settings)
    health = Health(settings, storage)

    async def healthz(request: Request) -> JSONResponse:
        status, body = await health.current()
        return JSONResponse(body, status_code=status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if ensure_buckets:
            await storage.ensure_buckets()
        yield
        await storage.close()

    app = Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)
    app.state.settings = settings
    app.state.storage = storage
    return app

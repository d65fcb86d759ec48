"""Storage health: can each bucket be listed, and how fast. Reused for a moment between asks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import CargoholdError
from ..storage import OwnStorage, Store

HEALTH_TTL = 2.0
"""Seconds a health answer is reused, so a busy probe does not become load on the object store."""
HEALTH_TIMEOUT = 5.0


class Health:
    def __init__(self, provider: str, storage: OwnStorage) -> None:
        self.provider = provider
        self.storage = storage
        self._answer: tuple[float, bool, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[bool, dict[str, Any]]:
        async with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] > HEALTH_TTL:
                healthy, body = await self._measure()
                self._answer = (now, healthy, body)
            return self._answer[1], self._answer[2]

    async def _measure(self) -> tuple[bool, dict[str, Any]]:
        buckets = await asyncio.gather(*(_bucket_status(s) for s in self.storage.buckets))
        healthy = all(b["status"] == "ok" for b in buckets)
        return healthy, {"status": "ok" if healthy else "degraded", "provider": self.provider, "buckets": buckets}


async def _bucket_status(store: Store) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(store.ensure_bucket(create=False), HEALTH_TIMEOUT)
        state, error = "ok", None
    except TimeoutError:
        state, error = "unavailable", f"no answer within {HEALTH_TIMEOUT:.0f}s"
    except CargoholdError as exc:
        state, error = exc.code, exc.message
    answer: dict[str, Any] = {"name": store.name, "status": state, "ms": round((time.perf_counter() - start) * 1000, 1)}
    if error:
        answer["error"] = error
    return answer

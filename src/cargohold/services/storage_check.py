"""Is own storage usable? A write, read and delete of a probe object in each bucket."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import CargoholdError
from ..storage import OwnStorage, Store

PROBE_PREFIX = ".cargohold-check"


@dataclass(frozen=True)
class StepResult:
    bucket: str
    step: str
    ok: bool
    detail: str
    seconds: float


async def probe_bucket(store: Store, create: bool = True) -> list[StepResult]:
    """Each step in order; stops at the first that fails, since the rest would fail for the same reason."""
    key = f"{PROBE_PREFIX}/{secrets.token_hex(8)}"
    payload = secrets.token_bytes(64)

    async def ensure() -> str:
        await store.ensure_bucket(create=create)
        return "reachable" + (" (created if missing)" if create else "")

    async def write() -> str:
        meta = await store.put(key, payload)
        return f"wrote {meta.size} bytes to {key}"

    async def read_back() -> str:
        data = await (await store.get(key)).read()
        if data != payload:
            raise CargoholdError(f"read {len(data)} bytes that differ from the {len(payload)} written")
        return f"{len(data)} bytes match"

    async def delete() -> str:
        await store.delete(key)
        return "probe removed"

    steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("bucket", ensure), ("write", write), ("read", read_back), ("delete", delete),
    ]
    results: list[StepResult] = []
    for name, action in steps:
        start = time.perf_counter()
        try:
            detail, ok = await action(), True
        except CargoholdError as exc:
            detail, ok = f"{type(exc).__name__}: {exc.message}", False
        results.append(StepResult(store.name, name, ok, detail, time.perf_counter() - start))
        if not ok:
            break
    return results


async def check_own_storage(storage: OwnStorage) -> list[StepResult]:
    per_bucket = await asyncio.gather(*(probe_bucket(store) for store in storage.buckets))
    return [result for results in per_bucket for result in results]

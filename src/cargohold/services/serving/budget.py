"""Image work admitted by memory: every decode (a preview, a conversion) states what it will hold at its
peak, estimated from the image's header (``media.preview.preview_cost``, ``media.convert.conversion_cost``),
and runs only while the sum of what is running stays within IMAGE_MEMORY_BUDGET (docs/SECURITY.md,
"Image work"). imgproxy's model: a source-resolution limit and a queue of workers.

- An image whose work alone is over the budget is refused at once (422, as imgproxy refuses a source
  over ``IMGPROXY_MAX_SRC_RESOLUTION``): asking again could never help.
- Otherwise it waits, the first waiter that fits going first (a small preview is not held behind a
  large conversion that cannot start yet), for at most ``max_wait``; then, or at once when the work
  already waiting is over ``QUEUE_BUDGETS`` budgets, it is refused with 503 and ``Retry-After``.
- Admitted work runs in a thread pool of its own, one thread per CPU (more would only share the CPUs),
  so it never takes the threads the event loop's file reads and header reads use. Its bytes are given
  back when the thread ends, not when its caller stops waiting: a request cancelled while libvips
  works still holds the memory libvips holds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ...errors import Overloaded, Unprocessable
from ...units import human_size

T = TypeVar("T")

MAX_WAIT = 10.0
"""Seconds a decode may wait for the budget before it is refused (503)."""
QUEUE_BUDGETS = 4
"""Work waiting for more than this many budgets' worth of memory: the next is refused at once."""

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="cargohold-image")


@dataclass(eq=False)
class _Waiter:
    cost: int
    future: asyncio.Future[None]


@dataclass(eq=False)
class MemoryBudget:
    """A semaphore counted in bytes, for one process's image work."""

    limit: int
    max_wait: float = MAX_WAIT
    in_use: int = 0
    running: int = 0
    waiting: list[_Waiter] = field(default_factory=list)
    peak: int = 0  # the most ever admitted at once, for tests and the docs' figures
    _held_seconds: float = 1.0  # how long admitted work holds its bytes, a moving average

    async def run(self, cost: int, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in the image threads once ``cost`` bytes are admitted; they are given back
        when it ends, however it ends."""
        await self._admit(cost)
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def done(_: concurrent.futures.Future[T]) -> None:
            try:
                loop.call_soon_threadsafe(self._release, cost, time.monotonic() - started)
            except RuntimeError:  # the loop is closed: none of its waiters is left to wake
                self._release(cost, 0.0)

        try:
            call = functools.partial(contextvars.copy_context().run, func, *args)
            work = _POOL.submit(call)
        except BaseException:
            self._release(cost, 0.0)
            raise
        work.add_done_callback(done)
        return await asyncio.wrap_future(work)

    async def _admit(self, cost: int) -> None:
        if cost > self.limit:
            raise Unprocessable(
                f"this image would take about {human_size(cost)} of memory to decode, above IMAGE_MEMORY_BUDGET "
                f"({human_size(self.limit)}); it was not decoded"
            )
        if self.in_use + cost <= self.limit:  # whoever fits goes, waiters or not (see the docstring)
            self._take(cost)
            return
        queued = sum(w.cost for w in self.waiting)
        if queued + cost > QUEUE_BUDGETS * self.limit:
            raise self._busy(queued + cost)
        waiter = _Waiter(cost, asyncio.get_running_loop().create_future())
        self.waiting.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.max_wait)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return  # admitted just as the wait ended: the bytes are taken
            raise self._busy(queued + cost) from None
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release(cost, 0.0)  # admitted, then cancelled before it ran
            raise
        finally:
            if waiter in self.waiting:
                self.waiting.remove(waiter)
                waiter.future.cancel()

    def _take(self, cost: int) -> None:
        self.in_use += cost
        self.running += 1
        self.peak = max(self.peak, self.in_use)

    def _release(self, cost: int, held: float) -> None:
        self.in_use -= cost
        self.running -= 1
        if held:
            self._held_seconds = 0.8 * self._held_seconds + 0.2 * held
        for waiter in list(self.waiting):  # arrival order; whoever fits goes
            if self.in_use + waiter.cost <= self.limit and not waiter.future.done():
                self.waiting.remove(waiter)
                self._take(waiter.cost)
                waiter.future.set_result(None)

    def _busy(self, waiting: int) -> Overloaded:
        # The time for what runs and waits to pass through, at the pace work has been leaving.
        seconds = max(1, min(60, math.ceil(self._held_seconds * (1 + waiting / self.limit))))
        return Overloaded(
            f"image work is using its memory (IMAGE_MEMORY_BUDGET, {human_size(self.limit)}, "
            f"{human_size(self.in_use)} in use, {human_size(waiting)} waiting); ask again in {seconds} s",
            retry_after=seconds,
        )


_BUDGETS: dict[int, MemoryBudget] = {}


def shared(limit: int) -> MemoryBudget:
    """The process's budget of ``limit`` bytes: one for the whole server, however many contexts."""
    budget = _BUDGETS.get(limit)
    if budget is None:
        budget = _BUDGETS[limit] = MemoryBudget(limit)
    return budget

"""Coalescing: calls that arrive while one is being served are served together, next.

An access check costs one OPA round trip and one SQLite commit, and most of that cost is
per call, not per decision: an OPA query and a commit for 30 checks cost little more
than for one. `Coalescer` gives an asyncio server that shape without adding latency:
a call that finds nothing in flight goes at once; calls that arrive meanwhile wait for
it and then go together, as one batch. No timer, no batch window: under light load
every batch is one call, under heavy load batches grow to what arrived.

A batch is served by `many`, a coroutine on the event loop, which may hand blocking work
(SQLite) to the coalescer's one worker thread with `offload`: the loop keeps reading
requests, and asks OPA itself, while the worker commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Offload = Callable[[Callable[[], Any]], Awaitable[Any]]
MAX_BATCH = 64  # calls served together at most: bounds one OPA query's size and time


class Coalescer(Generic[T, R]):
    """Serves `await coalescer(item)` with `await many(items, offload) -> results` (same
    order, same length) for everything that arrived since the last call; `offload(fn)`
    runs `fn()` in the coalescer's worker thread. If `many` raises, every call of that
    batch raises the same exception."""

    def __init__(
        self,
        many: Callable[[list[T], Offload], Awaitable[list[R]]],
        name: str,
        max_batch: int = MAX_BATCH,
    ):
        self.many, self.max_batch = many, max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._serving: asyncio.Task[None] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def __call__(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._serving is None:
            self._serving = loop.create_task(self._serve())
        return await future

    def offload(self, fn: Callable[[], Any]) -> Awaitable[Any]:
        """`fn()` in the worker thread, awaited from the loop."""
        return asyncio.get_running_loop().run_in_executor(self._worker, fn)

    async def _serve(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                try:
                    results = await self.many([item for item, _ in batch], self.offload)
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(batch)} asked, {len(results)} answered")
                except Exception as e:  # every caller of the batch learns of it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # a caller that gave up has a cancelled future
                        future.set_result(result)
        finally:
            self._serving = None

    def close(self) -> None:
        """Wait for the batch in flight, then stop the worker."""
        self._worker.shutdown(wait=True)

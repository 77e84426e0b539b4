"""Coalescing: calls that arrive while one is being served are served together, next.

An access check costs one OPA round trip and one SQLite commit, and most of that cost is
per call, not per decision: an OPA query and a commit for 30 checks cost little more
than for one. `Coalescer` gives an asyncio server that shape without adding latency:
a call that finds nothing in flight goes at once; calls that arrive meanwhile wait for
it and then go together, as one batch, in a worker thread of their own (the event loop
keeps reading requests while OPA and SQLite work). No timer, no batch window: under light
load every batch is one call, under heavy load batches grow to what arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64  # calls served together at most: bounds one OPA query's size and time


class Coalescer(Generic[T, R]):
    """Serves `await coalescer(item)` with `many(items) -> results` (same order, same
    length), called in one worker thread for everything that arrived since the last call.
    If `many` raises, every call of that batch raises the same exception."""

    def __init__(self, many: Callable[[list[T]], list[R]], name: str, max_batch: int = MAX_BATCH):
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

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                try:
                    results = await loop.run_in_executor(
                        self._worker, self.many, [item for item, _ in batch]
                    )
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

"""Coalescing: calls that arrive while one is served are served together, in order."""

from __future__ import annotations

import asyncio
import threading

import pytest

from datavisa.engine.policy.coalesce import Coalescer


class Doubler:
    """Doubles numbers, a batch at a time, in the worker thread; remembers the batches."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.hold = hold

    def __call__(self, items: list[int]) -> list[int]:
        if self.hold is not None:
            assert self.hold.wait(10)
        self.batches.append(items)
        self.threads.add(threading.current_thread().name)
        if -1 in items:
            raise ValueError("no negative numbers")
        return [2 * i for i in items]


def offloaded(doubler: Doubler):
    """The coalescer's `many`: the doubler's work in the coalescer's worker thread."""
    return lambda items, offload: offload(lambda: doubler(items))


def test_a_lone_call_goes_at_once_and_alone():
    doubler = Doubler()
    coalescer = Coalescer(offloaded(doubler), "test")

    async def main() -> list[int]:
        return [await coalescer(1), await coalescer(2)]

    assert asyncio.run(main()) == [2, 4]
    assert doubler.batches == [[1], [2]]
    assert doubler.threads == {"test_0"}  # not the event loop's thread
    coalescer.close()


def test_calls_arriving_while_one_is_served_go_together_next_in_order():
    hold = threading.Event()
    doubler = Doubler(hold)
    coalescer = Coalescer(offloaded(doubler), "test", max_batch=4)

    async def main() -> list[int]:
        first = asyncio.ensure_future(coalescer(0))
        await asyncio.sleep(0.05)  # 0 is being served (held): the rest wait for it
        rest = [asyncio.ensure_future(coalescer(i)) for i in range(1, 7)]
        await asyncio.sleep(0.05)
        hold.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [0, 2, 4, 6, 8, 10, 12]
    assert doubler.batches == [[0], [1, 2, 3, 4], [5, 6]]  # at most max_batch at a time
    coalescer.close()


def test_a_failing_batch_fails_each_of_its_calls_and_only_those():
    hold = threading.Event()
    doubler = Doubler(hold)
    coalescer = Coalescer(offloaded(doubler), "test")

    async def main() -> list[object]:
        first = asyncio.ensure_future(coalescer(5))
        await asyncio.sleep(0.05)
        doomed = [asyncio.ensure_future(coalescer(i)) for i in (1, -1, 3)]
        await asyncio.sleep(0.05)
        hold.set()
        done = await asyncio.gather(first, *doomed, return_exceptions=True)
        return [*done, await coalescer(4)]  # the coalescer serves on afterwards

    results = asyncio.run(main())
    assert results[0] == 10
    assert all(isinstance(r, ValueError) for r in results[1:4])
    assert results[4] == 8
    coalescer.close()


def test_a_wrong_number_of_results_is_an_error_not_a_misanswer():
    coalescer = Coalescer(lambda items, offload: offload(lambda: items[:-1]), "test")
    with pytest.raises(RuntimeError, match="1 asked, 0 answered"):
        asyncio.run(coalescer(1))
    coalescer.close()

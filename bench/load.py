"""Load generation: N concurrent clients, each sending its next call when the last answered.

Two kinds of caller, both closed-loop (a client waits for its answer before it asks
again, as a service checking access in its request path does):
- `http_cell`: aiohttp on one keep-alive connection per client, the same body every time;
- `process_cell`: one process per decision (`datavisa check`, `opa eval`), process start
  included, run through asyncio's subprocess support.

Each cell is bounded by a count and by time, whichever comes first, after a warm-up that
is not recorded. Every answer is checked: an error or an answer other than the expected
verdict is counted, never silently timed.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Sample:
    """What one cell measured: each answered call's latency, and the cell's wall time."""

    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    wrong: int = 0
    first_error: str | None = None
    warmup_calls: int = 0  # made before the measured ones (their CPU time is in a cell's)

    def error(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why[:300]

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        out: dict[str, Any] = {
            "count": len(lat),
            "errors": self.errors,
            "wrong_verdicts": self.wrong,
            "wall_s": round(self.wall_s, 3),
            "throughput_per_s": round(len(lat) / self.wall_s, 1) if self.wall_s else 0.0,
        }
        if self.first_error:
            out["first_error"] = self.first_error
        if lat:
            out |= {
                "p50_ms": round(percentile(lat, 50), 3),
                "p90_ms": round(percentile(lat, 90), 3),
                "p99_ms": round(percentile(lat, 99), 3),
                "mean_ms": round(statistics.fmean(lat), 3),
                "min_ms": round(lat[0], 3),
                "max_ms": round(lat[-1], 3),
            }
        return out


def percentile(ordered: list[float], p: float) -> float:
    """The p-th percentile of sorted values, interpolated between the two nearest ranks."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _Budget:
    """Hands out at most `count` calls, and none once `seconds` have passed."""

    def __init__(self, count: int, seconds: float) -> None:
        self.left = count
        self.deadline = time.perf_counter() + seconds

    def take(self) -> bool:
        if self.left <= 0 or time.perf_counter() >= self.deadline:
            return False
        self.left -= 1
        return True


# -- HTTP -------------------------------------------------------------------------------


def http_cell(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    verdict: Callable[[Any], bool],
    expect: bool,
    concurrency: int,
    count: int,
    seconds: float,
    warmup: int = 50,
) -> Sample:
    """POST `body` to `url` from `concurrency` clients; `verdict` reads allow from an answer."""
    return asyncio.run(
        _http_cell(url, body, headers, verdict, expect, concurrency, count, seconds, warmup)
    )


async def _http_cell(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    verdict: Callable[[Any], bool],
    expect: bool,
    concurrency: int,
    count: int,
    seconds: float,
    warmup: int,
) -> Sample:
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **headers}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call(sample: Sample | None) -> None:
            started = time.perf_counter()
            try:
                async with session.post(url, data=payload, headers=headers) as response:
                    raw = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as e:
                if sample is not None:
                    sample.error(f"{type(e).__name__}: {e}")
                return
            elapsed_ms = (time.perf_counter() - started) * 1000
            if sample is None:
                return
            if status != 200:
                sample.error(f"HTTP {status}: {raw[:200]!r}")
                return
            sample.latencies_ms.append(elapsed_ms)
            if verdict(json.loads(raw)) is not expect:
                sample.wrong += 1

        async def client(budget: _Budget, sample: Sample | None) -> None:
            while budget.take():
                await call(sample)

        warmup = max(warmup, concurrency)
        warm = _Budget(warmup, seconds)
        await asyncio.gather(*(client(warm, None) for _ in range(concurrency)))
        sample = Sample(warmup_calls=warmup)
        budget = _Budget(count, seconds)
        started = time.perf_counter()
        await asyncio.gather(*(client(budget, sample) for _ in range(concurrency)))
        sample.wall_s = time.perf_counter() - started
    return sample


# -- a process per decision -------------------------------------------------------------


def process_cell(
    argv: list[str],
    env: dict[str, str] | None,
    verdict: Callable[[int, bytes], bool],
    expect: bool,
    concurrency: int,
    count: int,
    seconds: float,
) -> Sample:
    """Run `argv` once per decision from `concurrency` clients; `verdict(rc, stdout)`."""
    return asyncio.run(_process_cell(argv, env, verdict, expect, concurrency, count, seconds))


async def _process_cell(
    argv: list[str],
    env: dict[str, str] | None,
    verdict: Callable[[int, bytes], bool],
    expect: bool,
    concurrency: int,
    count: int,
    seconds: float,
) -> Sample:
    sample = Sample()

    async def client(budget: _Budget) -> None:
        while budget.take():
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await proc.communicate()
            elapsed_ms = (time.perf_counter() - started) * 1000
            try:
                allowed = verdict(proc.returncode or 0, out)
            except (ValueError, KeyError, IndexError, TypeError):
                sample.error(f"exit {proc.returncode}: {(err or out)[-300:]!r}")
                continue
            sample.latencies_ms.append(elapsed_ms)
            if allowed is not expect:
                sample.wrong += 1

    budget = _Budget(count, seconds)
    started = time.perf_counter()
    await asyncio.gather(*(client(budget) for _ in range(concurrency)))
    sample.wall_s = time.perf_counter() - started
    return sample

"""Where an access check's CPU goes in `datavisa serve`, by thread, at 1 and 32 clients.

Starts a real `datavisa serve` (as `make bench` does: a fresh SQLite file, its supervised
OPA, one real grant), then for each client count sends closed-loop access checks for a
while and reads, from /proc, the CPU time each of serve's threads, its OPA and this
load generator used, per check. serve's threads are named by py-spy (`py-spy dump`,
installed with the bench extra), which reads their Python names: the event loop
(`MainThread`: HTTP, the fast lane, the OPA client), the log's worker (`checks_0`: the
held-grant query and the decision log's commit), the `monitor` (judging each record by
the alert rules), and the rest. Without py-spy, threads are listed by id. CPU time is the
machine's, so the figures move with its load; the split between threads is what to read.

    .venv/bin/python bench/check_profile.py [--seconds 6] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import fixtures
from fixtures import SERVICE_SUBJECT, quiesce, real_grant, served
from load import http_cell
from run import ALLOW, _engine_verdict

_TICKS = os.sysconf("SC_CLK_TCK")
CLIENTS = (1, 32)


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of `pid`, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Python's name of each thread of `pid` (py-spy dump), or {} without py-spy."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return {}
    dumped = subprocess.run(
        [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60
    )
    found = re.findall(r'^Thread (0x[0-9a-fA-F]+|\d+) \([^)]*\): "([^"]*)"', dumped.stdout, re.M)
    return {int(tid, 0): name for tid, name in found}


def profile(seconds: float) -> dict[str, Any]:
    """Per check: CPU µs of each serve thread, of OPA and of the client, per client count."""
    with tempfile.TemporaryDirectory(prefix="datavisa-profile-") as tmp, served(Path(tmp)) as srv:
        real_grant(srv)
        opa_pid, url = srv.opa_pid, f"{srv.url}/v1/access/check"
        cells = []
        for clients in CLIENTS:
            quiesce([srv.pid, opa_pid], window_s=2.5)
            before = thread_cpu_s(srv.pid)
            opa, own = fixtures.cpu_s(opa_pid), fixtures.own_cpu_s()
            sample = http_cell(
                url, ALLOW, srv.auth(SERVICE_SUBJECT), _engine_verdict, True, clients,
                1_000_000, seconds,
            )  # fmt: skip
            after = thread_cpu_s(srv.pid)
            summary = sample.summary()
            calls = summary["count"] + sample.warmup_calls
            names = thread_names(srv.pid)

            def per_call(spent: float, n: int = calls) -> float:
                return round(spent / n * 1e6, 1)

            threads: dict[str, float] = {}
            for tid, spent in after.items():
                name = names.get(tid) or ("MainThread" if tid == srv.pid else f"thread {tid}")
                threads[name] = threads.get(name, 0.0) + per_call(spent - before.get(tid, 0.0))
            cells.append(
                {
                    "clients": clients,
                    "checks": calls,
                    "p50_ms": summary.get("p50_ms"),
                    "per_s": summary["throughput_per_s"],
                    "errors": summary["errors"] + summary["wrong_verdicts"],
                    "serve_threads_us": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
                    "serve_us": round(sum(threads.values()), 1),
                    "opa_us": per_call(fixtures.cpu_s(opa_pid) - opa),
                    "client_us": per_call(fixtures.own_cpu_s() - own),
                }
            )
    return {"seconds": seconds, "load_average": os.getloadavg(), "cells": cells}


def report(result: dict[str, Any]) -> str:
    lines = [
        "| clients | checks/s | p50 ms | serve µs | its threads, µs | OPA µs | client µs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in result["cells"]:
        shown = ", ".join(f"{n} {v:.0f}" for n, v in cell["serve_threads_us"].items() if v >= 5)
        lines.append(
            f"| {cell['clients']} | {cell['per_s']:,.0f} | {cell['p50_ms']} | "
            f"{cell['serve_us']:.0f} | {shown} | {cell['opa_us']:.0f} | {cell['client_us']:.0f} |"
        )
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    return "\n".join(lines) + f"\n\nLoad average at the end: {load}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="load per client count")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    result = profile(args.seconds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))


if __name__ == "__main__":
    main()

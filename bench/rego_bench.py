"""Access-decision time with 10 and with 100,000 live grants, measured by `opa bench`.

Grants sit in OPA's data keyed by subject, then grant id, so an access decision reads only
the asking subject's grants: its time should not grow with the grants of everyone else.
This script builds the bundle data, generates N live grants (the asking subject holds 3,
the rest belong to other subjects), runs `opa bench` on data.datavisa.access.decision for
each N, and records the figures in bench/results/rego-access-<date>.json and a line in
bench/results/README.md.

    .venv/bin/python bench/rego_bench.py            # N = 10 and 100000, 5 runs each
    .venv/bin/python bench/rego_bench.py --count 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from datavisa.engine.model.durations import rfc3339
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import find_opa, opa_version

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout
RESULTS = PROJECT_ROOT / "bench" / "results"
SIZES = (10, 100_000)
TARGET_RATIO = 1.25
SUBJECT_GRANTS = 3  # grants the asking subject holds, whatever N is
INPUT = {"subject": "alice", "resource": "eu-customer-analytics", "action": "read"} | {
    "location": "DE"
}


def grants(n: int, now_ns: int) -> dict:
    """N live grants: SUBJECT_GRANTS for alice, the rest spread over other subjects."""
    expires_ns = now_ns + 7 * 86400 * 10**9
    live = {
        "starts_ns": now_ns - 3600 * 10**9,
        "expires_ns": expires_ns,
        "expires_at": rfc3339(expires_ns // 10**9),  # as the engine pushes it (grant_doc)
    }
    doc: dict[str, dict] = {"alice": {}}
    for i in range(SUBJECT_GRANTS):
        doc["alice"][f"alice-{i}"] = {
            "resource": "eu-customer-analytics" if i == 0 else "eu-service-metrics",
            "actions": ["read"],
            "countries": ["DE"],
            "revision": "bench",
            **live,
        }
    for i in range(n - SUBJECT_GRANTS):
        subject = f"user-{i // 4:06d}"  # four grants a subject
        doc.setdefault(subject, {})[f"g-{i:06d}"] = {
            "resource": "eu-customer-analytics",
            "actions": ["read", "write"],
            "countries": ["DE", "FR"],
            "revision": "bench",
            **live,
        }
    return doc


ACCESS = "data.datavisa.access.decision.allow == true"
FLOOR = "true"  # `opa bench`'s own cost per query, on the same data: this machine's unit


def bench(n: int, count: int, data_dir: Path, work: Path, query: str = ACCESS) -> dict:
    grants_dir = work / f"grants-{n}"
    if not grants_dir.exists():
        (grants_dir / "grants").mkdir(parents=True)
        (grants_dir / "grants" / "data.json").write_text(json.dumps(grants(n, time.time_ns())))
    (work / "input.json").write_text(json.dumps(INPUT))
    done = subprocess.run(
        [
            *(str(find_opa()), "bench", "--format=json", f"--count={count}"),
            *("-d", str(POLICY_DIR), "-d", str(data_dir), "-d", str(grants_dir)),
            *("--ignore", "*_test.rego", "--input", str(work / "input.json")),
            query,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    runs = _documents(done.stdout)  # one JSON document a run, each over several lines
    ns = [r["T"] / r["N"] for r in runs]
    return {
        "grants": n,
        "runs": len(ns),
        "ns_per_op_median": round(statistics.median(ns)),
        "ns_per_op": [round(x) for x in ns],
        "allocs_per_op_median": round(statistics.median(r["MemAllocs"] / r["N"] for r in runs)),
    }


def _documents(text: str) -> list[dict]:
    decoder, docs, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5, help="opa bench runs per size")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where the results go (default bench/results)"
    )
    args = parser.parse_args()
    opa = find_opa()
    with tempfile.TemporaryDirectory(prefix="datavisa-bench-") as tmp:
        work = Path(tmp)
        data_dir = bundle.write_data(DEFAULT_BUNDLE_DIR, work / "bundle")
        results = [bench(n, args.count, data_dir, work) for n in SIZES]
        floor = bench(SIZES[-1], args.count, data_dir, work, FLOOR)
    small, large = results
    ratio = large["ns_per_op_median"] / small["ns_per_op_median"]
    today = dt.date.today().isoformat()
    record = {
        "date": today,
        "query": "data.datavisa.access.decision",
        "input": INPUT,
        "opa": opa_version(opa),
        "revision": bundle.revision(),
        "results": results,
        "floor_ns_per_op_median": floor["ns_per_op_median"],  # a query of `true`
        "ratio_large_to_small": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"rego-access-{today}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    line = (
        f"- {today} rego access decision (opa bench, median of {args.count}): "
        f"{small['grants']} grants {small['ns_per_op_median'] / 1000:.1f} µs, "
        f"{large['grants']:,} grants {large['ns_per_op_median'] / 1000:.1f} µs, "
        f"ratio {ratio:.2f} (target ≤ {TARGET_RATIO}); "
        f"`true` {floor['ns_per_op_median'] / 1000:.1f} µs → {out.name}"
    )
    summary = args.out / "README.md"
    if not summary.exists():
        summary.write_text("# Benchmark results\n\nOne line a run; details in the JSON files.\n\n")
    with summary.open("a") as f:
        f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()

"""A run's record turned into verdicts, a JSON file, a short markdown summary and two plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import console_bench
import matplotlib
import store_bench
import supervision_bench
import transfer_bench

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

PATHS = {
    "trivial": "OPA REST API, one-line policy (the HTTP limit)",
    "opa": "OPA REST API, direct",
    "engine": "engine /v1/access/check",
    "cli": "datavisa check (CLI process)",
    "naive": "opa eval per decision (naive)",
}
AGAIN = "allow, again"  # the one-client allow cell at the fewest grants, after the most

COLOURS = {
    "trivial": "#762a83",
    "opa": "#1b7837",
    "engine": "#2166ac",
    "cli": "#b2182b",
    "naive": "#8c6d31",
}


def _floor(rego: dict[str, Any]) -> str:
    """`opa bench` of `true` in the same run, when measured: the machine's unit, since its
    speed moves by 1.6-1.8x from one hour to the next."""
    floor = rego.get("floor_ns_per_op_median")
    if not floor:
        return ""
    most = max(rego["results"], key=lambda r: r["grants"])["ns_per_op_median"]
    return f"; a query of `true` {floor / 1000:.1f} µs in the same run ({most / floor:.1f}x it)"


def postgresql_lines(pg: dict[str, Any] | None) -> list[str]:
    """Grants in a real PostgreSQL (bench/postgres_bench.py), when it ran."""
    return _connector_lines(pg, "PostgreSQL", "role", "postgres_bench.py")


def mariadb_lines(mdb: dict[str, Any] | None) -> list[str]:
    """Grants in a real MariaDB (bench/mariadb_bench.py), when it ran."""
    return _connector_lines(mdb, "MariaDB", "account", "mariadb_bench.py")


def _connector_lines(
    result: dict[str, Any] | None, system: str, account: str, source: str
) -> list[str]:
    if not result:
        return []
    usable, ended = result["approve_to_usable"], result["revoke_to_terminated"]
    return [
        "",
        f"## Grants in a real {system}",
        "",
        "| step | count | p50 ms | p99 ms | goal p99 |",
        "| --- | --- | --- | --- | --- |",
        f"| approve → credentials usable | {usable['count']} | {usable['p50_ms']:.1f} | "
        f"{usable['p99_ms']:.1f} | ≤ {result['goal_p99_ms']:g} ms |",
        f"| revoke → open session terminated | {ended['count']} | {ended['p50_ms']:.1f} | "
        f"{ended['p99_ms']:.1f} | ≤ {result['goal_p99_ms']:g} ms |",
        "",
        f"A throwaway server on loopback; the grant's {account} made, and taken away with its "
        f"sessions, by the connector as a sink of the grant outbox (bench/{source}).",
    ]


def grpc_lines(grpc: dict[str, Any] | None) -> list[str]:
    """The sidecar's ext_authz gRPC Check rows (bench/gateway_bench.py), if measured."""
    if not grpc:
        return []  # records from before the gRPC rows have none
    lines = ["", "### Envoy ext_authz v3 gRPC Check at the sidecar plugin", ""]
    if "skipped" in grpc:
        return [*lines, f"Not measured: {grpc['skipped']}."]
    one, many = grpc["1"], grpc["32"]
    return [
        *lines,
        "| clients | Checks | p50 ms | p99 ms | Checks/s |",
        "| --- | --- | --- | --- | --- |",
        f"| 1 | {one['count']:,} | {one['p50_ms']:.2f} | {one['p99_ms']:.2f} | {one['per_s']:,} |",
        f"| 32 | {many['count']:,} | {many['p50_ms']:.2f} | {many['p99_ms']:.2f} | "
        f"{many['per_s']:,} |",
        "",
        "ghz against the plugin's grpc_addr, the CheckRequest Envoy sends for the benchmarked "
        "allow; no proxy in front.",
    ]


def fleet_lines(fleet: dict[str, Any] | None) -> list[str]:
    """The fleet-propagation section (bench/fleet_bench.py), when it was measured."""
    if not fleet:
        return []
    lines = [
        "",
        "## Revocation across a fleet of sidecar OPAs",
        "",
        "| sidecars | revoke answered p50 / p99 ms | last sidecar denies p50 / p99 ms | "
        "allowed after the answer | 202 answers |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cell in fleet.values():
        revoke, deny = cell["revoke_ms"], cell["all_deny_ms"]
        lines.append(
            f"| {cell['opas']} | {revoke['p50']:.1f} / {revoke['p99']:.1f} | "
            f"{deny['p50']:.1f} / {deny['p99']:.1f} | "
            f"{cell['allowed_after_answer_ms']['max']:.1f} ms (max) | "
            f"{cell['revoke_answers'].get('202', 0)} |"
        )
    lines += [
        "",
        "One engine on SQLite, sidecars from `datavisa opa-config` on loopback, long polling; "
        "a revoke answers once every sidecar's status report confirmed it "
        "(bench/fleet_bench.py).",
    ]
    return lines


def cell(record: dict[str, Any], path: str, grants: int, concurrency: int, case: str = "allow"):
    for c in record["cells"]:
        if (c["path"], c["grants"], c["concurrency"], c["case"]) == (
            path,
            grants,
            concurrency,
            case,
        ):
            return c
    return None


def _peak(record: dict[str, Any], path: str, grants: int) -> dict[str, Any] | None:
    cells = [
        c for c in record["cells"] if (c["path"], c["grants"], c["case"]) == (path, grants, "allow")
    ]
    return max(cells, key=lambda c: c["throughput_per_s"], default=None)


# -- verdicts ---------------------------------------------------------------------------


def judge(record: dict[str, Any], targets: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each target of the issue: what was measured, against what, and whether it is met."""
    levels = record["plan"]["levels"]
    low, high = levels[0], levels[-1]
    verdicts: dict[str, dict[str, Any]] = {}

    def put(name: str, value: float, within: bool, detail: str) -> None:
        verdicts[name] = {
            "value": round(value, 3),
            "target": targets[name],
            "met": bool(within),
            "detail": detail,
        }

    opa1, eng1 = cell(record, "opa", low, 1), cell(record, "engine", low, 1)
    overhead = eng1["p50_ms"] - opa1["p50_ms"]
    put(
        "overhead_p50_ms",
        overhead,
        overhead <= targets["overhead_p50_ms"],
        f"engine p50 {eng1['p50_ms']:.2f} ms - OPA direct p50 {opa1['p50_ms']:.2f} ms, "
        f"1 client, {low:,} grants",
    )
    engine_peak, naive_peak = _peak(record, "engine", low), _peak(record, "naive", low)
    ratio = engine_peak["throughput_per_s"] / naive_peak["throughput_per_s"]
    put(
        "throughput_vs_naive",
        ratio,
        ratio >= targets["throughput_vs_naive"],
        f"engine {engine_peak['throughput_per_s']:,.0f}/s ({engine_peak['concurrency']} clients) "
        f"vs opa eval {naive_peak['throughput_per_s']:,.1f}/s "
        f"({naive_peak['concurrency']} clients), {low:,} grants",
    )
    opa_peak = cell(record, "opa", low, max(record["plan"]["concurrency"]))
    more = engine_peak["throughput_per_s"] / opa_peak["throughput_per_s"]
    put(
        "engine_vs_opa_throughput",
        more,
        more >= targets["engine_vs_opa_throughput"],
        f"engine {engine_peak['throughput_per_s']:,.0f}/s ({engine_peak['concurrency']} clients) "
        f"vs OPA direct {opa_peak['throughput_per_s']:,.0f}/s ({opa_peak['concurrency']} "
        f"clients), {low:,} grants",
    )
    naive_most = _peak(record, "naive", high) if high != low else None
    if naive_most is not None:
        engine_most = _peak(record, "engine", high)
        ratio = engine_most["throughput_per_s"] / naive_most["throughput_per_s"]
        put(
            "throughput_vs_naive_most",
            ratio,
            ratio >= targets["throughput_vs_naive_most"],
            f"engine {engine_most['throughput_per_s']:,.0f}/s "
            f"({engine_most['concurrency']} clients) vs opa eval "
            f"{naive_most['throughput_per_s']:,.1f}/s ({naive_most['concurrency']} clients, "
            f"the only cell there), {high:,} grants",
        )
    for name, path in (("growth_opa", "opa"), ("growth_engine", "engine")):
        large = cell(record, path, high, 1)
        smalls = [c for case in ("allow", AGAIN) if (c := cell(record, path, low, 1, case))]
        small_ms = sum(c["p50_ms"] for c in smalls) / len(smalls)
        growth = large["p50_ms"] / small_ms
        before_after = " and ".join(f"{c['p50_ms']:.2f}" for c in smalls)
        put(
            name,
            growth,
            growth <= targets[name],
            f"p50 {large['p50_ms']:.2f} ms at {high:,} grants / {small_ms:.2f} ms at {low:,} "
            f"(the mean of {before_after} ms, measured before and after), 1 client",
        )
    trivial1, top = cell(record, "trivial", low, 1), max(record["plan"]["concurrency"])
    if trivial1 is not None and "opa_vs_trivial_p50" in targets:
        slower = opa1["p50_ms"] / trivial1["p50_ms"]
        put(
            "opa_vs_trivial_p50",
            slower,
            slower <= targets["opa_vs_trivial_p50"],
            f"OPA direct p50 {opa1['p50_ms']:.2f} ms / trivial policy p50 "
            f"{trivial1['p50_ms']:.2f} ms, 1 client, {low:,} grants",
        )
    opa_top, trivial_top = cell(record, "opa", low, top), cell(record, "trivial", low, top)
    if trivial_top is not None and "opa_vs_trivial_throughput" in targets:
        fewer = trivial_top["throughput_per_s"] / opa_top["throughput_per_s"]
        put(
            "opa_vs_trivial_throughput",
            fewer,
            fewer <= targets["opa_vs_trivial_throughput"],
            f"trivial policy {trivial_top['throughput_per_s']:,.0f}/s / OPA direct "
            f"{opa_top['throughput_per_s']:,.0f}/s, {top} clients, {low:,} grants",
        )
    rev = record["revocation"]
    put(
        "revocation_lag",
        rev["lag_checks"],
        rev["lag_checks"] <= targets["revocation_lag"],
        f"checks that allowed right after revoke returned, of {rev['cycles']} revocations "
        f"(engine and OPA each), {rev['grants']:,} grants",
    )
    push = record["push_and_lifecycle"]["push_ms"]
    put(
        "push_p99_ms",
        push["p99"],
        push["p99"] <= targets["push_p99_ms"],
        f"push of one subject's grants to OPA, {push['count']} pushes; the whole revoke call: "
        f"p99 {rev['revoke_ms']['p99']:.1f} ms",
    )
    rego = record.get("rego_bench")
    if rego:
        most = max(rego["results"], key=lambda r: r["grants"])
        micros = most["ns_per_op_median"] / 1000
        put(
            "rego_access_us",
            micros,
            micros <= targets["rego_access_us"],
            f"`opa bench` of the access decision, median of {most['runs']}, "
            f"{most['grants']:,} grants{_floor(rego)}",
        )
    monitoring = record.get("monitoring")
    if monitoring:
        judged = monitoring["judging"]["opa_cpu_us_per_decision"] / 1000
        put(
            "monitor_opa_cpu_ms",
            judged,
            judged <= targets["monitor_opa_cpu_ms"],
            f"OPA CPU judging {monitoring['decisions']:,} access decisions by the alert rules "
            f"(asking them cost {monitoring['asking']['opa_cpu_us_per_decision'] / 1000:.3f} ms "
            f"each, in batches of {monitoring['batch']})",
        )
    identity = record.get("identity")
    if identity:
        ratio = identity["jwt_remembered_x_static"]
        put(
            "jwt_remembered_x_static",
            ratio,
            ratio <= targets["jwt_remembered_x_static"],
            f"CPU to authenticate a check's caller: a person's JWT seen before "
            f"{identity['jwt_remembered_us']} µs, a static token {identity['static_token_us']} "
            f"µs; a JWT's first check (its signature) {identity['jwt_rs256_first_us']} µs "
            f"RS256, {identity['jwt_es256_first_us']} µs ES256",
        )
    transfer = record.get("transfer_check")
    if transfer and "transfer_vs_access_p50" in targets:
        ratio = transfer["transfer_vs_access_p50"]
        put(
            "transfer_vs_access_p50",
            ratio,
            ratio <= targets["transfer_vs_access_p50"],
            f"transfer check p50 {transfer['transfer']['p50_ms']:.2f} ms / access check p50 "
            f"{transfer['access']['p50_ms']:.2f} ms, 1 client, alternating",
        )
    return verdicts


# -- files ------------------------------------------------------------------------------


def write(record: dict[str, Any], samples: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    date = record["date"]
    paths = [
        out / f"{date}.json",
        out / f"{date}.md",
        out / f"{date}-latency-vs-grants.png",
        out / f"{date}-latency-distribution.png",
    ]
    paths[0].write_text(json.dumps(record, indent=1) + "\n")
    paths[1].write_text(markdown(record, [p.name for p in paths]))
    plot_scale(record, paths[2])
    plot_distribution(record, samples, paths[3])
    return paths


def headline(record: dict[str, Any]) -> str:
    verdicts = record["targets"]
    met = sum(v["met"] for v in verdicts.values())
    parts = [
        f"{name} {v['value']:g} ({'met' if v['met'] else 'NOT met'})"
        for name, v in verdicts.items()
    ]
    return f"targets met: {met}/{len(verdicts)}: " + "; ".join(parts)


def index_line(record: dict[str, Any], summary: Path) -> None:
    """One line a run in bench/results/README.md, beside the Rego micro-benchmark's."""
    v = record["targets"]
    levels = record["plan"]["levels"]
    line = (
        f"- {record['date']} decision paths (bench/run.py): engine overhead p50 "
        f"{v['overhead_p50_ms']['value']:.2f} ms, {v['throughput_vs_naive']['value']:.0f}x "
        f"naive throughput, growth {levels[-1]:,}/{levels[0]:,}: OPA "
        f"{v['growth_opa']['value']:.2f}x, engine {v['growth_engine']['value']:.2f}x, "
        f"revocation lag {v['revocation_lag']['value']:g}, push p99 "
        f"{v['push_p99_ms']['value']:.1f} ms{_trivial_ratios(v)} "
        f"(at {record['machine']['git_revision'][:12]}) "
        f"→ {record['date']}.md"
    )
    if not summary.exists():
        summary.write_text("# Benchmark results\n\nOne line a run; details in the JSON files.\n\n")
    with summary.open("a") as f:
        f.write(line + "\n")


def _trivial_ratios(v: dict[str, Any]) -> str:
    if "opa_vs_trivial_p50" not in v or "opa_vs_trivial_throughput" not in v:
        return ""
    return (
        f", OPA direct / trivial policy: p50 {v['opa_vs_trivial_p50']['value']:.2f}x, "
        f"throughput {v['opa_vs_trivial_throughput']['value']:.2f}x"
    )


def markdown(record: dict[str, Any], files: list[str]) -> str:
    m, v = record["machine"], record["targets"]
    levels = record["plan"]["levels"]
    low, high = levels[0], levels[-1]
    lines = [
        f"# Decision speed and scale — {record['date']}{' (quick run)' if record['quick'] else ''}",
        "",
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}; Python "
        f"{m['python']}, OPA {m['opa']}, uvicorn {m['packages'].get('uvicorn')} "
        f"({m['uvicorn_http']}, {m['uvicorn_loop']} loop), git {m['git_revision']}. "
        f"Client, engine and OPA share the machine (1-minute load average "
        f"{record['loadavg_1m']['before']:g} before the run). Run took "
        f"{record['duration_s']:.0f} s; "
        f"the CLI ran in {record['cli_mode']} mode. Method: `bench/README.md`; every number: "
        f"`{files[0]}`.",
        "",
        "## Targets",
        "",
        "| target | measured | goal | met | how |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = {
        "overhead_p50_ms": ("engine p50 overhead over OPA direct", "ms", "≤"),
        "engine_vs_opa_throughput": ("engine throughput / OPA direct, most clients", "x", "≥"),
        "throughput_vs_naive": ("engine throughput / naive `opa eval`", "x", "≥"),
        "throughput_vs_naive_most": (
            f"engine throughput / naive `opa eval`, {high:,} grants",
            "x",
            "≥",
        ),
        "growth_opa": (f"decision time growth {high:,} / {low:,} grants, OPA", "x", "≤"),
        "growth_engine": (f"decision time growth {high:,} / {low:,} grants, end to end", "x", "≤"),
        "revocation_lag": ("checks allowed after revoke returned", "", "="),
        "push_p99_ms": ("push to OPA on revoke, p99", "ms", "≤"),
        "opa_vs_trivial_p50": ("OPA direct p50 / trivial policy p50, 1 client", "x", "≤"),
        "opa_vs_trivial_throughput": (
            "trivial policy throughput / OPA direct, most clients",
            "x",
            "≤",
        ),
        "rego_access_us": (f"access Rego alone (`opa bench`), {high:,} grants", "µs", "≤"),
        "monitor_opa_cpu_ms": ("OPA CPU of the alert rules per decision", "ms", "≤"),
        "jwt_remembered_x_static": ("a remembered JWT / a static token, auth CPU", "x", "≤"),
    }
    for name, (label, unit, op) in names.items():
        if name not in v:
            continue
        t = v[name]
        lines.append(
            f"| {label} | {t['value']:g} {unit} | {op} {t['target']:g} {unit} | "
            f"{'yes' if t['met'] else '**no**'} | {t['detail']} |"
        )
    pl = record["push_and_lifecycle"]
    rev = record["revocation"]
    lines += [
        f"| lifecycle throughput (request + approve, which activates) | "
        f"{pl['request_approve_per_s']:g} /s in-process, {rev['http_request_approve_per_s']:g} "
        f"/s over HTTP | reported | — | SQLite file, {pl['grants']:,} live grants, one at a time |",
    ]
    noisy = [c for c in record["cells"] if c.get("other_processes_cores", 0) > 0.2]
    if noisy:
        worst = max(noisy, key=lambda c: c["other_processes_cores"])
        lines += [
            "",
            f"Other processes competed for the machine during {len(noisy)} of "
            f"{len(record['cells'])} cells (up to {worst['other_processes_cores']:g} cores, "
            f"{worst['path']} at {worst['grants']:,} grants, {worst['concurrency']} clients): "
            "those cells read slower than the code is.",
        ]
    lines += [
        "",
        f"## Latency and throughput, {low:,} live grants, allow",
        "",
        "| path | clients | p50 ms | p90 ms | p99 ms | decisions/s | CPU µs/call: engine, OPA |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path in PATHS:
        for c in record["plan"]["concurrency"]:
            x = cell(record, path, low, c)
            if x is None or "p50_ms" not in x:
                continue
            cpu = (
                f"{x['serve_cpu_us_per_call']:,.0f}, {x['opa_cpu_us_per_call']:,.0f}"
                if path in ("trivial", "opa", "engine")
                else "—"
            )
            lines.append(
                f"| {PATHS[path]} | {c} | {x['p50_ms']:.2f} | {x['p90_ms']:.2f} | "
                f"{x['p99_ms']:.2f} | {x['throughput_per_s']:,.1f} | {cpu} |"
            )
    lines += [
        "",
        "## Scale: 1 client, allow (deny beside it)",
        "",
        "| live grants | OPA p50 / p99 ms | engine p50 / p99 ms | overhead p50 ms | "
        "deny p50 OPA / engine ms | engine /s at 32 clients | RSS engine MiB | RSS OPA MiB | "
        "push all grants s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    top = max(record["plan"]["concurrency"])
    for point in record["scale"]:
        n = point["grants"]
        o, e = cell(record, "opa", n, 1), cell(record, "engine", n, 1)
        od, ed = cell(record, "opa", n, 1, "deny"), cell(record, "engine", n, 1, "deny")
        e32 = cell(record, "engine", n, top)
        lines.append(
            f"| {n:,} | {o['p50_ms']:.2f} / {o['p99_ms']:.2f} | {e['p50_ms']:.2f} / "
            f"{e['p99_ms']:.2f} | {e['p50_ms'] - o['p50_ms']:.2f} | {od['p50_ms']:.2f} / "
            f"{ed['p50_ms']:.2f} | {e32['throughput_per_s']:,.0f} | {point['serve_rss_mib']:g} | "
            f"{point['opa_rss_mib']:g} | {point['push_all_s']:.2f} |"
        )
    naive_high = cell(record, "naive", high, 1)
    if naive_high and "p50_ms" in naive_high:
        lines += [
            "",
            f"The naive path at {high:,} grants: `opa eval` parses every grant for each "
            f"decision, p50 {naive_high['p50_ms']:,.0f} ms ({naive_high['count']} runs).",
        ]
    lines += [
        "",
        "## Revocation and the lifecycle",
        "",
        f"- {rev['cycles']} grants made and revoked through the API at {rev['grants']:,} live "
        f"grants: {rev['allowed_before_revoke']} allowed before revoke; after `revoke` returned, "
        f"the next check allowed {rev['allowed_after_revoke']['engine']} times through the "
        f"engine and {rev['allowed_after_revoke']['opa']} times at OPA directly.",
        f"- `POST /v1/grants/{{id}}/revoke` (decision, SQLite transaction, audit, push): "
        f"p50 {rev['revoke_ms']['p50']:.1f} ms, p99 {rev['revoke_ms']['p99']:.1f} ms. The push "
        f"alone (one subject's live grants to OPA, as `Grants.apply` does, in-process): "
        f"p50 {pl['push_ms']['p50']:.2f} ms, p99 "
        f"{pl['push_ms']['p99']:.2f} ms.",
        f"- Over HTTP: request p50 {rev['request_ms']['p50']:.1f} ms, approve p50 "
        f"{rev['approve_ms']['p50']:.1f} ms. In-process: request p50 "
        f"{pl['lifecycle_request_ms']['p50']:.1f} ms, approve (activates, pushes) p50 "
        f"{pl['lifecycle_approve_ms']['p50']:.1f} ms, revoke p50 "
        f"{pl['lifecycle_revoke_ms']['p50']:.1f} ms.",
    ]
    rego = record.get("rego_bench")
    if rego:
        small, large = rego["results"]
        lines += [
            "",
            "## Rego micro-benchmark (`opa bench`, no HTTP)",
            "",
            f"Access decision: {small['ns_per_op_median'] / 1000:.0f} µs at {small['grants']:,} "
            f"grants, {large['ns_per_op_median'] / 1000:.0f} µs at {large['grants']:,} "
            f"(ratio {rego['ratio_large_to_small']:.2f}){_floor(rego)}; "
            f"`rego-access-{rego['date']}.json`.",
        ]
    gateway = record.get("gateway")
    if gateway:
        lines += ["", "## Through a gateway (nginx auth_request)", ""]
        if "skipped" in gateway:
            lines.append(f"Not measured: {gateway['skipped']}.")
        else:
            direct, gated = gateway["direct"], gateway["gateway"]
            lines += [
                "| path | p50 ms | p99 ms |",
                "| --- | --- | --- |",
                f"| nginx → upstream | {direct['p50_ms']:.2f} | {direct['p99_ms']:.2f} |",
                f"| nginx → DataVisa → upstream | {gated['p50_ms']:.2f} | {gated['p99_ms']:.2f} |",
                f"| added by asking DataVisa | {gateway['added_p50_ms']:.2f} | "
                f"{gateway['added_p99_ms']:.2f} |",
            ]
            if "sidecar" in gateway:  # records from before the gateway plugin have none
                side = gateway["sidecar"]
                lines += [
                    f"| nginx → sidecar plugin → upstream | {side['p50_ms']:.2f} | "
                    f"{side['p99_ms']:.2f} |",
                    f"| added by the sidecar plugin | {gateway['sidecar_added_p50_ms']:.2f} | "
                    f"{gateway['sidecar_added_p99_ms']:.2f} |",
                ]
            lines += [
                "",
                f"{gateway['count']:,} sequential requests each, one client, alternating, "
                f"at {gateway['grants']:,} live grants (examples/nginx/nginx.conf, "
                "bench/gateway_bench.py).",
            ]
            lines += grpc_lines(gateway.get("grpc"))
    lines += transfer_bench.markdown(record.get("transfer_check"))
    lines += fleet_lines(record.get("fleet"))
    if record.get("store"):
        lines += store_bench.markdown(record["store"])
    lines += postgresql_lines(record.get("postgresql"))
    lines += mariadb_lines(record.get("mariadb"))
    lines += supervision_bench.markdown(record.get("supervision"))
    lines += console_bench.markdown_section(record.get("console"))
    lines += [
        "",
        "## Plots",
        "",
        f"![latency vs live grants]({files[2]})",
        "",
        f"![latency distribution per path]({files[3]})",
        "",
    ]
    return "\n".join(lines)


# -- plots ------------------------------------------------------------------------------


def plot_scale(record: dict[str, Any], target: Path) -> None:
    levels = record["plan"]["levels"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 6.2), constrained_layout=True)
    for path in PATHS:
        points = [(n, cell(record, path, n, 1)) for n in levels]
        points = [(n, c) for n, c in points if c and "p50_ms" in c]
        if not points:
            continue
        xs = [n for n, _ in points]
        style = {"color": COLOURS[path], "marker": "o"}
        left.plot(xs, [c["p50_ms"] for _, c in points], label=f"{PATHS[path]}, p50", **style)
        left.plot(
            xs, [c["p99_ms"] for _, c in points], linestyle="--", alpha=0.7, **style,
            label="p99",
        )  # fmt: skip
    left.set(
        xscale="log",
        yscale="log",
        xlabel="live grants in OPA",
        ylabel="latency per decision, ms (log)",
        title="Latency vs live grants, 1 client",
        xticks=levels,
        xticklabels=[f"{n:,}" for n in levels],
    )
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    for path in ("opa", "engine"):
        for c, dash in zip(record["plan"]["concurrency"], ("-", "--", ":"), strict=False):
            ys = [cell(record, path, n, c)["throughput_per_s"] for n in levels]
            right.plot(
                levels, ys, color=COLOURS[path], linestyle=dash, marker="o",
                label=f"{PATHS[path].split(',')[0]}, {c} client{'s' if c > 1 else ''}",
            )  # fmt: skip
    right.set(
        xscale="log",
        xlabel="live grants in OPA",
        ylabel="decisions per second",
        title="Throughput vs live grants",
        xticks=levels,
        xticklabels=[f"{n:,}" for n in levels],
        ylim=(0, None),
    )
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    fig.suptitle(
        f"DataVisa access decision on {record['machine']['cores']} cores, {record['date']}"
    )
    fig.savefig(target, dpi=110)
    plt.close(fig)


def plot_distribution(record: dict[str, Any], samples: dict, target: Path) -> None:
    low = record["plan"]["levels"][0]
    conc = record["plan"]["concurrency"]
    fig, axes = plt.subplots(1, len(conc), figsize=(5 * len(conc), 4.6), sharey=True,
                             constrained_layout=True)  # fmt: skip
    for ax, c in zip(axes, conc, strict=True):
        for path in PATHS:
            values = sorted(samples.get((path, low, c, "allow"), []))
            if not values:
                continue
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, ys, where="post", color=COLOURS[path],
                    label=f"{PATHS[path]} (n={len(values)})")  # fmt: skip
        ax.set(
            xscale="log",
            xlabel="latency, ms (log)",
            title=f"{c} client{'s' if c > 1 else ''}",
            ylim=(0, 1.02),
        )
        ax.grid(True, which="both", alpha=0.3)
        for q in (0.5, 0.99):
            ax.axhline(q, color="grey", linewidth=0.6, linestyle=":")
    axes[0].set_ylabel("fraction of decisions answered within")
    axes[0].legend(fontsize=7.5, loc="lower right")
    fig.suptitle(f"Latency distribution per path (ECDF), {low:,} live grants, allow — "
                 f"dotted lines: p50, p99")  # fmt: skip
    fig.savefig(target, dpi=110)
    plt.close(fig)

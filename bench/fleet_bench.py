"""Fleet propagation after a revoke: how long until every sidecar OPA denies.

One `datavisa serve` (SQLite) whose `fleet.opas` names three sidecar OPAs, each a real
OPA process started from `datavisa opa-config` (long polling, 10 s), on loopback. Each
round makes a grant (request + approve), checks that every sidecar allows, then revokes
it while one thread a sidecar asks that sidecar the access check again and again (one
keep-alive connection each, 2 ms apart) and notes when it first denies. Recorded:

- `revoke_ms`: the revoke call, from sending it to its answer. It answers once every
  sidecar's status report confirmed the grants revision without the grant (or after
  `confirm_within`, with 202): propagation measured from the status reports;
- `all_deny_ms`: from sending the revoke until the last sidecar denied, from probing;
- `allowed_after_answer_ms`: how long after the answer a probe was sent that a sidecar
  still allowed (0 when every probe sent after revoke answered was denied).

Probing loads the machine (each probe is a decision the sidecar uploads to the engine's
log), so rounds alternate: unprobed rounds give `revoke_ms` (and check every sidecar
denies at the answer), probed rounds the rest.

    .venv/bin/python bench/fleet_bench.py --rounds 20    # alone, printing JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import percentile

from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.policy.process import find_opa, free_port

DATAVISA = Path(sys.executable).with_name("datavisa")
OPAS = ("bench-opa-1", "bench-opa-2", "bench-opa-3")
RESOURCE = "eu-customer-analytics"
CHECK = {"subject": "alice", "resource": RESOURCE, "action": "read", "location": "DE"}
START_TIMEOUT_S = 60.0
PROBE_GAP_S = 0.002


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if condition():
                return
        time.sleep(0.05)
    raise RuntimeError(f"gave up waiting for {what}")


@contextlib.contextmanager
def _fleet(
    work: Path, deltas: bool, opas: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """serve with three sidecars: (server URL, user tokens, sidecar URLs)."""
    db = work / "fleet.db"
    store = TokenStore(db)
    tokens = {who: store.issue(who)[0] for who in ("alice", "bob")}
    store.close()
    url = f"http://127.0.0.1:{free_port()}"
    config = work / "fleet-serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": url.removeprefix("http://"),
                "database": str(db),
                "sweep_every": "1h",
                "fleet": {
                    "opas": list(opas),
                    "confirm_within": "5s",
                    "long_poll": "10s",
                    "deltas": deltas,
                },
            }
        )
    )
    procs: list[subprocess.Popen] = []
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}
    try:
        with (work / "fleet-serve.log").open("w") as log:
            serve = [str(DATAVISA), "serve", "--config", str(config)]
            procs.append(subprocess.Popen(serve, **quiet, stderr=log))
        _wait(lambda: requests.get(url + "/health", timeout=2).ok, "the fleet's serve")
        sidecars = []
        for name in opas:
            opa_config = [str(DATAVISA), "opa-config", name, "--server", url, "--db", str(db)]
            made = subprocess.run(opa_config, capture_output=True, text=True, check=True)
            (work / f"{name}.yaml").write_text(made.stdout)
            port = free_port()
            run = [str(find_opa()), "run", "--server", "--addr", f"127.0.0.1:{port}"]
            run += ["--config-file", str(work / f"{name}.yaml"), "--log-level", "error"]
            procs.append(subprocess.Popen(run, **quiet, stderr=subprocess.DEVNULL))
            sidecar = f"http://127.0.0.1:{port}"
            _wait(lambda s=sidecar: requests.get(s + "/health?bundles=true").ok, name)
            sidecars.append(sidecar)
        _wait(lambda: requests.get(url + "/health", timeout=2).ok, "the fleet to be confirmed")
        yield url, tokens, sidecars
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _allows(session: requests.Session, sidecar: str) -> bool | None:
    """What `sidecar` answers the access check: None when the decision is undefined."""
    answer = session.post(
        sidecar + "/v1/data/datavisa/access/decision", json={"input": CHECK}, timeout=5
    )
    result = answer.json().get("result")
    return result.get("allow") if isinstance(result, dict) else None


def _probe(
    go: threading.Event,
    session: requests.Session,
    sidecar: str,
    first_deny: list[float | None],
    last_allow_sent: list[float],
    i: int,
    undefined: Counter[int],
) -> None:
    """Once `go` is set, ask `sidecar` until it denies: note when its first deny came back
    (first_deny[i]) and when the last probe that was allowed was sent (last_allow_sent[i]),
    and count the answers that were undefined (no decision) on the way."""
    go.wait()
    deadline = time.perf_counter() + 10
    while (sent := time.perf_counter()) < deadline:
        allowed = _allows(session, sidecar)
        if allowed is False:
            first_deny[i] = time.perf_counter()
            return
        if allowed is None:
            undefined[i] += 1
        else:
            last_allow_sent[i] = sent
        time.sleep(PROBE_GAP_S)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50), 2),
        "p99": round(percentile(ordered, 99), 2),
        "max": round(ordered[-1], 2),
    }


def measure(work: Path, rounds: int, deltas: bool = False, opas: int = 3) -> dict[str, Any]:
    """`rounds` grant-then-revoke rounds against `opas` sidecars; the figures in ms. With
    `deltas`, the server sends delta bundles (fleet.deltas)."""
    work = work / f"fleet-{opas}{'-deltas' if deltas else ''}"
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    with _fleet(work, deltas, OPAS[:opas]) as (url, tokens, sidecars):
        api = requests.Session()
        sessions = [requests.Session() for _ in sidecars]
        revoke_ms, probed_revoke_ms, all_deny_ms, after_ms = [], [], [], []
        late: Counter[int] = Counter()  # unprobed rounds: sidecars not denying at the answer
        answers: Counter[int] = Counter()
        undefined: Counter[int] = Counter()
        for round_ in range(rounds * 2):
            req = api.post(
                url + "/v1/requests",
                json={"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "b"},
                headers={"Authorization": f"Bearer {tokens['alice']}"},
                timeout=30,
            ).json()
            auth = {"Authorization": f"Bearer {tokens['bob']}"}
            approved = api.post(f"{url}/v1/requests/{req['id']}/approve", json={}, headers=auth)
            assert approved.status_code == 200, approved.text
            assert all(_allows(s, c) is True for s, c in zip(sessions, sidecars, strict=True))
            probed = round_ % 2 == 1  # every other round: probing loads the machine
            first_deny: list[float | None] = [None] * len(sidecars)
            last_allow_sent = [0.0] * len(sidecars)
            go = threading.Event()
            threads = [
                threading.Thread(
                    target=_probe,
                    args=(go, sessions[i], sidecars[i], first_deny, last_allow_sent, i, undefined),
                )
                for i in range(len(sidecars) if probed else 0)
            ]
            for thread in threads:
                thread.start()
            started = time.perf_counter()
            go.set()
            revoked = api.post(f"{url}/v1/grants/{req['id']}/revoke", json={}, headers=auth)
            answered = time.perf_counter()
            answers[revoked.status_code] += 1
            if not probed:
                revoke_ms.append((answered - started) * 1000)
                denied = [_allows(s, c) for s, c in zip(sessions, sidecars, strict=True)]
                late[0] += sum(allowed is not False for allowed in denied)
                continue
            for thread in threads:
                thread.join(15)
            if any(t is None for t in first_deny):
                raise RuntimeError("a sidecar still allowed 10 s after the revoke")
            last = max(t for t in first_deny if t is not None)
            probed_revoke_ms.append((answered - started) * 1000)
            all_deny_ms.append((last - started) * 1000)
            after_ms.append(max(0.0, max(last_allow_sent) - answered) * 1000)
        return {
            "opas": len(sidecars),
            "rounds": rounds,
            "long_poll_s": 10,
            "revoke_ms": _summary(revoke_ms),
            "not_denying_at_answer": late[0],
            "probed_revoke_ms": _summary(probed_revoke_ms),
            "all_deny_ms": _summary(all_deny_ms),
            "allowed_after_answer_ms": _summary(after_ms),
            "revoke_answers": {str(k): v for k, v in sorted(answers.items())},
            "undefined_answers": sum(undefined.values()),
            "deltas": deltas,
            # the machine's 1-minute load average before and after: the figures scale with it
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--deltas", action="store_true", help="serve delta bundles")
    parser.add_argument("--opas", type=int, default=3, choices=range(1, len(OPAS) + 1))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datavisa-fleet-bench-") as tmp:
        print(json.dumps(measure(Path(tmp), args.rounds, args.deltas, args.opas), indent=1))


if __name__ == "__main__":
    main()

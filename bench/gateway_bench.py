"""What asking DataVisa adds at the gateway: nginx → upstream against nginx → DataVisa →
upstream and nginx → a sidecar OPA's gateway plugin → upstream, in the same run, on
loopback.

Every nginx runs examples/nginx/nginx.conf; the direct one without its `auth_request`
line, so the only difference is the question to DataVisa. The sidecar (the project's OPA
with tools/opa/gateway, fed by serve's bundle service as `datavisa opa-config` sets one
up) believes only a gateway's identity header, so its nginx names the benchmarked subject
in X-Auth-Request-User, standing in for the gateway's own sign-in; the engine's nginx
passes the user's token on, as the example does. One client, sequential keep-alive GETs,
alternating between them so that all see the same machine. The client is 127.0.0.1,
which the serve config the bench starts maps to Germany (bench/fixtures.py), and so does
the sidecar's, where the benchmarked grant allows.

Then the sidecar's Envoy ext_authz v3 gRPC Check, asked by ghz (a gRPC load generator
built from its Go module by `make setup`) with the CheckRequest Envoy sends for the same
request: p50 at one client, and Checks a second at 32.

    .venv/bin/python bench/gateway_bench.py [--count N]   # these rows alone, printed
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml
from fixtures import SERVICE_SUBJECT, SUBJECT, Served

from datavisa.cli.fleet import sidecar_config
from datavisa.engine.api.tokens import OPA, TokenStore
from datavisa.engine.policy.process import find_opa, free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout
TOOLS = PROJECT_ROOT / ".tools" / "bin"
CHECK = "envoy.service.auth.v3.Authorization/Check"
TEMPLATE = PROJECT_ROOT / "examples" / "nginx" / "nginx.conf"
HOST = "analytics.localhost"  # the shipped route to the benchmarked resource
START_TIMEOUT_S = 20.0


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx's upstream is

    def do_GET(self) -> None:  # the stdlib names it
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def _upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _nginx(
    binary: str, work: Path, name: str, values: dict[str, str], ask: bool, names: str = ""
) -> Iterator[int]:
    port, prefix = free_port(), work / f"nginx-{name}"
    prefix.mkdir()
    text = TEMPLATE.read_text()
    for key, value in (values | {"PREFIX": str(prefix), "LISTEN": f"127.0.0.1:{port}"}).items():
        text = text.replace(f"@{key}@", value)
    if not ask:
        text = text.replace("auth_request /_datavisa;", "")
    if names:  # the subject the gateway signed in, in the identity header it asks with
        head, sep, tail = text.partition("location = /_datavisa {")
        dropped = 'proxy_set_header X-Auth-Request-User "";'
        text = (
            head + sep + tail.replace(dropped, f'proxy_set_header X-Auth-Request-User "{names}";')
        )
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx ({name}) did not start: {(prefix / 'error.log')}")
            time.sleep(0.05)
        yield port
    finally:
        stop_process(proc, 10)


@contextlib.contextmanager
def _sidecar(srv: Served, work: Path, gateway_token: str) -> Iterator[tuple[str, str]]:
    """A sidecar OPA with the gateway plugin, fed by `srv`, once it allows the grant: the
    plugin's HOST:PORT over HTTP, and over gRPC (ext_authz)."""
    store = TokenStore(srv.db)
    try:
        opa_token, _ = store.issue("bench-edge", OPA)
    finally:
        store.close()
    port, plugin, grpc = free_port(), free_port(), free_port()
    config = sidecar_config(srv.url, "bench-edge", opa_token, 10)
    config["plugins"] = {
        "datavisa_gateway": {
            "addr": f"127.0.0.1:{plugin}",
            "grpc_addr": f"127.0.0.1:{grpc}",
            "credentials": {hashlib.sha256(gateway_token.encode()).hexdigest(): SERVICE_SUBJECT},
            "networks": {"127.0.0.1/32": "DE"},
        }
    }
    path = work / "bench-edge.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [str(find_opa()), "run", "--server", "--addr", f"127.0.0.1:{port}",
         "--config-file", str(path), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    ask = {
        "X-DataVisa-Gateway-Token": gateway_token, "X-Auth-Request-User": SUBJECT,
        "X-Original-Method": "GET", "X-Original-Host": HOST, "X-Original-URI": "/",
    }  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                url = f"http://127.0.0.1:{plugin}/v1/authz/nginx"
                if requests.get(url, headers=ask, timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the sidecar did not come to allow the benchmarked grant")
            time.sleep(0.1)
        yield f"127.0.0.1:{plugin}", f"127.0.0.1:{grpc}"
    finally:
        stop_process(proc, 10)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def measure(srv: Served, work: Path, count: int) -> dict[str, Any]:
    """p50 and p99 of each path and what DataVisa adds; {"skipped": why} without nginx."""
    binary = shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/bin")
    if binary is None:
        return {"skipped": "nginx is not installed (make setup installs it as root)"}
    headers = {"Host": HOST, **srv.auth(SUBJECT)}
    with _upstream() as upstream:
        values = {
            "UPSTREAM": upstream,
            "DATAVISA": srv.url.removeprefix("http://"),
            "GATEWAY_TOKEN": srv.tokens[SERVICE_SUBJECT],
        }
        with (
            _sidecar(srv, work, srv.tokens[SERVICE_SUBJECT]) as (edge, grpc),
            _nginx(binary, work, "direct", values, ask=False) as direct,
            _nginx(binary, work, "datavisa", values, ask=True) as gated,
            _nginx(binary, work, "sidecar", values | {"DATAVISA": edge}, True, SUBJECT) as side,
            requests.Session() as session,
        ):
            urls = {
                "direct": f"http://127.0.0.1:{direct}/",
                "gateway": f"http://127.0.0.1:{gated}/",
                "sidecar": f"http://127.0.0.1:{side}/",
            }
            took: dict[str, list[float]] = {name: [] for name in urls}
            for i in range(count + 50):  # the first 50 warm connections and caches
                for name, url in urls.items():
                    started = time.perf_counter()
                    status = session.get(url, headers=headers, timeout=10).status_code
                    elapsed = (time.perf_counter() - started) * 1000
                    if status != 200:
                        raise RuntimeError(f"{name}: {url} answered {status}, not 200")
                    if i >= 50:
                        took[name].append(elapsed)
            grpc_cells = _grpc_checks(grpc, srv.tokens[SERVICE_SUBJECT], count)
    cells = {
        name: {"p50_ms": round(_pct(v, 50), 3), "p99_ms": round(_pct(v, 99), 3)}
        for name, v in took.items()
    }
    return {
        "count": count,
        **cells,
        "added_p50_ms": round(cells["gateway"]["p50_ms"] - cells["direct"]["p50_ms"], 3),
        "added_p99_ms": round(cells["gateway"]["p99_ms"] - cells["direct"]["p99_ms"], 3),
        # nginx → the sidecar's gateway plugin → upstream, against the same direct path
        "sidecar_added_p50_ms": round(cells["sidecar"]["p50_ms"] - cells["direct"]["p50_ms"], 3),
        "sidecar_added_p99_ms": round(cells["sidecar"]["p99_ms"] - cells["direct"]["p99_ms"], 3),
        # the sidecar's ext_authz gRPC Check, without a proxy in front (ghz is the proxy)
        "grpc": grpc_cells,
    }


def _check_request(gateway_token: str) -> dict[str, Any]:
    """The CheckRequest Envoy sends for a GET of HOST/ by the benchmarked subject, signed
    in by the gateway (its credential and identity header), from 127.0.0.1."""
    return {
        "attributes": {
            "source": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 40000}}},
            "request": {
                "http": {
                    "method": "GET", "host": HOST, "path": "/",
                    "headers": {
                        "x-datavisa-gateway-token": gateway_token, "x-auth-request-user": SUBJECT,
                    },
                }
            },
        }
    }  # fmt: skip


def _grpc_checks(addr: str, gateway_token: str, count: int) -> dict[str, Any]:
    """ext_authz Check p50 at one client and Checks a second at 32, by ghz; {"skipped":
    why} without ghz. One Check by grpcurl first: the request must be an allow."""
    ghz, grpcurl = TOOLS / "ghz", TOOLS / "grpcurl"
    if not ghz.exists() or not grpcurl.exists():
        return {"skipped": "ghz or grpcurl is not built (make setup builds them with Go)"}
    request = json.dumps(_check_request(gateway_token))
    first = subprocess.run(
        [str(grpcurl), "-plaintext", "-format", "json", "-d", "@", addr, CHECK],
        input=request, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    if "okResponse" not in json.loads(first.stdout):
        raise RuntimeError(f"the benchmarked Check is not an allow: {first.stdout[:300]}")

    def run(clients: int, total: int) -> dict[str, Any]:
        done = subprocess.run(
            [str(ghz), "--insecure", "--call", CHECK, "-d", request, "-n", str(total),
             "-c", str(clients), "--format", "json", addr],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        got = json.loads(done.stdout)
        if set(got.get("statusCodeDistribution", {})) != {"OK"}:
            raise RuntimeError(f"ext_authz Check failed: {got.get('errorDistribution')}")
        at = {row["percentage"]: row["latency"] / 1e6 for row in got["latencyDistribution"]}
        return {"count": got["count"], "p50_ms": round(at[50], 3), "p99_ms": round(at[99], 3),
                "per_s": round(got["rps"])}  # fmt: skip

    run(1, 200)  # warm the connection and the prepared query
    return {"1": run(1, count), "32": run(32, max(count * 2, 2000))}


def main() -> None:
    """These rows alone, against a `datavisa serve` of their own (bench/fixtures.py)."""
    import tempfile

    import fixtures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="requests through each path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datavisa-gateway-") as tmp:
        work = Path(tmp)
        with fixtures.served(work) as srv:
            fixtures.real_grant(srv)
            print(json.dumps(measure(srv, work, args.count), indent=1))


if __name__ == "__main__":
    main()

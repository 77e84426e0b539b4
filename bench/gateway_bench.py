"""What asking DataVisa adds at the gateway: nginx → upstream against nginx → DataVisa →
upstream, in the same run, on loopback.

Both nginx instances run examples/nginx/nginx.conf; the direct one without its
`auth_request` line, so the only difference is the question to DataVisa. One client,
sequential keep-alive GETs, alternating between the two so that both see the same machine.
The client is 127.0.0.1, which the serve config the bench starts maps to Germany
(bench/fixtures.py), where the benchmarked grant allows.
"""

from __future__ import annotations

import contextlib
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
from fixtures import SERVICE_SUBJECT, SUBJECT, Served

from datavisa.engine.policy.process import free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout
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
def _nginx(binary: str, work: Path, name: str, values: dict[str, str], ask: bool) -> Iterator[int]:
    port, prefix = free_port(), work / f"nginx-{name}"
    prefix.mkdir()
    text = TEMPLATE.read_text()
    for key, value in (values | {"PREFIX": str(prefix), "LISTEN": f"127.0.0.1:{port}"}).items():
        text = text.replace(f"@{key}@", value)
    if not ask:
        text = text.replace("auth_request /_datavisa;", "")
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
            _nginx(binary, work, "direct", values, ask=False) as direct,
            _nginx(binary, work, "datavisa", values, ask=True) as gated,
            requests.Session() as session,
        ):
            urls = {
                "direct": f"http://127.0.0.1:{direct}/",
                "gateway": f"http://127.0.0.1:{gated}/",
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
    cells = {
        name: {"p50_ms": round(_pct(v, 50), 3), "p99_ms": round(_pct(v, 99), 3)}
        for name, v in took.items()
    }
    return {
        "count": count,
        **cells,
        "added_p50_ms": round(cells["gateway"]["p50_ms"] - cells["direct"]["p50_ms"], 3),
        "added_p99_ms": round(cells["gateway"]["p99_ms"] - cells["direct"]["p99_ms"], 3),
    }

"""Debian's nginx (auth_request) and Caddy (forward_auth), each on a free loopback port
running the shipped example config (examples/nginx, examples/caddy), in front of a small
upstream, asking DataVisa: what a client behind a real gateway gets."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from live_server import Api, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.config import GatewayConfig
from datavisa.engine.api.service import Service
from datavisa.engine.paths import PROJECT_ROOT
from datavisa.engine.policy.process import free_port, stop_process

EXAMPLES = PROJECT_ROOT / "examples"
HOST = "analytics.localhost"  # the shipped route to eu-customer-analytics
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
# The client's country comes from its address: 127.0.0.1 is in Germany, 127.0.0.2 in the US.
NETWORKS = GatewayConfig(
    networks=(
        (ipaddress.ip_network("127.0.0.1/32"), "DE"),
        (ipaddress.ip_network("127.0.0.2/32"), "US"),
    )
)


class _Echo(BaseHTTPRequestHandler):
    """The upstream: answers 200 with the headers it received, as JSON."""

    def do_GET(self) -> None:  # the stdlib names it
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def datavisa(service: Service) -> Iterator[Api]:
    live = Service(service.engine, service.tokens, gateway=NETWORKS)
    with uvicorn_thread(create_app(live)) as url:
        yield Api(url, live)
    live.close()


def _binary(name: str) -> str:
    found = shutil.which(name, path=SBIN)
    if found is None:
        pytest.skip(
            f"{name} is not installed (make setup installs it as root: apt-get install {name})"
        )
    return found


def _render(template: Path, out: Path, **values: str) -> Path:
    text = template.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    assert "@" not in text, "a placeholder is left unfilled"
    out.write_text(text)
    return out


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"{what} exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


@contextlib.contextmanager
def _running(
    cmd: list[str], port: int, what: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        _wait_listening(port, proc, what)
        yield
    finally:
        stop_process(proc, 10)


@pytest.fixture
def nginx(tmp_path: Path, upstream: str, datavisa: Api) -> Iterator[int]:
    binary = _binary("nginx")
    token, _ = datavisa.service.tokens.issue("edge-nginx", "service")
    port, prefix = free_port(), tmp_path / "nginx"
    prefix.mkdir()
    conf = _render(
        EXAMPLES / "nginx" / "nginx.conf",
        prefix / "nginx.conf",
        PREFIX=str(prefix),
        LISTEN=f"127.0.0.1:{port}",
        UPSTREAM=upstream,
        DATAVISA=datavisa.url.removeprefix("http://"),
        GATEWAY_TOKEN=token,
    )
    # As root, nginx's workers run as nobody; they write nothing, only connect.
    cmd = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    with _running(cmd, port, "nginx"):
        yield port


@pytest.fixture
def caddy(tmp_path: Path, upstream: str, datavisa: Api) -> Iterator[int]:
    binary = _binary("caddy")
    token, _ = datavisa.service.tokens.issue("edge-caddy", "service")
    port, prefix = free_port(), tmp_path / "caddy"
    prefix.mkdir()
    conf = _render(
        EXAMPLES / "caddy" / "Caddyfile",
        prefix / "Caddyfile",
        PREFIX=str(prefix),
        PORT=str(port),
        UPSTREAM=upstream,
        DATAVISA=datavisa.url.removeprefix("http://"),
        GATEWAY_TOKEN=token,
    )
    home = {"HOME": str(prefix), "XDG_DATA_HOME": str(prefix), "XDG_CONFIG_HOME": str(prefix)}
    cmd = [binary, "run", "--config", str(conf), "--adapter", "caddyfile"]
    with _running(cmd, port, "caddy", env={**os.environ, **home}):
        yield port


def _get(
    port: int, token: str, source: str = "127.0.0.1", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """GET /reports through the gateway as a client at `source`, with its DataVisa token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(
            "GET",
            "/reports?q=1",
            headers={"Host": HOST, "Authorization": f"Bearer {token}"} | headers,
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
def test_a_real_gateway_enforces_the_grant_and_its_revoke(request, datavisa, gateway):
    port = request.getfixturevalue(gateway)
    alice = datavisa.as_("alice").token
    status, headers, _ = _get(port, alice)
    assert status == 403, "no grant yet"
    assert headers.get("x-datavisa-reasons") == "no_active_grant"

    grant = datavisa.grant("alice")
    status, _, body = _get(port, alice)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["x-datavisa-grant-id"] == grant["id"]
    assert seen["x-datavisa-subject"] == "alice"
    assert seen["x-datavisa-expires-at"].endswith("Z")
    assert seen["x-datavisa-decision-id"]

    status, headers, _ = _get(port, alice, source="127.0.0.2")
    assert status == 403, "the grant covers Germany, not the US"
    assert "location_not_permitted" in headers.get("x-datavisa-reasons", "")

    revoked = datavisa.as_("bob").post(f"/v1/grants/{grant['id']}/revoke", {"reason": "done"})
    assert revoked.status_code == 200, revoked.text
    status, _, _ = _get(port, alice)
    assert status == 403, "the very next request after the revoke"


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
def test_a_client_cannot_name_itself_or_its_country_through_the_example(request, datavisa, gateway):
    port = request.getfixturevalue(gateway)
    datavisa.grant("alice")
    bob = datavisa.as_("bob").token
    # bob claims to be alice and to be in Germany: the example strips both headers.
    status, headers, _ = _get(
        port, bob, source="127.0.0.2", **{"X-Auth-Request-User": "alice", "X-Client-Country": "DE"}
    )
    assert status == 403
    reasons = headers.get("x-datavisa-reasons", "").split(",")
    assert "no_active_grant" in reasons, "judged as bob, who holds no grant"
    (judged,) = datavisa.service.engine.log.query(path="datavisa/access/decision", allow=False)
    asked = judged["input"]
    assert (asked["subject"], asked["location"]) == ("bob", "US"), "from where bob is"

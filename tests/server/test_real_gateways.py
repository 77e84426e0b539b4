"""Debian's nginx (auth_request) and Caddy (forward_auth), each on a free loopback port
running the shipped example config (examples/nginx, examples/caddy), in front of a small
upstream, asking DataVisa: what a client behind a real gateway gets."""

from __future__ import annotations

import contextlib
import dataclasses
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
from hostile import CANONICAL, NOT_CANONICAL, example_gateway, example_location, raw_request
from hostile import HOST as DOCS_HOST
from live_server import Api, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.policy.process import free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout
EXAMPLES = PROJECT_ROOT / "examples"
HOST = "analytics.localhost"  # the shipped route to eu-customer-analytics
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
# The gateway section the examples pair with (examples/datavisa.yaml), where the client's
# country comes from its address: 127.0.0.1 is in Germany, 127.0.0.2 in the US.
GATEWAY = example_gateway()
LOCATION = dataclasses.replace(
    example_location(),
    networks=(
        (ipaddress.ip_network("127.0.0.1/32"), "DE"),
        (ipaddress.ip_network("127.0.0.2/32"), "US"),
    ),
)


class _Echo(BaseHTTPRequestHandler):
    """The upstream: answers 200 with the headers it received, as JSON, and keeps the
    request targets it was sent (`server.seen`)."""

    def do_GET(self) -> None:  # the stdlib names it
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def echo() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def upstream(echo: ThreadingHTTPServer) -> str:
    return f"127.0.0.1:{echo.server_address[1]}"


@pytest.fixture
def datavisa(service: Service) -> Iterator[Api]:
    live = Service(service.engine, service.tokens, gateway=GATEWAY, location=LOCATION)
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


def _spoofed(name: str) -> str:
    """What a client writes in a trusted header to be someone, somewhere, else."""
    return {
        GATEWAY.credential_header: "not-the-gateways-token",
        GATEWAY.country_header: "DE",
        "x-forwarded-for": "127.0.0.1",  # Germany, in these networks
    }.get(name, "alice")


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
def test_no_header_the_engine_trusts_passes_from_a_client(request, datavisa, echo, gateway):
    """Every header examples/datavisa.yaml names (credential, identity, country) and
    X-Forwarded-For, sent by a client at 127.0.0.2 (the US): the decision is still about
    bob in the US, and none of them reaches the upstream as the client wrote it."""
    port = request.getfixturevalue(gateway)
    trusted = GATEWAY.trusted_headers
    assert {GATEWAY.country_header, "x-forwarded-for"} <= set(trusted)
    datavisa.grant("alice")  # from Germany
    bob = datavisa.as_("bob").token
    log = datavisa.service.engine.log
    for name in trusted:
        status, _, body = _get(port, bob, source="127.0.0.2", **{name: _spoofed(name)})
        assert status == 403, (name, body)
        judged = log.query(path="datavisa/access/decision", allow=False)[-1]["input"]
        assert (judged["subject"], judged["location"]) == ("bob", "US"), name

    alice = datavisa.as_("alice").token
    everything = {name: _spoofed(name) for name in trusted} | {GATEWAY.country_header: "US"}
    everything |= {name: "mallory" for name in GATEWAY.identity_headers}
    status, _, body = _get(port, alice, **everything)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["x-datavisa-subject"] == "alice"
    for name in trusted:
        if name != "x-forwarded-for":
            assert name not in seen, f"{name} reached the upstream"
    assert seen["x-forwarded-for"] == "127.0.0.1", "the address the gateway saw, only"
    assert echo.seen


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
def test_a_path_is_judged_only_in_its_canonical_form_through_the_example(
    request, datavisa, echo, gateway
):
    port = request.getfixturevalue(gateway)
    sent = {"Host": DOCS_HOST, "Authorization": f"Bearer {datavisa.as_('alice').token}"}
    assert raw_request(port, CANONICAL, sent)[0] == 200, "public docs are open to alice"
    assert echo.seen == [CANONICAL]
    for path in NOT_CANONICAL:
        status, headers, _ = raw_request(port, path, sent)
        # The gateway may refuse it itself (400); if it asks, DataVisa says why.
        assert status in (400, 403), (path, status)
        if status == 403:
            assert headers.get("x-datavisa-reasons") == "path_not_canonical", path
    assert echo.seen == [CANONICAL], "none of them reached the upstream"


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
def test_a_method_override_the_route_does_not_map_is_denied_through_the_example(
    request, datavisa, echo, gateway
):
    port = request.getfixturevalue(gateway)
    sent = {"Host": DOCS_HOST, "Authorization": f"Bearer {datavisa.as_('alice').token}"}
    for path, extra in [
        (CANONICAL, {"X-HTTP-Method-Override": "DELETE"}),
        (CANONICAL, {"X-HTTP-Method": "PUT"}),
        (CANONICAL + "?_method=DELETE", {}),
    ]:
        status, headers, _ = raw_request(port, path, sent | extra)
        assert status == 403, (path, extra)
        assert headers.get("x-datavisa-reasons") == "method_override_not_routed", (path, extra)
    assert echo.seen == []

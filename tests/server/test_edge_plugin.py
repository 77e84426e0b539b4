"""The sidecar OPA's gateway plugin (tools/opa/gateway) against the engine's own gateway
endpoints: one table of requests, each answered alike by both, asked directly and through
Debian's nginx and Caddy running the shipped examples.

The sidecar is a real OPA of the project's build, its policy bundle the one a fleet gets,
its grants from the engine's bundle service (long polling) and its decisions uploaded to
the engine's decision log. The gateways authenticate the person themselves (HTTP basic
auth here, as oauth2-proxy or an IdP would) and pass on the identity header with their
credential: the one way a sidecar, which cannot ask the engine's token store, learns who
asks.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hostile import CANONICAL, NOT_CANONICAL, raw_request
from hostile import HOST as DOCS_HOST
from live_server import Api, uvicorn_thread, wait_for
from test_real_gateways import (  # the same gateway, upstream and location as there
    EXAMPLES,
    GATEWAY,
    HOST,
    LOCATION,
    _binary,
    _render,
    _running,
    echo,  # noqa: F401 (a fixture)
    upstream,  # noqa: F401 (a fixture)
)

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import find_opa, free_port, stop_process

WAIT_S = 30.0
# The people the gateways sign in (basic auth standing in for the IdP), with bcrypt
# hashes (cost 4) for Caddy; nginx reads the plain passwords ({PLAIN}).
PEOPLE = {"alice": "pw-alice", "bob": "pw-bob"}
BCRYPT = {
    "alice": "$2b$04$HhMc6LULO1gPKGTzPyXjT.jNQEYLZpTTtr0lj33suT1Ixb.Et9Crq",
    "bob": "$2b$04$RptQxCE6f5MH/ueoqnc5dOcYUxdvmSbTkrlb8bIZwthRKCJEhKs1e",
}


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def policy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The policy bundle a fleet's sidecar gets (bundle.sidecar of the shipped one)."""
    tmp = tmp_path_factory.mktemp("edge-bundle")
    whole = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp / "whole.tar.gz", "test")
    slim = tmp / "sidecar.tar.gz"
    slim.write_bytes(bundle.sidecar(whole))
    return slim


@pytest.fixture
def datavisa(service: Service) -> Iterator[Api]:
    live = Service(service.engine, service.tokens, gateway=GATEWAY, location=LOCATION)
    with uvicorn_thread(create_app(live)) as url:
        yield Api(url, live)
    live.close()


class Sidecar:
    """A real OPA with the gateway plugin, fed by the engine at `engine`."""

    def __init__(self, tmp: Path, policy: Path, engine: Api, grants_url: str | None = None):
        self.tmp, self.engine = tmp, engine
        tokens = engine.service.tokens
        opa_token, _ = tokens.issue("edge-opa", "opa")
        self.gateway_tokens = {
            name: tokens.issue(name, "service")[0]
            for name in ("edge-nginx", "edge-caddy", "edge-direct")
        }
        self.port, self.api_port, self.grpc_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_addr = f"127.0.0.1:{self.grpc_port}"  # Envoy ext_authz v3 gRPC
        gateway = {
            "addr": f"127.0.0.1:{self.port}",
            "grpc_addr": self.grpc_addr,
            "credential_header": GATEWAY.credential_header,
            "credentials": {_sha256(t): name for name, t in self.gateway_tokens.items()},
            "identity_headers": list(GATEWAY.identity_headers),
            "country_header": GATEWAY.country_header,
            "proxies": [str(n) for n in LOCATION.proxies],
            "networks": {str(n): c for n, c in LOCATION.networks},
            "max_header_bytes": GATEWAY.max_header_bytes,
        }
        polling = {
            "min_delay_seconds": 1,
            "max_delay_seconds": 2,
            "long_polling_timeout_seconds": 5,
        }
        config = {
            "labels": {"datavisa_opa": "edge-opa"},
            "services": {
                "datavisa": {
                    "url": (grants_url or engine.url) + "/v1",
                    "credentials": {"bearer": {"token": opa_token}},
                }
            },
            "bundles": {
                "datavisa": {"resource": policy.as_uri()},
                "grants": {"service": "datavisa", "resource": "bundles/grants", "polling": polling},
            },
            "decision_logs": {
                "service": "datavisa",
                "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1},
            },
            "plugins": {"datavisa_gateway": gateway},
        }
        self.config = tmp / "edge-opa.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: bool = True) -> Sidecar:
        log = (self.tmp / "edge-opa.log").open("ab")
        self.proc = subprocess.Popen(
            [str(find_opa()), "run", "--server", "--addr", f"127.0.0.1:{self.api_port}",
             "--config-file", str(self.config), "--log-level", "error"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        probe = (lambda: self._health(True)) if ready else self._listening
        wait_for(probe, "the sidecar to activate its bundles and listen", WAIT_S)
        return self

    def _health(self, bundles: bool) -> bool:
        try:
            url = f"http://127.0.0.1:{self.api_port}/health" + ("?bundles=true" if bundles else "")
            return requests.get(url, timeout=2).status_code == 200 and self._listening()
        except requests.RequestException:
            return False

    def _listening(self) -> bool:
        try:
            requests.get(self.url + "/v1/authz/nginx", timeout=2)
            return True
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)


@pytest.fixture
def sidecar(tmp_path: Path, policy_bundle: Path, datavisa: Api) -> Iterator[Sidecar]:
    running = Sidecar(tmp_path, policy_bundle, datavisa).start()
    yield running
    running.stop()


# -- asked directly ------------------------------------------------------------------------

# (name, endpoint, headers, client address) of requests asked of each endpoint directly, as
# a gateway would. "@credential" stands for the asking gateway's own token. alice holds a
# grant on eu-customer-analytics from Germany (127.0.0.1), nobody else holds any.
CRED = GATEWAY.credential_header
NGINX = "/v1/authz/nginx"
_ALICE = {CRED: "@credential", "X-Auth-Request-User": "alice", "X-Forwarded-For": "127.0.0.1"}
_NGINX = {"X-Original-Method": "GET", "X-Original-Host": HOST, "X-Original-URI": "/reports?q=1"}
DIRECT: list[tuple[str, str, dict[str, str]]] = [
    ("allow", "/v1/authz/nginx", _ALICE | _NGINX),
    (
        "allow_forward",
        "/v1/authz/forward",
        _ALICE
        | {"X-Forwarded-Method": "GET", "X-Forwarded-Host": HOST, "X-Forwarded-Uri": "/reports"},
    ),
    ("no_grant", "/v1/authz/nginx", _ALICE | _NGINX | {"X-Auth-Request-User": "bob"}),
    ("elsewhere", "/v1/authz/nginx", _ALICE | _NGINX | {"X-Forwarded-For": "127.0.0.2"}),
    ("attested_elsewhere", "/v1/authz/nginx", _ALICE | _NGINX | {"CF-IPCountry": "US"}),
    ("country_invalid", "/v1/authz/nginx", _ALICE | _NGINX | {"CF-IPCountry": "ZZ"}),
    (
        "forwarded_invalid",
        "/v1/authz/nginx",
        _ALICE | _NGINX | {"X-Forwarded-For": "not-an-address"},
    ),
    ("no_route", "/v1/authz/nginx", _ALICE | _NGINX | {"X-Original-Host": "nowhere.localhost"}),
    ("encoded_slash", "/v1/authz/nginx", _ALICE | _NGINX | {"X-Original-URI": "/docs/a%2Fb"}),
    (
        "dot_segments",
        "/v1/authz/nginx",
        _ALICE | _NGINX | {"X-Original-URI": "/docs/%2e%2e/ledger"},
    ),
    (
        "method_not_routed",
        "/v1/authz/nginx",
        _ALICE
        | _NGINX
        | {
            "X-Original-Host": DOCS_HOST,
            "X-Original-Method": "DELETE",
            "X-Original-URI": CANONICAL,
        },
    ),
    (
        "override",
        "/v1/authz/nginx",
        _ALICE
        | _NGINX
        | {"X-HTTP-Method-Override": "DELETE"}
        | {"X-Original-Host": DOCS_HOST, "X-Original-URI": CANONICAL},
    ),
    (
        "oversized_header",
        "/v1/authz/nginx",
        _ALICE | _NGINX | {"X-Original-URI": "/reports?" + "q" * 5000},
    ),
    ("no_subject", "/v1/authz/nginx", _NGINX | {CRED: "@credential"}),
    ("missing_credential", "/v1/authz/nginx", _NGINX),
    (
        "invalid_credential",
        "/v1/authz/nginx",
        _NGINX | {CRED: "dvt_000000000000_" + "x" * 43, "X-Auth-Request-User": "alice"},
    ),
    ("identity_without_credential", "/v1/authz/nginx", _NGINX | {"X-Auth-Request-User": "alice"}),
    ("envoy_allow", "/v1/authz/envoy/reports?q=1", _ALICE | {"Host": HOST}),
    (
        "envoy_partial_body",
        "/v1/authz/envoy/reports",
        _ALICE | {"Host": HOST, "x-envoy-auth-partial-body": "true"},
    ),
    ("envoy_encoded_slash", "/v1/authz/envoy/docs/a%2fb", _ALICE | {"Host": DOCS_HOST}),
]
EXPECTED = {
    "allow": (200, None), "allow_forward": (200, None), "envoy_allow": (200, None),
    "no_grant": (403, "no_active_grant"), "elsewhere": (403, "location_not_permitted"),
    "attested_elsewhere": (403, "location_not_permitted"),
    "country_invalid": (403, "country_header_invalid"),
    "forwarded_invalid": (403, "forwarded_for_invalid"),
    "no_route": (403, "no_route"), "encoded_slash": (403, "path_not_canonical"),
    "dot_segments": (403, "path_not_canonical"), "method_not_routed": (403, "method_not_routed"),
    "override": (403, "method_override_not_routed"), "oversized_header": (403, "header_too_large"),
    "no_subject": (401, "subject_missing"), "missing_credential": (401, "credential_missing"),
    "invalid_credential": (401, "credential_invalid"),
    "identity_without_credential": (403, "identity_without_credential"),
    "envoy_partial_body": (403, "partial_body"), "envoy_encoded_slash": (403, "path_not_canonical"),
}  # fmt: skip


def _answered(sidecar: Sidecar, headers: dict[str, str], token: str, status: int) -> Any:
    """The sidecar's answer to `headers` at /v1/authz/nginx, in a list, once it is
    `status` (a Response is falsy when not ok)."""
    answer = _ask(sidecar.url, "/v1/authz/nginx", headers, token)
    return answer.status_code == status and [answer]


def _ask(base: str, endpoint: str, headers: dict[str, str], token: str) -> requests.Response:
    sent = {k: (token if v == "@credential" else v) for k, v in headers.items()}
    return requests.get(base + endpoint, headers=sent, timeout=10, allow_redirects=False)


def _comparable(answer: requests.Response) -> dict[str, Any]:
    """What must be the same from both: status, the DataVisa headers (the decision id
    only as present), the JSON body (its decision id only as present)."""
    headers = {
        k.lower(): v
        for k, v in answer.headers.items()
        if k.lower().startswith(("x-datavisa-", "www-authenticate"))
    }
    if "x-datavisa-decision-id" in headers:
        headers["x-datavisa-decision-id"] = "present"
    body = answer.json() if answer.content else None
    if body and body.get("error", {}).get("decision_id"):
        body["error"]["decision_id"] = "present"
    return {"status": answer.status_code, "headers": headers, "body": body}


def test_the_sidecar_answers_each_request_as_the_engine_does(datavisa, sidecar):
    grant = datavisa.grant("alice")
    token = sidecar.gateway_tokens["edge-direct"]
    allow = next(h for name, _, h in DIRECT if name == "allow")
    wait_for(
        lambda: _ask(sidecar.url, "/v1/authz/nginx", allow, token).status_code == 200,
        "the sidecar to hold alice's grant", WAIT_S,
    )  # fmt: skip
    for name, endpoint, headers in DIRECT:
        engine = _comparable(_ask(datavisa.url, endpoint, headers, token))
        edge = _comparable(_ask(sidecar.url, endpoint, headers, token))
        assert engine == edge, name
        status, reason = EXPECTED[name]
        assert engine["status"] == status, (name, engine)
        if reason is None:
            assert engine["headers"]["x-datavisa-grant-id"] == grant["id"], name
            assert engine["headers"]["x-datavisa-subject"] == "alice", name
        else:
            assert reason in engine["headers"]["x-datavisa-reasons"].split(","), (name, engine)
            assert engine["body"]["error"]["decision_id"] == "present", name


def test_the_sidecars_decisions_reach_the_engines_log_masked_and_named(datavisa, sidecar):
    datavisa.grant("alice")
    token = sidecar.gateway_tokens["edge-direct"]
    allow = next(h for name, _, h in DIRECT if name == "allow")
    (answer,) = wait_for(
        lambda: _answered(sidecar, allow, token, 200),
        "the sidecar to allow alice", WAIT_S,
    )  # fmt: skip
    decision_id = answer.headers["X-DataVisa-Decision-Id"]
    log = datavisa.service.engine.log

    def uploaded() -> Any:
        found = [
            e for e in log.query(path="datavisa/access/decision") if e["decision_id"] == decision_id
        ]
        return found and found[0]

    event = wait_for(uploaded, "the sidecar's decision in the engine's log", WAIT_S)
    assert event["result"]["allow"] is True
    assert event["input"]["subject"] == "alice"
    assert event["input"]["resource"] == "eu-customer-analytics"
    assert "query" not in event["input"]["context"], "the query string is masked"
    assert event["input"]["context"]["client_ip"] == "127.0.0.0/24"
    assert event["input"]["origin"]["address"] == "127.0.0.0/24"
    assert event["requested_by"] == "edge-direct", "the gateway that asked"


def test_a_revoke_is_denied_by_the_sidecar_once_its_grants_bundle_has_it(datavisa, sidecar):
    grant = datavisa.grant("alice")
    token = sidecar.gateway_tokens["edge-direct"]
    allow = next(h for name, _, h in DIRECT if name == "allow")
    wait_for(
        lambda: _ask(sidecar.url, "/v1/authz/nginx", allow, token).status_code == 200,
        "grant",
        WAIT_S,
    )
    revoked = datavisa.as_("bob").post(f"/v1/grants/{grant['id']}/revoke", {"reason": "done"})
    assert revoked.status_code in (200, 202), revoked.text
    (denied,) = wait_for(
        lambda: _answered(sidecar, allow, token, 403),
        "the sidecar to deny after the revoke", WAIT_S,
    )  # fmt: skip
    assert "no_active_grant" in denied.headers["X-DataVisa-Reasons"]


def test_a_sidecar_that_never_heard_from_the_engine_denies_policy_stale(
    tmp_path, policy_bundle, datavisa
):
    unreachable = f"http://127.0.0.1:{free_port()}"  # nobody listens: no grants bundle ever
    stale = Sidecar(tmp_path, policy_bundle, datavisa, grants_url=unreachable).start(ready=False)
    try:
        token = stale.gateway_tokens["edge-direct"]
        allow = next(h for name, _, h in DIRECT if name == "allow")
        (answer,) = wait_for(  # once its policy bundle is active
            lambda: "policy_unavailable" not in (a := _ask(stale.url, NGINX, allow, token))
            .headers.get("X-DataVisa-Reasons", "policy_unavailable")
            and [a],
            "the sidecar's policy bundle", WAIT_S,
        )  # fmt: skip
        assert answer.status_code == 403
        assert answer.headers["X-DataVisa-Reasons"] == "policy_stale"
        assert answer.json()["error"]["reasons"][0]["code"] == "policy_stale"
    finally:
        stale.stop()


def test_bad_requests_to_the_plugin_are_denies_never_5xx(datavisa, sidecar):
    token = sidecar.gateway_tokens["edge-direct"]
    base = _ALICE | _NGINX
    for headers in [
        base | {"X-Original-URI": "/" + "a" * 60000},  # larger than the plugin reads a header
        base | {"X-Original-URI": "/docs/%zz"},
        base
        | {"X-Original-URI": "/docs/\udcff".encode("utf-8", "surrogateescape").decode("latin-1")},
        base | {"X-Original-Method": ""},
        {CRED: "@credential"},
    ]:
        answer = _ask(sidecar.url, "/v1/authz/nginx", headers, token)
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:200])


# Plain-looking paths near the edges of what the plugin's one-match fast path accepts
# (rego/datavisa/gateway `_plain`), beside the hostile ones: each must be answered by the
# sidecar exactly as by the engine.
EDGE_PATHS = [
    CANONICAL, "/docs", "/docs/", "/docsx", "/docs//intro", "/docs/a.b/..c", "/docs/...x",
    "/docs/+a", "/docs/a~b!$&'()*,=:@-_", "/docs/./intro", "/docs/../ledger/2026", "",
    "*", "docs/intro", "/docs/ intro", "/docs/%41", "/docs/a?b=1",
]  # fmt: skip


def test_paths_hostile_and_plain_are_judged_by_the_sidecar_as_by_the_engine(datavisa, sidecar):
    token = sidecar.gateway_tokens["edge-direct"]
    for path in [*NOT_CANONICAL, *EDGE_PATHS]:
        uri = path.encode("utf-8").decode("latin-1")  # as a header carries it
        headers = _ALICE | {
            "X-Original-Method": "GET",
            "X-Original-Host": DOCS_HOST,
            "X-Original-URI": uri,
        }
        engine = _comparable(_ask(datavisa.url, NGINX, headers, token))
        edge = _comparable(_ask(sidecar.url, NGINX, headers, token))
        assert engine == edge, path
        assert engine["status"] in (200, 401, 403), (path, engine)
        if path in NOT_CANONICAL:
            assert engine["headers"]["x-datavisa-reasons"] == "path_not_canonical", (path, engine)


# -- through real gateways -----------------------------------------------------------------


def _with_sign_in_nginx(text: str, prefix: Path) -> str:
    """The example, with nginx signing people in (basic auth) and passing on who."""
    (prefix / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in PEOPLE.items()))
    signed = text.replace(
        "        location / {\n",
        "        location / {\n"
        f'            auth_basic "DataVisa";\n            auth_basic_user_file {prefix}/users;\n',
        1,
    )
    head, sep, tail = signed.partition("location = /_datavisa {")
    assert sep and 'proxy_set_header X-Auth-Request-User "";' in tail
    return (
        head
        + sep
        + tail.replace(
            'proxy_set_header X-Auth-Request-User "";',
            "proxy_set_header X-Auth-Request-User $remote_user;",
            1,
        )
    )


def _with_sign_in_caddy(text: str) -> str:
    users = "".join(f"\t\t\t{u} {base64.b64encode(BCRYPT[u].encode()).decode()}\n" for u in PEOPLE)
    signed = text.replace(
        "\t\trequest_header -X-Forwarded-For\n",
        f"\t\trequest_header -X-Forwarded-For\n\t\tbasicauth {{\n{users}\t\t}}\n",
        1,
    )
    assert signed != text
    anchor = "\t\t\turi /v1/authz/forward\n"
    assert anchor in signed
    return signed.replace(
        anchor, anchor + "\t\t\theader_up X-Auth-Request-User {http.auth.user.id}\n", 1
    )


@contextlib.contextmanager
def _nginx(tmp: Path, behind: str, target: str, token: str) -> Iterator[int]:
    port, prefix = free_port(), tmp
    prefix.mkdir()
    conf = _render(
        EXAMPLES / "nginx" / "nginx.conf", prefix / "nginx.conf", PREFIX=str(prefix),
        LISTEN=f"127.0.0.1:{port}", UPSTREAM=behind, DATAVISA=target, GATEWAY_TOKEN=token,
    )  # fmt: skip
    conf.write_text(_with_sign_in_nginx(conf.read_text(), prefix))
    # As root, nginx's workers run as nobody, who cannot read the users file in tmp.
    user = " user root;" if os.geteuid() == 0 else ""
    cmd = [_binary("nginx"), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;" + user]
    with _running(cmd, port, "nginx"):
        yield port


@contextlib.contextmanager
def _caddy(tmp: Path, behind: str, target: str, token: str) -> Iterator[int]:
    port, prefix = free_port(), tmp
    prefix.mkdir()
    conf = _render(
        EXAMPLES / "caddy" / "Caddyfile", prefix / "Caddyfile", PREFIX=str(prefix),
        PORT=str(port), UPSTREAM=behind, DATAVISA=target, GATEWAY_TOKEN=token,
    )  # fmt: skip
    conf.write_text(_with_sign_in_caddy(conf.read_text()))
    home = {"HOME": str(prefix), "XDG_DATA_HOME": str(prefix), "XDG_CONFIG_HOME": str(prefix)}
    cmd = [_binary("caddy"), "run", "--config", str(conf), "--adapter", "caddyfile"]
    with _running(cmd, port, "caddy", env={**os.environ, **home}):
        yield port


def _through(
    port: int,
    person: str,
    path: str = "/reports?q=1",
    host: str = HOST,
    source: str = "127.0.0.1",
    **headers: str,
) -> tuple[int, dict[str, str], bytes]:
    secret = base64.b64encode(f"{person}:{PEOPLE[person]}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(
            "GET", path, headers={"Host": host, "Authorization": f"Basic {secret}"} | headers
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# (name, person, request keywords, status, reason) through a gateway.
THROUGH = [
    ("allow", "alice", {}, 200, None),
    ("no_grant", "bob", {}, 403, "no_active_grant"),
    ("elsewhere", "alice", {"source": "127.0.0.2"}, 403, "location_not_permitted"),
    ("claims_alice", "bob", {"X-Auth-Request-User": "alice", "CF-IPCountry": "DE"}, 403, "no_active_grant"),  # noqa: E501
    ("no_route", "alice", {"host": "nowhere.localhost"}, 403, "no_route"),
    ("override", "alice", {"host": DOCS_HOST, "path": CANONICAL, "X-HTTP-Method-Override": "PUT"}, 403, "method_override_not_routed"),  # noqa: E501
    ("oversized_header", "alice", {"X-HTTP-Method-Override": "G" * 5000}, 403, "header_too_large"),
]  # fmt: skip


@pytest.mark.parametrize("gateway", ["nginx", "caddy"])
def test_through_a_real_gateway_the_sidecar_and_the_engine_answer_alike(
    tmp_path,
    datavisa,
    sidecar,
    upstream,  # noqa: F811 (the fixture)
    echo,  # noqa: F811 (the fixture)
    gateway,
):
    grant = datavisa.grant("alice")
    start = {"nginx": _nginx, "caddy": _caddy}[gateway]
    name = f"edge-{gateway}"
    token = sidecar.gateway_tokens[name]
    targets = {
        "engine": datavisa.url.removeprefix("http://"),
        "sidecar": sidecar.url.removeprefix("http://"),
    }
    seen: dict[str, list[tuple[int, str | None, str | None]]] = {}
    for where, target in targets.items():
        with start(tmp_path / where, upstream, target, token) as port:
            first = _through(port, "alice")
            wait_for(
                lambda: _through(port, "alice")[0] == 200, f"{where} to allow alice {first}", WAIT_S
            )
            rows = seen.setdefault(where, [])
            for case, person, extra, status, reason in THROUGH:
                got, headers, body = _through(port, person, **extra)
                assert got == status, (where, case, got, body[:300])
                if reason is not None:
                    assert reason in headers.get("x-datavisa-reasons", ""), (where, case, headers)
                    rows.append((got, headers.get("x-datavisa-reasons"), None))
                else:
                    upstream_saw = json.loads(body)
                    assert upstream_saw["x-datavisa-subject"] == "alice", (where, case)
                    assert upstream_saw["x-datavisa-grant-id"] == grant["id"], (where, case)
                    rows.append((got, None, upstream_saw["x-datavisa-subject"]))
            assert raw_request(
                port,
                "/docs/%2e%2e/ledger/2026",
                {
                    "Host": DOCS_HOST,
                    "Authorization": "Basic " + base64.b64encode(b"alice:pw-alice").decode(),
                },
            )[0] in (400, 403)
    assert seen["engine"] == seen["sidecar"]

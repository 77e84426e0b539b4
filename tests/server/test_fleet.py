"""A fleet of sidecar OPAs fed by the engine's bundle service, on real parts.

One `datavisa serve` (SQLite) with `fleet.opas` naming three sidecars; each sidecar is a
real OPA process started from what `datavisa opa-config` prints, on loopback, and probed
with the access check the engine itself asks (datavisa/access/decision). Every wait is
bounded; nothing asserts how long a step took.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from live_server import RESOURCE, Api, Caller, healthy, uvicorn_thread, wait_for

from datavisa.engine.api.app import create_app
from datavisa.engine.api.config import from_dict
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.lifecycle.fleet import Fleet as FleetState
from datavisa.engine.lifecycle.fleet import FleetConfig, FleetSink
from datavisa.engine.lifecycle.grants import live_grants
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import find_opa, free_port, stop_process

DATAVISA = Path(sys.executable).with_name("datavisa")
NAMES = ("opa-1", "opa-2", "opa-3")
CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}
WAIT_S = 60.0


@dataclass
class Sidecar:
    """A real OPA started from `datavisa opa-config` output."""

    name: str
    config: Path
    log: Path
    url: str = ""
    proc: subprocess.Popen | None = None

    def start(self) -> Sidecar:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [str(find_opa()), "run", "--server", "--addr", f"127.0.0.1:{port}",
                 "--config-file", str(self.config), "--log-level", "error"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        wait_for(self.ready, f"{self.name} to activate its bundles", WAIT_S)
        return self

    def ready(self) -> bool:
        try:
            return requests.get(self.url + "/health?bundles=true", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def ask(self, subject: str = "alice") -> dict[str, Any]:
        """The access check, asked of this OPA directly, as a service would."""
        body = {"input": {"subject": subject, **CHECK}}
        answer = requests.post(self.url + "/v1/data/datavisa/access/decision", json=body, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def allows(self, subject: str = "alice") -> bool:
        return self.ask(subject)["result"]["allow"]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 20)


@dataclass
class Fleet:
    url: str
    db: Path
    tmp: Path
    tokens: dict[str, str]
    sidecars: dict[str, Sidecar] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    gateway: str = ""  # opa-3's gateway plugin (tools/opa/gateway), HOST:PORT

    def start_serve(self) -> None:
        with (self.tmp / "serve.log").open("a") as log:
            self.proc = subprocess.Popen(
                [str(DATAVISA), "serve", "--config", str(self.tmp / "serve.yaml")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        proc = self.proc
        wait_for(lambda: _healthy(self.url) or proc.poll() is not None, "serve", WAIT_S)
        assert proc.poll() is None, (self.tmp / "serve.log").read_text()

    def stop_serve(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def as_(self, subject: str) -> Caller:
        return Caller(self.url, self.tokens[subject])

    def grant(self) -> dict[str, Any]:
        body = {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "INC-7"}
        req = self.as_("alice").post("/v1/requests", body)
        assert req.status_code == 201, req.text
        approved = self.as_("bob").post(f"/v1/requests/{req.json()['id']}/approve", {})
        assert approved.status_code == 200, approved.text
        return approved.json()

    def revoke(self, grant_id: str) -> requests.Response:
        return self.as_("bob").post(f"/v1/grants/{grant_id}/revoke", {"reason": "offboarding"})

    def state(self) -> dict[str, dict[str, Any]]:
        answer = self.as_("erin").get("/v1/fleet")
        assert answer.status_code == 200, answer.text
        return {m["name"]: m for m in answer.json()["opas"]}

    def opa_config(self, name: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(DATAVISA), "opa-config", name, "--server", self.url, "--db", str(self.db), *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    db = tmp / "datavisa.db"
    store = TokenStore(db)
    tokens = {s: store.issue(s)[0] for s in ("alice", "bob")}
    tokens["erin"] = store.issue("erin", "admin")[0]
    tokens["sam"] = store.issue("sam")[0]  # a security officer: may supervise
    tokens["auditor"] = store.issue("carol", "auditor")[0]
    store.close()
    port = free_port()
    config = tmp / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "database": str(db),
                "fleet": {"opas": list(NAMES), "confirm_within": "5s", "long_poll": "10s"},
            }
        )
    )
    served = Fleet(f"http://127.0.0.1:{port}", db, tmp, tokens)
    try:
        served.start_serve()
        # opa-3 also answers gateways itself (its gateway plugin), believing one gateway
        # token, and placing 127.0.0.1 in Germany as the gateway's networks say.
        gateway_token = store_token(db, "edge-nginx", "service")
        tokens["edge-nginx"] = gateway_token
        (tmp / "edge-nginx.token").write_text(gateway_token + "\n")
        (tmp / "edge.yaml").write_text("location:\n  networks: {127.0.0.1/32: DE}\n")
        served.gateway = f"127.0.0.1:{free_port()}"
        plugin = (
            "--config", str(tmp / "edge.yaml"), "--gateway-addr", served.gateway,
            "--gateway-token-file", str(tmp / "edge-nginx.token"),
        )  # fmt: skip
        for name in NAMES:
            made = served.opa_config(name, *(plugin if name == "opa-3" else ()))
            assert made.returncode == 0, made.stderr
            (tmp / f"{name}.yaml").write_text(made.stdout)
            sidecar = Sidecar(name, tmp / f"{name}.yaml", tmp / f"{name}.log")
            served.sidecars[name] = sidecar.start()
        yield served
    finally:
        for sidecar in served.sidecars.values():
            sidecar.stop()
        served.stop_serve()


def store_token(db: Path, subject: str, role: str) -> str:
    store = TokenStore(db)
    try:
        return store.issue(subject, role)[0]
    finally:
        store.close()


def _through_the_plugin(fleet: Fleet) -> requests.Response:
    """nginx's auth_request for alice's GET of the console, asked of opa-3's plugin."""
    asked = {
        "X-DataVisa-Gateway-Token": fleet.tokens["edge-nginx"], "X-Auth-Request-User": "alice",
        "X-Original-Method": "GET", "X-Original-Host": "analytics.localhost", "X-Original-URI": "/",
    }  # fmt: skip
    return requests.get(f"http://{fleet.gateway}/v1/authz/nginx", headers=asked, timeout=5)


def test_a_revoke_waits_for_the_sidecar_that_answers_gateways_as_for_any(fleet):
    """opa-3 runs the gateway plugin: a grant it confirmed lets nginx through there, and
    a revoke returns (200, not 202) only once its status report confirmed the removal, so
    the very next gateway request is denied."""
    grant = fleet.grant()
    allowed = _through_the_plugin(fleet)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["X-DataVisa-Grant-Id"] == grant["id"]
    revoked = fleet.revoke(grant["id"])
    assert revoked.status_code == 200, revoked.text
    denied = _through_the_plugin(fleet)
    assert denied.status_code == 403, denied.text
    assert "no_active_grant" in denied.headers["X-DataVisa-Reasons"]


def _sidecars_hold(fleet: Fleet, revision: int) -> bool:
    return all(m["grants_revision"] >= revision for m in fleet.state().values() if m["trusted"])


def test_grant_then_revoke_reaches_every_sidecar_before_the_answer(fleet):
    sidecars = list(fleet.sidecars.values())
    assert not any(s.allows() for s in sidecars)

    grant = fleet.grant()  # 200: every sidecar confirmed the grant
    answers = [s.ask() for s in sidecars]
    assert all(a["result"]["allow"] for a in answers), answers
    assert {a["result"]["grant_id"] for a in answers} == {grant["id"]}

    revoked = fleet.revoke(grant["id"])
    assert revoked.status_code == 200, revoked.text  # not 202: no sidecar still grants it
    denials = [s.ask() for s in sidecars]
    assert not any(d["result"]["allow"] for d in denials), denials
    assert healthy(fleet.url, enforcement=True)

    # What the sidecars answered lands in the one decision log (OPA's upload to the engine).
    asked = {a["decision_id"] for a in answers + denials}
    auditor = fleet.as_("auditor")

    def logged() -> bool:
        page = auditor.get("/v1/logs", params={"subject": "alice", "limit": 1000}).json()
        return asked <= {e["decision_id"] for e in page["events"]}

    wait_for(logged, "the sidecars' decisions in the decision log", WAIT_S)


def test_every_sidecar_denies_a_supervised_grant_while_no_supervisor_is_present(fleet):
    """The grants bundle carries the grant's supervision (issue 33): each sidecar OPA denies
    with supervisor_absent, allows once a supervisor joined, denies again once they left."""
    sidecars = list(fleet.sidecars.values())
    body = {"resource": RESOURCE, "actions": ["read", "write"], "duration": "1h",
            "location": "DE", "reason": "INC-33"}  # fmt: skip
    req = fleet.as_("alice").post("/v1/requests", body)
    assert req.status_code == 201, req.text
    grant_id = req.json()["id"]
    approved = fleet.as_("bob").post(f"/v1/requests/{grant_id}/approve", {})
    assert approved.status_code == 200 and approved.json()["state"] == "active", approved.text

    def codes() -> list[set[str]]:
        return [{r["code"] for r in s.ask()["result"]["reasons"]} for s in sidecars]

    wait_for(lambda: codes() == [{"supervisor_absent"}] * len(sidecars),
             "every sidecar to deny: no supervisor", WAIT_S)  # fmt: skip
    path = f"/v1/grants/{grant_id}/supervision"
    assert fleet.as_("sam").post(path, {"location": "DE"}).status_code == 200
    wait_for(lambda: all(s.allows() for s in sidecars), "every sidecar to allow", WAIT_S)
    assert fleet.as_("sam").session.delete(fleet.url + path, timeout=10).status_code == 200
    wait_for(lambda: codes() == [{"supervisor_absent"}] * len(sidecars),
             "every sidecar to deny again", WAIT_S)  # fmt: skip
    assert fleet.revoke(grant_id).status_code == 200


def test_health_metrics_and_the_fleet_command_show_each_sidecars_revision(fleet):
    grant = fleet.grant()
    head = fleet.state()["opa-1"]["grants_revision"]
    assert _sidecars_hold(fleet, head)
    health = requests.get(fleet.url + "/health", timeout=5).json()
    assert {m["name"]: m["lag"] for m in health["fleet"]["opas"]} == dict.fromkeys(NAMES, 0)
    metrics = requests.get(fleet.url + "/metrics", timeout=5).text
    for name in NAMES:
        assert f'datavisa_fleet_opa_revision_lag{{opa="{name}",trusted="true"}} 0.0' in metrics
    shown = subprocess.run(
        [str(DATAVISA), "fleet", "--server", fleet.url, "--token", fleet.tokens["erin"], "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert [m["name"] for m in state["opas"] if m["trusted"]] == list(NAMES)
    assert fleet.revoke(grant["id"]).status_code == 200


def test_a_stopped_sidecar_is_named_by_revoke_and_catches_up_when_restarted(fleet):
    grant = fleet.grant()
    third = fleet.sidecars["opa-3"]
    third.stop()

    revoked = fleet.revoke(grant["id"])
    assert revoked.status_code == 202, revoked.text
    assert revoked.json()["pending_sinks"] == ["fleet:opa-3"]
    assert not fleet.sidecars["opa-1"].allows() and not fleet.sidecars["opa-2"].allows()
    # Ready (a load balancer keeps it), the removal held back (the enforcement check).
    assert _healthy(fleet.url)
    health = requests.get(fleet.url + "/health?enforcement=true", timeout=5)
    assert health.status_code == 503
    assert any("opa-3" in p for p in health.json()["problems"]), health.json()
    assert fleet.state()["opa-3"]["lag"] > 0

    third.start()  # fresh: no bundle until it downloads the live grants
    wait_for(
        lambda: healthy(fleet.url, enforcement=True),
        "the restarted sidecar to confirm the revoke",
        WAIT_S,
    )
    assert not third.allows()
    assert fleet.state()["opa-3"]["lag"] == 0


def test_a_restarted_engine_keeps_the_sidecars_confirmations_and_feeds_them_again(fleet):
    grant = fleet.grant()
    held = {name: m["grants_revision"] for name, m in fleet.state().items() if m["trusted"]}
    fleet.stop_serve()
    fleet.start_serve()  # the same port and database; the sidecars keep running

    # Their confirmed revisions come from the store; their long polls come back.
    after = fleet.state()
    assert {name: after[name]["grants_revision"] for name in held} == held
    wait_for(
        lambda: all(m["last_contact"] for m in fleet.state().values() if m["trusted"]),
        "every sidecar to poll the restarted engine",
        WAIT_S,
    )
    assert all(s.allows() for s in fleet.sidecars.values())
    revoked = fleet.revoke(grant["id"])
    # 202: a sidecar slower than confirm_within (a busy machine); the restarted engine
    # keeps feeding it until it holds the revoke too.
    assert revoked.status_code in (200, 202), revoked.text
    wait_for(
        lambda: not any(s.allows() for s in fleet.sidecars.values()),
        "every sidecar to deny the revoked grant",
        WAIT_S,
    )


def _bundle_files(body: bytes) -> dict[str, Any]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        return {m.name.lstrip("/"): json.load(tar.extractfile(m)) for m in tar.getmembers()}


def test_the_bundle_protocol_etags_long_polls_and_deltas(fleet):
    config = yaml.safe_load((fleet.tmp / "opa-1.yaml").read_text())
    opa = Caller(fleet.url, config["services"]["datavisa"]["credentials"]["bearer"]["token"])

    assert Caller(fleet.url).get("/v1/bundles/grants").status_code == 401
    unknown = Caller(fleet.url, "dvt_000000000000_" + "x" * 43)
    assert unknown.get("/v1/bundles/grants").status_code == 401
    assert fleet.as_("alice").get("/v1/bundles/grants").status_code == 403  # a user token

    whole = opa.get("/v1/bundles/grants")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/vnd.openpolicyagent.bundles"
    etag = whole.headers["etag"]
    files = _bundle_files(whole.content)
    assert files[".manifest"] == {"revision": etag.strip('"'), "roots": ["grants"]}
    assert "grants" in files["data.json"]

    same = opa.get("/v1/bundles/grants", headers={"If-None-Match": etag, "Prefer": "wait=1"})
    assert (same.status_code, same.headers["etag"]) == (304, etag)

    grant = fleet.grant()
    # Asked for a delta, this server (fleet.deltas off) sends the whole snapshot.
    newer = opa.get(
        "/v1/bundles/grants", headers={"If-None-Match": etag, "Prefer": "modes=snapshot,delta"}
    )
    assert newer.status_code == 200 and newer.headers["etag"] != etag
    files = _bundle_files(newer.content)
    assert "patch.json" not in files
    assert grant["id"] in files["data.json"]["grants"]["alice"]

    policy = opa.get("/v1/bundles/policy")
    assert policy.status_code == 200
    held = {"If-None-Match": policy.headers["etag"]}
    assert opa.get("/v1/bundles/policy", headers=held).status_code == 304
    assert fleet.revoke(grant["id"]).status_code == 200


def test_a_sidecar_scoped_to_some_resources_holds_only_their_grants(fleet):
    """opa-config --resources: the grants bundle of a sidecar that guards other data holds
    none of this grant, its revision the same; a bad scope is refused naming the field."""
    made = fleet.opa_config("opa-scoped", "--resources", "eu-payments-ledger, no-such-data")
    assert made.returncode == 0, made.stderr
    assert "no-such-data is not a resource" in made.stderr  # a warning: the server decides
    config = yaml.safe_load(made.stdout)
    resource = config["bundles"]["grants"]["resource"]
    assert resource == "bundles/grants?resources=eu-payments-ledger,no-such-data"
    (fleet.tmp / "opa-scoped.yaml").write_text(made.stdout)
    scoped = Sidecar("opa-scoped", fleet.tmp / "opa-scoped.yaml", fleet.tmp / "opa-scoped.log")
    opa = Caller(fleet.url, config["services"]["datavisa"]["credentials"]["bearer"]["token"])
    try:
        scoped.start()
        grant = fleet.grant()  # on eu-customer-analytics, outside the scope
        head = str(fleet.state()["opa-1"]["grants_revision"])
        wait_for(
            lambda: fleet.state()["opa-scoped"]["grants_revision"] >= int(head),
            "the scoped sidecar to report the grant's revision",
            WAIT_S,
        )
        assert fleet.sidecars["opa-1"].allows()
        denied = scoped.ask()["result"]
        assert not denied["allow"], denied
        assert [r["code"] for r in denied["reasons"]] == ["no_active_grant"]

        inside = opa.get("/v1/bundles/grants", params={"resources": RESOURCE})
        outside = opa.get("/v1/bundles/grants", params={"resources": "eu-payments-ledger"})
        assert inside.headers["etag"] == outside.headers["etag"] == f'"{head}"'
        assert grant["id"] in _bundle_files(inside.content)["data.json"]["grants"]["alice"]
        assert _bundle_files(outside.content)["data.json"]["grants"] == {}
        for bad in ("bad name", ",", "x" * 5000):
            refused = opa.get("/v1/bundles/grants", params={"resources": bad})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["field"] == "resources", refused.text
        assert fleet.revoke(grant["id"]).status_code == 200  # opa-scoped is not trusted
    finally:
        scoped.stop()


SIDECAR_MODULES = {
    "datavisa/access/access.rego",
    "datavisa/directory/directory.rego",  # residency reads subjects through it
    "datavisa/idp/idp.rego",  # and it the IdP groups' roles
    "datavisa/gateway/gateway.rego",  # the gateway plugin's answer (tools/opa/gateway)
    "datavisa/origin/origin.rego",
    "datavisa/residency/residency.rego",
    "datavisa/us_bulk_data/us_bulk_data.rego",
    "system/log/mask.rego",
}


def _tar_names(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name.lstrip("/"): tar.extractfile(m).read() for m in tar.getmembers()}


def test_sidecars_run_only_the_access_decisions_modules_and_answer_as_serve_does(fleet, tmp_path):
    config = yaml.safe_load((fleet.tmp / "opa-1.yaml").read_text())
    token = config["services"]["datavisa"]["credentials"]["bearer"]["token"]
    served = Caller(fleet.url, token).get("/v1/bundles/policy")
    assert served.status_code == 200, served.text
    slim = _tar_names(served.content)
    # What serve's own OPA runs: the whole bundle, built from the same sources.
    rev = bundle.revision(POLICY_DIR, DEFAULT_BUNDLE_DIR)
    whole = _tar_names(
        bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "whole.tar.gz", rev).read_bytes()
    )
    assert {name for name in slim if name.endswith(".rego")} == SIDECAR_MODULES
    assert len([name for name in whole if name.endswith(".rego")]) > len(SIDECAR_MODULES)
    assert {name: slim[name] for name in SIDECAR_MODULES} == {n: whole[n] for n in SIDECAR_MODULES}
    assert json.loads(slim["data.json"]) == json.loads(whole["data.json"])
    assert json.loads(slim[".manifest"]) == json.loads(whole[".manifest"])
    assert served.headers["etag"] == f'"{rev}"'

    # Same input, same decision: a sidecar and serve (its own OPA, the whole bundle).
    grant = fleet.grant()
    sidecar = fleet.sidecars["opa-1"]
    asked = [
        {"subject": "alice", "resource": RESOURCE, "action": "read", "location": "DE"},
        {"subject": "alice", "resource": RESOURCE, "action": "delete", "location": "DE"},
        {"subject": "alice", "resource": RESOURCE, "action": "read", "location": "US"},
        {"subject": "alice", "resource": "us-itar-designs", "action": "read", "location": "US"},
        {"subject": "alice", "resource": "no-such-resource", "action": "read", "location": "DE"},
        {"subject": "bob", "resource": RESOURCE, "action": "read", "location": "DE"},
    ]
    fields = ("allow", "reasons", "grant_id", "expires_at")
    store = TokenStore(fleet.db)
    service = store.issue("db-proxy", "service")[0]  # a sidecar's own token asks no checks
    store.close()
    for check in asked:
        answer = requests.post(
            sidecar.url + "/v1/data/datavisa/access/decision", json={"input": check}, timeout=5
        ).json()["result"]
        engine = Caller(fleet.url, service).post("/v1/access/check", check)
        assert engine.status_code == 200, engine.text
        expected = {k: v for k, v in engine.json().items() if k in fields}
        assert {k: v for k, v in answer.items() if k in fields} == expected, check
    assert sidecar.allows() and not sidecar.allows("bob")
    assert fleet.revoke(grant["id"]).status_code == 200


def test_the_sidecar_bundle_follows_what_the_access_decision_depends_on(tmp_path):
    policy = tmp_path / "rego"
    modules = {
        "datavisa/access/access.rego": "package datavisa.access\n\n"
        'import data.datavisa.helper\n\ndecision := {"allow": helper.yes}\n',
        "datavisa/helper/helper.rego": "package datavisa.helper\n\nyes := false\n",
        "datavisa/unrelated/unrelated.rego": "package datavisa.unrelated\n\nno := true\n",
        "system/log/mask.rego": 'package system.log\n\nmask contains "/input/x"\n',
    }
    for name, text in modules.items():
        (policy / name).parent.mkdir(parents=True, exist_ok=True)
        (policy / name).write_text(text)
    built = bundle.build(policy, DEFAULT_BUNDLE_DIR, tmp_path / "b.tar.gz", "r1")
    slim = _tar_names(bundle.sidecar(built))
    kept = {name for name in slim if name.endswith(".rego")}
    assert kept == set(modules) - {"datavisa/unrelated/unrelated.rego"}
    assert json.loads(slim[".manifest"])["revision"] == "r1"

    if shutil.which("openssl"):  # a signed bundle is served whole: signatures cover all
        key = tmp_path / "key.pem"
        subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
        signed = bundle.build(policy, DEFAULT_BUNDLE_DIR, tmp_path / "s.tar.gz", "r1", key)
        assert bundle.sidecar(signed) == signed.read_bytes()


@pytest.fixture
def delta_api(service: Service) -> Iterator[Api]:
    """The app in a thread, its bundle service sending deltas (fleet.deltas)."""
    fleet = FleetState(service.engine.store, FleetConfig(deltas=True))
    live = Service(service.engine, service.tokens, fleet=fleet)
    with uvicorn_thread(create_app(live)) as url:
        yield Api(url, live)
    live.close()


def test_a_delta_bundle_carries_the_subjects_changed_since_the_revision_held(delta_api):
    opa = delta_api.as_("opa-1", "opa")
    takes_deltas = {"Prefer": "modes=snapshot,delta"}
    grant = delta_api.grant("alice")
    etag = opa.get("/v1/bundles/grants").headers["etag"]
    revoked = delta_api.as_("bob").post(f"/v1/grants/{grant['id']}/revoke", {})
    assert revoked.status_code == 200, revoked.text

    delta = opa.get("/v1/bundles/grants", headers={"If-None-Match": etag, **takes_deltas})
    assert delta.status_code == 200 and delta.headers["etag"] != etag
    files = _bundle_files(delta.content)
    assert files[".manifest"] == {"revision": delta.headers["etag"].strip('"'), "roots": ["grants"]}
    assert files["patch.json"]["data"] == [{"op": "upsert", "path": "/grants/alice", "value": {}}]

    # Scoped to other resources, the changed subject's grants there: none.
    scoped = opa.get(
        "/v1/bundles/grants",
        params={"resources": "eu-payments-ledger"},
        headers={"If-None-Match": etag, **takes_deltas},
    )
    assert _bundle_files(scoped.content)["patch.json"]["data"] == [
        {"op": "upsert", "path": "/grants/alice", "value": {}}
    ]
    # A revision the outbox does not reach back from (none, or not one it made): whole.
    for held in ('"0"', '"999999"', '"not-a-revision"'):
        answer = opa.get("/v1/bundles/grants", headers={"If-None-Match": held, **takes_deltas})
        assert "data.json" in _bundle_files(answer.content), held
    # An OPA that takes no deltas gets the whole snapshot too.
    whole = opa.get("/v1/bundles/grants", headers={"If-None-Match": etag})
    assert "data.json" in _bundle_files(whole.content)


def test_the_grants_snapshot_follows_every_change_read_subject_by_subject(delta_api):
    opa = delta_api.as_("opa-1", "opa")
    store = delta_api.service.fleet.store

    def served() -> dict[str, Any]:
        answer = opa.get("/v1/bundles/grants")
        assert answer.status_code == 200, answer.text
        return _bundle_files(answer.content)["data.json"]["grants"]

    assert served() == live_grants(store)
    first, second = delta_api.grant("alice"), delta_api.grant("oscar")
    assert first["id"] in served()["alice"] and second["id"] in served()["oscar"]
    assert served() == live_grants(store)
    scoped = opa.get("/v1/bundles/grants", params={"resources": f"{RESOURCE},eu-payments-ledger"})
    assert _bundle_files(scoped.content)["data.json"]["grants"] == live_grants(store)
    other = opa.get("/v1/bundles/grants", params={"resources": "eu-payments-ledger"})
    assert _bundle_files(other.content)["data.json"]["grants"] == {}
    revoke = delta_api.as_("bob").post(f"/v1/grants/{first['id']}/revoke", {})
    assert revoke.status_code == 200, revoke.text
    assert first["id"] not in served().get("alice", {}) and served() == live_grants(store)

    # The outbox pruned past the last snapshot's revision: every subject read again.
    third = delta_api.grant("alice")
    revoke = delta_api.as_("bob").post(f"/v1/grants/{second['id']}/revoke", {})
    assert revoke.status_code == 200, revoke.text
    store.forget_grant_changes(store.grant_changes_head())
    now = served()
    assert second["id"] not in now.get("oscar", {}) and third["id"] in now["alice"]
    assert now == live_grants(store)

    # A full sync (start, an OPA restart, a repair) reads the store again, outbox or not.
    with store.transaction():
        store.update(third["id"], {"state": "revoked"})  # behind the outbox's back
    FleetSink(delta_api.service.fleet).put_all(live_grants(store))
    assert third["id"] not in served().get("alice", {}) and served() == live_grants(store)


def test_the_fleet_command_names_an_opa_never_heard_from_as_stale(service):
    fleet = FleetState(service.engine.store, FleetConfig(opas=("ghost-opa",)))
    live = Service(service.engine, service.tokens, fleet=fleet)
    token = service.tokens.issue("erin", "admin")[0]
    with uvicorn_thread(create_app(live)) as url:
        shown = subprocess.run(
            [str(DATAVISA), "fleet", "--server", url, "--token", token],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        refused = subprocess.run(
            [str(DATAVISA), "fleet", "--server", url, "--token", "dvt_000000000000_" + "x" * 43],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    live.close()
    assert shown.returncode == 1, shown.stderr
    (row,) = [line for line in shown.stdout.splitlines() if line.startswith("ghost-opa")]
    assert "STALE" in row
    assert refused.returncode == 1 and "unknown or revoked" in refused.stderr


def test_a_status_report_from_an_opa_not_in_the_fleet_is_shown_never_trusted(fleet):
    rogue = TokenStore(fleet.db)
    token = rogue.issue("rogue-opa", "opa")[0]
    rogue.close()
    grant = fleet.grant()
    head = fleet.state()["opa-1"]["grants_revision"]
    fleet.sidecars["opa-2"].stop()
    revoked = fleet.revoke(grant["id"])
    assert revoked.json()["pending_sinks"] == ["fleet:opa-2"]
    # The rogue claims to run the newest grants; it is recorded, and changes nothing.
    claim = {"labels": {"id": "x"}, "bundles": {"grants": {"active_revision": str(head + 1)}}}
    assert Caller(fleet.url, token).post("/v1/status", claim).status_code == 204
    assert Caller(fleet.url, token).post("/v1/status", [1]).status_code == 422
    state = fleet.state()
    assert state["rogue-opa"]["trusted"] is False
    assert state["opa-2"]["lag"] > 0
    assert requests.get(fleet.url + "/health?enforcement=true", timeout=5).status_code == 503
    fleet.sidecars["opa-2"].start()
    wait_for(lambda: healthy(fleet.url, enforcement=True), "opa-2 to confirm the revoke", WAIT_S)


def test_a_report_confirms_no_revision_that_sidecar_was_not_served(fleet):
    """A second token for opa-2's subject (as a stolen one would be) reports the newest
    revision while opa-2 is stopped: nothing is confirmed that no bundle poll of opa-2's
    received. Downloading the bundle with the token first is what it can still do
    (docs/security.md)."""
    grant = fleet.grant()
    fleet.sidecars["opa-2"].stop()
    revoked = fleet.revoke(grant["id"])
    assert revoked.json()["pending_sinks"] == ["fleet:opa-2"]
    head = fleet.state()["opa-1"]["grants_revision"]
    store = TokenStore(fleet.db)
    stolen = Caller(fleet.url, store.issue("opa-2", "opa")[0])
    store.close()
    claim = {"labels": {"id": "x"}, "bundles": {"grants": {"active_revision": str(head)}}}
    assert stolen.post("/v1/status", claim).status_code == 204
    assert fleet.state()["opa-2"]["lag"] > 0, "a report alone confirms nothing new"
    assert requests.get(fleet.url + "/health?enforcement=true", timeout=5).status_code == 503

    assert stolen.get("/v1/bundles/grants").status_code == 200  # served: now it may confirm
    assert stolen.post("/v1/status", claim).status_code == 204
    assert fleet.state()["opa-2"]["lag"] == 0
    fleet.sidecars["opa-2"].start()
    wait_for(lambda: healthy(fleet.url, enforcement=True), "opa-2 back", WAIT_S)


def test_only_an_opa_token_downloads_the_bundles_and_it_asks_no_checks(fleet):
    store = TokenStore(fleet.db)
    gateway, sidecar = store.issue("db-proxy", "service")[0], store.issue("opa-7", "opa")[0]
    store.close()
    for path in ("/v1/bundles/grants", "/v1/bundles/policy"):
        refused = Caller(fleet.url, gateway).get(path)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        assert Caller(fleet.url, sidecar).get(path).status_code == 200
    assert Caller(fleet.url, gateway).post("/v1/access/check", {"subject": "alice", **CHECK}).ok
    asked = Caller(fleet.url, sidecar).post("/v1/access/check", {"subject": "alice", **CHECK})
    assert asked.status_code == 403, asked.text


def test_opa_config_prints_a_working_sidecar_config_and_refuses_bad_input(fleet):
    made = fleet.opa_config("opa-9", "--json")
    assert made.returncode == 0, made.stderr
    config = json.loads(made.stdout)
    assert config["services"]["datavisa"]["url"] == fleet.url + "/v1"
    assert set(config["bundles"]) == {"datavisa", "grants"}
    assert config["bundles"]["grants"]["polling"]["long_polling_timeout_seconds"] == 10
    assert config["status"] == {"service": "datavisa"}
    bad = fleet.opa_config("not a name")
    assert bad.returncode != 0 and "NAME" in bad.stderr
    bad = subprocess.run(
        [str(DATAVISA), "opa-config", "opa-9", "--server", "ftp://x", "--db", str(fleet.db)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "--server" in bad.stderr


@pytest.mark.parametrize(
    ("fleet_section", "message"),
    [
        ({"opas": "opa-1"}, "fleet.opas"),
        ({"opas": ["bad name"]}, "fleet.opas"),
        ({"confirm_within": "-1s"}, "fleet.confirm_within"),
        ({"wait": "1s"}, "unknown setting fleet.wait"),
    ],
)
def test_a_bad_fleet_section_is_refused(fleet_section, message, tmp_path):
    with pytest.raises(DataVisaError, match=message):
        from_dict({"fleet": fleet_section}, base=tmp_path)


def test_the_fleet_section_is_read(tmp_path):
    cfg = from_dict({"fleet": {"opas": ["a", "b"], "confirm_within": 0.25}}, base=tmp_path)
    assert (cfg.fleet.opas, cfg.fleet.confirm_within_s) == (("a", "b"), 0.25)

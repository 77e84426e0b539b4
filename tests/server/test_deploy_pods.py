"""The commands of deploy/kubernetes's pods, run on this machine without containers: the
engine as its StatefulSet runs it (its args, the ConfigMap's config, the store and key from
the Secret's keys, here a throwaway PostgreSQL), and the sidecar OPA as payments-api's pod
runs it (its args, the Secret's config with a real token and this engine's address), until
the sidecar's readiness probe passes and it answers the access check. Addresses become
free loopback ports; nothing else of the manifests is changed."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import requests
import yaml
from live_server import RESOURCE, serve_process, wait_for

from datavisa.engine.api.tokens import OPA, TokenStore
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.policy.process import find_opa, free_port, stop_process

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _object(kind: str, name: str) -> dict[str, Any]:
    docs = [d for p in MANIFESTS.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container(kind: str, name: str, container: str) -> dict[str, Any]:
    pod = _object(kind, name)["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}[container]


def _probe_url(port: int, probe: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{port}{probe['httpGet']['path']}"


def test_the_engine_and_its_sidecar_run_as_their_pods_run_them(
    pg_database: str, tmp_path: Path, monkeypatch
):
    engine = _container("StatefulSet", "datavisa", "datavisa")
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in engine["env"]}
    secret = {"database-url": pg_database, "log-key": secrets.token_hex(32)}
    for name, key in env.items():  # the Secret's keys, with this machine's values
        monkeypatch.setenv(name, secret[key])
    assert env["DATAVISA_LOG_KEY"] == "log-key" and KEY_ENV == "DATAVISA_LOG_KEY"
    mount = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}["config"]
    config_map = _object("ConfigMap", "datavisa-config")["data"]
    for file, text in config_map.items():
        (tmp_path / file).write_text(text)
    command, *args = [a.replace(mount, str(tmp_path)) for a in engine["args"]]
    assert command == "serve"

    with serve_process(*args, log=tmp_path / "serve.log") as served:  # ready: /health 200
        sidecar = _container("Deployment", "payments-api", "opa")
        config = yaml.safe_load(
            _object("Secret", "payments-opa-config")["stringData"]["config.yaml"]
        )
        name = config["labels"]["datavisa_opa"]
        tokens = TokenStore(pg_database)
        try:
            token, _ = tokens.issue(name, OPA, actor="test")  # what opa-config issues it
        finally:
            tokens.close()
        config["services"]["datavisa"]["url"] = served.url + "/v1"
        config["services"]["datavisa"]["credentials"]["bearer"]["token"] = token
        config_dir = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}["opa-config"]
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        api, diagnostic = free_port(), free_port()
        argv = []
        for arg in sidecar["args"]:
            if arg.startswith("--addr="):
                arg = f"--addr=127.0.0.1:{api}"
            elif arg.startswith("--diagnostic-addr="):
                arg = f"--diagnostic-addr=127.0.0.1:{diagnostic}"
            argv.append(arg.replace(config_dir, str(tmp_path)))
        assert sidecar["command"] == ["opa"]
        with (tmp_path / "opa.log").open("w") as log:
            opa = subprocess.Popen([str(find_opa()), *argv], stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = _probe_url(diagnostic, sidecar["readinessProbe"])
            wait_for(lambda: opa.poll() is not None or _ok(ready), "the sidecar's readiness probe")
            assert opa.poll() is None, (tmp_path / "opa.log").read_text()
            assert _ok(_probe_url(diagnostic, sidecar["livenessProbe"]))
            body = {"input": {"subject": "alice", "resource": RESOURCE, "action": "read",
                              "location": "DE"}}  # fmt: skip
            answer = requests.post(
                f"http://127.0.0.1:{api}/v1/data/datavisa/access/decision", json=body, timeout=5
            )
            assert answer.status_code == 200, answer.text
            result = answer.json()["result"]
            assert result["allow"] is False
            assert [r["code"] for r in result["reasons"]] == ["no_active_grant"]
            # The diagnostic address, which the kubelet reaches, serves no policy.
            policy = requests.get(f"http://127.0.0.1:{diagnostic}/v1/data", timeout=5)
            assert policy.status_code == 404
        finally:
            stop_process(opa)
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = served.url.rsplit(":", 1)[1]
            assert _ok(_probe_url(int(port), engine[probe])), probe


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False

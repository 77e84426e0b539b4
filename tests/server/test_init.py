"""`datavisa init DIR`: one command to a deployment that `datavisa serve --config` runs,
with the first admin token working against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
import yaml
from live_server import wait_for

from datavisa.engine.policy.process import free_port, stop_process

DATAVISA = Path(sys.executable).with_name("datavisa")


def _init(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DATAVISA), "init", str(folder), *args], capture_output=True, text=True, timeout=120
    )


def test_init_writes_a_deployment_that_serves_and_its_admin_token_works(tmp_path: Path):
    folder, port = tmp_path / "datavisa", free_port()
    done = _init(folder, "--admin", "erin", "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("dvt_") and len(done.stdout.splitlines()) == 1  # once, alone
    assert "shown only now" in done.stderr
    config = folder / "datavisa.yaml"
    settings = yaml.safe_load(config.read_text())
    assert settings == {"listen": f"127.0.0.1:{port}", "database": "data/datavisa.db",
                        "bundle_dir": "policy/data", "sweep_every": "30s",
                        "reconcile_every": "60s"}  # fmt: skip
    assert (folder / "data").stat().st_mode & 0o077 == 0
    assert (folder / "policy" / "data" / "subjects.yaml").is_file()
    unit = (folder / "datavisa.service").read_text()
    assert f"ExecStart={DATAVISA} serve --config {config}\n" in unit
    assert f"ReadWritePaths={folder / 'data'}\n" in unit

    with (tmp_path / "serve.log").open("w") as log:
        serve = subprocess.Popen([str(DATAVISA), "serve", "--config", str(config)],
                                 cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return requests.get(url + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return serve.poll() is not None  # ended: stop waiting, and say why below

        wait_for(up, "the deployment's serve")
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()
        me = requests.get(url + "/v1/whoami", headers={"Authorization": f"Bearer {token}"},
                          timeout=5)  # fmt: skip
        assert me.status_code == 200, me.text
        assert (me.json()["subject"], me.json()["role"]) == ("erin", "admin")
    finally:
        stop_process(serve)

    again = _init(folder, "--admin", "erin")
    assert again.returncode == 1 and "is not empty" in again.stderr


def test_init_refuses_an_admin_the_directory_does_not_hold_and_writes_nothing(tmp_path: Path):
    folder = tmp_path / "datavisa"
    refused = _init(folder, "--admin", "mallory")
    assert refused.returncode == 1 and "'mallory' is not in the directory" in refused.stderr
    assert not folder.exists()
    bad = _init(folder, "--admin", "erin", "--listen", "nowhere")
    assert bad.returncode == 1 and not folder.exists()

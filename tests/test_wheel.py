"""The wheel is the product: built as a release is (`python -m build`: the sdist, then the
wheel from that sdist), installed into a fresh virtual environment outside the checkout,
and run from there, with nothing of the checkout on its path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from datavisa.engine.policy.process import NO_OPA, find_opa, free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".git", ".venv", ".tools", "build", "dist", "*.egg-info", "__pycache__",
              ".pytest_cache", ".ruff_cache", "*.db", "*.db-*")  # fmt: skip
WAIT_S = 60.0


def _packages_in_tree() -> set[str]:
    """Every Python package under engine/ and cli/, named as installed."""
    found = set()
    for top in ("engine", "cli"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(("datavisa", *init.parent.relative_to(ROOT).parts)))
    return found


def test_every_package_of_the_tree_is_in_the_package_list():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    missing = _packages_in_tree() - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


@dataclass
class Installed:
    wheel: Path
    venv: Path
    home: Path
    work: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment: the venv's bin first, a home of its own, no DataVisa
        setting of the checkout's; DATAVISA_OPA names the pinned OPA unless overridden."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATAVISA_", "PYTHON", "VIRTUAL_ENV", "XDG_"))
        }
        path = os.pathsep.join(
            p for p in keep.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
        )
        env = {**keep, "HOME": str(self.home), "PATH": f"{self.venv / 'bin'}{os.pathsep}{path}"}
        env["DATAVISA_OPA"] = str(find_opa().resolve())
        env["DATAVISA_DB"] = str(self.work / "datavisa.db")
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.venv / "bin" / "datavisa"), *args],
            cwd=self.work, env=self.env(**extra), capture_output=True, text=True, timeout=300,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    source = Path(shutil.copytree(ROOT, tmp / "source", ignore=shutil.ignore_patterns(*NOT_SOURCE)))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("datavisa-*.whl")
    assert list((tmp / "dist").glob("datavisa-*.tar.gz")), "no sdist"
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", wheel],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    (tmp / "home").mkdir()
    (tmp / "work").mkdir()
    yield Installed(wheel, venv, tmp / "home", tmp / "work")


def test_the_wheel_carries_the_policy_its_data_and_the_opa_build_and_no_tests(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    rego = {f"datavisa/{p.relative_to(ROOT)}" for p in (ROOT / "rego").rglob("*.rego")}
    data = {f"datavisa/{p.relative_to(ROOT)}" for p in (ROOT / "bundles" / "default").iterdir()}
    shipped = {
        "datavisa/engine/policy/bundle_schema.json",
        "datavisa/engine/api/dashboard/index.html",
        "datavisa/tools/opa/go.mod",
        "datavisa/tools/opa/go.sum",
        "datavisa/tools/opa/main.go",
        "datavisa/tools/opa/gateway/plugin.go",
        "datavisa/tools/lint/lint.rego",
    }
    assert rego and data and not (rego | data | shipped) - names
    inits = {p.replace(".", "/") + "/__init__.py" for p in _packages_in_tree()}
    assert not inits - names
    assert "datavisa/engine/local_postgres.py" not in names  # the demo's, beside it in cli/
    assert not [n for n in names if n.startswith(("tests/", "bench/", "datavisa/tests/"))]


def test_installed_it_checks_and_runs_the_policy_tests_outside_the_checkout(installed):
    checked = installed.run("check", "alice", "eu-customer-analytics", "--from", "DE")
    assert checked.returncode == 1, checked.stderr  # a denial: exit 1, as in a checkout
    assert "no_active_grant" in checked.stdout, checked.stdout + checked.stderr
    public = installed.run("check", "alice", "public-docs", "--from", "BR")
    assert public.returncode == 0 and public.stdout.startswith("allow"), public.stderr
    tested = installed.run("policy", "test")
    assert tested.returncode == 0, tested.stdout[-2000:] + tested.stderr[-2000:]
    assert "PASS" in tested.stdout
    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    lines = version.stdout.splitlines()
    assert lines[0] == "datavisa 0.1.0"
    assert lines[1].startswith("OPA 1.22.") and lines[2].startswith("policy bundle ")


def test_installed_it_serves_health_and_an_access_check(installed):
    token = installed.run("token", "issue", "db-proxy", "--role", "service")
    assert token.returncode == 0, token.stderr
    port = free_port()
    with (installed.work / "serve.log").open("w") as log:
        serve = subprocess.Popen(
            [str(installed.venv / "bin" / "datavisa"), "serve", "--listen", f"127.0.0.1:{port}"],
            cwd=installed.work, env=installed.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while not _up(url) and serve.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert serve.poll() is None and _up(url), (installed.work / "serve.log").read_text()
        check = {"subject": "alice", "resource": "eu-customer-analytics", "action": "read",
                 "location": "DE"}  # fmt: skip
        answer = requests.post(
            url + "/v1/access/check", json=check, timeout=10,
            headers={"Authorization": f"Bearer {token.stdout.strip()}"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["allow"] is False
        assert [r["code"] for r in answer.json()["reasons"]] == ["no_active_grant"]
    finally:
        stop_process(serve)


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.skipif(bool(shutil.which("opa", path="/usr/bin:/bin")), reason="an opa is in /usr/bin")
def test_installed_without_an_opa_it_says_the_three_ways_in_one_line(installed):
    bare = installed.run(
        "check", "alice", "eu-customer-analytics", "--from", "DE",
        DATAVISA_OPA="", PATH=f"{installed.venv / 'bin'}:/usr/bin:/bin",
    )  # fmt: skip
    assert bare.returncode == 1
    assert bare.stderr == f"Error: {NO_OPA}\n"


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go on PATH to build OPA with")
def test_installed_it_builds_the_pinned_opa_where_it_finds_it_itself(installed):
    # Its own home, but this machine's Go caches: the modules and packages make setup built.
    caches = subprocess.run(
        ["go", "env", "GOCACHE", "GOMODCACHE", "GOPATH"], capture_output=True, text=True, check=True
    )
    gocache, gomodcache, gopath = caches.stdout.split()
    built = installed.run(
        "opa", "install", DATAVISA_OPA="", GOCACHE=gocache, GOMODCACHE=gomodcache, GOPATH=gopath
    )
    assert built.returncode == 0, built.stderr[-3000:]
    where = installed.home / ".local" / "share" / "datavisa" / "bin" / "opa"
    assert built.stdout.strip() == str(where)
    found = installed.run(
        "opa", "which", DATAVISA_OPA="", PATH=f"{installed.venv / 'bin'}:/usr/bin:/bin"
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith(f"{where} (OPA 1.22.")

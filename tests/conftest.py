"""Real parts only: an OPA process serving the shipped bundle, SQLite files in tmp dirs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datavisa.cli.main import cli
from datavisa.engine import bundle
from datavisa.engine.opa import OpaProcess
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR


@pytest.fixture(scope="session")
def opa_url(tmp_path_factory: pytest.TempPathFactory):
    """One OPA for the session, on a free loopback port, with the shipped policy."""
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, out, "test")
    with OpaProcess(tarball) as opa:
        yield opa.url


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "datavisa.db"


Run = Callable[..., Result]


@pytest.fixture
def run(db: Path, opa_url: str) -> Run:
    """Invoke the CLI on this test's database and the session's OPA."""

    def invoke(*args: str, opa: str | None = opa_url) -> Result:
        argv = [*args, "--db", str(db)]
        if opa is not None and args[0] in {"request", "approve", "check"}:
            argv += ["--opa-url", opa]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    return invoke

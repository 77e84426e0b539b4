"""Real parts only: an OPA process serving the shipped bundle, SQLite files in tmp dirs,
a throwaway PostgreSQL cluster (a fresh database per test), a throwaway MariaDB server."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from connector_contract import MARIADB_RESOURCE

from datavisa.cli.local_mariadb import LocalMariadb, MariadbUnavailable
from datavisa.cli.local_postgres import LocalPostgres, PostgresUnavailable
from datavisa.cli.main import cli
from datavisa.engine.ledger.decision_log import KEY_ENV, DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store


@pytest.fixture(scope="session")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    """One OPA for the session, on a free loopback port, with the shipped policy; it
    answers the engine only by its secret (`opa.client()`, `opa.token_file`)."""
    out = tmp_path_factory.mktemp("bundle") / "bundle.tar.gz"
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, out, "test")
    with OpaProcess(tarball) as opa:
        yield opa


# The console step-up the tests ask for: approving confidential data takes a security key
# (or a hardware-key sign-in at the IdP); restricted data takes one or, as its fallback,
# an authenticator app's code (the tests' IdP signs in by password: never enough).
CONSOLE_STEP_UP = {
    "confidential": {"approve": {"max_age_s": 300, "amr": ["hwk"], "methods": ["webauthn"]}},
    "restricted": {"approve": {"max_age_s": 300, "amr": ["hwk"], "methods": ["webauthn", "totp"]}},
}


def step_up_bundle(into: Path, step_up: dict[str, dict]) -> Path:
    """The shipped bundle, built into `into` with `step_up` (by tier) on its tiers."""
    import shutil

    import yaml

    data = into / "data"
    shutil.copytree(DEFAULT_BUNDLE_DIR, data)
    tiers = yaml.safe_load((data / "tiers.yaml").read_text())
    for tier, steps in step_up.items():
        tiers["tiers"][tier]["step_up"] = steps
    (data / "tiers.yaml").write_text(yaml.safe_dump(tiers))
    return bundle.build(POLICY_DIR, data, into / "b.tar.gz", "step-up")


@pytest.fixture(scope="session")
def step_up_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    """An OPA with the shipped policy on tiers that take the console's step-up
    (CONSOLE_STEP_UP)."""
    with OpaProcess(step_up_bundle(tmp_path_factory.mktemp("stepup"), CONSOLE_STEP_UP)) as opa:
        yield opa


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One throwaway PostgreSQL cluster for the session, on a free loopback port, with a
    random superuser password; skips, saying why, where PostgreSQL is not installed
    (`make test` installs it as root)."""
    try:
        cluster = LocalPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[LocalMariadb]:
    """One throwaway MariaDB server for the session, on a free loopback port, with a
    random root password and the audit plugin loaded; skips, saying why, where MariaDB is
    not installed (`make setup` installs it as root)."""
    try:
        server = LocalMariadb().start()
    except MariadbUnavailable as exc:
        pytest.skip(f"no MariaDB: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def support(mariadb: LocalMariadb) -> str:
    """The MariaDB database MARIADB_RESOURCE targets (connectors_opa's bundle), with its
    tables and two tickets; its root DSN."""
    dsn = mariadb.create_database("support")
    with mariadb.connect("support") as db, db.cursor() as cur:
        cur.execute("CREATE TABLE tickets (id int PRIMARY KEY, body text)")
        cur.execute("CREATE TABLE agents (id int PRIMARY KEY, name text)")
        cur.execute("CREATE TABLE secrets (id int)")  # not in the target: never granted
        cur.execute("INSERT INTO tickets VALUES (1, 'cannot log in'), (2, 'refund')")
    return dsn


@pytest.fixture(scope="session")
def connectors_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped policy data and MARIADB_RESOURCE, a confidential resource whose target
    is the MariaDB connection `support` (a bundle_dir serve can build from)."""
    import shutil

    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path_factory.mktemp("mdb") / "data"))
    resources = data / "resources.yaml"
    resources.write_text(
        resources.read_text().rstrip("\n")
        + f"\n  {MARIADB_RESOURCE}:\n    region: aws:eu-central-1\n    tier: confidential\n"
        "    tags: [pd]\n    team: analytics\n    actions: [read, write]\n"
        "    target: {kind: mariadb, connection: support, database: support, "
        "tables: [tickets, agents]}\n"
    )
    # Supervised grants with short numbers, so a lapse or a grace is waited for briefly.
    (data / "supervision.yaml").write_text(
        "supervised:\n  required:\n    resources:\n      eu-customer-analytics: [write]\n"
        f"      {MARIADB_RESOURCE}: [write]\n  supervisors: [security_officer, data_owner]\n"
        "  lease_s: 2\n  heartbeat_s: 1\n  grace_s: 1\n"
    )
    return data


@pytest.fixture(scope="session")
def connectors_opa(
    connectors_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpaProcess]:
    """An OPA with the shipped policy on `connectors_data` (both connectors' targets)."""
    out = tmp_path_factory.mktemp("mdbbundle") / "bundle.tar.gz"
    with OpaProcess(bundle.build(POLICY_DIR, connectors_data, out, "connectors")) as process:
        yield process


@pytest.fixture
def pg_database(postgres: LocalPostgres, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database in the session's cluster for this test; its superuser DSN."""
    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return postgres.create_database(name)


@pytest.fixture(scope="session")
def analytics(postgres: LocalPostgres) -> str:
    """The database the shipped bundle's eu-customer-analytics targets (its `target`), with
    its tables and two customers; its superuser DSN. Grants' roles are named by grant id,
    so tests share it without colliding."""
    import psycopg

    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        exists = db.execute("SELECT 1 FROM pg_database WHERE datname = 'analytics'").fetchone()
    if exists:
        return postgres.dsn("analytics")
    dsn = postgres.create_database("analytics")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
        db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric)")
        db.execute("CREATE TABLE secrets (id int)")  # not in the target: never granted
        db.execute("INSERT INTO customers VALUES (1, 'ada@example.com'), (2, 'bo@example.com')")
    return dsn


def _opa_args(opa: OpaProcess) -> list[str]:
    return ["--opa-url", opa.url, "--opa-token-file", str(opa.token_file)]


@pytest.fixture
def opa_args(opa: OpaProcess) -> list[str]:
    """The CLI options that point a command at the session's OPA, with its credential."""
    return _opa_args(opa)


STORES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stores: run each test on every store (SQLite, PostgreSQL) via `db`"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked `pytestmark = pytest.mark.stores` runs each test that uses `db`
    (directly or through `run`, `engine`, ...) once per store."""
    chosen = any(
        "db" in [name.strip() for name in str(mark.args[0]).split(",")]
        for mark in metafunc.definition.iter_markers("parametrize")
    )  # a test that names its own store(s)
    marked = metafunc.definition.get_closest_marker("stores")
    if "db" in metafunc.fixturenames and marked and not chosen:
        metafunc.parametrize("db", STORES, indirect=True)


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """This test's store: an SQLite file's path, or (in a module marked `stores`, once
    more) a fresh PostgreSQL database's URL, with the log key PostgreSQL needs set."""
    if getattr(request, "param", "sqlite") == "postgresql":
        monkeypatch.setenv(KEY_ENV, "test-log-key")
        return request.getfixturevalue("pg_database")
    return tmp_path / "datavisa.db"


Run = Callable[..., Result]
NEEDS_OPA = {
    "request", "break-glass", "approve", "deny", "cancel", "activate", "revoke", "relinquish",
    "extend", "review", "check", "sweep", "transfer",
}  # fmt: skip


@pytest.fixture
def run(db: Path, opa: OpaProcess) -> Run:
    """Invoke the CLI on this test's database and the session's OPA (`opa=None`: none)."""
    session_opa = opa

    def invoke(*args: str, opa: OpaProcess | str | None = session_opa) -> Result:
        argv = [*args, "--db", str(db)]
        if opa is not None and args[0] in NEEDS_OPA:
            argv += _opa_args(opa) if isinstance(opa, OpaProcess) else ["--opa-url", opa]
        return CliRunner().invoke(cli, argv, catch_exceptions=False)

    return invoke


class Clock:
    """The engine's clock: real time plus an offset a test may advance.

    OPA keeps its own (real) clock, so tests that advance this one check what the engine
    decides by time (lapse, activation windows, sweeps), not OPA's access answers.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(db: Path, opa: OpaProcess, clock: Clock):
    """An engine on this test's database and the session's OPA, its grants in OPA reset."""
    store = open_store(db)
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, opa.client(), revision="test", clock=clock, log=log)
    engine.grants.sync()
    yield engine
    store.close()

"""serve's `connections:` (where grants take effect): read from the config, the admin
DSN from a file or inline, and never in an error, a repr or a log line."""

from __future__ import annotations

from pathlib import Path

import pytest

from datavisa.engine.api import config
from datavisa.engine.connectors.postgresql import Connection
from datavisa.engine.model.errors import DataVisaError

SECRET = "Adm1n-S3cret%2F"
DSN = f"postgresql://admin:{SECRET}@db.example.com:6432/postgres"


def test_a_connection_is_read_with_its_dsn_from_a_file(tmp_path: Path):
    (tmp_path / "analytics.dsn").write_text(DSN + "\n")
    (tmp_path / "serve.yaml").write_text(
        "connections:\n  analytics:\n    kind: postgresql\n    dsn_file: analytics.dsn\n"
        "    log_dir: pglog\n    public_host: db.example.com\n"
    )
    cfg = config.load(tmp_path / "serve.yaml")
    conn = cfg.connections["analytics"]
    assert conn.dsn == DSN and conn.log_dir == tmp_path / "pglog"
    assert conn.address() == ("db.example.com", 6432)
    assert SECRET not in repr(cfg) and SECRET not in repr(conn)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  Bad Name:\n    kind: postgresql\n    dsn: x\n", "connection names are lower-case"),
        ("  a:\n    kind: mysql\n    dsn: x\n", "connections.a.kind must be postgresql"),
        ("  a:\n    kind: postgresql\n", "give dsn or dsn_file"),
        (f"  a:\n    kind: postgresql\n    dsn: {DSN}\n    dsn_file: f\n", "give dsn or dsn_file"),
        (f"  a:\n    kind: postgresql\n    dsn: mysql://admin:{SECRET}@h/d\n", "postgresql:// URL"),
        ("  a:\n    kind: postgresql\n    dsn_file: missing.dsn\n", "cannot read"),
        (f"  a:\n    kind: postgresql\n    dsn: {DSN}\n    port: 1\n", "unknown setting"),
        (f"  a:\n    kind: postgresql\n    dsn: {DSN}\n    public_port: x\n", "port number"),
    ],
)
def test_a_bad_connection_says_what_is_wrong_and_never_the_password(
    tmp_path: Path, section: str, message: str
):
    (tmp_path / "serve.yaml").write_text("connections:\n" + section)
    with pytest.raises(DataVisaError) as e:
        config.load(tmp_path / "serve.yaml")
    assert message in str(e.value)
    assert SECRET not in str(e.value)


def test_errors_are_scrubbed_of_the_password_plain_or_quoted():
    conn = Connection("a", DSN)
    text = f"failed: password {SECRET} / {SECRET.replace('%2F', '/')} rejected"
    scrubbed = conn.scrub(text)
    assert "Adm1n-S3cret" not in scrubbed and "***" in scrubbed

"""`datavisa demo --postgres` tells the database story on a throwaway cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datavisa.cli.local_postgres import PostgresUnavailable, find_bindir


def test_the_database_demo_grants_refuses_logs_and_terminates():
    try:
        find_bindir()
    except PostgresUnavailable as e:
        pytest.skip(f"no PostgreSQL: {e}")
    datavisa = Path(sys.executable).with_name("datavisa")
    done = subprocess.run(
        [str(datavisa), "demo", "--postgres"],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for said in (
        "postgresql: provisioned: role dv_",
        "refused: access from US",
        "PostgreSQL refuses: permission denied for table customers",
        "SELECT count(*) FROM customers WHERE country = '***'",
        "ran a bulk export under grant",
        "her next statement → terminating connection due to administrator command",
        "refused: the role is gone",
        "credentials_issued",
    ):
        assert said in out, f"{said!r} not in:\n{out}"

"""The throwaway cluster the demo, the tests and the benchmark run PostgreSQL with."""

from __future__ import annotations

import psycopg
import pytest

from datavisa.cli.local_postgres import LocalPostgres


def test_a_fresh_database_answers_its_superuser(pg_database: str) -> None:
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT current_user, 1").fetchone() == ("postgres", 1)


def test_the_superuser_needs_its_password(postgres: LocalPostgres) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(postgres.dsn(password="wrong"), connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres.dsn().replace(postgres.password, ""), connect_timeout=5).close()


def test_the_server_logs_json_lines_where_it_says(postgres: LocalPostgres) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_rotate_logfile()")
    assert list(postgres.log_dir.glob("*.json"))

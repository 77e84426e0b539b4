"""The throwaway MariaDB server the connector tests run against."""

from __future__ import annotations

import pymysql
import pytest

from datavisa.cli.local_mariadb import LocalMariadb


def test_a_fresh_server_answers_root_by_its_password_only(mariadb: LocalMariadb) -> None:
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), @@event_scheduler")
        user, scheduler = cur.fetchone()
    assert user.startswith("root@") and scheduler == "ON"
    with pytest.raises(pymysql.OperationalError):
        mariadb.connect(password="wrong").close()
    with pytest.raises(pymysql.OperationalError):
        mariadb.connect(password="").close()


def test_the_audit_plugin_is_loaded_and_writes_where_it_says(mariadb: LocalMariadb) -> None:
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute("SELECT @@server_audit_file_path")
        assert cur.fetchone()[0] == str(mariadb.audit_log)


def test_a_database_is_made_and_the_server_stops_with_nothing_left() -> None:
    server = LocalMariadb().start()
    root = server.root
    assert server.create_database("made").endswith("/made")
    with server.connect("made") as db, db.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == ("made",)
    server.stop()
    assert root is not None and not root.exists()
    with pytest.raises(pymysql.OperationalError):
        pymysql.connect(host="127.0.0.1", port=server.port, user="root", connect_timeout=2)

"""A throwaway MariaDB server on loopback, for the tests (and any demo or benchmark that
wants one). Never for production: its data lives in a temporary folder, so it sits beside
the PostgreSQL one (`local_postgres`), not in the engine.

It runs Debian's MariaDB binaries without their service: `mariadb-install-db` a fresh data
folder, start `mariadbd` on a free 127.0.0.1 port with its socket in the same folder and
the event scheduler on (the connector's second clock), give `root` a random password and
load the `server_audit` plugin (what grants' accounts ran), and stop it by its pid file and
remove the folder at the end. As root the server runs as root (`--user=root`): the folder
is its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from datavisa.engine.policy.process import free_port

SUPERUSER = "root"
START_WAIT_S = 60.0
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class MariadbUnavailable(RuntimeError):
    """MariaDB's server binaries are not on this machine, or it cannot run them."""


def find_tool(name: str) -> str:
    """A MariaDB program by name: `DATAVISA_MARIADB_BINDIR`, PATH, or /usr/sbin."""
    if env := os.environ.get("DATAVISA_MARIADB_BINDIR"):
        return str(Path(env) / name)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise MariadbUnavailable(
            f"MariaDB's server is not installed ({name} not found; apt-get install "
            "mariadb-server), or set DATAVISA_MARIADB_BINDIR to the folder holding it"
        )
    return found


class LocalMariadb:
    """`with LocalMariadb() as mdb:` a running server; `mdb.dsn("db")` to reach it.

    The audit plugin writes to `mdb.audit_log`; which accounts it logs is the connector's
    to set (`server_audit_incl_users`)."""

    def __init__(self) -> None:
        self.install_db = find_tool("mariadb-install-db")
        self.server = find_tool("mariadbd")
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.root: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> LocalMariadb:
        self.root = Path(tempfile.mkdtemp(prefix="datavisa-mariadb-"))
        done = subprocess.run(
            [self.install_db, "--no-defaults", f"--datadir={self.data_dir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, cwd=self.root,
        )  # fmt: skip
        if done.returncode != 0:
            raise MariadbUnavailable(f"mariadb-install-db failed: {done.stderr.strip()[-2000:]}")
        self._process = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={self.data_dir}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.root / 'sock'}", "--user=root", "--skip-name-resolve",
             f"--log-error={self.root / 'err.log'}", f"--pid-file={self.pid_file}",
             "--event-scheduler=ON", "--innodb-flush-log-at-trx-commit=0",
             "--skip-log-bin", "--max-connections=300"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.root,
        )  # fmt: skip
        try:
            self._first_login()
        except BaseException:
            self.stop()
            raise
        return self

    def _first_login(self) -> None:
        """Wait until the server takes connections, then set root's password (on every
        root account) and load the audit plugin."""
        import pymysql

        deadline = time.monotonic() + START_WAIT_S
        while True:
            try:
                db = pymysql.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                     connect_timeout=2, autocommit=True)  # fmt: skip
                break
            except pymysql.OperationalError as e:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise MariadbUnavailable(f"mariadbd did not start: {e}") from None
                time.sleep(0.05)
        with db, db.cursor() as cur:
            cur.execute("SELECT Host FROM mysql.global_priv WHERE User = %s", [SUPERUSER])
            for (host,) in cur.fetchall():
                if host in LOOPBACK:
                    cur.execute("ALTER USER %s@%s IDENTIFIED BY %s",
                                [SUPERUSER, host, self.password])  # fmt: skip
                else:  # root@<this machine's name>: no one connects as that here
                    cur.execute("DROP USER %s@%s", [SUPERUSER, host])
            cur.execute("INSTALL SONAME 'server_audit'")
            cur.execute(f"SET GLOBAL server_audit_file_path = '{self.audit_log}'")

    def stop(self) -> None:
        if self.root is None:
            return
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            try:
                pid = int(self.pid_file.read_text().strip())
            except (OSError, ValueError):
                pid = process.pid
            os.kill(pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> LocalMariadb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reaching it --------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "data"

    @property
    def pid_file(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "pid"

    @property
    def audit_log(self) -> Path:
        """Where the audit plugin writes (server_audit_file_path)."""
        assert self.root is not None, "the server is not started"
        return self.root / "server_audit.log"

    def dsn(self, database: str = "", user: str = SUPERUSER, password: str | None = None) -> str:
        secret = self.password if password is None and user == SUPERUSER else password
        auth = quote(user, safe="") + (f":{quote(secret, safe='')}" if secret else "")
        return f"mysql://{auth}@127.0.0.1:{self.port}/{quote(database)}"

    def connect(self, database: str | None = None, user: str = SUPERUSER, password=None):
        """A PyMySQL connection (autocommit) as `user` (root by default)."""
        import pymysql

        secret = self.password if password is None and user == SUPERUSER else password
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=user, password=secret or "",
            database=database, autocommit=True,
        )  # fmt: skip

    def create_database(self, name: str) -> str:
        """A new, empty database; its DSN (root)."""
        with self.connect() as db, db.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        return self.dsn(name)

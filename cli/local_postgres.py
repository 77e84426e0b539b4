"""A throwaway PostgreSQL cluster on loopback: for `datavisa demo --postgres`, the tests
and the benchmark. Never for production: its data lives in a temporary folder, so it sits
beside the demo, not in the engine.

It runs Debian's (or any) PostgreSQL binaries: `initdb` a fresh cluster with a random
superuser password, start it on a free 127.0.0.1 port with its socket in the same folder,
and stop it and remove the folder at the end. PostgreSQL refuses to run as root, so as
root the cluster runs as the `postgres` system user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from datavisa.engine.policy.process import free_port

SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not on this machine, or it cannot run them."""


def find_bindir() -> Path:
    """The folder holding `initdb` and `pg_ctl`: `DATAVISA_PG_BINDIR`, Debian's newest
    `/usr/lib/postgresql/N/bin`, or PATH."""
    if env := os.environ.get("DATAVISA_PG_BINDIR"):
        return Path(env)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if versions:
        return Path(versions[-1]).parent
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL's server is not installed (apt-get install postgresql), "
        "or set DATAVISA_PG_BINDIR to the folder holding initdb"
    )


class LocalPostgres:
    """`with LocalPostgres() as pg:` a running cluster; `pg.dsn("db")` to reach it.

    `settings` are extra server settings (`-c name=value`), for example the connector's
    statement logging. The server log goes to `pg.log_dir` as JSON lines (`jsonlog`).
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bindir = find_bindir()
        self.settings = settings or {}
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.root: Path | None = None
        self._user: pwd.struct_passwd | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> LocalPostgres:
        self.root = Path(tempfile.mkdtemp(prefix="datavisa-pg-"))
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root, but there is no `postgres` user to run PostgreSQL as"
                ) from exc
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--pwfile", str(pwfile),
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--no-instructions",
        )  # fmt: skip
        pwfile.unlink()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",  # throwaway data: no crash safety needed, much faster tests
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "on",
            "log_destination": "jsonlog",
            "log_directory": str(self.log_dir),
            "log_file_mode": "0644",
            "max_connections": "200",
            **self.settings,
        }
        argv = " ".join(f"-c {k}={v}" for k, v in options.items())
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "startup.log"),
            "-o", argv, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reaching it --------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "log"

    def dsn(
        self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None
    ) -> str:
        secret = self.password if password is None and user == SUPERUSER else password
        auth = quote(user) + (f":{quote(secret, safe='')}" if secret else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(database)}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its DSN (superuser)."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    # -- internals ----------------------------------------------------------------------
    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bindir / tool), *args]
        if self._user is not None:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "startup.log" if self.root else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise PostgresUnavailable(f"{tool} failed: {done.stderr.strip()}\n{tail}".strip())

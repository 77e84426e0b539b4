"""`datavisa doctor`: a deployment checked part by part, each answer saying what to fix.

It reads what `datavisa serve` would use (its config) and changes nothing: the OPA (found
and of the pinned series, or the external one answering), the policy data (valid against
the data model), the store (reachable, at this release's schema, its clock near this
machine's), the data systems grants take effect in (reachable, and what a grant's role
reaches beyond its approved database: PUBLIC's CONNECT on another, a target's tables
granted to PUBLIC), the webhooks (their host takes a connection; nothing is sent), the
sidecar OPAs of `fleet.opas` (when each was last heard from and whether it holds the
newest grants, as the store has it), and the files that hold secrets (the SQLite store,
the decision log's key: not readable by other users).
"""

from __future__ import annotations

import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from ..connectors import mariadb
from ..connectors.postgresql import REFUSE, Connection, Reach, reach, targets
from ..ledger.decision_log import key_file
from ..lifecycle.fleet import Fleet
from ..model.errors import DataVisaError
from ..paths import DEFAULT_BUNDLE_DIR
from ..policy import bundle
from ..policy.process import pinned_opa
from ..store import is_url, open_store
from .config import ServeConfig

SKEW_S = 1.0  # grants start and end by the engines' clocks: more apart than this is a fault


@dataclass(frozen=True)
class Finding:
    ok: bool
    part: str  # what was looked at
    detail: str  # what it found, or what to fix


def examine(config: ServeConfig) -> list[Finding]:
    """Every part of the deployment `config` describes, looked at."""
    return [
        _opa(config),
        _policy(config),
        *_store(config.database),
        *_exposed(config.database),
        *_connections(config),
        *_webhooks(config),
        *_fleet(config),
    ]


def _opa(config: ServeConfig) -> Finding:
    if config.opa_url:
        headers = {"Authorization": f"Bearer {config.opa_token}"} if config.opa_token else {}
        try:
            answer = requests.get(config.opa_url + "/health?bundles", headers=headers, timeout=3)
        except requests.RequestException as e:
            return Finding(False, "opa", f"{config.opa_url} does not answer ({e}): start it")
        if answer.status_code != 200:
            return Finding(False, "opa", f"{config.opa_url}/health answers {answer.status_code}")
        return Finding(True, "opa", f"{config.opa_url} answers, its bundles activated")
    try:
        binary, version = pinned_opa()
    except DataVisaError as e:
        return Finding(False, "opa", str(e))
    return Finding(True, "opa", f"{binary} (OPA {version})")


def _policy(config: ServeConfig) -> Finding:
    if config.bundle is not None:
        if not bundle.built_data(config.bundle):
            return Finding(
                False,
                "policy",
                f"{config.bundle} holds no readable data: rebuild it (`datavisa policy build`)",
            )
        return Finding(True, "policy", f"built bundle {config.bundle}")
    folder = config.bundle_dir or DEFAULT_BUNDLE_DIR
    try:
        data = bundle.load_data(folder)
    except DataVisaError as e:
        return Finding(False, "policy", str(e))
    people = len(data.get("subjects") or {})
    return Finding(
        True,
        "policy",
        f"{folder}: valid, {people} subjects, {len(data.get('resources') or {})} resources",
    )


def _store(database: Path | str) -> list[Finding]:
    if not is_url(database) and not Path(database).exists():
        return [Finding(True, "store", f"{database} does not exist yet: serve makes it at start")]
    try:
        store = open_store(database, readonly=True)
    except DataVisaError as e:
        return [Finding(False, "store", str(e))]
    try:
        store.check_schema()
        found = [
            Finding(True, "store", f"{store.location}: reachable, schema {store.schema_version()}")
        ]
        if is_url(database):
            (theirs,) = store.db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
            skew = abs(float(theirs) - time.time())
            fix = "" if skew <= SKEW_S else ": sync the clocks (NTP)"
            found.append(Finding(skew <= SKEW_S, "clock", f"{skew:.2f} s from the database's{fix}"))
        return found
    except DataVisaError as e:
        return [Finding(False, "store", str(e))]
    finally:
        store.close()


def _exposed(database: Path | str) -> list[Finding]:
    """The SQLite store and the log key beside it: readable by no other user."""
    if is_url(database):
        return []
    found = []
    for path in (Path(database), key_file(database)):
        if not path.exists():
            continue
        if _readable_by_others(path):
            found.append(
                Finding(
                    False,
                    "permissions",
                    f"{path} is readable by other users: chmod 600 {path} (or 700 its folder)",
                )
            )
        else:
            found.append(Finding(True, "permissions", f"{path}: this user's only"))
    return found


def _readable_by_others(path: Path) -> bool:
    mode, folder = path.stat().st_mode, path.resolve().parent.stat().st_mode
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH)) and bool(
        folder & (stat.S_IXGRP | stat.S_IXOTH)
    )


def _connections(config: ServeConfig) -> list[Finding]:
    if not config.connections:
        return []
    import psycopg

    found = []
    databases = targets(_resources(config))
    for name, connection in sorted(config.connections.items()):
        if isinstance(connection, mariadb.Connection):
            found.append(_mariadb_reachable(name, connection))
            continue
        try:
            with psycopg.connect(connection.dsn, connect_timeout=3) as db:
                db.execute("SELECT 1")
            beyond = reach(connection, databases.get(name, set()))
        except psycopg.Error as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            found.append(Finding(False, f"connection {name}", f"unreachable: {reason}"))
            continue
        found.append(Finding(True, f"connection {name}", "reachable"))
        found += [_reach(name, connection, one) for one in beyond]
    return found


def _mariadb_reachable(name: str, connection: mariadb.Connection) -> Finding:
    """A MariaDB connection takes the admin's login, and its event scheduler (the
    accounts' own expiry) is on."""
    import pymysql

    try:
        with (
            pymysql.connect(**connection.params(), connect_timeout=3) as db,
            db.cursor() as cur,
        ):
            cur.execute("SELECT @@event_scheduler")
            scheduler = str(cur.fetchone()[0]).upper()
    except pymysql.MySQLError as e:
        reason = connection.scrub(str(e.args[-1] if e.args else e))
        return Finding(False, f"connection {name}", f"unreachable: {reason}")
    if scheduler != "ON":
        return Finding(False, f"connection {name}", "reachable, but event_scheduler is "
                       f"{scheduler}: accounts do not expire by themselves (SET GLOBAL "
                       "event_scheduler = ON, and in the server's config)")  # fmt: skip
    return Finding(True, f"connection {name}", "reachable")


def _reach(name: str, connection: Connection, found: Reach) -> Finding:
    """What a grant's role reaches beyond its approved database, and the fix."""
    part = f"connection {name}: {found.what}"
    if found.target and not found.table:
        return Finding(True, part, f"{found}: the grants' own database")
    refused = connection.public_connect == REFUSE and not found.table
    also = " (public_connect: refuse: no grant is provisioned until then)" if refused else ""
    return Finding(False, part, f"{found}{also}: {found.fix}")


def _resources(config: ServeConfig) -> dict[str, Any]:
    """The resources of the policy data serve would run (none when it cannot be read:
    the policy's own finding says why)."""
    try:
        if config.bundle is not None:
            data = bundle.built_data(config.bundle)
        else:
            data = bundle.load_data(config.bundle_dir or DEFAULT_BUNDLE_DIR)
    except DataVisaError:
        return {}
    resources = (data or {}).get("resources")
    return resources if isinstance(resources, dict) else {}


def _webhooks(config: ServeConfig) -> list[Finding]:
    """Each webhook's host takes a TCP connection (no request is sent: a post would be a
    notification)."""
    found = []
    for hook in config.webhooks:
        url = urlsplit(hook.url)
        port = url.port or (443 if url.scheme == "https" else 80)
        part = f"webhook {hook.name or url.hostname}"
        try:
            with socket.create_connection((url.hostname or "", port), timeout=3):
                pass
        except OSError as e:
            found.append(
                Finding(False, part, f"{url.hostname}:{port} takes no connection ({e}): "
                        "what it should receive is retried, then given up")
            )  # fmt: skip
        else:
            found.append(Finding(True, part, f"{url.hostname}:{port} takes connections"))
    return found


def _fleet(config: ServeConfig) -> list[Finding]:
    """The sidecar OPAs `fleet.opas` trusts, as the store has heard of them."""
    if not config.fleet.opas or (
        not is_url(config.database) and not Path(config.database).exists()
    ):
        return []
    try:
        store = open_store(config.database, readonly=True)
    except DataVisaError:
        return []  # the store's own finding says why
    try:
        members = [m for m in Fleet(store, config.fleet).view() if m.trusted]
    except DataVisaError as e:
        return [Finding(False, "fleet", str(e))]
    finally:
        store.close()
    found = []
    for m in members:
        part = f"fleet OPA {m.name}"
        if m.last_contact is None:
            detail = f"never heard from: start it with what `datavisa opa-config {m.name}` prints"
        elif m.stale:
            detail = (
                f"last heard from {time.time() - m.last_contact:.0f} s ago, {m.lag} grant "
                "change(s) behind: a revoke waits for it; look at its log"
            )
        else:
            detail = f"heard from {time.time() - m.last_contact:.0f} s ago, holds the newest grants"
        found.append(Finding(m.last_contact is not None and not m.stale, part, detail))
    return found

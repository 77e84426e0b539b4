"""The schema every store runs, SQLite or PostgreSQL: its tables and numbered migrations.

Each migration is a version number, what it does, and a list of steps; a step is one
declarative entry (`Table`, `Column`, `Index`) or a statement in the SQL both databases
speak (`Sql`). A store renders the steps in its own dialect (`ddl`) and records each
version it applied in `schema_migrations`, so a fresh database and one made by an older
release both end at `VERSION`; a database at a newer version than this release knows is
refused at start.

Every step may run again harmlessly (IF NOT EXISTS, a column added only when missing):
an SQLite file made before versions were recorded is brought up to date by running
them all. To add a table or a column, append a migration with its entry.

The `requests` table's columns are the `Request` record's fields (`record_columns`): a
field added to the record is added to the table when a store opens, as before versions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..model.records import Approval, Request

# The decision-log rows that are approvals given: the monitor counts them in a window
# (approver concentration). Literal, as a partial index is used only by a query whose
# WHERE holds its condition as written.
APPROVALS = "path = 'datavisa/approval/decision' AND allow = 1"


@dataclass(frozen=True)
class Table:
    """A table: columns by name and type (int, float, str, bytes); `pk` one column or a
    tuple; `auto` makes an int `pk` number new rows itself."""

    name: str
    columns: dict[str, type]
    pk: str | tuple[str, ...]
    auto: bool = False
    not_null: tuple[str, ...] = ()
    references: tuple[tuple[str, str, str], ...] = ()  # (column, other table, its column)


@dataclass(frozen=True)
class Column:
    """A column added to a table made before it; rows already there get `default`."""

    table: str
    name: str
    type: type
    default: Any = None


@dataclass(frozen=True)
class Index:
    """An index, named as sqlite-utils names it (idx_<table>_<columns>) unless `name`."""

    table: str
    columns: tuple[str, ...]
    unique: bool = False
    name: str | None = None
    where: str | None = None  # a partial index: only the rows this condition holds for

    @property
    def index_name(self) -> str:
        return self.name or f"idx_{self.table}_{'_'.join(self.columns)}"


@dataclass(frozen=True)
class Sql:
    """A statement in SQL both dialects speak; it must be harmless to run twice. A
    dialect-specific variant, when one is needed, by dialect name (None: skip there)."""

    statement: str
    dialects: tuple[tuple[str, str | None], ...] = ()

    def text(self, dialect: str) -> str | None:
        return dict(self.dialects).get(dialect, self.statement)


Step = Table | Column | Index | Sql


def record_columns(record: type) -> dict[str, type]:
    """Column types from a dataclass's annotations (`str | None` -> str; lists and
    mappings are stored as JSON text)."""
    out = {}
    for f in fields(record):
        hint = str(f.type).split(" | ")[0]
        out[f.name] = {"int": int, "float": float}.get(hint, str)
    return out


_ENDED_AT = "coalesce(ended_at, expires_at)"

# The schema as release 0.x made it, table by table in the module that used it.
_BASELINE: list[Step] = [
    Table(
        "requests",
        record_columns(Request),
        pk="id",
        not_null=("requester", "resource", "state", "created_at", "kind"),
    ),
    Index("requests", ("requester", "resource", "state")),
    Index("requests", ("state",)),
    Index("requests", ("parent_id",)),
    # A subject's live grants, read on every push to OPA: without this index the store
    # walks every active grant instead of one subject's.
    Index("requests", ("requester", "state")),
    # The grant of a subject on a resource that ended last (the monitor).
    Sql(
        "CREATE INDEX IF NOT EXISTS idx_requests_monitor_ended "
        f"ON requests (requester, resource, {_ENDED_AT})"
    ),
    # Every change to the live grants, in the transaction that made it; each sink has a
    # cursor (`sink:<name>`) saying how far it has applied them.
    Table(
        "outbox",
        {"seq": int, "at": float, "subject": str, "grant_id": str, "change": str},
        pk="seq",
        auto=True,
        not_null=("at", "subject", "grant_id", "change"),
    ),
    Table(
        "approvals",
        record_columns(Approval),
        pk=("request_id", "approver", "verdict"),
        references=(("request_id", "requests", "id"),),
    ),
    # Answers to state-changing calls made with an Idempotency-Key, for retries.
    Table(
        "idempotency",
        {"key": str, "request_hash": str, "status": int, "body": bytes, "at": float},
        pk="key",
        not_null=("request_hash", "status", "body", "at"),
    ),
    Index("idempotency", ("at",)),
    # How far a reader of an append-only table (the monitor, the notifier, a sink) has got.
    Table("cursors", {"name": str, "seq": int}, pk="name"),
    # The audit trail (ledger.audit), hash-chained.
    Table(
        "audit",
        {
            "seq": int,
            "at": float,
            "actor": str,
            "event": str,
            "request_id": str,
            "detail": str,
            "decision_id": str,
            "revision": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
    ),
    Index("audit", ("request_id",)),
    # The decision log (ledger.decision_log), hash-chained, and its signed checkpoints.
    Table(
        "decision_log",
        {
            "seq": int,
            "decision_id": str,
            "at": float,
            "path": str,
            "subject": str,
            "resource": str,
            "allow": int,
            "reasons": str,
            "grant_id": str,
            "caller": str,
            "source": str,
            "revision": str,
            "event": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
    ),
    Index("decision_log", ("decision_id",), unique=True),
    Index("decision_log", ("subject",)),
    Index("decision_log", ("resource",)),
    Index("decision_log", ("grant_id",)),
    Index("decision_log", ("at",)),
    Table(
        "log_checkpoints",
        {"seq": int, "hash": str, "at": float, "kind": str, "sig": str},
        pk="seq",
    ),
    # Alerts the monitor raised, counted when raised again.
    Table(
        "alerts",
        {
            "id": int,
            "key": str,
            "rule": str,
            "severity": str,
            "subject": str,
            "message": str,
            "evidence": str,
            "raised_at": float,
            "state": str,
            "decision_id": str,
            "seq": int,
            "acked_by": str,
            "acked_at": float,
        },
        pk="id",
        auto=True,
        not_null=("key", "rule", "severity", "subject", "state", "raised_at"),
    ),
    Column("alerts", "count", int, default=1),
    Column("alerts", "last_raised_at", float),
    Column("alerts", "dedup_key", str, default=""),
    Sql("UPDATE alerts SET last_raised_at = raised_at WHERE last_raised_at IS NULL"),
    Index("alerts", ("key",), unique=True),
    Index("alerts", ("rule",)),
    Index("alerts", ("subject",)),
    Index("alerts", ("state",)),
    Index(
        "alerts",
        ("rule", "subject", "dedup_key", "severity", "state", "raised_at"),
        name="idx_alerts_repeat",
    ),
    # The places each subject was seen in, as of the records the monitor judged; filled
    # from the judged records when the table is new to an older database.
    Table(
        "monitor_seen",
        {"subject": str, "location": str, "last_at": float},
        pk=("subject", "location"),
    ),
    Sql(
        "",
        (
            (
                "sqlite",
                "INSERT INTO monitor_seen (subject, location, last_at) "
                "SELECT subject, json_extract(event, '$.input.location') AS place, max(at) "
                "FROM decision_log WHERE seq <= (SELECT coalesce(max(seq), 0) FROM cursors "
                "WHERE name = 'monitor') AND subject IS NOT NULL "
                "AND json_type(event, '$.input.location') = 'text' GROUP BY subject, place "
                "ON CONFLICT DO NOTHING",
            ),
            ("postgresql", None),  # a PostgreSQL store is new: nothing judged before it
        ),
    ),
    # Webhook delivery attempts (monitoring.notify).
    Table(
        "deliveries",
        {
            "id": int,
            "kind": str,
            "ref": str,
            "webhook": str,
            "attempt": int,
            "at": float,
            "status": int,
            "error": str,
            "outcome": str,
        },
        pk="id",
        auto=True,
    ),
    Index("deliveries", ("kind", "ref")),
    # Bearer tokens for the HTTP API (api.tokens), kept as hashes.
    Table(
        "tokens",
        {
            "id": str,
            "subject": str,
            "role": str,
            "hash": str,
            "created_at": float,
            "revoked_at": float,
        },
        pk="id",
        not_null=("subject", "role", "hash", "created_at"),
    ),
]

MIGRATIONS: list[tuple[int, str, list[Step]]] = [
    (1, "the schema of release 0.x", _BASELINE),
    (
        2,
        "leases: periodic work one engine at a time",
        [
            # Who does a periodic job (the expiry sweep) now, and until when: taken over
            # by another engine once its holder stops renewing it.
            Table(
                "leases",
                {"name": str, "holder": str, "held_until": float},
                pk="name",
                not_null=("holder", "held_until"),
            ),
        ],
    ),
    (
        3,
        "cursors say when they last moved: a retired engine's no longer holds the outbox",
        [Column("cursors", "at", float)],
    ),
    (
        4,
        "connectors: where each data system stands with a grant, and what its roles ran",
        [
            # Where a sink stands with one grant: provisioned, failed (why), removed, kept
            # (disabled, it owns objects), abandoned (an admin gave the removal up), and
            # when its credentials were last issued. Never a password.
            Table(
                "provisioning",
                {
                    "sink": str,
                    "grant_id": str,
                    "state": str,
                    "detail": str,
                    "at": float,
                    "credentials_at": float,
                },
                pk=("sink", "grant_id"),
                not_null=("state", "at"),
            ),
            # What a provisioned role did, as the data system logged it (masked).
            Table(
                "session_activity",
                {
                    "seq": int,
                    "grant_id": str,
                    "at": float,
                    "sink": str,
                    "session": str,
                    "database": str,
                    "statement": str,
                },
                pk="seq",
                auto=True,
                not_null=("grant_id", "at", "statement"),
            ),
            Index("session_activity", ("grant_id", "seq")),
        ],
    ),
    (
        5,
        "the monitor's approvals index holds approvals only: every access check paid for it",
        [
            Sql("DROP INDEX IF EXISTS idx_decision_log_monitor_approvals"),
            # Counting the approvals in a window (all of them, and one approver's) reads
            # these indexes only, not the log (the monitor). A query uses them only when
            # its WHERE holds APPROVALS literally.
            Index(
                "decision_log",
                ("at", "subject"),
                name="idx_decision_log_approvals_at",
                where=APPROVALS,
            ),
            Index(
                "decision_log",
                ("subject", "at"),
                name="idx_decision_log_approvals",
                where=APPROVALS,
            ),
        ],
    ),
    (
        6,
        "filing deadlines: a filing due after an exporter's first transfer (Vietnam's dossier)",
        [
            # One per filing and exporter: started by the first transfer that policy said
            # starts it (datavisa.filing), due then plus policy's within_s, ended by the
            # filing recorded. The request decisions are given those not filed.
            Table(
                "filing_deadlines",
                {
                    "filing": str,
                    "exporter": str,
                    "first_transfer_id": str,
                    "first_transfer_at": float,
                    "due_at": float,
                    "decision_id": str,
                    "filed_at": float,
                    "filed_by": str,
                },
                pk=("filing", "exporter"),
                not_null=("first_transfer_id", "first_transfer_at", "due_at"),
            ),
        ],
    ),
    (
        7,
        "the dashboard's sign-ins and sessions, kept by their hashes",
        [
            # A sign-in started at /auth/login, until its callback takes it (once) or it
            # lapses: what the callback needs to finish it, found by the state's hash.
            Table(
                "web_sign_ins",
                {
                    "state_hash": str,
                    "nonce": str,
                    "code_verifier": str,
                    "redirect_uri": str,
                    "return_to": str,
                    "max_age": int,
                    "created_at": float,
                    "expires_at": float,
                },
                pk="state_hash",
                not_null=("nonce", "code_verifier", "redirect_uri", "created_at", "expires_at"),
            ),
            Index("web_sign_ins", ("expires_at",)),
            # A signed-in browser, found by the hash of its cookie (never the cookie): who,
            # how they signed in, its CSRF token, its lifetimes, and the IdP's tokens it is
            # renewed with.
            Table(
                "web_sessions",
                {
                    "id_hash": str,
                    "subject": str,
                    "csrf_token": str,
                    "created_at": float,
                    "expires_at": float,
                    "last_seen_at": float,
                    "access_expires_at": float,
                    "refresh_claimed_at": float,
                    "auth_time": float,
                    "amr": str,
                    "acr": str,
                    "id_token": str,
                    "refresh_token": str,
                },
                pk="id_hash",
                not_null=("subject", "csrf_token", "created_at", "expires_at", "last_seen_at"),
            ),
            Index("web_sessions", ("expires_at",)),
            Index("web_sessions", ("subject",)),
        ],
    ),
    (
        8,
        "the directory the identity provider syncs by SCIM; the IdP groups an approval counted "
        "and a dashboard session holds",
        [
            Column("approvals", "idp_groups", str),
            # The IdP groups a dashboard session's latest token named (JSON; NULL: none).
            Column("web_sessions", "groups", str),
            # SCIM Users (engine/directory): the resource as stored (JSON), its userName
            # (the person's subject) and, lower-cased, the key it is unique by among those
            # not deleted. A deleted user's row stays (deleted_at) so policy keeps them
            # deprovisioned even where the bundle names them.
            Table(
                "directory_users",
                {
                    "id": str,
                    "user_name": str,
                    "user_key": str,
                    "external_id": str,
                    "active": int,
                    "resource": str,
                    "version": int,
                    "created_at": float,
                    "updated_at": float,
                    "deleted_at": float,
                },
                pk="id",
                not_null=("user_name", "user_key", "active", "resource", "version", "created_at"),
            ),
            Index(
                "directory_users",
                ("user_key",),
                unique=True,
                name="idx_directory_users_live_key",
                where="deleted_at IS NULL",
            ),
            Index("directory_users", ("user_name",)),
            Index("directory_users", ("external_id",)),
            Table(
                "directory_groups",
                {
                    "id": str,
                    "display_name": str,
                    "display_key": str,
                    "external_id": str,
                    "version": int,
                    "created_at": float,
                    "updated_at": float,
                },
                pk="id",
                not_null=("display_name", "display_key", "version", "created_at"),
            ),
            Index("directory_groups", ("display_key",), unique=True),
            Index("directory_groups", ("external_id",)),
            Table(
                "directory_members",
                {"group_id": str, "user_id": str},
                pk=("group_id", "user_id"),
                references=(
                    ("group_id", "directory_groups", "id"),
                    ("user_id", "directory_users", "id"),
                ),
            ),
            Index("directory_members", ("user_id",)),
        ],
    ),
    (
        9,
        "connectors: the credential verifier a data system was given for a grant",
        [
            # What the connector set as the grant's password, as the data system stores
            # it (PostgreSQL: the SCRAM-SHA-256 verifier, never the password): reconcile
            # compares the server's with it, and puts it back, to catch a password the
            # holder chose for itself.
            Column("provisioning", "verifier", str),
        ],
    ),
    (
        10,
        "export counts: individuals an exporter sent abroad per calendar year (China's PIPL route)",
        [
            # One per counter (policy's: pipl_export), exporter and calendar year (in the
            # counter's timezone, as policy says): what the transfers approved that year
            # carried, added in the transaction of each approval. The request and approval
            # decisions are given them, and pick the route from them plus the transfer.
            Table(
                "export_counts",
                {
                    "counter": str,
                    "exporter": str,
                    "year": int,
                    "individuals": int,
                    "sensitive_individuals": int,
                    "updated_at": float,
                },
                pk=("counter", "exporter", "year"),
                not_null=("individuals", "sensitive_individuals", "updated_at"),
            ),
        ],
    ),
    (
        11,
        "supervised grants: what policy said of supervision, its state, the supervisors' leases",
        [
            # The request decision's supervision requirement (JSON: supervised, lease_s,
            # heartbeat_s, grace_s), kept with the record; NULL: none was asked (older).
            Column("requests", "supervision", str),
            # A supervised active grant's state: present (a supervisor's lease is alive),
            # absent (none is: login refused, checks deny), ended (absent past the grace:
            # its sessions ended too); and since when.
            Column("requests", "supervision_state", str),
            Column("requests", "supervision_since", float),
            # Presence as a lease: each supervisor of a grant, held until `held_until`
            # unless a heartbeat renews it; any engine on the store compares it with now.
            Table(
                "supervisors",
                {
                    "grant_id": str,
                    "supervisor": str,
                    "joined_at": float,
                    "held_until": float,
                    "decision_id": str,
                },
                pk=("grant_id", "supervisor"),
                not_null=("joined_at", "held_until"),
            ),
        ],
    ),
    (
        12,
        "chat: the notices outbox, the Slack messages a request was posted in, who a Slack "
        "user is, and the interaction signatures already seen",
        [
            # What is to be told to whom (engine/chat): one row per notice, unique by its
            # key (a repeat is no news, as an alert's), tried until delivered or failed.
            Table(
                "notices",
                {
                    "seq": int,
                    "key": str,
                    "kind": str,
                    "request_id": str,
                    "recipient": str,
                    "detail": str,
                    "created_at": float,
                    "state": str,
                    "attempts": int,
                    "next_at": float,
                    "done_at": float,
                    "error": str,
                },
                pk="seq",
                auto=True,
                not_null=("key", "kind", "request_id", "state", "attempts", "created_at"),
            ),
            Index("notices", ("key",), unique=True),
            Index("notices", ("state", "next_at")),
            # Each Slack message a request was posted in, so it can be updated (chat.update):
            # the channel (or DM) and the message's ts, as Slack answered them.
            Table(
                "chat_messages",
                {
                    "channel": str,
                    "ts": str,
                    "request_id": str,
                    "recipient": str,
                    "kind": str,
                    "detail": str,
                    "posted_at": float,
                },
                pk=("channel", "ts"),
                not_null=("request_id", "kind", "posted_at"),
            ),
            Index("chat_messages", ("request_id",)),
            # Who a Slack user is here: the directory person whose email Slack gave, as
            # last looked up (users.info, users.lookupByEmail), and when.
            Table(
                "chat_people",
                {"slack_user": str, "person": str, "email": str, "at": float},
                pk="slack_user",
                not_null=("at",),
            ),
            Index("chat_people", ("person",)),
            # Interaction signatures already taken: the same one again is a replay.
            Table(
                "chat_replays",
                {"signature": str, "ts": float, "at": float},
                pk="signature",
                not_null=("ts", "at"),
            ),
            Index("chat_replays", ("at",)),
        ],
    ),
    (
        13,
        "step-up in the console: people's WebAuthn credentials and TOTP secrets, one-time "
        "step-up challenges, and the step-up a web session holds",
        [
            # A person's WebAuthn credentials (engine/stepup), by the credential id the
            # authenticator made (base64url): its COSE public key, the sign counter last
            # seen (a clone shows as a counter that does not grow), its transports (JSON).
            Table(
                "webauthn_credentials",
                {
                    "credential_id": str,
                    "person": str,
                    "public_key": bytes,
                    "sign_count": int,
                    "transports": str,
                    "created_at": float,
                    "last_used_at": float,
                },
                pk="credential_id",
                not_null=("person", "public_key", "sign_count", "created_at"),
            ),
            Index("webauthn_credentials", ("person",)),
            # A challenge handed to one web session for one purpose (register, assert,
            # totp_enrol), by its hash; taken once, and only before it expires.
            Table(
                "step_up_challenges",
                {
                    "challenge_hash": str,
                    "session_hash": str,
                    "purpose": str,
                    "challenge": str,
                    "created_at": float,
                    "expires_at": float,
                },
                pk="challenge_hash",
                not_null=("session_hash", "purpose", "challenge", "created_at", "expires_at"),
            ),
            Index("step_up_challenges", ("session_hash", "purpose")),
            Index("step_up_challenges", ("expires_at",)),
            # A person's TOTP secret (RFC 6238), where policy allows TOTP at all; the time
            # step of the last code taken, so the same code is never taken twice.
            # `confirmed_at` is NULL until the person proved they hold it.
            Table(
                "totp_secrets",
                {
                    "person": str,
                    "secret": str,
                    "created_at": float,
                    "confirmed_at": float,
                    "last_counter": int,
                },
                pk="person",
                not_null=("secret", "created_at"),
            ),
            # The step-up the session's person did here last: how (webauthn, totp), when.
            Column("web_sessions", "step_up_method", str),
            Column("web_sessions", "step_up_at", float),
        ],
    ),
    (
        15,
        "supervision: a heartbeat renews a lease without a new decision until policy's "
        "re-decide point; ending one session goes through the outbox",
        [
            # What the lease's decision was taken on: the policy revision, the country the
            # supervisor was judged in, the heartbeats since (renewals), how many policy
            # lets pass before it decides again (redecide_every), and the lease's length.
            Column("supervisors", "revision", str),
            Column("supervisors", "location", str),
            Column("supervisors", "renewals", int, 0),
            Column("supervisors", "redecide_every", int, 0),
            Column("supervisors", "lease_s", float),
            # One session a supervisor asked to end, written with its audit event and a
            # grant-outbox row; the connector holding the grant ends it and says how it went
            # (state: pending, ended, not_found, grant_ended).
            Table(
                "session_ends",
                {
                    "seq": int,
                    "grant_id": str,
                    "session": str,
                    "asked_by": str,
                    "asked_at": float,
                    "decision_id": str,
                    "state": str,
                    "sink": str,
                    "done_at": float,
                },
                pk="seq",
                auto=True,
                not_null=("grant_id", "session", "asked_by", "asked_at", "state"),
            ),
            Index("session_ends", ("state",)),
        ],
    ),
]
VERSION = MIGRATIONS[-1][0]


# -- rendering ----------------------------------------------------------------------------

_TYPES = {
    "sqlite": {int: "INTEGER", float: "FLOAT", str: "TEXT", bytes: "BLOB"},
    "postgresql": {int: "BIGINT", float: "DOUBLE PRECISION", str: "TEXT", bytes: "BYTEA"},
}


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def create_table(table: Table, dialect: str) -> str:
    """CREATE TABLE IF NOT EXISTS for `table` in `dialect`."""
    types, parts = _TYPES[dialect], []
    single_pk = table.pk if isinstance(table.pk, str) else None
    refs = {column: (other, key) for column, other, key in table.references}
    for name, kind in table.columns.items():
        spec = f'"{name}" {types[kind]}'
        if name == single_pk:
            if table.auto and dialect == "postgresql":
                spec += " GENERATED BY DEFAULT AS IDENTITY"
            spec += " PRIMARY KEY"
        if name in table.not_null:
            spec += " NOT NULL"
        if name in refs:
            spec += f' REFERENCES "{refs[name][0]}"("{refs[name][1]}")'
        parts.append(spec)
    if single_pk is None:
        parts.append("PRIMARY KEY (" + ", ".join(f'"{c}"' for c in table.pk) + ")")
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" (' + ", ".join(parts) + ")"


def add_column(column: Column, dialect: str) -> str:
    spec = f'ALTER TABLE "{column.table}" ADD COLUMN "{column.name}" {_TYPES[dialect][column.type]}'
    if column.default is not None:
        spec += f" NOT NULL DEFAULT {_literal(column.default)}"
    return spec


def create_index(index: Index, dialect: str) -> str:
    unique = "UNIQUE " if index.unique else ""
    columns = ", ".join(f'"{c}"' for c in index.columns)
    where = f" WHERE {index.where}" if index.where else ""
    return (
        f'CREATE {unique}INDEX IF NOT EXISTS "{index.index_name}" '
        f'ON "{index.table}" ({columns}){where}'
    )

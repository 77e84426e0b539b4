"""`datavisa serve` as a running thing: the engine, its OPA, the token store, the API.

`running(config)` brings them up and takes them down again, OPA last of all: with them
the API's role table, loaded from OPA whenever the supervisor resyncs it; the monitor,
which judges each decision against the alert rules as it is recorded; and the notifier,
which sends alerts and new requests to the configured webhooks. `serve`
runs the HTTP API (and the dashboard at /) on top until SIGTERM or SIGINT, a sweeper that
writes down the expiries and lapses time has decided, and a check for overdue reviews.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from ..chat.interactions import Interactions
from ..chat.notices import Notices, approvers_of
from ..chat.slack import CONSOLE_ROUTE, Signatures
from ..connectors.activity import StatementTail
from ..connectors.kinds import sinks as connector_sinks
from ..directory.directory import Directory
from ..identity.oidc import Verifier
from ..ledger.decision_log import DecisionLog, load_key
from ..lifecycle.engine import Engine
from ..lifecycle.fleet import Fleet, FleetSink
from ..lifecycle.grants import ENGINE_LEASE, Grants, OpaSink, Runner
from ..lifecycle.provisioned import ExpiryTimer, abandoned_removals, refusals, residues
from ..model.errors import DataVisaError
from ..model.worker import Worker
from ..monitoring.monitor import Monitor
from ..monitoring.notify import Notifier
from ..paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from ..policy import bundle
from ..policy.opa import OpaClient, OpaUnavailable
from ..policy.process import DecisionUpload
from ..policy.supervisor import OpaSupervisor
from ..store import Store, open_store
from ..store.base import DIRECTORY, GRANTS
from ..supervision import Supervision, SupervisionTimer
from .app import create_app
from .config import ServeConfig
from .limits import InputRules
from .permissions import Permissions
from .service import Service
from .tokens import OPA, SUBJECT_PATTERN, TokenStore

log = logging.getLogger("datavisa.service")


def bundle_revision(path: Path) -> str:
    """The revision in a built bundle's .manifest (tarball or folder)."""
    try:
        if path.is_dir():
            manifest = (path / ".manifest").read_text()
        else:
            with tarfile.open(path) as tar:
                member = next(m for m in tar.getmembers() if m.name.lstrip("/") == ".manifest")
                manifest = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
        return str(json.loads(manifest).get("revision") or "unversioned")
    except (OSError, StopIteration, tarfile.TarError, ValueError, AttributeError):
        return "unversioned"


CHECKPOINT_EVERY_S = 60.0
OPA_SUBJECT = "datavisa-opa"  # whose token the OPA serve runs uploads decisions with
REVIEWS_EVERY_S = 60.0
ENFORCEMENT_EVERY_S = 1.0
SWEEPER_LEASE = "sweeper"
SWEEP_LEASES = 3  # sweeps missed before another engine takes the sweeping over
ENGINE_LEASE_EVERY_S = 1.0  # how often an engine says it runs
ENGINE_LEASE_S = 5.0  # ... and for how long each time: a killed engine is waited for no longer
# How long a thread may hold the GIL while another waits for it. serve's event loop answers
# the checks while its threads (the log's commit, the monitor, the OPA probe, the leases)
# run beside it; at CPython's default of 5 ms, a check that arrives while the monitor
# judges a batch waits up to that long for each of its hops. Measured (bench/README.md):
# 0.5 ms took the p50 overhead at 1 client from 1.54 to 1.40 ms and 32 clients from 605
# to 652 checks a second, alternating 8 rounds on one machine.
GIL_SWITCH_S = 0.0005


@contextlib.contextmanager
def running(cfg: ServeConfig, base_url: str = "") -> Iterator[Service]:
    """The store, the token store, the engine and its OPA, the monitor and the notifier,
    up; all stopped on exit. `base_url` is where people reach the server (for links in
    notifications) unless the config's public_url says otherwise."""
    if cfg.opa_token and not cfg.opa_url:
        raise DataVisaError(
            "opa.token (or --opa-token-file, DATAVISA_OPA_TOKEN) is the credential for an OPA "
            "given with opa.url (--opa-url); the OPA serve supervises makes its own at each start"
        )
    if cfg.bundle_dir is not None and (cfg.bundle is not None or cfg.opa_url):
        raise DataVisaError(
            "bundle_dir (--bundle-dir) is the data a supervised OPA's bundle is built from at "
            "start: give it without bundle (--bundle) or opa.url (--opa-url)"
        )
    with contextlib.ExitStack() as stack:
        store = open_store(cfg.database)
        stack.callback(store.close)
        tokens = TokenStore(store if cfg.token_path == cfg.database else cfg.token_path)
        stack.callback(tokens.close)
        instance = engine_instance(store, base_url, cfg.instance)
        client = OpaClient(
            cfg.opa_url or "http://127.0.0.1:0", timeout=cfg.opa_timeout_s, token=cfg.opa_token
        )
        stack.callback(client.close)
        bundle_path, rev = None, "external"
        if not cfg.opa_url:
            if cfg.bundle is not None:
                bundle_path, rev = cfg.bundle, bundle_revision(cfg.bundle)
            else:  # built now, from the shipped rules and the given (or shipped) data
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datavisa-")))
                data = cfg.bundle_dir or DEFAULT_BUNDLE_DIR
                rev = bundle.revision(POLICY_DIR, data)
                bundle_path = bundle.build(POLICY_DIR, data, tmp / "bundle.tar.gz", rev)
        decisions = DecisionLog(store, load_key(cfg.database))
        # This engine's own OPA is a sink of its own: its cursor is this engine's.
        sink = OpaSink(client, name="opa" if instance is None else f"opa@{instance}")
        engine = Engine(
            store, client, revision=rev, log=decisions, grants=Grants(store, sinks=[sink])
        )
        # Grant changes other engines make reach this engine's OPA at once.
        stack.callback(store.watch(GRANTS, engine.grants.changed.set))
        # The bundle service for sidecar OPAs; with trusted OPAs configured, a sink too.
        fleet = Fleet(store, cfg.fleet, bundle_path, rev)
        if cfg.fleet.opas:
            engine.grants.sinks.append(FleetSink(fleet))
            fleet.on_confirm = engine.grants.changed.set
            # The sidecars' slim policy bundle takes `opa` a second to build: not on the
            # first sidecar's request (it waits on the same lock if it comes sooner).
            threading.Thread(target=fleet.policy, name="sidecar-bundle", daemon=True).start()
        if cfg.connections:  # grants take effect in these databases too (engine/connectors)
            engine.grants.sinks += connector_sinks(
                cfg.connections, store, client, decisions, rev, engine.clock
            )
            stack.callback(ExpiryTimer(engine).start().stop)
        upload = None
        if bundle_path is not None and base_url:
            upload, token_id = _self_upload(tokens, base_url, instance)
            stack.callback(tokens.revoke, token_id)
        permissions = Permissions()
        directory = Directory(engine, SUBJECT_PATTERN)
        # Another engine on a shared PostgreSQL took a SCIM change: this OPA gets it too.
        stack.callback(store.watch(DIRECTORY, directory.followed))

        def resync() -> None:
            # Whenever OPA answers again: the role table first (cheap; nothing is served
            # without it), the synced directory (who is deprovisioned), then every live grant.
            permissions.load(client)
            directory.sync()
            # A database keeps its roles across an OPA restart: the runner reconciles it.
            engine.grants.sync([s for s in engine.grants.sinks if not getattr(s, "provisions", 0)])

        supervisor = OpaSupervisor(client, resync, bundle=bundle_path, upload=upload)
        # Registered before start: a signal during OPA's start-up still stops it.
        stack.callback(supervisor.stop)
        supervisor.start()
        # Every engine on the store notices a supervisor's lease that ran out, and a grace
        # that is over, at that instant (whichever gets there first writes it down).
        stack.callback(SupervisionTimer(Supervision(engine)).start().stop)
        # Applies the grant outbox to OPA, retrying until it lands, and reconciles.
        stack.callback(Runner(engine.grants, reconcile_every_s=cfg.reconcile_every_s).start().stop)
        monitor = Monitor(decisions, client)
        notifier = None
        if cfg.webhooks:
            notifier = Notifier(
                store,
                cfg.webhooks,
                base_url=cfg.public_url or base_url,
                approvers=partial(approvers_of, engine),
            )
            monitor.listeners.append(notifier.alert)
            stack.callback(notifier.stop)
            notifier.start()
        stack.callback(monitor.stop)  # before the notifier's: no alert is handed on late
        monitor.start()
        chat = None
        if cfg.slack is not None:  # chat approvals and notices to people (engine/chat)
            slack = cfg.slack
            if slack.console_url is None and (cfg.public_url or base_url):
                link = (cfg.public_url or base_url).rstrip("/") + CONSOLE_ROUTE
                slack = dataclasses.replace(slack, console_url=link)
            notices = Notices(engine, slack)
            stack.callback(notices.stop)
            notices.start()
            chat = Interactions(engine, notices, Signatures(store, slack.signing_secret))
        if cfg.connections:
            _watch_connectors(stack, cfg, engine, monitor)
        rules = InputRules(_known_countries(client, bundle_path), cfg.limits)
        service = Service(
            engine,
            tokens,
            supervisor,
            monitor=monitor,
            notifier=notifier,
            permissions=permissions,
            rules=rules,
            gateway=cfg.gateway,
            location=cfg.location,
            fleet=fleet,
            instance=instance or "local",
            identity=Verifier(cfg.identity, SUBJECT_PATTERN) if cfg.identity else None,
            sign_in=cfg.sign_in if cfg.identity else None,
            directory=directory,
            chat=chat,
        )
        stack.callback(service.close)
        yield service


def _watch_connectors(
    stack: contextlib.ExitStack, cfg: ServeConfig, engine: Engine, monitor: Monitor
) -> None:
    """What the data systems report, to the store and the alert rules: the statements
    their managed roles ran (read from the servers' logs), the drift reconcile put right,
    the removals an admin abandoned, the ended grants' accounts kept for what they left,
    and the grants refused while PUBLIC reaches other databases."""
    tail = StatementTail(cfg.connections, engine.store, engine.opa, engine.clock)

    def statements(rows: list[dict[str, Any]]) -> None:
        holders = {
            r.id: r.requester for r in map(engine.store.get, {r["grant_id"] for r in rows}) if r
        }
        monitor.check_history({"statements": [
            {"grant_id": r["grant_id"], "subject": holders.get(r["grant_id"], ""),
             "statement": r["statement"]} for r in rows
        ]})  # fmt: skip

    tail.listeners.append(statements)
    stack.callback(tail.start().stop)
    since = [engine.clock()]

    def reported() -> None:
        now = engine.clock()
        abandoned = [a for a in abandoned_removals(engine) if a["at_ns"] >= since[0] * 1e9]
        monitor.check_history(
            {"abandoned_removals": abandoned, "sink_drifts": engine.grants.take_drifts(),
             "grant_residues": residues(engine), "public_connect": refusals(engine)}
        )  # fmt: skip
        since[0] = now

    stack.callback(Periodic(ENFORCEMENT_EVERY_S, reported, "connector-alerts").start().stop)


def _known_countries(client: OpaClient, bundle_path: Path | None) -> frozenset[str]:
    """The countries the bundle the server runs knows, read once at start: from the bundle
    it runs its OPA with, or asked of an external OPA (its data at datavisa/countries).
    When neither says (an external OPA down at start, a bundle without the section), the
    shipped bundle's, with a warning."""
    if bundle_path is not None:
        known = bundle.countries(bundle.built_data(bundle_path))
    else:
        try:
            answer = client.document(f"{bundle.DATA_ROOT}/countries")
        except OpaUnavailable as e:
            log.warning("cannot ask OPA which countries its bundle knows: %s", e)
            answer = None
        known = frozenset(answer) if isinstance(answer, dict) else frozenset()
    if not known:
        log.warning("the policy bundle names no countries; accepting the shipped bundle's")
        return bundle.shipped_countries()
    return known


def engine_instance(store: Store, base_url: str, configured: str | None = None) -> str | None:
    """What names this engine among the engines sharing a PostgreSQL store: `instance:`
    from the config, else host and port (the same after a restart, so a restarted engine
    takes up its own cursors and token); None on SQLite, where one engine has the file."""
    if store.dialect == "sqlite":
        return None
    if configured:
        return configured
    port = urlsplit(base_url).port if base_url else None
    return f"{socket.gethostname()}:{port}" if port else f"{socket.gethostname()}:{os.getpid()}"


def _self_upload(
    tokens: TokenStore, base_url: str, instance: str | None = None
) -> tuple[DecisionUpload, str]:
    """How the OPA serve runs uploads the decisions services ask it directly to serve's own
    POST /v1/logs: with an `opa` token of its own (it may upload, not ask), made now
    (any left live by a crash are revoked first; of this engine only, when several share
    the store), and the token's id, to revoke it when serve stops."""
    subject = OPA_SUBJECT if instance is None else f"{OPA_SUBJECT}@{instance}"
    for old in tokens.list():
        if old.subject == subject and old.revoked_at is None:
            tokens.revoke(old.id)
    token, record = tokens.issue(subject, OPA)
    url = urlsplit(base_url)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(url.hostname or "", url.hostname or "")
    local = f"[{host}]" if ":" in host else host
    return DecisionUpload(f"{url.scheme}://{local}:{url.port}/v1", token), record.id


class Periodic(Worker):
    """Calls `fn` every `every_s` seconds from a thread until stopped; logs its failures."""

    def __init__(self, every_s: float, fn: Callable[[], Any], name: str) -> None:
        super().__init__(name)
        self.every_s, self.fn = every_s, fn

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.fn()
            # A lost PostgreSQL connection arrives as StorageUnavailable, a DataVisaError.
            except (DataVisaError, OpaUnavailable, sqlite3.Error) as e:
                log.warning("%s failed: %s", self._thread.name, e)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: a free one), for uvicorn to listen on.

    Bound before anything starts, so a taken port fails fast and plainly.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP, and with Nagle on every response waits out a 40 ms delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise DataVisaError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def serve(cfg: ServeConfig, announce: Callable[[str], None] = print) -> None:
    """Run the service until SIGTERM or SIGINT; then stop OPA and leave nothing behind.

    uvicorn shuts down gracefully on either signal and then raises it again; the handler
    installed here turns that into SystemExit, so every `finally` (OPA's stop among them)
    runs instead of the process dying where it stands.
    """
    sys.setswitchinterval(GIL_SWITCH_S)
    previous = {s: signal.signal(s, _exit_on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with listen(*cfg.host_port) as sock:
            host, port = sock.getsockname()[:2]
            base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            with running(cfg, base) as service:
                _serve(cfg, sock, service, base, announce)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def http_config(app: Any, **where: Any) -> uvicorn.Config:
    """How uvicorn serves the API (`where`: host and port, when it binds them itself)."""
    return uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        server_header=False,
        # The peer is the peer: uvicorn would let 127.0.0.1 rewrite it from X-Forwarded-For.
        # Only a proxy in location.proxies may name another client address, and that is
        # engine/location's to judge, for the API and the gateway endpoints alike.
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        **where,
    )


class _Server(uvicorn.Server):
    """uvicorn, telling the service as soon as it starts to stop, so that long-lived
    responses (the dashboard's event streams) end instead of holding the shutdown up.

    The OPA serve runs is stopped first, while the API still answers: on a graceful stop
    OPA uploads the decisions it answered since its last upload, and they must land in
    the log. A second signal stops at once.
    """

    def __init__(self, service: Service, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.service = service
        self._draining: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.service.closing.set()
        supervisor = self.service.supervisor
        if self._draining is None and supervisor is not None and supervisor.embedded:
            # Called in a signal handler on the event loop's thread: the wait for OPA
            # happens in a thread of its own, and the loop goes on serving its upload.
            def drain() -> None:
                supervisor.stop()
                super(_Server, self).handle_exit(sig, frame)

            self._draining = threading.Thread(target=drain, name="drain-opa", daemon=True)
            self._draining.start()
            return
        super().handle_exit(sig, frame)


def _serve(
    cfg: ServeConfig,
    sock: socket.socket,
    service: Service,
    base: str,
    announce: Callable[[str], None],
) -> None:
    """The HTTP API on `sock`, with the periodic jobs beside it, until uvicorn stops."""
    server = _Server(service, http_config(create_app(service, cfg.max_body_bytes)))
    engine, store = service.engine, service.engine.store

    def heartbeat() -> None:
        store.hold_lease(ENGINE_LEASE + service.instance, service.instance, ENGINE_LEASE_S)

    heartbeat()

    def sweep() -> None:
        # One engine at a time sweeps; another takes over once its lease runs out.
        if store.hold_lease(SWEEPER_LEASE, service.instance, SWEEP_LEASES * cfg.sweep_every_s):
            engine.sweep()

    # ... and reconciles the sinks every engine shares (each reconciles its own OPA).
    engine.grants.reconciles_shared = lambda: (
        store.held_leases(SWEEPER_LEASE).get(SWEEPER_LEASE) == service.instance
    )

    periodic = [
        Periodic(cfg.sweep_every_s, sweep, "sweeper"),
        # Says this engine runs, so the others wait for its OPA when they end a grant.
        Periodic(ENGINE_LEASE_EVERY_S, heartbeat, "engine-lease"),
        # Signed checkpoints pin the decision log's head, so a cut tail shows.
        Periodic(CHECKPOINT_EVERY_S, service.engine.log.checkpoint, "log-checkpoints"),
    ]
    if service.monitor is not None:
        # No decision announces that a review fell due: time does.
        periodic.append(Periodic(REVIEWS_EVERY_S, service.monitor.check_reviews, "reviews"))
        periodic.append(Periodic(REVIEWS_EVERY_S, service.monitor.check_deletions, "deletions"))
        periodic.append(Periodic(REVIEWS_EVERY_S, service.monitor.check_filings, "filings"))
        # An ended grant that a sink still holds is raised as an alert (policy says when).
        monitor = service.monitor
        periodic.append(
            Periodic(
                ENFORCEMENT_EVERY_S,
                lambda: monitor.check_enforcement(service.unapplied_removals()),
                "enforcement",
            )
        )
    for job in periodic:
        job.start()
    mode = "external" if cfg.opa_url else "supervised"
    hooks = len(service.notifier.webhooks) if service.notifier else 0
    announce(
        f"datavisa serve: API on {base}/v1 (OpenAPI at /openapi.json), dashboard at {base}/, "
        f"OPA on {service.engine.opa.url} ({mode}), database {store.location}, "
        f"policy revision {service.engine.revision}, {hooks} webhook(s)"
    )
    try:
        server.run(sockets=[sock])
    finally:
        service.closing.set()
        for job in periodic:
            job.stop()
        with contextlib.suppress(DataVisaError):  # a store gone: the leases run out themselves
            store.release_lease(SWEEPER_LEASE, service.instance)
            store.release_lease(ENGINE_LEASE + service.instance, service.instance)
        service.engine.log.checkpoint()

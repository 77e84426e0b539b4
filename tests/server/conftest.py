"""Real parts for the HTTP service: uvicorn on a free loopback port, OPA, SQLite in tmp (or,
in modules marked `stores`, PostgreSQL too).

Most tests run the app in a thread of the test process against the session's OPA; the
supervision tests run `datavisa serve` as a process of its own (see test_supervision.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import IN_GERMANY, Api, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.monitoring.monitor import Monitor
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store


@pytest.fixture
def service(db: Path, opa: OpaProcess) -> Iterator[Service]:
    """An engine on a fresh database, asking the session's OPA (its grants reset)."""
    store, client = open_store(db), opa.client()
    tokens = TokenStore(store)
    engine = Engine(store, client, revision="test", log=DecisionLog(store, b"test-key"))
    engine.grants.sync()
    svc = Service(engine, tokens, location=IN_GERMANY)
    yield svc
    svc.close()
    tokens.close()
    store.close()
    client.close()


@pytest.fixture
def api(service: Service) -> Iterator[Api]:
    with uvicorn_thread(create_app(service, max_body_bytes=16 * 1024)) as url:
        yield Api(url, service)


@pytest.fixture
def monitored_api(service: Service) -> Iterator[Api]:
    """The API of a service whose monitor judges each decision as it is recorded."""
    monitor = Monitor(service.engine.log, service.engine.opa).start()
    live = Service(service.engine, service.tokens, monitor=monitor, location=service.location)
    with uvicorn_thread(create_app(live)) as url:
        yield Api(url, live)
    live.close()
    monitor.stop()

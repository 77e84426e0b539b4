"""Storage faults are loud and lose nothing: a full disk, a database file deleted under the
server, a start on storage that cannot be written.

A full or read-only disk is a real one: a small tmpfs mounted for the test (as root, which
CI is; elsewhere these tests say why they skip).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import RESOURCE, Api, uvicorn_thread

from datavisa.engine.api.app import create_app
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger import audit
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

DATAVISA = Path(sys.executable).with_name("datavisa")
PEOPLE = ["alice", "carol", "dave", "erin", "oscar", "petra", "sam", "grace", "heidi", "kenji"]


@contextlib.contextmanager
def _tmpfs(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", ",".join(("size=2m", *options)), "tmpfs", str(where)]
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk for the test needs root")
    done = subprocess.run(mount, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of `disk`; the filler file, to delete to free them again."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


@contextlib.contextmanager
def _api_on(db: Path, opa: OpaProcess) -> Iterator[Api]:
    store, tokens, client = Store(db), TokenStore(db.parent / "tokens.db"), opa.client()
    engine = Engine(store, client, revision="test", log=DecisionLog(store, b"test-key"))
    engine.grants.sync()
    service = Service(engine, tokens)
    try:
        with uvicorn_thread(create_app(service)) as url:
            yield Api(url, service)
    finally:
        service.close()
        for closing in (client, tokens, store):
            closing.close()


def _ask(api: Api, subject: str) -> int:
    body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-9"}
    return api.as_(subject).post("/v1/requests", body).status_code


def test_a_full_disk_is_a_503_and_nothing_acknowledged_is_lost(tmp_path: Path, opa: OpaProcess):
    with _tmpfs(tmp_path / "disk") as disk, _api_on(disk / "datavisa.db", opa) as api:
        for person in PEOPLE:  # tokens first: their file is elsewhere
            api.as_(person)
        acknowledged = [api.request("alice")["id"]]
        filler = _fill(disk)
        refused = None
        for person in PEOPLE[1:]:
            status = _ask(api, person)
            if status == 201:  # SQLite found room in pages it had already
                continue
            refused = api.as_(person).post(
                "/v1/requests",
                {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-9"},
            )
            break
        assert refused is not None, "the disk never filled up"
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "storage_unavailable"
        health = api.anonymous().get("/health")
        assert health.status_code == 503
        assert any("write failed" in p for p in health.json()["problems"])

        filler.unlink()  # space returns
        assert _ask(api, "sam") == 201
        assert api.anonymous().get("/health").status_code == 200
        store = api.service.engine.store
        assert all(store.get(request_id) for request_id in acknowledged)
        assert audit.verify(store.db).ok
        assert api.service.engine.log.verify().ok


def test_a_database_deleted_under_the_server_takes_no_more_writes(tmp_path: Path, opa: OpaProcess):
    db = tmp_path / "datavisa.db"
    with _api_on(db, opa) as api:
        api.as_("alice")
        api.request("alice")
        for path in tmp_path.glob("datavisa.db*"):
            path.unlink()
        refused = api.as_("carol").post(
            "/v1/requests", {"resource": RESOURCE, "duration": "20m", "location": "DE"}
        )
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "storage_unavailable"
        problems = api.anonymous().get("/health").json()["problems"]
        assert any("deleted or replaced" in p for p in problems)


@pytest.mark.parametrize("how", ["ro", "full"])
def test_serve_on_storage_it_cannot_write_says_so_in_one_line(tmp_path: Path, how: str):
    options = ("ro",) if how == "ro" else ()
    with _tmpfs(tmp_path / "disk", *options) as disk:
        if how == "full":
            _fill(disk)
        done = subprocess.run(
            [str(DATAVISA), "serve", "--db", str(disk / "datavisa.db"), "--listen", "127.0.0.1:0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: cannot open the database")

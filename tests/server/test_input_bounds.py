"""Bounded, strict input: free-form JSON has a size and a depth, countries are the ones the
bundle knows, durations are ASCII, uploads have OPA's event shape, and whatever the log
already holds reads back. Refused input is a 4xx naming the field and stores nothing."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import RESOURCE, Api, Caller, uvicorn_thread
from test_supervision import _serve

from datavisa.engine.api.app import create_app
from datavisa.engine.api.limits import InputRules, Limits
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger.decision_log import DecisionLog, _digest
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.monitoring.monitor import CURSOR, Monitor
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import OpaProcess, free_port
from datavisa.engine.store.sqlite import Store

CHECK = {"subject": "alice", "resource": RESOURCE, "action": "read", "location": "DE"}
EVENT = {
    "decision_id": "up-1",
    "path": "datavisa/access/decision",
    "timestamp": "2026-11-26T10:00:00.123456789Z",
    "labels": {"id": "opa-1", "version": "1.22.3"},
    "bundles": {"datavisa": {"revision": "sidecar"}},
    "input": {"subject": "alice", "resource": RESOURCE, "location": "DE"},
    "result": {"allow": False, "reasons": [{"code": "no_active_grant", "message": "no"}]},
}


def _nested(levels: int) -> dict:
    """An object `levels` levels deep: {"a": {"a": ... {}}}."""
    return json.loads('{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1))


def _raw_nested(levels: int) -> str:
    """The JSON text of `_nested(levels)`, for depths json cannot parse."""
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


def _records(api: Api) -> int:
    return api.service.engine.store.db.execute("SELECT count(*) FROM decision_log").fetchone()[0]


def _both_lanes(caller: Caller, raw: str) -> list[tuple[int, dict]]:
    """The answer of the fast lane (application/json) and the declared route (+json)."""
    out = []
    for media in ("application/json", "application/vnd.datavisa+json"):
        response = caller.session.post(
            caller.base + "/v1/access/check", data=raw, headers={"Content-Type": media}, timeout=10
        )
        out.append((response.status_code, response.json()))
    return out


def _body_of(check: dict, context_text: str) -> str:
    return json.dumps(check)[:-1] + f', "context": {context_text}}}'


@pytest.fixture
def roomy_api(service: Service) -> Iterator[Api]:
    """The API with the default body limit (64 KiB), room for an oversize context."""
    with uvicorn_thread(create_app(service)) as url:
        yield Api(url, service)


# -- A: bounded input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "context_text",
    [
        json.dumps(_nested(33)),  # one level over the default of 32
        json.dumps(_nested(300)),  # once made every page of GET /v1/logs holding it a 500
        _raw_nested(995),  # once a 500 on the fast lane: json recursed to its limit
        _raw_nested(5000),
        json.dumps({"list": json.loads("[" * 32 + "1" + "]" * 32)}),  # 33 with the context
    ],
    ids=["33", "300", "995", "5000", "list-33"],
)
def test_a_context_nested_too_deep_is_refused_by_both_lanes(roomy_api, context_text):
    service = roomy_api.as_("pep", "service")
    fast, declared = _both_lanes(service, _body_of(CHECK, context_text))
    assert fast == declared
    status, body = fast
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid_input", "context")
    assert _records(roomy_api) == 0  # no decision was asked, none recorded


def test_a_context_larger_than_8_kib_is_refused_by_both_lanes(roomy_api):
    """~63 KB of context was stored with every check: one caller filled 71 MB in 10 s."""
    service = roomy_api.as_("pep", "service")
    for size in (8 * 1024 + 1, 63 * 1000):
        context = {"blob": "x" * size}
        fast, declared = _both_lanes(service, json.dumps(CHECK | {"context": context}))
        assert fast == declared
        assert fast[0] == 422, fast
        assert fast[1]["error"]["field"] == "context"
        assert "bytes" in fast[1]["error"]["message"]
    assert _records(roomy_api) == 0
    at_the_limits = {"deep": _nested(31), "text": "x" * (8 * 1024 - 400)}  # 32 levels
    response = service.post("/v1/access/check", CHECK | {"context": at_the_limits})
    assert response.status_code == 200, response.text
    (event,) = roomy_api.service.engine.log.query()
    assert event["input"]["context"] == at_the_limits


def test_the_limits_come_from_the_service(service):
    narrow = Service(
        service.engine,
        service.tokens,
        rules=InputRules(frozenset({"DE"}), Limits(context_bytes=256, context_depth=2)),
    )
    with uvicorn_thread(create_app(narrow)) as url:
        api = Api(url, narrow)
        caller = api.as_("pep", "service")
        assert caller.post("/v1/access/check", CHECK | {"context": {"a": {}}}).status_code == 200
        for bad in ({"a": {"b": {}}}, {"a": "x" * 300}):
            fast, declared = _both_lanes(caller, json.dumps(CHECK | {"context": bad}))
            assert fast == declared and fast[0] == 422
            assert fast[1]["error"]["field"] == "context"
        # Only the countries the rules name: US is a country, not one this bundle knows.
        response = caller.post("/v1/access/check", CHECK | {"location": "US"})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "location"
    narrow.close()


def test_a_body_nested_too_deep_elsewhere_names_that_field(api):
    raw = json.dumps({**CHECK, "resource": "RAW"}).replace('"RAW"', "[" * 3000 + "]" * 3000)
    fast, declared = _both_lanes(api.as_("pep", "service"), raw)
    assert fast == declared
    assert fast[0] == 422 and fast[1]["error"]["field"] == "resource"
    deep_request = '{"resource": ' + "[" * 3000 + "]" * 3000 + "}"
    response = api.as_("alice").session.post(
        api.url + "/v1/requests", data=deep_request, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "resource"


def _upload(api: Api, events: object) -> tuple[int, dict | None]:
    """Upload as OPA does: a gzip JSON array."""
    service = api.as_("db-proxy", "service")
    response = service.session.post(
        f"{api.url}/v1/logs",
        data=gzip.compress(json.dumps(events).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    return response.status_code, (response.json() if response.content else None)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"decision_id": 7}, "decision_id"),
        ({"decision_id": ""}, "decision_id"),
        ({"path": ["datavisa"]}, "path"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "2026-11-26"}, "timestamp"),
        ({"timestamp": "2026-13-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "2026-11-26T10:00:00Z\n"}, "timestamp"),
        ({"labels": {"id": 1}}, "labels"),
        ({"labels": ["app"]}, "labels"),
        ({"bundles": {"datavisa": {"revision": 3}}}, "bundles"),
        ({"erased": "/input"}, "erased"),
        ({"metrics": {"timer_ns": "fast"}}, "metrics"),
        ({"req_id": "1"}, "req_id"),
        ({"custom": []}, "custom"),
        ({"input": _nested(65)}, "input"),
        ({"result": {"blob": "x" * 70000}}, "result"),
        ({"anything_new": _nested(300)}, "anything_new"),
    ],
)
def test_an_upload_with_a_bad_event_names_it_and_stores_nothing(api, bad, field):
    good = {**EVENT, "decision_id": "up-0"}
    status, body = _upload(api, [good, {**EVENT, **bad}])
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["field"]) == ("invalid_input", f"1.{field}")
    assert _records(api) == 0  # the good event before it is not kept either


def test_an_upload_too_deep_to_parse_names_the_event_and_field(api):
    raw = json.dumps([EVENT, {**EVENT, "decision_id": "up-2", "input": "RAW"}])
    raw = raw.replace('"RAW"', _raw_nested(1500))  # under the test's body limit unzipped
    service = api.as_("db-proxy", "service")
    for headers, data in (
        ({"Content-Type": "application/json"}, raw.encode()),
        (
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            gzip.compress(raw.encode()),
        ),
    ):
        response = service.session.post(f"{api.url}/v1/logs", data=data, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "1.input"
    assert _records(api) == 0


def test_free_form_parts_of_an_upload_of_any_shape_are_stored_not_a_500(api):
    """An object as input.subject, a list as result.grant_id, reasons that are no list:
    OPA's input and result are any JSON, and they once failed the insert (a 500)."""
    events = [
        {**EVENT, "decision_id": "odd-1", "input": {"subject": {"name": "alice"}}},
        {**EVENT, "decision_id": "odd-2", "result": {"grant_id": ["g1", "g2"], "allow": True}},
        {**EVENT, "decision_id": "odd-3", "result": {"reasons": 5}, "requested_by": "x"},
        {**EVENT, "decision_id": "odd-4", "input": [1, 2], "result": "true"},
        {**EVENT, "decision_id": "odd-5", "input": {"resource": 3, "requester": ["bob"]}},
    ]
    assert _upload(api, events) == (204, None)
    log = api.service.engine.log
    assert [e["decision_id"] for e in log.query()] == [e["decision_id"] for e in events]
    assert [e["decision_id"] for e in log.query(subject="alice")] == ["odd-2", "odd-3"]
    assert log.verify().ok
    page = api.as_("audrey", "auditor").get("/v1/logs", params={"grant_id": "g1"})
    assert page.status_code == 200 and page.json()["events"] == []


@pytest.mark.parametrize(
    "data",
    [
        b"not gzip",
        gzip.compress(b"[]")[:12] + b"\xff" * 20,  # a gzip header, then no deflate stream
        gzip.compress(b"[]")[:-6],  # cut short
    ],
    ids=["no-header", "bad-deflate", "truncated"],
)
def test_an_upload_that_is_not_gzip_is_400_without_the_librarys_words(api, data):
    service = api.as_("db-proxy", "service")
    response = service.session.post(
        f"{api.url}/v1/logs",
        data=data,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "bad_request",
        "message": "the body is not valid gzip",
        "field": "body",
    }


def _store_as_before_the_fix(log: DecisionLog, event_text: str, decision_id: str) -> None:
    """Append a record the way the log did before uploads were bounded: whatever text it
    was given, chained and hashed, so `verify` still holds."""
    with log.store.transaction():
        head = log._head()
        event = {"decision_id": decision_id, "path": "datavisa/access/decision"}
        seq, _ = log._append(event, "opa", None, head)
        row = {**log.store.db["decision_log"].get(seq), "event": event_text}
        row["hash"] = _digest(row)
        log.store.db.execute(
            "UPDATE decision_log SET event = ?, hash = ? WHERE seq = ?",
            [event_text, row["hash"], seq],
        )


def test_records_stored_before_the_fix_read_back_with_a_marker_not_a_500(api, caplog):
    api.as_("pep", "service").post("/v1/access/check", CHECK)  # an ordinary record first
    log = api.service.engine.log
    deep = {**EVENT, "decision_id": "deep-300", "input": {"context": _nested(300)}}
    _store_as_before_the_fix(log, json.dumps(deep), "deep-300")
    too_deep = json.dumps({**EVENT, "decision_id": "deep-5000", "input": "RAW"})
    _store_as_before_the_fix(log, too_deep.replace('"RAW"', _raw_nested(5000)), "deep-5000")
    _store_as_before_the_fix(log, '{"decision_id": "broken", ', "broken")

    with caplog.at_level(logging.WARNING):
        page = api.as_("audrey", "auditor").get("/v1/logs")
    assert page.status_code == 200, page.text
    first, cut, unparsed, broken = page.json()["events"]
    assert "unreadable" not in first
    assert cut["decision_id"] == "deep-300"
    assert cut["input"]["context"]["a"]["a"]  # what is shallow enough is all there
    # Shown: 100 levels (the event, its input, the context and 97 of its own); cut below.
    assert cut["unreadable"] == ["/input/context" + "/a" * 98]
    assert cut["result"] == EVENT["result"]
    for record, decision_id in ((unparsed, "deep-5000"), (broken, "broken")):
        assert record["decision_id"] == decision_id
        assert record["path"] == "datavisa/access/decision"
        assert record["unreadable"] == [""]
        assert record["timestamp"].endswith("Z")
    assert "does not read as an event" in caplog.text
    assert log.verify().ok


def test_the_monitor_and_the_cli_read_such_records_too(run, db, tmp_path, opa):
    store = Store(db)
    log = DecisionLog(store, b"k")
    deep = {**EVENT, "decision_id": "deep-300", "input": _nested(300)}
    _store_as_before_the_fix(log, json.dumps(deep), "deep-300")
    _store_as_before_the_fix(log, "[" * 5000 + "]" * 5000, "deep-5000")
    client = opa.client()
    Monitor(log, client).run_once()  # judged (or not), never stuck on them
    assert store.cursor(CURSOR) == 2
    client.close()
    store.close()
    table = run("log")
    assert table.exit_code == 0, table.output
    assert "deep-300" in table.stdout and "deep-500" in table.stdout  # ids show 8 characters
    exported = run("log", "export", "-o", str(tmp_path / "out.jsonl"))
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["decision_id"] for x in lines] == ["deep-300", "deep-5000"]
    assert run("log", "verify").exit_code == 0


# -- B: strict input ------------------------------------------------------------------


@pytest.mark.parametrize("code", ["XX", "A1", "ZZ", "AA", "UK", "EU"])
def test_a_code_that_names_no_country_the_bundle_knows_is_refused(api, code):
    bad = {"location": code}
    pep, alice = api.as_("pep", "service"), api.as_("alice")
    fast, declared = _both_lanes(pep, json.dumps(CHECK | bad))
    assert fast == declared and fast[0] == 422
    assert fast[1]["error"]["field"] == "location"
    for path, body in [
        ("/v1/requests", {"resource": RESOURCE, "duration": "1h", "reason": "x"} | bad),
        ("/v1/break-glass", {"resource": RESOURCE, "duration": "1h", "reason": "x"} | bad),
        ("/v1/requests/abc/approve", bad),
    ]:
        response = alice.post(path, body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["field"] == "location"
    assert _records(api) == 0  # refused before any decision was asked
    assert api.service.engine.store.requests() == []


def test_the_bundle_knows_the_iso_countries_and_no_other_codes():
    known = bundle.countries(bundle.load_data(DEFAULT_BUNDLE_DIR))
    assert len(known) == 249 and {"DE", "US", "MX", "NO", "CA"} <= known
    assert not {"XX", "A1", "ZZ", "UK", "EU"} & known


@pytest.mark.parametrize("duration", ["\u0661h", "1h\u0663\u0660m", "\uff12m", "\u0661\u0665m"])
def test_durations_take_ascii_digits_only(api, duration):
    response = api.as_("alice").post(
        "/v1/requests",
        {"resource": RESOURCE, "duration": duration, "location": "DE", "reason": "x"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "duration"
    assert api.service.engine.store.requests() == []


@pytest.mark.parametrize(
    ("raw", "at"), [("{", 1), ('{"resource": ', 13), ("not json", 0), ('{"a": 1,}', 8)]
)
def test_malformed_json_says_where_not_what_the_parser_said(api, raw, at):
    for path, caller in (("/v1/requests", api.as_("alice")), ("/v1/logs", api.as_("p", "service"))):
        response = caller.session.post(
            api.url + path, data=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert message == f"the body is not valid JSON (it stops making sense at character {at})"


@pytest.fixture
def opa_refusing_grants(tmp_path: Path) -> Iterator[OpaProcess]:
    """A real OPA whose bundle claims the grants root too, so it refuses every grant
    pushed to it while it answers decisions."""
    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "data"))
    roots = ["datavisa", "system/log", "grants"]
    (data / ".manifest").write_text(json.dumps({"roots": roots}))
    tarball = bundle.build(POLICY_DIR, data, tmp_path / "bundle.tar.gz", "roots")
    with OpaProcess(tarball) as opa:
        yield opa


def test_error_bodies_carry_no_internal_address_nor_library_text(
    tmp_path, opa_refusing_grants, caplog
):
    db = tmp_path / "datavisa.db"
    store, tokens, client = Store(db), TokenStore(db), opa_refusing_grants.client()
    service = Service(Engine(store, client, revision="test", log=DecisionLog(store, b"k")), tokens)
    with uvicorn_thread(create_app(service)) as url:
        api = Api(url, service)
        request = api.request("alice")
        with caplog.at_level(logging.WARNING):
            approve = f"/v1/requests/{request['id']}/approve"
            response = api.as_("bob").post(approve, {"location": "DE"})
        # Recorded, not yet in force: said so, without OPA's address or its words.
        assert response.status_code == 202, response.text
        text = response.text
        for internal in (opa_refusing_grants.url, "127.0.0.1", "HTTP 400", "urllib3", "Traceback"):
            assert internal not in text
        assert "not yet in force at opa" in response.json()["message"]
        assert "HTTP 400" in caplog.text  # the server's log keeps the details
    service.close()
    tokens.close()
    store.close()
    client.close()


def test_health_names_no_internal_address(tmp_path):
    db = tmp_path / "datavisa.db"
    store, tokens = Store(db), TokenStore(db)
    client = OpaClient(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    service = Service(Engine(store, client, revision="test"), tokens)
    with uvicorn_thread(create_app(service)) as url:
        health = Caller(url).get("/health")
        assert health.status_code == 503
        assert "OPA is not answering with its bundle active" in health.json()["problems"]
        assert "127.0.0.1" not in health.text
    service.close()
    tokens.close()
    store.close()
    client.close()


@pytest.fixture
def bundle_without_mexico(tmp_path: Path) -> Path:
    """The shipped bundle, except that its data knows no MX."""
    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "data"))
    countries = data / "countries.yaml"
    countries.write_text(countries.read_text().replace("  MX: Mexico\n", ""))
    return bundle.build(POLICY_DIR, data, tmp_path / "bundle.tar.gz", "no-mx")


def _from(served, location: str) -> int:
    caller = Caller(served.url, served.tokens["alice"])
    return caller.post("/v1/access/check", CHECK | {"location": location}).status_code


def test_serve_takes_the_countries_of_the_bundle_it_runs(tmp_path, bundle_without_mexico):
    with _serve(tmp_path, "--bundle", str(bundle_without_mexico)) as served:
        assert (_from(served, "DE"), _from(served, "MX"), _from(served, "XX")) == (200, 422, 422)


def test_serve_asks_an_external_opa_for_its_countries(tmp_path, bundle_without_mexico):
    with (
        OpaProcess(bundle_without_mexico) as opa,
        _serve(tmp_path, "--opa-url", opa.url, "--opa-token-file", str(opa.token_file)) as served,
    ):
        assert (_from(served, "DE"), _from(served, "MX"), _from(served, "XX")) == (200, 422, 422)


def test_serve_with_the_shipped_bundle_takes_every_iso_country(tmp_path):
    with _serve(tmp_path) as served:
        assert (_from(served, "MX"), _from(served, "XX")) == (200, 422)

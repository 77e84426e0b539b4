"""The API keeps its contract at the edges found by fuzzing: cursor ids within signed
64-bit, times only as RFC 3339 text, and a 405 that says which methods there are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from live_server import served_store

from datavisa.engine.policy.process import OpaProcess


@pytest.fixture
def served(tmp_path, opa: OpaProcess) -> Iterator[tuple[str, str]]:
    with served_store(tmp_path / "datavisa.db", opa, "contract", "audrey", "auditor") as served:
        yield served


def get(url: str, token: str, path: str) -> requests.Response:
    return requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_a_cursor_past_64_bits_is_a_422_naming_it(served):
    url, token = served
    r = get(url, token, "/v1/grants/abc/activity?limit=69&after=430107612902272125107854901248")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "after"


def test_a_number_is_not_a_time(served):
    url, token = served
    r = get(url, token, "/v1/logs?until=0.5")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "until"
    assert get(url, token, "/v1/logs?until=2026-01-31T09:00:00Z").status_code == 200


def test_a_405_names_every_method_of_the_path(served):
    url, token = served
    r = requests.delete(url + "/v1/logs", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert r.json()["error"]["code"] == "method_not_allowed"

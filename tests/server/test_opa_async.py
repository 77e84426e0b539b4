"""The event loop's client for OPA (policy/opa_async.py): the same answers as the
synchronous client, and a deny-worthy OpaUnavailable for every way OPA can fail."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from faults import FaultyProxy

from datavisa.engine.policy.opa import OpaClient, OpaUnavailable
from datavisa.engine.policy.opa_async import AsyncOpaClient
from datavisa.engine.policy.process import OpaProcess

TWIN = "datavisa/logged/access_decision"
ASKED = {
    "subject": "alice@example.com", "resource": "orders-eu", "action": "read",
    "location": {"country": "DE"}, "context": {},
}  # fmt: skip


def ask(client: OpaClient, times: int = 1, timeout: float | None = None) -> list[Any]:
    """`times` queries in a row from one event loop, each the answer or the exception."""

    async def main() -> list[Any]:
        fast = AsyncOpaClient(client)
        out: list[Any] = []
        for _ in range(times):
            try:
                out.append(await fast.query(TWIN, ASKED, timeout=timeout))
            except OpaUnavailable as e:
                out.append(e)
        fast.close()
        return out

    return asyncio.run(main())


def test_it_answers_what_the_synchronous_client_answers(opa: OpaProcess) -> None:
    client = opa.client()
    expected = client.query(TWIN, ASKED).result
    answers = ask(client, times=3)
    assert [a.result for a in answers] == [expected] * 3
    assert len({a.decision_id for a in answers}) == 3  # each logged by OPA as its own


def test_queries_in_a_row_share_one_keep_alive_connection(opa: OpaProcess) -> None:
    async def main() -> bool:
        fast = AsyncOpaClient(opa.client())
        await fast.query(TWIN, ASKED)
        (first,) = fast._idle
        for _ in range(5):
            await fast.query(TWIN, ASKED)
        same = fast._idle == [first] and not first.lost
        fast.close()
        return same

    assert asyncio.run(main())


def test_without_the_engines_token_opa_refuses_and_it_says_so(opa: OpaProcess) -> None:
    (error,) = ask(OpaClient(opa.url, token="not-the-secret"))
    assert isinstance(error, OpaUnavailable)
    assert "HTTP 401" in str(error) and "opa.token" in str(error)


def test_nothing_listening_is_unavailable_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    (error,) = ask(OpaClient(f"http://127.0.0.1:{port}", timeout=5))
    assert isinstance(error, OpaUnavailable)
    assert time.monotonic() - started < 5


def test_an_opa_that_never_answers_is_unavailable_after_the_timeout() -> None:
    # The kernel completes the connection (listen backlog) but nothing ever answers.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        (error,) = ask(OpaClient(url, timeout=30), timeout=0.3)
        waited = time.monotonic() - started
    assert isinstance(error, OpaUnavailable) and "within 0.3s" in str(error)
    assert waited < 5


def test_it_follows_the_synchronous_client_when_opa_moves(opa: OpaProcess) -> None:
    client = opa.client()
    with FaultyProxy(opa.url) as proxy:
        proxy.refuse = lambda method, path: True

        async def main() -> list[Any]:
            fast = AsyncOpaClient(client)
            out = [await fast.query(TWIN, ASKED)]
            client.point(proxy.url, opa.token)  # as the supervisor does after a restart
            with pytest.raises(OpaUnavailable, match="HTTP 503"):
                await fast.query(TWIN, ASKED)
            client.point(opa.url, opa.token)
            out.append(await fast.query(TWIN, ASKED))
            fast.close()
            return out

        before, after = asyncio.run(main())
    assert before.result == after.result
    assert proxy.refused == 1

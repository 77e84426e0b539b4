"""What the ASGI layers above an access check cost per call, without sockets or OPA.

The check's own work (`decisions.fast_check`: OPA, the held-grant query, the log's commit)
is replaced by a constant answer, and the call is made in-process, so what is left is
what every check pays before and after it: FastAPI's and Starlette's middleware, ours
(body limit, input rules, idempotency), the fast lane's parse and the token. Beside it, the
same call on a plain Starlette route that reads the body and answers the same bytes, and
the fast lane alone (our outer stack skipped). CPU time of this process per call.

    .venv/bin/python bench/stack_cost.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from datavisa.engine.api.app import create_app
from datavisa.engine.api.fastlane import FastLane
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import SERVICE, TokenStore
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store import open_store

PATH = "/v1/access/check"
ANSWER = b'{"allow":true}'
BODY = json.dumps(
    {"subject": "alice", "resource": "eu-customer-analytics", "action": "read", "location": "DE"}
).encode()


def _scope(token: str) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-length", str(len(BODY)).encode()),
    ]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
        "headers": headers,
    }  # fmt: skip


async def _call(app: ASGIApp, scope: dict[str, Any]) -> int:
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays: no disconnect
        sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


async def _cpu_us(app: ASGIApp, scope: dict[str, Any], calls: int) -> float:
    if (status := await _call(app, scope)) != 200:
        raise RuntimeError(f"the measured call answered {status}, not 200")
    started = time.process_time()
    for _ in range(calls):
        await _call(app, scope)
    return round((time.process_time() - started) / calls * 1e6, 1)


def _fast_lane(app: Any) -> FastLane:
    node = app.middleware_stack
    while not isinstance(node, FastLane):
        node = node.app
    return node


async def _constant(_parsed: Any, _principal: Any) -> Response:
    return Response(ANSWER, media_type="application/json")


async def _plain_endpoint(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


async def _measure(service: Service, token: str, calls: int) -> dict[str, float]:
    app = create_app(service)
    app.middleware_stack = app.build_middleware_stack()
    lane = _fast_lane(app)
    lane.handler = _constant
    plain = Starlette(routes=[Route(PATH, _plain_endpoint, methods=["POST"])])
    scope = _scope(token)
    out = {
        "plain_starlette_route_us": await _cpu_us(plain, scope, calls),
        "our_stack_us": await _cpu_us(app, scope, calls),
        "fast_lane_alone_us": await _cpu_us(lane, scope, calls),
    }
    lane.verify = service.tokens.verify  # the token asked of the store on every call
    out["our_stack_token_uncached_us"] = await _cpu_us(app, scope, calls)
    return out


def measure(workdir: Path, calls: int = 3000) -> dict[str, float]:
    """CPU µs per call of each variant (see the module doc)."""
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, workdir / "stack.tar.gz", "bench")
    with OpaProcess(tarball) as opa:
        store, client = open_store(workdir / "stack.db"), opa.client()
        tokens = TokenStore(store)
        engine = Engine(store, client, revision="bench", log=DecisionLog(store, b"bench"))
        service = Service(engine, tokens)
        try:
            token, _ = tokens.issue("bench-pep", SERVICE)
            return asyncio.run(_measure(service, token, calls))
        finally:
            service.close()
            tokens.close()
            store.close()
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datavisa-stack-") as tmp:
        print(json.dumps(measure(Path(tmp), args.calls), indent=1))


if __name__ == "__main__":
    main()

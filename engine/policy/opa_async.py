"""Asking OPA from the event loop: the access check's hop to OPA, without a thread.

The server's access checks are asked of OPA by the event loop itself, on keep-alive
connections of its own: no worker thread waits on the socket, so the loop keeps reading
requests while OPA works, and a hung OPA stalls no thread (each query has a deadline,
after which it is a deny). It speaks the little HTTP/1.1 a query needs, one request per
connection at a time, and leaves parsing the response to httptools, uvicorn's own parser.
An HTTP client library costs more here than everything else on the hop: measured on
this machine, urllib3 about 230 µs of CPU per query, aiohttp about 165 µs, this about
75 µs (bench/README.md, "Where the time goes").

It follows a synchronous `OpaClient` (the one the supervisor moves when it restarts OPA):
each query goes to the URL, with the token, that client has now.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import httptools

from .opa import Answer, OpaClient, OpaUnavailable, answer_of, json_of

IDLE_MAX = 8  # keep-alive connections kept open; the coalescer rarely needs more than one


class _Response(asyncio.Protocol):
    """One HTTP/1.1 connection to OPA, reading one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._done: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False
        self._keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is its own class

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(OpaUnavailable(f"OPA sent a malformed HTTP response: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(OpaUnavailable(f"OPA closed the connection: {exc or 'end of stream'}"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete the parser has reset for the next one.
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result((self._parser.get_status_code(), b"".join(self._body)))

    # ours
    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._body = []
        self._done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._done

    @property
    def reusable(self) -> bool:
        return not self.lost and self._keep_alive

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(error)


class AsyncOpaClient:
    """Queries OPA from the running event loop, following `client`'s target and timeout."""

    def __init__(self, client: OpaClient) -> None:
        self.client = client
        self._idle: list[_Response] = []
        self._for: tuple[str, str | None] | None = None  # the target the idle ones reach

    async def query(self, path: str, input: dict[str, Any], timeout: float | None = None) -> Answer:
        """Evaluate the document at `path` with `input`, as `OpaClient.query` does, waiting
        `timeout` seconds at most (default: the client's)."""
        url, token = self.client.target
        body = json.dumps({"input": input}).encode()
        head = (
            f"POST /v1/data/{path} HTTP/1.1\r\nHost: opa\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        limit = self.client.timeout if timeout is None else timeout
        conn: _Response | None = None
        try:
            async with asyncio.timeout(limit):
                conn = await self._connection((url, token))
                status, data = await conn.send(head.encode() + body)
        except TimeoutError:
            self._discard(conn)
            raise OpaUnavailable(f"OPA at {url} did not answer within {limit:g}s") from None
        except OSError as e:
            self._discard(conn)
            raise OpaUnavailable(f"OPA at {url} did not answer: {e.strerror or e}") from e
        except OpaUnavailable:
            self._discard(conn)
            raise
        if conn.reusable and len(self._idle) < IDLE_MAX:
            self._idle.append(conn)
        else:
            conn.close()
        return answer_of(url, path, json_of(url, "did not answer", status, data))

    async def _connection(self, target: tuple[str, str | None]) -> _Response:
        if target != self._for:  # OPA moved (a restart): what is open reaches the old one
            self.close()
            self._for = target
        while self._idle:
            conn = self._idle.pop()
            if not conn.lost:
                return conn
        where = urlsplit(target[0])
        loop = asyncio.get_running_loop()
        tls = where.scheme == "https"
        _, conn = await loop.create_connection(
            _Response, where.hostname or "127.0.0.1", where.port or (443 if tls else 80),
            ssl=tls or None,
        )  # fmt: skip
        return conn

    @staticmethod
    def _discard(conn: _Response | None) -> None:
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the idle connections (a query in flight closes its own when it ends)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

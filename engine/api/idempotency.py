"""Safe retries: a state-changing POST sent with an `Idempotency-Key` is answered once.

A client that lost the answer to an approve and sends it again with the same key gets the
original answer (status and body, marked `Idempotent-Replayed: true`), not a 409 because
the request is already approved. Keys are scoped to the caller's credential and the path,
kept for `keep_s` (24 h); the same key with another body is refused (422), and one whose
first call is still running is refused (409). Only answers below 500 are kept, so a call
that failed on the server may be retried as new.

Access checks and decision-log uploads are not state changes a client retries this way
(an upload is already deduplicated by decision id), so they pass through untouched.
"""

from __future__ import annotations

import hashlib
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store import Store
from .asgi import read_body, replay
from .browser import SESSION_COOKIES
from .errors import error_response

HEADER = b"idempotency-key"
KEEP_S = 24 * 3600.0
MAX_KEY = 255
EXEMPT = frozenset({"/v1/access/check", "/v1/logs"})


class Idempotency:
    def __init__(self, app: ASGIApp, store: Store, keep_s: float = KEEP_S) -> None:
        self.app, self.store, self.keep_s = app, store, keep_s
        self._running: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self._key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not (0 < len(key) <= MAX_KEY and all(32 < c < 127 for c in key)):
            response = error_response(
                400, "invalid_input", f"Idempotency-Key must be 1 to {MAX_KEY} printable "
                "ASCII characters without spaces", field="Idempotency-Key",
            )  # fmt: skip
            await response(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return  # the client went away
        scoped = _scoped(scope, key)
        request_hash = hashlib.sha256(body).hexdigest()
        answered = await run_in_threadpool(self.store.answered, scoped)
        if answered is not None:
            await self._replay(answered, request_hash, scope, receive, send)
            return
        if scoped in self._running:
            response = error_response(
                409, "conflict", "a request with this Idempotency-Key is still being answered; "
                "retry it shortly", field="Idempotency-Key",
            )  # fmt: skip
            await response(scope, receive, send)
            return
        self._running.add(scoped)
        try:
            await self._answer(scoped, request_hash, body, scope, receive, send)
        finally:
            self._running.discard(scoped)

    @staticmethod
    def _key(scope: Scope) -> bytes | None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path = scope["path"]
        if not path.startswith("/v1/") or path in EXEMPT:
            return None
        return next((value for name, value in scope["headers"] if name == HEADER), None)

    async def _replay(
        self,
        answered: tuple[str, int, bytes],
        request_hash: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        stored_hash, status, stored_body = answered
        if stored_hash != request_hash:
            response = error_response(
                422, "idempotency_key_reused", "this Idempotency-Key was used for a request "
                "with another body; use a new key for a new request", field="Idempotency-Key",
            )  # fmt: skip
            await response(scope, receive, send)
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(stored_body)).encode()),
            (b"idempotent-replayed", b"true"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": stored_body})

    async def _answer(
        self,
        scoped: str,
        request_hash: str,
        body: bytes,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:  # kept until the answer is remembered
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, replay(body, receive), hold)
        assert start is not None, "the app gave no answer"
        answer = b"".join(chunks)
        if start["status"] < 500:
            # Remembered before it is sent: a retry that races the answer finds it.
            await run_in_threadpool(
                self.store.remember_answer,
                scoped, request_hash, start["status"], answer, time.time(), self.keep_s,
            )  # fmt: skip
        await send(start)
        await send({"type": "http.response.body", "body": answer})


def _scoped(scope: Scope, key: bytes) -> str:
    """The key as stored: bound to the caller's credential (the bearer token, else the
    dashboard's session cookie) and the path."""
    credential = next((v for n, v in scope["headers"] if n == b"authorization"), b"")
    if not credential:
        cookies = cookie_parser(
            next((v for n, v in scope["headers"] if n == b"cookie"), b"").decode("latin-1")
        )
        credential = "\0".join(cookies.get(name, "") for name in SESSION_COOKIES).encode()
    parts = (hashlib.sha256(credential).hexdigest(), scope["path"], key.decode("ascii"))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()

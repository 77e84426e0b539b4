"""Asking OPA: a keep-alive REST client for one OPA server, and what it answers.

The engine talks to OPA only over its REST API, with one keep-alive connection pool. Any
failure to get a well-formed answer raises `OpaUnavailable`; callers turn that into a deny.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import urllib3

POOL_SIZE = 8  # keep-alive connections to OPA: the engine's threads rarely need more at once
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class OpaUnavailable(Exception):
    """OPA did not give a well-formed answer in time; the decision must be a deny."""


@dataclass(frozen=True)
class Answer:
    """One OPA answer: the result document and the decision id OPA logged it under."""

    result: Any
    decision_id: str | None


class OpaClient:
    """A keep-alive REST client for one OPA server (`url` may be moved, as on a restart).

    It speaks urllib3, the connection pool under requests, directly: a decision is on every
    access check's path, and requests' own machinery costs more Python time per call than
    the rest of the engine's work on it (bench/README.md has the figures).
    """

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._pool: urllib3.HTTPConnectionPool | None = None
        self.url = url

    @property
    def url(self) -> str:
        return self._url

    @url.setter
    def url(self, url: str) -> None:
        self._url = url.rstrip("/")
        old, self._pool = (
            self._pool,
            urllib3.connection_from_url(
                self._url,
                maxsize=POOL_SIZE,
                timeout=urllib3.Timeout(self.timeout),
                retries=False,
                headers=JSON_HEADERS,
            ),
        )
        if old is not None:
            old.close()

    def query(self, path: str, input: dict[str, Any]) -> Answer:
        """Evaluate the document at `path` (slash separated, under /v1/data) with `input`."""
        body = self._call("POST", f"/v1/data/{path}", {"input": input})
        if not isinstance(body, dict):
            raise OpaUnavailable(f"OPA at {self.url} answered {path} with {body!r}"[:300])
        if "result" not in body:
            raise OpaUnavailable(f"OPA has no document at {path} (is the policy bundle loaded?)")
        return Answer(result=body["result"], decision_id=body.get("decision_id"))

    def document(self, path: str) -> Any:
        """The data document at `path` (slash separated, under /v1/data); None if undefined."""
        body = self._call("GET", f"/v1/data/{path}")
        return body.get("result") if isinstance(body, dict) else None

    def put_data(self, path: str, value: Any) -> None:
        """Replace the data document at `path` (slash separated, under /v1/data)."""
        self._call("PUT", f"/v1/data/{path}", value, what=f"refused data at {path}")

    def ready(self) -> bool:
        """True when OPA answers and every configured bundle is activated."""
        try:
            self._call("GET", "/health?bundles")
        except OpaUnavailable:
            return False
        return True

    def _call(self, method: str, path: str, body: Any = None, what: str = "did not answer") -> Any:
        """The JSON OPA answers (None when empty); OpaUnavailable for anything but 2xx JSON."""
        pool = self._pool
        assert pool is not None
        try:
            data = None if body is None else json.dumps(body).encode()
            response = pool.urlopen(method, path, body=data)
            if response.status >= 300:
                raise OpaUnavailable(
                    f"OPA at {self.url} {what}: HTTP {response.status} "
                    f"{response.data[:300].decode(errors='replace')}"
                )
            return json.loads(response.data) if response.data else None
        except (urllib3.exceptions.HTTPError, ValueError) as e:
            raise OpaUnavailable(f"OPA at {self.url} {what}: {e}") from e

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

"""Asking OPA: a keep-alive REST client for one OPA server, and what it answers.

The engine talks to OPA only over its REST API, with one keep-alive connection pool. Any
failure to get a well-formed answer raises `OpaUnavailable`; callers turn that into a deny.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from ..model.errors import DataVisaError

POOL_SIZE = 8  # keep-alive connections to OPA: the engine's threads rarely need more at once
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
UNAUTHORIZED_HINT = (
    " (this OPA wants the bearer credential it was started with: for an OPA of your own, "
    "give it as opa.token or opa.token_file in the serve config, or --opa-token-file or "
    "DATAVISA_OPA_TOKEN)"
)


def read_token_file(path: Path) -> str:
    """The bearer token in a file of its own (its first line, trimmed)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise DataVisaError(f"cannot read the OPA token file {path}: {e.strerror or e}") from e
    token = lines[0].strip() if lines else ""
    if not token:
        raise DataVisaError(f"the OPA token file {path} is empty")
    return token


class OpaUnavailable(Exception):
    """OPA did not give a well-formed answer in time; the decision must be a deny."""


@dataclass(frozen=True)
class Answer:
    """One OPA answer: the result document and the decision id OPA logged it under."""

    result: Any
    decision_id: str | None


def json_of(url: str, what: str, status: int, data: bytes) -> Any:
    """The JSON document of an OPA response (None when empty); OpaUnavailable for anything
    but a 2xx answer with a JSON body."""
    if status >= 300:
        hint = UNAUTHORIZED_HINT if status == 401 else ""
        raise OpaUnavailable(
            f"OPA at {url} {what}: HTTP {status} {data[:300].decode(errors='replace')}{hint}"
        )
    try:
        return json.loads(data) if data else None
    except ValueError as e:
        raise OpaUnavailable(f"OPA at {url} {what}: {e}") from e


def answer_of(url: str, path: str, body: Any) -> Answer:
    """The Answer in OPA's response `body` to a query of the document at `path`."""
    if not isinstance(body, dict):
        raise OpaUnavailable(f"OPA at {url} answered {path} with {body!r}"[:300])
    if "result" not in body:
        raise OpaUnavailable(f"OPA has no document at {path} (is the policy bundle loaded?)")
    return Answer(result=body["result"], decision_id=body.get("decision_id"))


class OpaClient:
    """A keep-alive REST client for one OPA server (it may be moved, as on a restart).

    With `token`, every call bears it (`Authorization: Bearer`): the OPA the engine runs
    answers the engine only by it. `timeout` bounds each call as a whole, connecting and
    reading together, so a hung OPA costs a decision no more than that before it denies.

    It speaks urllib3, the connection pool under requests, directly: a decision is on every
    access check's path, and requests' own machinery costs more Python time per call than
    the rest of the engine's work on it (bench/README.md has the figures).
    """

    def __init__(self, url: str, timeout: float = 2.0, token: str | None = None) -> None:
        self.timeout = timeout
        self._pool: urllib3.HTTPConnectionPool | None = None
        self.point(url, token)

    @property
    def url(self) -> str:
        return self._target[0]

    @property
    def token(self) -> str | None:
        return self._target[1]

    @property
    def target(self) -> tuple[str, str | None]:
        """(url, token), read together: another thread may move the client meanwhile."""
        return self._target

    def point(self, url: str, token: str | None) -> None:
        """Talk to the OPA at `url` with `token` from now on; calls in flight finish."""
        headers = dict(JSON_HEADERS)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # One assignment, so another thread never reads one OPA's URL with another's token.
        self._target = (url.rstrip("/"), token)
        old, self._pool = (
            self._pool,
            urllib3.connection_from_url(
                self.url,
                maxsize=POOL_SIZE,
                # total: connect and read share one deadline; alone, each would get it.
                timeout=urllib3.Timeout(total=self.timeout),
                retries=False,
                headers=headers,
            ),
        )
        if old is not None:
            old.close()

    def follow(self, other: OpaClient) -> None:
        """Talk to the OPA `other` talks to, with its credential, if not already."""
        target = other.target
        if target != self._target:
            self.point(*target)

    def query(self, path: str, input: dict[str, Any], timeout: float | None = None) -> Answer:
        """Evaluate the document at `path` (slash separated, under /v1/data) with `input`,
        waiting `timeout` seconds at most (default: the client's)."""
        body = self._call("POST", f"/v1/data/{path}", {"input": input}, timeout=timeout)
        return answer_of(self.url, path, body)

    def document(self, path: str) -> Any:
        """The data document at `path` (slash separated, under /v1/data); None if undefined."""
        body = self._call("GET", f"/v1/data/{path}")
        return body.get("result") if isinstance(body, dict) else None

    def put_data(self, path: str, value: Any) -> None:
        """Replace the data document at `path` (slash separated, under /v1/data)."""
        self._call("PUT", f"/v1/data/{path}", value, what=f"refused data at {path}")

    def add_data(self, pointer: str, value: Any) -> None:
        """Set the data document at JSON `pointer` (such as /grants/alice) in one JSON
        Patch `add`: refused, unlike a PUT, when the document that holds it is missing."""
        patch = [{"op": "add", "path": pointer, "value": value}]
        self._call("PATCH", "/v1/data", patch, what=f"refused data at {pointer}")

    def get_data(self, path: str) -> Any:
        """The data document at `path` (slash separated, under /v1/data); None if undefined."""
        body = self._call("GET", f"/v1/data/{path}")
        return body.get("result") if isinstance(body, dict) else None

    def ready(self) -> bool:
        """True when OPA answers and every configured bundle is activated."""
        try:
            self._call("GET", "/health?bundles")
        except OpaUnavailable:
            return False
        return True

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        what: str = "did not answer",
        timeout: float | None = None,
    ) -> Any:
        """The JSON OPA answers (None when empty); OpaUnavailable for anything but 2xx JSON."""
        pool = self._pool
        assert pool is not None
        limit = pool.timeout if timeout is None else urllib3.Timeout(total=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            response = pool.urlopen(method, path, body=data, timeout=limit)
        except urllib3.exceptions.HTTPError as e:
            raise OpaUnavailable(f"OPA at {self.url} {what}: {e}") from e
        return json_of(self.url, what, response.status, response.data)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

"""Slack's side: the serve config's `slack:` section, the Web API calls the notices make
(slack-sdk's WebClient, at the configured API base URL) and the check of an interaction's
signature (slack-sdk's SignatureVerifier, plus the replay refusal Slack leaves to apps).

slack-sdk, not slack-bolt: the interaction endpoint is a route of serve's own ASGI app,
behind its own body limit and error shapes, so only the two parts Bolt itself is built on
are needed: the signature check and the Web API client.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.signature import Clock, SignatureVerifier

from ..model.durations import parse_duration
from ..model.errors import DataVisaError
from ..store import Store

log = logging.getLogger("datavisa.chat")

API_URL = "https://slack.com/api/"
MAX_AGE_S = 300  # Slack's own advice: refuse a request signed more than five minutes ago
SCAN_EVERY_S = 15.0
TIMEOUT_S = 5.0
CONSOLE_ROUTE = "/#/requests/{id}"
# Slack's errors that another try may mend; any other `ok: false` is final.
_RETRIED_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                   "request_timeout"}  # fmt: skip
_KEYS = {"bot_token_file", "signing_secret_file", "api_url", "channel", "console_url",
         "scan_every"}  # fmt: skip


@dataclass(frozen=True)
class SlackConfig:
    """serve config `slack:` (docs/approvers.md, "Slack")."""

    bot_token: str = field(repr=False)  # secrets: never in logs
    signing_secret: str = field(repr=False)
    api_url: str = API_URL
    channel: str | None = None  # the approvers' channel; None: a direct message each
    console_url: str | None = None  # a request in the console: a template with {id}
    scan_every_s: float = SCAN_EVERY_S

    def console_link(self, request_id: str) -> str | None:
        return self.console_url.replace("{id}", request_id) if self.console_url else None


def parse_config(value: Any, base: Path, origin: str, public_url: str | None) -> SlackConfig | None:
    """The `slack:` section: the bot token and signing secret from files (their first
    line), the API's base URL, the channel, the console's link for a request (default:
    public_url + /#/requests/{id}) and how often notices are looked for."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DataVisaError(f"{origin}: slack must be a mapping")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise DataVisaError(f"{origin}: slack.{unknown[0]} is not a setting ({known})")

    def secret(key: str) -> str:
        if not isinstance(value.get(key), str):
            raise DataVisaError(f"{origin}: slack.{key} is required (a file holding it)")
        file = base / Path(value[key]).expanduser()
        try:
            text = (file.read_text().splitlines() or [""])[0].strip()
        except OSError as e:
            raise DataVisaError(f"{origin}: slack.{key}: cannot read {file}") from e
        if not text:
            raise DataVisaError(f"{origin}: slack.{key}: {file} is empty")
        return text

    api_url = str(value.get("api_url") or API_URL)
    if urlsplit(api_url).scheme not in ("http", "https") or not urlsplit(api_url).hostname:
        raise DataVisaError(f"{origin}: slack.api_url must be http(s)://HOST/..., not {api_url!r}")
    console = value.get("console_url")
    if console is None and public_url:
        console = public_url.rstrip("/") + CONSOLE_ROUTE
    if console is not None and not str(console).startswith(("http://", "https://")):
        raise DataVisaError(f"{origin}: slack.console_url must start with http:// or https://")
    channel = value.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel.strip()):
        raise DataVisaError(f"{origin}: slack.channel must be a channel id such as C0123456")
    every = value.get("scan_every")
    try:
        scan_every_s = SCAN_EVERY_S if every is None else float(parse_duration(str(every)))
    except (DataVisaError, ValueError) as e:
        raise DataVisaError(f"{origin}: slack.scan_every: {e}") from e
    if scan_every_s <= 0:
        raise DataVisaError(f"{origin}: slack.scan_every must be more than 0s")
    return SlackConfig(
        bot_token=secret("bot_token_file"),
        signing_secret=secret("signing_secret_file"),
        api_url=api_url.rstrip("/") + "/",
        channel=channel,
        console_url=console,
        scan_every_s=scan_every_s,
    )


class SlackFailed(Exception):
    """A Web API call that did not do what was asked; `retry`: another try may."""

    def __init__(self, message: str, retry: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retry, self.status = retry, status


class SlackApi:
    """The Web API methods the notices and the interaction endpoint call."""

    def __init__(self, config: SlackConfig, timeout_s: float = TIMEOUT_S) -> None:
        # No retry handlers of its own: the notices outbox tries again, with backoff, and
        # records every attempt.
        self.client = WebClient(
            token=config.bot_token, base_url=config.api_url, timeout=timeout_s, retry_handlers=[]
        )

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
        """chat.postMessage; where Slack put it (channel id, message ts)."""
        data = self._call("chat_postMessage", channel=channel, text=text, blocks=blocks)
        return str(data["channel"]), str(data["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """chat.update of a message posted before."""
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    def user_by_email(self, email: str) -> str | None:
        """users.lookupByEmail: the Slack user id of `email`, None when Slack has none."""
        try:
            return str(self._call("users_lookupByEmail", email=email)["user"]["id"])
        except SlackFailed as e:
            if str(e) == "users_not_found":
                return None
            raise

    def email_of(self, user: str) -> str | None:
        """users.info: the email on the user's profile (users:read.email), if any."""
        data = self._call("users_info", user=user)
        email = (data.get("user") or {}).get("profile", {}).get("email")
        return email.strip().lower() if isinstance(email, str) and email.strip() else None

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, method)(**kwargs).data  # type: ignore[no-any-return]
        except SlackApiError as e:
            status = e.response.status_code
            data = e.response.data if isinstance(e.response.data, dict) else {}
            error = data.get("error")
            retry = status == 429 or status >= 500 or error in _RETRIED_ERRORS
            raise SlackFailed(str(error or f"HTTP {status}"), retry, status) from e
        except (URLError, OSError, SlackRequestError) as e:
            raise SlackFailed(f"{type(e).__name__}: {e}"[:300], True) from e


class _StoreClock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


@dataclass(frozen=True)
class Refused:
    """Why an interaction was not taken: what to answer (401), by machine code."""

    code: str
    message: str


class Signatures:
    """Slack's request signature (v0: HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the
    app's signing secret), its timestamp within five minutes, and each signature taken
    once: the same signed request again is a replay, refused."""

    def __init__(self, store: Store, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.store, self.clock = store, clock
        self.verifier = SignatureVerifier(secret, clock=_StoreClock(clock))

    def check(self, body: bytes, timestamp: str | None, signature: str | None) -> Refused | str:
        """The signature's digest (what names the request) when the request is Slack's,
        fresh and new; else why not. Taking it is recorded (so a second try is a replay)
        in its own transaction."""
        if not timestamp or not signature:
            need = "X-Slack-Request-Timestamp and X-Slack-Signature are required"
            return Refused("unsigned", need)
        try:
            ts = int(timestamp)
        except ValueError:
            return Refused("bad_timestamp", "X-Slack-Request-Timestamp must be whole seconds")
        now = self.clock()
        if abs(now - ts) > MAX_AGE_S:
            return Refused("stale_timestamp", f"the request was signed more than {MAX_AGE_S}s ago")
        if not self.verifier.is_valid(body, timestamp, signature):
            return Refused("bad_signature", "X-Slack-Signature does not match the request")
        digest = hashlib.sha256(signature.encode()).hexdigest()
        with self.store.transaction(durable=False) as db:
            db.execute("DELETE FROM chat_replays WHERE at < ?", [now - 2 * MAX_AGE_S])
            taken = db.execute(
                "INSERT INTO chat_replays (signature, ts, at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING signature",
                [digest, ts, now],
            ).fetchone()
        if taken is None:
            return Refused("replayed", "this signed request was already taken")
        return digest[:16]

"""A loopback stand-in for Slack's Web API, and only that: an HTTP server on 127.0.0.1 at
the API base URL the tests configure, recording every call (`chat.postMessage`,
`chat.update`, `users.lookupByEmail`, `users.info`) and answering in the shapes Slack
documents (https://docs.slack.dev/reference/methods/...). DataVisa's own parts are real."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


class SlackRecorder:
    """Slack's Web API as far as DataVisa calls it. `users` maps email → Slack user id;
    `fail_posts` answers the next so many chat.postMessage with HTTP 503."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = dict(users)
        self.calls: list[Call] = []
        self.fail_posts = 0
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                parts = urlsplit(self.path)
                args: dict[str, Any] = dict(parse_qsl(parts.query))
                if "json" in (self.headers.get("Content-Type") or ""):
                    args |= json.loads(raw or "{}")
                else:
                    args |= dict(parse_qsl(raw))
                auth = self.headers.get("Authorization") or ""
                method = parts.path.rsplit("/", 1)[-1]
                status, body = recorder.answer(method, args, auth.removeprefix("Bearer ") or None)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def __enter__(self) -> SlackRecorder:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, args: dict[str, Any], token: str | None) -> tuple[int, dict]:
        with self._lock:
            self.calls.append(Call(method, args, token))
            if method == "chat.postMessage":
                if self.fail_posts > 0:
                    self.fail_posts -= 1
                    return 503, {"ok": False, "error": "service_unavailable"}
                channel = str(args["channel"])
                # A message to a user id lands in the bot's DM with them (D...).
                channel = "D" + channel[1:] if channel.startswith("U") else channel
                ts = f"{int(time.time())}.{next(self._ts):06d}"
                message = {"type": "message", "text": args.get("text"), "ts": ts,
                           "blocks": args.get("blocks", [])}  # fmt: skip
                return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}
            if method == "chat.update":
                return 200, {"ok": True, "channel": args["channel"], "ts": args["ts"],
                             "text": args.get("text")}  # fmt: skip
            if method == "users.lookupByEmail":
                user = self.users.get(str(args.get("email", "")).lower())
                if user is None:
                    return 200, {"ok": False, "error": "users_not_found"}
                return 200, {"ok": True, "user": self._user(user)}
            if method == "users.info":
                if args.get("user") not in self.users.values():
                    return 200, {"ok": False, "error": "user_not_found"}
                return 200, {"ok": True, "user": self._user(str(args["user"]))}
            return 200, {"ok": False, "error": "unknown_method"}

    def _user(self, user: str) -> dict[str, Any]:
        email = next(e for e, u in self.users.items() if u == user)
        name = email.split("@")[0]
        return {"id": user, "team_id": "T0ACME", "name": name, "deleted": False,
                "profile": {"email": email, "real_name": name.title(),
                            "display_name": name}}  # fmt: skip

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None, containing: str = "") -> list[Call]:
        return [
            c
            for c in self.of("chat.postMessage")
            if (channel is None or c.args["channel"] == channel)
            and containing in json.dumps(c.args.get("blocks", []))
        ]

    def updates(self, containing: str = "") -> list[Call]:
        return [c for c in self.of("chat.update") if containing in json.dumps(c.args["blocks"])]


def sign(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's headers for `body`: v0 HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip


def block_actions(user: str, action: str, request_id: str, channel: str, ts: str) -> str:
    """A button click as Slack sends it to the request URL: a form with `payload` JSON of
    the documented `block_actions` shape."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0ACME"},
        "api_app_id": "A0DATAVISA",
        "token": "legacy-verification-token-unused",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": "1234.5678.abcdef",
        "team": {"id": "T0ACME", "domain": "acme"},
        "channel": {"id": channel, "name": "approvers"},
        "message": {"type": "message", "ts": ts, "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T0ACME/1/abc",
        "actions": [{"action_id": action, "block_id": f"decide:{request_id}",
                     "text": {"type": "plain_text", "text": action.title()},
                     "value": request_id, "type": "button", "action_ts": f"{time.time():.6f}"}],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})

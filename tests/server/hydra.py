"""Ory Hydra on loopback: a real OpenID Connect provider for the identity tests.

`Hydra` runs `.tools/bin/hydra` (built by `make setup` from its Go module) with an
in-memory store on free ports, and registers clients through its admin API. Hydra has no
login page of its own: `SignInApp` is the login and consent app it sends browsers to (on
loopback), which signs in whoever the authorization request names as `login_hint` and
grants the scopes and audience asked for, through Hydra's admin API, as an organisation's
login app would after checking a password (with the methods in `SignInApp.amr`), and
accepts every sign-out. A client named after a person (`person`) is
the shorter stand-in where a test needs only a token: its client credentials grant yields
the JWT Hydra signs for `sub` = the client's id, on the same keys and rules. The tests
skip, saying why, where Hydra is not built.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from datavisa.engine.policy.process import free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HYDRA = PROJECT_ROOT / ".tools" / "bin" / "hydra"
AUDIENCE = "datavisa"


class SignInApp:
    """Hydra's login and consent app: accepts every challenge through the admin API. It
    is Hydra's token hook too, which puts the groups `groups[subject]` names in the
    subject's access tokens (a top-level `groups` claim), as an organisation's IdP puts
    a person's directory groups in theirs."""

    def __init__(self) -> None:
        self.admin = ""  # set once Hydra's admin port is known
        self.amr: list[str] = []  # how the next sign-ins authenticate (RFC 8176 names)
        self.groups: dict[str, list[str]] = {}
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                id_token = (asked.get("session") or {}).get("id_token") or {}
                claims = id_token.get("id_token_claims") or {}
                names = app.groups.get(id_token.get("subject"))
                # How and when the person signed in, in the access token as RFC 9068
                # (2.2.1) has it: what an IdP is configured to send for step-up.
                extra = {k: claims[k] for k in ("auth_time", "amr", "acr") if claims.get(k)}
                if isinstance(extra.get("auth_time"), str):  # the hook is given RFC 3339
                    at = extra["auth_time"].replace("Z", "+00:00")
                    extra["auth_time"] = int(datetime.fromisoformat(at).timestamp())
                if names is not None:
                    extra["groups"] = names
                if urlsplit(self.path).path != "/token-hook" or not extra:
                    self.send_response(204)  # the token as Hydra made it
                    self.end_headers()
                    return
                body = json.dumps({"session": {"access_token": extra}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/login":
                    to = app.accept_login(query["login_challenge"])
                elif url.path == "/consent":
                    to = app.accept_consent(query["consent_challenge"])
                elif url.path == "/logout":
                    to = app.accept_logout(query["logout_challenge"])
                else:
                    self.send_error(404)
                    return
                self.send_response(302)
                self.send_header("Location", to)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accept_login(self, challenge: str) -> str:
        flow = f"{self.admin}/admin/oauth2/auth/requests/login"
        asked = requests.get(flow, params={"login_challenge": challenge}, timeout=10).json()
        who = asked.get("oidc_context", {}).get("login_hint") or "alice"
        done = requests.put(
            flow + "/accept", params={"login_challenge": challenge},
            json={"subject": who, "remember": False, **({"amr": self.amr} if self.amr else {})},
            timeout=10,
        )  # fmt: skip
        return done.json()["redirect_to"]

    def accept_logout(self, challenge: str) -> str:
        done = requests.put(
            f"{self.admin}/admin/oauth2/auth/requests/logout/accept",
            params={"logout_challenge": challenge}, timeout=10,
        )  # fmt: skip
        return done.json()["redirect_to"]

    def accept_consent(self, challenge: str) -> str:
        flow = f"{self.admin}/admin/oauth2/auth/requests/consent"
        asked = requests.get(flow, params={"consent_challenge": challenge}, timeout=10).json()
        done = requests.put(
            flow + "/accept", params={"consent_challenge": challenge},
            json={"grant_scope": asked["requested_scope"],
                  "grant_access_token_audience": asked["requested_access_token_audience"]},
            timeout=10,
        )  # fmt: skip
        return done.json()["redirect_to"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Hydra:
    log: Path
    public: str = ""
    admin: str = ""
    proc: subprocess.Popen[bytes] | None = None
    secrets_of: dict[str, str] = field(default_factory=dict)
    app: SignInApp | None = None

    @property
    def issuer(self) -> str:
        return self.public

    def __enter__(self) -> Hydra:
        if not HYDRA.exists():
            pytest.skip(f"{HYDRA} is not built (make setup builds it where Go exists)")
        public, admin = free_port(), free_port()
        self.public, self.admin = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"
        self.app = SignInApp()
        self.app.admin = self.admin
        env = {
            **os.environ,
            "DSN": "memory",
            "SECRETS_SYSTEM": secrets.token_urlsafe(32),
            "URLS_SELF_ISSUER": self.public,
            "URLS_LOGIN": self.app.url + "/login",
            "URLS_CONSENT": self.app.url + "/consent",
            "URLS_LOGOUT": self.app.url + "/logout",
            "OAUTH2_TOKEN_HOOK_URL": self.app.url + "/token-hook",
            "OAUTH2_ALLOWED_TOP_LEVEL_CLAIMS": "groups,auth_time,amr,acr",
            "SERVE_PUBLIC_HOST": "127.0.0.1",
            "SERVE_PUBLIC_PORT": str(public),
            "SERVE_ADMIN_HOST": "127.0.0.1",
            "SERVE_ADMIN_PORT": str(admin),
            "LOG_LEVEL": "warn",
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(HYDRA), "serve", "all", "--dev", "--sqa-opt-out"],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hydra exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.admin + "/health/ready", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"hydra not ready after 60s: {self.log.read_text()[-2000:]}")

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self.app is not None:
            self.app.close()

    def public_client(self, client_id: str, token_lifespan_s: int | None = None) -> None:
        """A client for people's sign-in from a loopback redirect (the CLI's): no secret,
        the code flow with PKCE, refresh tokens, JWT access tokens for the audience."""
        self._code_flow_client(
            {"client_id": client_id, "token_endpoint_auth_method": "none",
             "redirect_uris": ["http://127.0.0.1/callback"]},
            token_lifespan_s,
        )  # fmt: skip

    def web_client(
        self, client_id: str, secret: str, base: str, token_lifespan_s: int | None = None
    ) -> None:
        """A confidential client for the dashboard served at `base`: its secret, the code
        flow (PKCE), refresh tokens, JWT access tokens for the audience, the callback and
        the way back after signing out."""
        self._code_flow_client(
            {"client_id": client_id, "client_secret": secret,
             "token_endpoint_auth_method": "client_secret_basic",
             "redirect_uris": [base + "/auth/callback"],
             "post_logout_redirect_uris": [base + "/"]},
            token_lifespan_s,
        )  # fmt: skip

    def _code_flow_client(self, client: dict[str, Any], token_lifespan_s: int | None) -> None:
        """Register a client of the code flow with refresh tokens and JWT access tokens for
        the audience; its access tokens live `token_lifespan_s` where given."""
        made = requests.post(
            self.admin + "/admin/clients",
            json={**client, "grant_types": ["authorization_code", "refresh_token"],
                  "response_types": ["code"], "scope": "openid offline_access",
                  "audience": [AUDIENCE], "access_token_strategy": "jwt"},
            timeout=10,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        if token_lifespan_s is not None:
            done = requests.put(
                f"{self.admin}/admin/clients/{client['client_id']}/lifespans",
                json={"authorization_code_grant_access_token_lifespan": f"{token_lifespan_s}s",
                      "refresh_token_grant_access_token_lifespan": f"{token_lifespan_s}s"},
                timeout=10,
            )  # fmt: skip
            assert done.ok, done.text

    def revoke_consent(self, subject: str, client_id: str) -> None:
        """What an admin does at the IdP to cut a person off a client: the consent and
        every token issued on it (refresh tokens too) revoked."""
        done = requests.delete(
            self.admin + "/admin/oauth2/auth/sessions/consent",
            params={"subject": subject, "client": client_id}, timeout=10,
        )  # fmt: skip
        assert done.status_code == 204, done.text

    @staticmethod
    def browse(url: str, person: str) -> requests.Response:
        """What a person's browser does with a sign-in URL: follows every redirect
        (Hydra, its login and consent app, Hydra, the client's redirect), signed in as
        `person`."""
        return requests.Session().get(f"{url}&login_hint={person}", timeout=30)

    def person(self, subject: str, audiences: tuple[str, ...] = (AUDIENCE,), **extra: Any) -> None:
        """A client whose id is `subject`, allowed to ask for tokens for `audiences`."""
        made = requests.post(
            self.admin + "/admin/clients",
            json={"client_id": subject, "grant_types": ["client_credentials"],
                  "access_token_strategy": "jwt", "audience": list(audiences),
                  "token_endpoint_auth_method": "client_secret_post", **extra},
            timeout=10,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        self.secrets_of[subject] = made.json()["client_secret"]

    def put_in_groups(self, subject: str, names: list[str]) -> None:
        """`subject`'s tokens name these IdP groups from now on (a top-level `groups`
        claim); the tokens made before keep what they had."""
        assert self.app is not None
        self.app.groups[subject] = names

    def lifespan(self, subject: str, seconds: int) -> None:
        """Tokens of `subject` last `seconds` from now on."""
        done = requests.put(
            f"{self.admin}/admin/clients/{subject}/lifespans",
            json={"client_credentials_grant_access_token_lifespan": f"{seconds}s"},
            timeout=10,
        )
        assert done.ok, done.text

    def token(self, subject: str, audience: str = AUDIENCE) -> str:
        """A JWT access token Hydra signs for `subject`."""
        answer = requests.post(
            self.public + "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": subject,
                  "client_secret": self.secrets_of[subject], "audience": audience},
            timeout=10,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def rotate(self, kid: str) -> None:
        """A new signing key for access tokens: Hydra signs with it from now on."""
        made = requests.post(
            f"{self.admin}/admin/keys/hydra.jwt.access-token",
            json={"alg": "RS256", "kid": kid, "use": "sig"},
            timeout=30,
        )
        assert made.status_code == 201, made.text

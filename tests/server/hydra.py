"""Ory Hydra on loopback: a real OpenID Connect provider for the identity tests.

`Hydra` runs `.tools/bin/hydra` (built by `make setup` from its Go module) with an
in-memory store on free ports, and registers clients through its admin API. A client
named after a person (`person`) stands in for that person's sign-in: its client
credentials grant yields the JWT access token Hydra signs for `sub` = the client's id, on
the same keys, issuer and audience rules as a signed-in user's. The tests skip, saying
why, where Hydra is not built.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from datavisa.engine.policy.process import free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HYDRA = PROJECT_ROOT / ".tools" / "bin" / "hydra"
AUDIENCE = "datavisa"


@dataclass
class Hydra:
    log: Path
    public: str = ""
    admin: str = ""
    proc: subprocess.Popen[bytes] | None = None
    secrets_of: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.public

    def __enter__(self) -> Hydra:
        if not HYDRA.exists():
            pytest.skip(f"{HYDRA} is not built (make setup builds it where Go exists)")
        public, admin = free_port(), free_port()
        self.public, self.admin = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"
        env = {
            **os.environ,
            "DSN": "memory",
            "SECRETS_SYSTEM": secrets.token_urlsafe(32),
            "URLS_SELF_ISSUER": self.public,
            # No login UI: people sign in as clients here (see the module doc).
            "URLS_LOGIN": "http://127.0.0.1:9/login",
            "URLS_CONSENT": "http://127.0.0.1:9/consent",
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

"""What verifying a person's JWT costs an access check, beside a static service token.

The hot path authenticates a bearer token as `Service.quick_principal` does: a static
token as the token store remembers it (`TokenStore.verify_recent`: a hash and a dictionary
read), a JWT by verifying its signature against the issuer's keys already held, then its
claims (`Verifier.verify(token, fetch=False)`, made a `Principal.person`). Measured in-process
(CPU of this process per call, no sockets on the timed path), for a static token and for
RS256 and ES256 tokens of a loopback issuer that serves its JWKS (this script's own keys:
the cost is the verification's, whoever signed). The ratio to the static token is the
figure: the check path for static tokens is not touched by identity at all. A dashboard
session's cost is its lookup (`WebSessions.find`: the row found by the cookie's hash).

    .venv/bin/python bench/identity_cost.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from datavisa.engine.api.tokens import SERVICE, SUBJECT_PATTERN, Principal, TokenStore
from datavisa.engine.identity.oidc import OidcConfig, Verifier
from datavisa.engine.identity.web_session import SignInConfig, WebSessions
from datavisa.engine.store import open_store


def _issuer(keys: KeySet) -> tuple[http.server.ThreadingHTTPServer, str]:
    document = json.dumps(keys.as_dict(private=False)).encode()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _per_call_us(call: Any, tokens: list[str]) -> float:
    """CPU per call of `call` over `tokens` (one token over and over: as remembered)."""
    assert call(tokens[0]) is not None
    started = time.process_time()
    for token in tokens:
        call(token)
    return (time.process_time() - started) / len(tokens) * 1e6


def measure(workdir: Path, calls: int = 5000) -> dict[str, Any]:
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS256", "use": "sig"})
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "alg": "ES256", "use": "sig"})
    server, issuer = _issuer(KeySet([rsa, ec]))
    store = open_store(workdir / "identity.db")
    tokens = TokenStore(store)
    try:
        config = OidcConfig(issuer=issuer, audience="datavisa", jwks_uri=issuer + "/jwks")
        verifier = Verifier(config, SUBJECT_PATTERN)

        def person(token: str) -> Principal:
            return Principal.person(verifier.verify(token, fetch=False))

        now = int(time.time())

        def signed(key: Any, alg: str, n: int) -> list[str]:
            """`n` tokens for alice, each its own (a jti of its own): never remembered."""
            return [
                jwt.encode({"alg": alg, "kid": key.kid},
                           {"iss": issuer, "aud": "datavisa", "sub": "alice", "iat": now,
                            "exp": now + 3600, "jti": f"bench-{alg}-{i}"}, key)
                for i in range(n)
            ]  # fmt: skip

        fresh = max(200, calls // 10)  # a signature check each: slower, fewer suffice
        rs256, es256 = signed(rsa, "RS256", fresh + 1), signed(ec, "ES256", fresh + 1)
        static, _ = tokens.issue("gw", SERVICE)
        verifier.verify(rs256[-1])  # the keys fetched once, as the slow lane does
        sessions = WebSessions(store, verifier, SignInConfig(client_id="bench"))
        cookie = "bench-session-cookie"
        with store.transaction() as db:  # a signed-in browser, as the callback leaves it
            db["web_sessions"].insert({
                "id_hash": hashlib.sha256(cookie.encode()).hexdigest(), "subject": "alice",
                "csrf_token": "c", "created_at": now, "expires_at": now + 3600,
                "last_seen_at": now, "access_expires_at": now + 3600,
            })  # fmt: skip
        out = {
            "calls": calls,
            # A dashboard session: one indexed read of its row by the cookie's hash.
            "session_us": _per_call_us(sessions.find, [cookie] * calls),
            "static_token_us": _per_call_us(tokens.verify_recent, [static] * calls),
            # A token's first check verifies its signature; later ones within REMEMBER_S
            # are remembered, as a static token is by verify_recent.
            "jwt_rs256_first_us": _per_call_us(person, rs256[:fresh]),
            "jwt_es256_first_us": _per_call_us(person, es256[:fresh]),
            "jwt_remembered_us": _per_call_us(person, [rs256[0]] * calls),
        }
    finally:
        tokens.close()
        store.close()
        server.shutdown()
    base = out["static_token_us"]
    out |= {f"{k.removesuffix('_us')}_x_static": round(out[k] / base, 1)
            for k in ("jwt_rs256_first_us", "jwt_es256_first_us", "jwt_remembered_us",
                      "session_us")}  # fmt: skip
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datavisa-identity-") as tmp:
        print(json.dumps(measure(Path(tmp), args.calls), indent=2))


if __name__ == "__main__":
    main()

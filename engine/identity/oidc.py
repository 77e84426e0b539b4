"""The identity provider's JWT access tokens, verified as RFC 7519 and OpenID Connect say.

`Verifier.verify(token)` checks, in this order, and refuses with the first that fails
(`RefusedToken`, a 401 at the API): the size; a compact JWS whose header names an accepted
algorithm (asymmetric only: never `none`, never HMAC, whose secret would be the public
key) and a key id; the key, from the issuer's JWKS (discovered from its OpenID
configuration, cached, fetched again for a key id it does not know, at most every
`refetch_after_s`: a key rotation is picked up, a flood of made-up key ids is not a flood
of fetches); the signature; `iss`, `aud`, `exp`, `nbf` and `iat` with a bounded leeway;
and a subject claim that names someone the way DataVisa names people. An issuer whose keys
cannot be fetched while none are cached is `IdentityUnavailable` (a 503): no token is
accepted on trust. `verify_id_token` holds an ID token, the end of a dashboard sign-in,
to the same keys and to OpenID Connect's rules for it (the client as audience, the nonce).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..model.errors import DataVisaError

log = logging.getLogger("datavisa.identity")

# Asymmetric signatures only: a verifier that took HS256 could be handed a token "signed"
# with the issuer's public key as the secret.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
FETCH_TIMEOUT_S = 3.0
REMEMBER_S = 60.0  # the longest a verified token is taken without verifying it again
REMEMBER_MAX = 4096  # tokens remembered at most (the oldest go first)


class RefusedToken(DataVisaError):
    """A token that does not stand for anyone: why, in words a client can act on."""


class IdentityUnavailable(DataVisaError):
    """The issuer's keys cannot be had now, so no token can be verified."""


@dataclass(frozen=True)
class OidcConfig:
    """Whose tokens count (serve config `identity:`)."""

    issuer: str
    audience: str
    subject_claim: str = "sub"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_s: float = 30.0  # clocks disagree; a token is never good much past its exp
    max_token_bytes: int = 8192
    jwks_uri: str | None = None  # else the issuer's OpenID configuration says
    refetch_after_s: float = 10.0  # the least time between fetches for an unknown kid
    max_age_s: float = 3600.0  # the keys are fetched again at least this often
    groups_claim: str | None = None  # the claim listing the person's IdP groups, if any


@dataclass(frozen=True)
class Identity:
    """A person the issuer signed in: the subject, and how and when they authenticated."""

    subject: str
    token_id: str  # `jwt:` and the token's jti (else a digest of it): for the audit trail
    expires_at: float
    auth_time: float | None = None
    amr: tuple[str, ...] = ()
    acr: str | None = None
    # The IdP groups the token names (config groups_claim); None: it names none, or no
    # claim is configured (policy then reads the groups directory sync pushed).
    groups: tuple[str, ...] | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The step-up the person did in the console since signing in (engine/stepup): how
    # (webauthn, totp) and when; None for a token, or a session that did none.
    step_up_method: str | None = None
    step_up_at: float | None = None

    def signed_in(self, now: float) -> dict[str, Any]:
        """The decision input's `authentication` for this person at `now`
        (datavisa.step_up): how long ago and how the IdP signed them in, and the
        console step-up they did, if any, and how long ago."""
        at = self.auth_time
        said: dict[str, Any] = {
            "age_s": None if at is None else max(0.0, now - at),
            "amr": list(self.amr),
            "acr": self.acr,
        }
        if self.step_up_at is not None:
            said["step_up"] = {
                "method": self.step_up_method,
                "age_s": max(0.0, now - self.step_up_at),
            }
        return said

    def idp_groups(self) -> dict[str, list[str]]:
        """The decision input's `idp_groups` for this person (datavisa.idp): their token's
        groups, when it names any."""
        return {} if self.groups is None else {self.subject: list(self.groups)}


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: a compact JWS (a static DataVisa token never is one)."""
    return token.count(".") == 2


class Verifier:
    """Verifies `config.issuer`'s JWT access tokens (see the module doc)."""

    def __init__(
        self,
        config: OidcConfig,
        subject_pattern: str,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.config, self.clock = config, clock
        self._subject = re.compile(subject_pattern)
        self._http = session or requests.Session()
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")  # monotonic
        self.problem: str | None = None  # why the keys could not be fetched last time
        # Tokens verified lately, by digest: the hot path's JWT costs a hash, not a
        # signature check (bench/identity_cost.py).
        self._recent: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()

    def verify(self, token: str, fetch: bool = True) -> Identity:
        """The person `token` stands for; RefusedToken says why it stands for no one.
        Without `fetch`, keys not already held are IdentityUnavailable at once (the hot
        path never waits on the issuer: the caller takes the slow one)."""
        cfg = self.config
        digest = hashlib.sha256(token.encode()).digest()
        if (known := self._recent.get(digest)) is not None and time.monotonic() < known[1]:
            return known[0]
        person = self._identity(self._signed_claims(token, fetch), token)
        # Remembered until it expires, and for REMEMBER_S at most: a key the issuer
        # withdrew stops counting within that time.
        until = min(REMEMBER_S, person.expires_at + cfg.leeway_s - self.clock())
        with self._lock:
            self._recent[digest] = person, time.monotonic() + until
            while len(self._recent) > REMEMBER_MAX:
                self._recent.popitem(last=False)
        return person

    def verify_id_token(self, token: str, client_id: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token the issuer gave `client_id` at the end of the sign-in
        that sent `nonce` (OpenID Connect Core 1.0, §3.1.3.7): signed as access tokens are,
        `iss` the issuer, `aud` naming the client (and `azp` it, among several), `exp`,
        `iat` and `nbf` as for access tokens, a subject, and the `nonce` sent. Refused
        with RefusedToken saying what failed."""
        claims = self._signed_claims(token, fetch=True)
        if claims.get("iss") != self.config.issuer:
            raise RefusedToken(f"the ID token is from issuer {str(claims.get('iss'))[:200]!r}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id not in audiences or (len(audiences) > 1 and claims.get("azp") != client_id):
            raise RefusedToken(f"the ID token is not for this client ({client_id!r})")
        self._check_times(claims, "ID token")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, nonce):
            raise RefusedToken("the ID token is not from this sign-in (its nonce differs)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise RefusedToken("the ID token names no subject (sub)")
        return claims

    def _signed_claims(self, token: str, fetch: bool) -> dict[str, Any]:
        """The claims of a JWT whose size, algorithm, key and signature hold."""
        cfg = self.config
        if len(token) > cfg.max_token_bytes:
            raise RefusedToken(f"the token is larger than {cfg.max_token_bytes} bytes")
        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in cfg.algorithms:
            raise RefusedToken(
                f"the token is signed with {alg!r}; accepted: {', '.join(cfg.algorithms)}"
            )
        if not isinstance(kid, str) or not kid:
            raise RefusedToken("the token names no key (kid) it is signed with")
        keys = self._keys_with(kid, fetch)
        try:
            decoded = jwt.decode(token, keys, algorithms=[alg])
        except JoseError as e:
            raise RefusedToken(f"the token's signature does not verify ({e.error})") from None
        except ValueError:  # not a JWT after all
            raise RefusedToken("the token is not a signed JWT") from None
        return dict(decoded.claims)

    def unavailable(self) -> str | None:
        """Why the issuer's keys cannot be had now (None: they are held): fetched again if
        they were missing or stale, at most every `refetch_after_s` (for /health)."""
        with self._lock:
            now = time.monotonic()
            behind = self._keys is None or self.problem is not None
            stale = now - self._fetched_at > self.config.max_age_s
            if (behind or stale) and now - self._fetched_at > self.config.refetch_after_s:
                self._fetch(now)
            return self.problem

    def _keys_with(self, kid: str, fetch: bool = True) -> KeySet:
        """The issuer's keys, holding `kid` if the issuer publishes it."""
        with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at > self.config.max_age_s
            unknown = kid not in self._kids and now - self._fetched_at > self.config.refetch_after_s
            if self._keys is None or stale or unknown:
                if not fetch:
                    raise IdentityUnavailable("the issuer's keys are not held yet")
                self._fetch(now)
            if self._keys is None:
                raise IdentityUnavailable(
                    f"the identity provider's keys cannot be fetched: {self.problem}"
                )
            if kid not in self._kids:
                raise RefusedToken(
                    f"the token is signed with key {kid[:64]!r}, which the issuer does not "
                    "publish (a forged token, or one from another issuer)"
                )
            return self._keys

    def _fetch(self, now: float) -> None:
        try:
            uri = self.config.jwks_uri or self._discover()
            answer = self._http.get(uri, timeout=FETCH_TIMEOUT_S)
            answer.raise_for_status()
            keys = KeySet.import_key_set(answer.json())
        except (requests.RequestException, ValueError, JoseError, KeyError, TypeError) as e:
            self.problem = f"{type(e).__name__}: {e}"[:300]
            log.warning("cannot fetch the keys of %s: %s", self.config.issuer, self.problem)
            self._fetched_at = now  # not again at once: refetch_after_s
            return  # the keys held before, if any, stay in use
        self._keys, self.problem, self._fetched_at = keys, None, now
        self._kids = frozenset(k.kid for k in keys.keys if k.kid)

    def _discover(self) -> str:
        return str(discover(self.config.issuer, self._http)["jwks_uri"])

    def _check_times(self, claims: dict[str, Any], what: str) -> float:
        """`exp` present and not past, `nbf` and `iat` not in the future (with the
        leeway); the expiry."""
        cfg, now = self.config, self.clock()
        exp, nbf, iat = (claims.get(name) for name in ("exp", "nbf", "iat"))
        if not _number(exp):
            raise RefusedToken(f"the {what} has no expiry (exp)")
        if now > exp + cfg.leeway_s:
            raise RefusedToken(f"the {what} expired: sign in again")
        for name, value in (("nbf", nbf), ("iat", iat)):
            if value is not None and (not _number(value) or value > now + cfg.leeway_s):
                raise RefusedToken(f"the {what} is not valid yet ({name} is in the future)")
        return float(exp)

    def _identity(self, claims: dict[str, Any], token: str) -> Identity:
        cfg = self.config
        if claims.get("iss") != cfg.issuer:
            raise RefusedToken(f"the token is from issuer {str(claims.get('iss'))[:200]!r}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if cfg.audience not in audiences:
            raise RefusedToken(f"the token is not for this service (audience {cfg.audience!r})")
        exp = self._check_times(claims, "token")
        subject = claims.get(cfg.subject_claim)
        if not isinstance(subject, str) or not self._subject.fullmatch(subject):
            raise RefusedToken(
                f"the token's {cfg.subject_claim} claim does not name a person DataVisa knows "
                "how to name (letters, digits and . _ : @ -)"
            )
        jti = claims.get("jti")
        token_id = "jwt:" + (
            jti[:64]
            if isinstance(jti, str) and jti
            else hashlib.sha256(token.encode()).hexdigest()[:16]
        )
        return Identity(
            subject, token_id, exp, **authentication(claims),
            groups=_groups(claims, cfg.groups_claim), claims=claims,
        )  # fmt: skip


def discover(
    issuer: str, http: requests.Session | None = None, timeout_s: float = FETCH_TIMEOUT_S
) -> dict[str, Any]:
    """The issuer's OpenID configuration (OpenID Connect Discovery 1.0), which must name
    the issuer itself. Raises requests' errors and ValueError."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    answer = (http or requests).get(url, timeout=timeout_s)
    answer.raise_for_status()
    document = answer.json()
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        found = document.get("issuer") if isinstance(document, dict) else None
        raise ValueError(f"{url} names issuer {found!r}, not {issuer!r}")
    return document


def authentication(claims: dict[str, Any]) -> dict[str, Any]:
    """How and when the person signed in, as the token's claims say (OpenID Connect's
    `auth_time`, `amr` as RFC 8176 names methods, `acr`): Identity's fields."""
    amr, acr = claims.get("amr"), claims.get("acr")
    return {
        "auth_time": float(claims["auth_time"]) if _number(claims.get("auth_time")) else None,
        "amr": tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
        "acr": acr if isinstance(acr, str) else None,
    }


def _groups(claims: dict[str, Any], claim: str | None) -> tuple[str, ...] | None:
    """The group names in `claim` (a list of strings, or one string as some IdPs send a
    single group); None when the token has no such claim. What they mean is policy."""
    if claim is None or claim not in claims:
        return None
    value = claims[claim]
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(n for n in names if isinstance(n, str) and 0 < len(n) <= 256)[:256]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, read before anything is verified (to pick the
    key); nothing in it is trusted but to choose."""
    part = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise RefusedToken("the token is not a signed JWT (its header does not read)") from None
    if not isinstance(header, dict):
        raise RefusedToken("the token is not a signed JWT (its header is no object)")
    return header

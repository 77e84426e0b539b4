"""How `datavisa serve` is set up: one YAML file, defaults for all of it, flags on top.

```yaml
listen: 127.0.0.1:8470            # HOST:PORT the HTTP API listens on
database: /var/lib/datavisa/datavisa.db   # or postgresql://user@host/db, shared by engines
instance: engine-a                # this engine's name among those sharing a PostgreSQL
                                  # (its leases, cursors, OPA token); default HOST:PORT.
                                  # Give one where hostnames change on restart (pods)
bundle: build/bundle.tar.gz       # default: built from the shipped policy at start
bundle_dir: our-policy/data       # or: policy data to build it from at start (policy init)
opa:
  url: http://127.0.0.1:8181      # default: start and supervise a private OPA on loopback
  timeout: 2s                     # the longest a decision waits for OPA before it denies
  token_file: /etc/datavisa/opa.token   # the bearer token that OPA wants, if any (its
                                  # first line); or `token: ...` inline. Only with url: the
                                  # supervised OPA answers only a secret made at its start
tokens:
  database: /var/lib/datavisa/tokens.db   # default: the main database
max_body_bytes: 65536             # larger request bodies are refused with 413
limits:                           # free-form JSON beyond these is refused with 422
  context_bytes: 8192             # an access check's context, as compact JSON
  context_depth: 32               # ... and its levels of nesting (at most 96)
  log_value_bytes: 65536          # each free-form part of an uploaded decision-log event
  log_value_depth: 64             # ... and its levels of nesting (at most 96)
sweep_every: 30s                  # how often expiries and lapses are written down
reconcile_every: 60s              # how often OPA's grants are compared with the store
public_url: https://datavisa.example.com   # how people reach the server, for notifications
webhooks:                         # Slack-compatible JSON, retried with backoff
  - url: https://hooks.slack.com/services/T000/B000/XXXX
    name: security                # how deliveries and logs name it (the URL is a secret)
    kinds: [alerts]               # alerts, approvals, or both (the default)
  - url: https://chat.example.com/hooks/owners
    kinds: [approvals]
    groups: [data_owner]          # only requests needing one of these approver groups
gateway:                          # the forward-auth endpoints /v1/authz/... (docs/gateway.md)
  credential_header: X-DataVisa-Gateway-Token   # carries the gateway's own service token;
                                  # only with it are the identity, country and
                                  # X-Forwarded-For headers below believed
  identity_headers: [X-Auth-Request-User, X-Forwarded-User]   # the subject, as oauth2-proxy
                                  # sets it; the first one present counts
  country_header: CF-IPCountry    # the client's country (ISO 3166-1), as the edge sets it;
                                  # none by default; an `attested` location
  max_header_bytes: 4096          # a header the decision reads beyond this is a deny
location:                         # where callers are (docs/identity.md, "Location sources")
  networks:                       # client address (CIDR) → country, most specific first: a
    10.20.0.0/16: DE              # `derived` location, for the API and the gateway alike
    192.0.2.0/24: FR
  proxies: [10.0.0.5/32]          # the proxies and gateways in front of the server: only
                                  # they may name the client's address (X-Forwarded-For);
                                  # none by default. (gateway.networks and gateway.proxies
                                  # are read as these, as before)
  ip_database: iptocc             # after the networks: the offline IP-to-country database
                                  # (iptocc, updated with the package), or none
fleet:                            # sidecar OPAs fed by the bundle service (docs/deploy.md)
  opas: [payments-opa, support-opa]   # their service tokens' subjects (datavisa opa-config):
                                  # a grant change is in force once each of them confirms it
  confirm_within: 1s              # how long a revoke waits for them before answering 202
  stale_after: 30s                # an OPA behind (or silent) for longer is shown stale
  long_poll: 10s                  # the long-poll wait opa-config gives sidecars
  deltas: false                   # delta bundles to OPAs that take them (docs/deploy.md)
identity:                         # people signed in by the organisation's IdP (docs/identity.md)
  issuer: https://login.example.com/   # its OpenID Connect issuer: the JWT access tokens
                                  # it signs count as its people (static tokens stay)
  audience: datavisa              # the `aud` those tokens must name
  subject_claim: sub              # the claim naming the person (default sub)
  groups_claim: groups            # the claim listing their IdP groups, judged by policy
                                  # (bundles/*/identity.yaml, rego/datavisa/idp); unset: none
  algorithms: [RS256, ES256]      # accepted signatures (asymmetric only; the default)
  leeway: 30s                     # clock skew allowed on exp, nbf and iat
  sign_in:                        # the dashboard signs people in here (code flow + PKCE)
    client_id: datavisa-dashboard # its client at the IdP (not the audience above)
    client_secret_file: /etc/datavisa/oidc-client.secret   # its secret (the first line),
                                  # or $DATAVISA_OIDC_CLIENT_SECRET; neither: a public client
    redirect_uri: https://datavisa.example.com/auth/callback   # default: public_url +
                                  # /auth/callback (register it at the IdP)
    scope: openid offline_access  # openid is required; offline_access lets it renew
    session: 8h                   # a session's longest life (at most 24h) ...
    idle: 1h                      # ... and unused (at most session)
connections:                      # data systems where grants take effect (docs/postgresql.md),
  analytics:                      # named by resources' `target.connection` in the bundle
    kind: postgresql
    dsn_file: /etc/datavisa/analytics.dsn   # the admin's DSN (a secret: its first line), or
                                  # `dsn: postgresql://...` inline; never printed
    log_dir: /var/log/postgresql  # where the server writes its jsonlog: what roles ran
    public_host: db.example.com   # how holders reach it (default: the DSN's host and port)
    public_port: 5432
    managed_role: datavisa_managed   # marks this deployment's roles (default; give each
                                  # deployment sharing a server its own)
    public_connect: report        # PUBLIC holds CONNECT on another database: report it
                                  # (doctor, /health?enforcement=true; the default), or
                                  # refuse to provision any grant there until it is revoked
  support:                        # a MariaDB or MySQL server (docs/mariadb.md)
    kind: mariadb
    dsn_file: /etc/datavisa/support.dsn   # mysql://admin:password@host:3306/ (a secret)
    audit_log: /var/lib/mysql/server_audit.log   # the audit plugin's file: what accounts ran
    managed_role: datavisa_managed   # the role marking this deployment's accounts, and
                                  # the database of its bookkeeping (default)
```

Relative paths in the file are relative to the file's folder. The countries a location may
name are not configured here: they are the bundle's (its `countries` section), read from the
bundle serve runs, or asked once of an external OPA at start (the shipped bundle's when it
does not answer).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..chat.slack import SlackConfig
from ..chat.slack import parse_config as parse_slack
from ..connectors import mariadb
from ..connectors.postgresql import KIND as POSTGRESQL
from ..connectors.postgresql import MANAGED, PUBLIC_CONNECT, REPORT, Connection
from ..identity.oidc import ALGORITHMS, OidcConfig
from ..identity.web_session import SignInConfig
from ..lifecycle.fleet import FleetConfig
from ..location.networks import DATABASES, Network, Networks
from ..model.durations import parse_duration
from ..model.errors import DataVisaError
from ..monitoring.notify import KINDS, Webhook
from ..paths import default_db_path
from ..policy.opa import read_token_file
from ..store import is_url
from .limits import MAX_DEPTH, Limits
from .tokens import SUBJECT_PATTERN

DEFAULT_LISTEN = "127.0.0.1:8470"
DEFAULT_OPA_TIMEOUT_S = 2.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_SWEEP_EVERY_S = 30.0
DEFAULT_RECONCILE_EVERY_S = 60.0
CONFIG_ENV = "DATAVISA_CONFIG"
CLIENT_SECRET_ENV = "DATAVISA_OIDC_CLIENT_SECRET"
MAX_SESSION_S = 24 * 3600.0


DEFAULT_IDENTITY_HEADERS = ("x-auth-request-user", "x-forwarded-user")
DEFAULT_CREDENTIAL_HEADER = "x-datavisa-gateway-token"
DEFAULT_MAX_HEADER_BYTES = 4096
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True)
class GatewayConfig:
    """How the forward-auth endpoints read a gateway's request: header names are kept
    lower-case (as ASGI gives them)."""

    credential_header: str = DEFAULT_CREDENTIAL_HEADER
    identity_headers: tuple[str, ...] = DEFAULT_IDENTITY_HEADERS
    country_header: str | None = None
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    @property
    def trusted_headers(self) -> tuple[str, ...]:
        """Every header whose value the engine believes from a gateway: what a gateway must
        drop or overwrite in its client's request (examples/)."""
        country = (self.country_header,) if self.country_header else ()
        return (self.credential_header, *self.identity_headers, *country, "x-forwarded-for")


@dataclass(frozen=True)
class ServeConfig:
    listen: str = DEFAULT_LISTEN
    database: Path | str = field(default_factory=default_db_path)  # str: a PostgreSQL URL
    instance: str | None = None  # this engine's name on a shared store (None: HOST:PORT)
    bundle: Path | None = None
    bundle_dir: Path | None = None
    opa_url: str | None = None
    opa_timeout_s: float = DEFAULT_OPA_TIMEOUT_S
    opa_token: str | None = field(default=None, repr=False)  # a secret: never in logs
    tokens_database: Path | str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sweep_every_s: float = DEFAULT_SWEEP_EVERY_S
    reconcile_every_s: float = DEFAULT_RECONCILE_EVERY_S
    public_url: str | None = None
    webhooks: tuple[Webhook, ...] = ()
    limits: Limits = field(default_factory=Limits)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    # Where callers are: the networks, the trusted proxies, the IP-to-country database.
    location: Networks = field(default_factory=Networks)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    identity: OidcConfig | None = None  # whose JWT access tokens count, if anyone's
    sign_in: SignInConfig | None = None  # the dashboard's sign-in at that issuer, if any
    # A postgresql.Connection or a mariadb.Connection each, by name.
    connections: dict[str, Any] = field(default_factory=dict, repr=False)
    slack: SlackConfig | None = None  # chat approvals and notices (engine/chat)

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def token_path(self) -> Path | str:
        return self.tokens_database or self.database

    def override(self, **flags: Any) -> ServeConfig:
        """This config with every flag that was given (not None) put over it."""
        given = {k: v for k, v in flags.items() if v is not None}
        updated = dataclasses.replace(self, **given)
        updated.host_port  # noqa: B018 - validate the address early
        return updated


def parse_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8470` or `[::1]:8470` as (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise DataVisaError(f"listen address {listen!r} is not HOST:PORT, such as 127.0.0.1:8470")
    return host.strip("[]"), int(port)


_SECTIONS = {
    "listen": str,
    "database": str,
    "instance": str,
    "bundle": str,
    "bundle_dir": str,
    "opa": dict,
    "tokens": dict,
    "max_body_bytes": int,
    "sweep_every": (str, int, float),
    "reconcile_every": (str, int, float),
    "public_url": str,
    "webhooks": list,
    "limits": dict,
    "gateway": dict,
    "location": dict,
    "fleet": dict,
    "identity": dict,
    "connections": dict,
    "slack": dict,
}
_OPA_KEYS = {"url", "timeout", "token", "token_file"}
_TOKEN_KEYS = {"database"}
_WEBHOOK_KEYS = {"url", "name", "kinds", "groups"}
_GATEWAY_KEYS = {
    "credential_header",
    "identity_headers",
    "country_header",
    "networks",
    "max_header_bytes",
    "proxies",
}


def load(path: Path | None = None) -> ServeConfig:
    """The config in `path` (or $DATAVISA_CONFIG) over the defaults; the defaults alone
    when there is neither."""
    if path is None and (env := os.environ.get(CONFIG_ENV)):
        path = Path(env)
    if path is None:
        return ServeConfig()
    try:
        text = path.read_text()
        doc = yaml.safe_load(text)
    except OSError as e:
        raise DataVisaError(f"cannot read config {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise DataVisaError(f"{where}: not valid YAML: {problem}") from e
    try:
        return from_dict(doc or {}, base=path.resolve().parent, origin=str(path))
    except DataVisaError as e:
        raise DataVisaError(_with_line(str(e), str(path), _key_lines(text))) from e


def _key_lines(text: str) -> dict[str, int]:
    """The line of every key in a YAML document, by its path as errors name it
    (`fleet.confirm_within`, `webhooks[0].url`)."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{prefix}.{key.value}" if prefix else str(key.value)
                lines.setdefault(name, key.start_mark.line + 1)
                walk(value, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(f"{prefix}[{i}]", item.start_mark.line + 1)
                walk(item, f"{prefix}[{i}]")

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, "")
    return lines


def _with_line(message: str, origin: str, lines: dict[str, int]) -> str:
    """`message` (`origin: key: problem`) with the line of the key it names first (the
    most specific one there): `origin, line 4: fleet.confirm_within: problem`."""
    rest = message.removeprefix(f"{origin}: ")
    named = [
        (found.start(), -len(key), key)
        for key in lines
        if (found := re.search(rf"(?<![\w.\[]){re.escape(key)}(?![\w\[])", rest))
    ]
    if not named or rest == message:
        return message
    return f"{origin}, line {lines[min(named)[2]]}: {rest}"


def from_dict(doc: Any, base: Path, origin: str = "config") -> ServeConfig:
    if not isinstance(doc, dict):
        raise DataVisaError(f"{origin}: the top level must be a mapping")
    _known(doc, set(_SECTIONS), origin, "")
    for key, kind in _SECTIONS.items():
        if key in doc and doc[key] is not None and not isinstance(doc[key], kind):
            raise DataVisaError(f"{origin}: {key} has the wrong type ({type(doc[key]).__name__})")
    opa, tokens = doc.get("opa") or {}, doc.get("tokens") or {}
    _known(opa, _OPA_KEYS, origin, "opa.")
    _known(tokens, _TOKEN_KEYS, origin, "tokens.")

    def path(value: Any) -> Path | None:
        return None if value is None else base / Path(str(value)).expanduser()

    def database(value: Any) -> Path | str | None:
        return str(value) if is_url(str(value)) else path(value)

    values: dict[str, Any] = {
        "listen": doc.get("listen"),
        "database": database(doc.get("database")),
        "instance": _instance(doc.get("instance"), origin),
        "bundle": path(doc.get("bundle")),
        "bundle_dir": path(doc.get("bundle_dir")),
        "opa_url": opa.get("url"),
        "opa_timeout_s": _seconds(opa.get("timeout"), origin, "opa.timeout"),
        "opa_token": _opa_token(opa, path(opa.get("token_file")), origin),
        "tokens_database": database(tokens.get("database")),
        "max_body_bytes": doc.get("max_body_bytes"),
        "sweep_every_s": _seconds(doc.get("sweep_every"), origin, "sweep_every"),
        "reconcile_every_s": _seconds(doc.get("reconcile_every"), origin, "reconcile_every"),
        "public_url": (doc.get("public_url") or "").rstrip("/") or None,
        "webhooks": _webhooks(doc.get("webhooks"), origin),
        "limits": _limits(doc.get("limits"), origin),
        "gateway": _gateway(doc.get("gateway"), origin),
        "location": _location(doc.get("location"), doc.get("gateway"), origin),
        "fleet": _fleet(doc.get("fleet"), origin),
        "identity": _identity(doc.get("identity"), origin),
        "sign_in": _sign_in(doc.get("identity"), base, origin, doc.get("public_url")),
        "connections": _connections(doc.get("connections"), base, origin),
        "slack": parse_slack(doc.get("slack"), base, origin, doc.get("public_url")),
    }
    if values["public_url"] and not values["public_url"].startswith(("http://", "https://")):
        raise DataVisaError(f"{origin}: public_url must start with http:// or https://")
    if values["max_body_bytes"] is not None and values["max_body_bytes"] < 1024:
        raise DataVisaError(f"{origin}: max_body_bytes must be at least 1024")
    try:
        return ServeConfig().override(**values)
    except DataVisaError as e:
        raise DataVisaError(f"{origin}: {e}") from e


def _instance(value: str | None, origin: str) -> str | None:
    """The engine's name among engines sharing a store: a token subject's characters, since
    its own OPA's token is named after it."""
    if value is not None and not re.fullmatch(SUBJECT_PATTERN, value):
        raise DataVisaError(f"{origin}: instance must be letters, digits and . _ : @ - only")
    return value


def _opa_token(opa: dict[str, Any], token_file: Path | None, origin: str) -> str | None:
    """opa.token, or the first line of opa.token_file; not both."""
    token = opa.get("token")
    if token is not None and token_file is not None:
        raise DataVisaError(f"{origin}: give opa.token or opa.token_file, not both")
    if token_file is not None:
        try:
            return read_token_file(token_file)
        except DataVisaError as e:
            raise DataVisaError(f"{origin}: opa.token_file: {e}") from e
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise DataVisaError(f"{origin}: opa.token must be a non-empty string")
    return token.strip() if token is not None else None


def _webhooks(value: Any, origin: str) -> tuple[Webhook, ...] | None:
    if value is None:
        return None
    hooks = []
    for i, item in enumerate(value):
        where = f"webhooks[{i}]"
        _known(item, _WEBHOOK_KEYS, origin, where + ".")
        kinds, groups = item.get("kinds", sorted(KINDS)), item.get("groups", [])
        for key, listed in (("kinds", kinds), ("groups", groups)):
            if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
                raise DataVisaError(f"{origin}: {where}.{key} must be a list of names")
        if not isinstance(item.get("url"), str):
            raise DataVisaError(f"{origin}: {where}.url is required")
        try:
            name = str(item.get("name") or "")
            hooks.append(Webhook(item["url"], name, frozenset(kinds), frozenset(groups)))
        except DataVisaError as e:
            raise DataVisaError(f"{origin}: {where}: {e}") from e
    return tuple(hooks)


def _limits(value: Any, origin: str) -> Limits | None:
    if value is None:
        return None
    known = {f.name for f in dataclasses.fields(Limits)}
    _known(value, known, origin, "limits.")
    for key, given in value.items():
        least, most = (1, MAX_DEPTH) if key.endswith("_depth") else (256, 16 * 1024 * 1024)
        if isinstance(given, bool) or not isinstance(given, int) or not least <= given <= most:
            raise DataVisaError(
                f"{origin}: limits.{key} must be a whole number from {least} to {most}"
            )
    return Limits(**value)


def _gateway(value: Any, origin: str) -> GatewayConfig | None:
    if value is None:
        return None
    _known(value, _GATEWAY_KEYS, origin, "gateway.")

    def header(key: str, given: Any) -> str:
        if not isinstance(given, str) or not _HEADER_NAME.match(given):
            raise DataVisaError(f"{origin}: gateway.{key} must be an HTTP header name")
        return given.lower()

    defaults = GatewayConfig()
    identities = value.get("identity_headers", list(defaults.identity_headers))
    if not isinstance(identities, list):
        raise DataVisaError(f"{origin}: gateway.identity_headers must be a list of header names")
    credential = header(
        "credential_header", value.get("credential_header", defaults.credential_header)
    )
    names = tuple(header("identity_headers", name) for name in identities)
    country = value.get("country_header")
    country = None if country is None else header("country_header", country)
    # A header both credential and identity (or country) would let the token be the subject.
    if credential in names or credential == country:
        raise DataVisaError(f"{origin}: gateway.credential_header must differ from the others")
    most = value.get("max_header_bytes", defaults.max_header_bytes)
    if isinstance(most, bool) or not isinstance(most, int) or not 64 <= most <= 65536:
        raise DataVisaError(f"{origin}: gateway.max_header_bytes must be from 64 to 65536")
    return GatewayConfig(credential, names, country, most)


def _location(value: Any, gateway: Any, origin: str) -> Networks | None:
    """location: {networks, proxies, ip_database}; gateway.networks and gateway.proxies,
    where the gateway endpoints alone read them before, count as the same (not both)."""
    gateway = gateway if isinstance(gateway, dict) else {}
    if value is None and not {"networks", "proxies"} & set(gateway):
        return None
    value = {} if value is None else value
    _known(value, {"networks", "proxies", "ip_database"}, origin, "location.")
    found: dict[str, tuple[str, Any]] = {}  # key → (the section it was given in, value)
    for key in ("networks", "proxies"):
        if key in value and key in gateway:
            raise DataVisaError(f"{origin}: give location.{key} or gateway.{key}, not both")
        if key in value or key in gateway:
            found[key] = ("location", value[key]) if key in value else ("gateway", gateway[key])
    database = value.get("ip_database", Networks.database)
    if database not in DATABASES:
        raise DataVisaError(f"{origin}: location.ip_database must be one of {', '.join(DATABASES)}")
    networks = found.get("networks", ("location", None))
    proxies = found.get("proxies", ("location", None))
    return Networks(
        _networks(networks[1], origin, networks[0]),
        _proxies(proxies[1], origin, proxies[0]),
        database,
    )


def _proxies(value: Any, origin: str, section: str) -> tuple[Network, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DataVisaError(f"{origin}: {section}.proxies must be a list of addresses or CIDRs")
    try:
        return tuple(ipaddress.ip_network(str(cidr), strict=True) for cidr in value)
    except ValueError as e:
        raise DataVisaError(f"{origin}: {section}.proxies: {e}") from e


def _fleet(value: Any, origin: str) -> FleetConfig | None:
    if value is None:
        return None
    _known(
        value, {"opas", "confirm_within", "stale_after", "long_poll", "deltas"}, origin, "fleet."
    )
    opas = value.get("opas", [])
    if not isinstance(opas, list) or not all(
        isinstance(o, str) and re.fullmatch(SUBJECT_PATTERN, o) for o in opas
    ):
        raise DataVisaError(
            f"{origin}: fleet.opas must be a list of the subjects of the sidecars' opa tokens"
        )
    if not isinstance(value.get("deltas", False), bool):
        raise DataVisaError(f"{origin}: fleet.deltas must be true or false")
    seconds = {
        key: _seconds(value.get(key), origin, f"fleet.{key}")
        for key in ("confirm_within", "stale_after", "long_poll")
    }
    defaults = FleetConfig()
    return FleetConfig(
        tuple(dict.fromkeys(opas)),
        seconds["confirm_within"] or defaults.confirm_within_s,
        seconds["stale_after"] or defaults.stale_after_s,
        max(1, round(seconds["long_poll"] or defaults.long_poll_s)),
        value.get("deltas", False),
    )


def _identity(value: Any, origin: str) -> OidcConfig | None:
    if value is None:
        return None
    _known(
        value,
        {"issuer", "audience", "subject_claim", "groups_claim", "algorithms", "leeway",
         "jwks_uri", "sign_in"},
        origin, "identity.",
    )  # fmt: skip
    for key in ("issuer", "audience"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise DataVisaError(f"{origin}: identity.{key} is required (a string)")
    if not value["issuer"].startswith(("https://", "http://127.", "http://localhost")):
        raise DataVisaError(
            f"{origin}: identity.issuer must be an https:// URL (http only on loopback)"
        )
    algorithms = value.get("algorithms", list(OidcConfig.algorithms))
    if not isinstance(algorithms, list) or not algorithms or not set(algorithms) <= set(ALGORITHMS):
        raise DataVisaError(
            f"{origin}: identity.algorithms must list some of {', '.join(ALGORITHMS)} "
            "(asymmetric signatures only)"
        )
    claim = value.get("subject_claim", "sub")
    if not isinstance(claim, str) or not re.fullmatch(r"[A-Za-z_][\w.:-]{0,63}", claim):
        raise DataVisaError(f"{origin}: identity.subject_claim must be a claim name")
    groups = value.get("groups_claim")
    if groups is not None and (
        not isinstance(groups, str) or not re.fullmatch(r"[A-Za-z_][\w.:/-]{0,127}", groups)
    ):
        raise DataVisaError(f"{origin}: identity.groups_claim must be a claim name")
    leeway = _seconds(value.get("leeway"), origin, "identity.leeway")
    if leeway is not None and leeway > 300:
        raise DataVisaError(f"{origin}: identity.leeway must be at most 5m")
    jwks = value.get("jwks_uri")
    if jwks is not None and not (
        isinstance(jwks, str) and jwks.startswith(("https://", "http://"))
    ):
        raise DataVisaError(f"{origin}: identity.jwks_uri must be a URL")
    return OidcConfig(
        issuer=value["issuer"],
        audience=value["audience"],
        subject_claim=claim,
        groups_claim=groups,
        algorithms=tuple(algorithms),
        leeway_s=OidcConfig.leeway_s if leeway is None else leeway,
        jwks_uri=jwks,
    )


_SIGN_IN_KEYS = {
    "client_id", "client_secret_file", "redirect_uri", "scope", "session", "idle",
}  # fmt: skip


def _sign_in(identity: Any, base: Path, origin: str, public_url: Any) -> SignInConfig | None:
    """identity.sign_in: the dashboard's client at the issuer. The secret comes from a
    file or the environment, never the config itself."""
    value = identity.get("sign_in") if isinstance(identity, dict) else None
    if value is None:
        return None
    where = "identity.sign_in"
    _known(value, _SIGN_IN_KEYS, origin, where + ".")
    client_id = value.get("client_id")
    if not isinstance(client_id, str) or not re.fullmatch(r"[\x21-\x7e]{1,255}", client_id):
        raise DataVisaError(f"{origin}: {where}.client_id is required (the client's id)")
    if client_id == identity.get("audience"):
        # The IdP's ID tokens name the client as their audience: as the API's audience
        # too, an ID token would pass for an access token.
        raise DataVisaError(f"{origin}: {where}.client_id must differ from identity.audience")
    secret = os.environ.get(CLIENT_SECRET_ENV) or None
    if (secret_file := value.get("client_secret_file")) is not None:
        file = base / Path(str(secret_file)).expanduser()
        try:
            secret = (file.read_text().splitlines() or [""])[0].strip() or None
        except OSError as e:
            raise DataVisaError(f"{origin}: {where}.client_secret_file: cannot read {file}") from e
        if secret is None:
            raise DataVisaError(f"{origin}: {where}.client_secret_file: {file} is empty")
    redirect = value.get("redirect_uri")
    if redirect is not None and not (
        isinstance(redirect, str) and _browser_url(redirect) and redirect.endswith("/auth/callback")
    ):
        raise DataVisaError(
            f"{origin}: {where}.redirect_uri must be an https:// URL (http only on loopback) "
            "ending in /auth/callback"
        )
    if isinstance(public_url, str) and public_url and not _browser_url(public_url):
        raise DataVisaError(
            f"{origin}: public_url must be https:// for the dashboard's sign-in (http only on "
            "loopback): its cookie is sent over TLS only"
        )
    scope = value.get("scope", SignInConfig.scope)
    if not isinstance(scope, str) or "openid" not in scope.split():
        raise DataVisaError(f"{origin}: {where}.scope must hold openid (OpenID Connect)")
    session = _seconds(value.get("session"), origin, f"{where}.session") or SignInConfig.session_s
    idle = _seconds(value.get("idle"), origin, f"{where}.idle") or min(SignInConfig.idle_s, session)
    if session > MAX_SESSION_S:
        raise DataVisaError(f"{origin}: {where}.session must be at most 24h")
    if idle > session:
        raise DataVisaError(f"{origin}: {where}.idle must be at most {where}.session")
    return SignInConfig(
        client_id=client_id,
        client_secret=secret,
        public_url=(public_url or "").rstrip("/") or None,
        redirect_uri=redirect,
        scope=scope,
        session_s=session,
        idle_s=idle,
    )


def _browser_url(url: str) -> bool:
    """https://, or http:// on loopback: where a browser may be sent and a cookie set."""
    return url.startswith(("https://", "http://127.", "http://localhost", "http://[::1]"))


def _networks(value: Any, origin: str, section: str) -> tuple[tuple[Network, str], ...]:
    """CIDR → country, most specific first, so the narrowest network a client is in wins.
    A code the bundle does not know is passed on as it is: no grant covers it."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise DataVisaError(f"{origin}: {section}.networks must map CIDR to a country code")
    networks = []
    for cidr, country in value.items():
        try:
            network = ipaddress.ip_network(str(cidr), strict=True)
        except ValueError as e:
            raise DataVisaError(f"{origin}: {section}.networks: {e}") from e
        if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}", country):
            raise DataVisaError(
                f"{origin}: {section}.networks.{cidr} must be an ISO 3166-1 code such as DE"
            )
        networks.append((network, country))
    return tuple(sorted(networks, key=lambda n: -n[0].prefixlen))


_CONNECTION_KEYS = {
    "kind", "dsn", "dsn_file", "log_dir", "public_host", "public_port", "managed_role",
    "public_connect",
}  # fmt: skip
_MARIADB_KEYS = {
    "kind", "dsn", "dsn_file", "audit_log", "public_host", "public_port", "managed_role",
}  # fmt: skip
_KINDS = (POSTGRESQL, mariadb.KIND)


def _connections(value: Any, base: Path, origin: str) -> dict[str, Any] | None:
    """connections: NAME → {kind: postgresql, dsn | dsn_file, log_dir, public_host/port}
    or {kind: mariadb, dsn | dsn_file, audit_log, public_host/port, managed_role}. An
    error names the setting, never the DSN (it holds the admin's password)."""
    if value is None:
        return None
    out: dict[str, Any] = {}
    for name, item in value.items():
        where = f"connections.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", name):
            raise DataVisaError(f"{origin}: connection names are lower-case words: {name!r}")
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in _KINDS:
            raise DataVisaError(f"{origin}: {where}.kind must be {' or '.join(_KINDS)}")
        _known(item, _MARIADB_KEYS if kind == mariadb.KIND else _CONNECTION_KEYS, origin,
               where + ".")  # fmt: skip
        dsn, dsn_file = item.get("dsn"), item.get("dsn_file")
        if (dsn is None) == (dsn_file is None):
            raise DataVisaError(f"{origin}: {where}: give dsn or dsn_file (one of them)")
        if dsn_file is not None:
            file = base / Path(str(dsn_file)).expanduser()
            try:
                dsn = (file.read_text().splitlines() or [""])[0].strip()
            except OSError as e:
                raise DataVisaError(f"{origin}: {where}.dsn_file: cannot read {file}") from e
        port = item.get("public_port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise DataVisaError(f"{origin}: {where}.public_port must be a port number")
        managed = item.get("managed_role", MANAGED)
        if not isinstance(managed, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", managed):
            raise DataVisaError(f"{origin}: {where}.managed_role must be a lower-case role name")
        if kind == mariadb.KIND:
            if not isinstance(dsn, str) or not dsn.startswith(("mysql://", "mariadb://")):
                raise DataVisaError(f"{origin}: {where}.dsn must be a mysql:// URL")
            audit_log = item.get("audit_log")
            out[name] = mariadb.Connection(
                name, dsn,
                audit_log=None if audit_log is None else base / Path(str(audit_log)).expanduser(),
                public_host=item.get("public_host"), public_port=port, managed_role=managed,
            )  # fmt: skip
            continue
        if not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://")):
            raise DataVisaError(f"{origin}: {where}.dsn must be a postgresql:// URL")
        log_dir = item.get("log_dir")
        public_connect = item.get("public_connect", REPORT)
        if public_connect not in PUBLIC_CONNECT:
            raise DataVisaError(
                f"{origin}: {where}.public_connect must be one of {', '.join(PUBLIC_CONNECT)}"
            )
        out[name] = Connection(
            name, dsn,
            log_dir=None if log_dir is None else base / Path(str(log_dir)).expanduser(),
            public_host=item.get("public_host"), public_port=port, managed_role=managed,
            public_connect=public_connect,
        )  # fmt: skip
    return out


def _known(section: dict[str, Any], known: set[str], origin: str, prefix: str) -> None:
    if not isinstance(section, dict):
        raise DataVisaError(f"{origin}: {prefix.rstrip('.')} must be a mapping")
    unknown = sorted(set(section) - known)
    if unknown:
        raise DataVisaError(
            f"{origin}: unknown setting {prefix}{unknown[0]} "
            f"(known: {', '.join(prefix + k for k in sorted(known))})"
        )


def _seconds(value: Any, origin: str, key: str) -> float | None:
    """A duration written `2s`/`1m`, or a number of seconds; positive."""
    if value is None:
        return None
    try:
        seconds = float(parse_duration(value)) if isinstance(value, str) else float(value)
    except (DataVisaError, TypeError, ValueError) as e:
        raise DataVisaError(f"{origin}: {key}: {e}") from e
    if seconds <= 0:
        raise DataVisaError(f"{origin}: {key} must be more than zero")
    return seconds

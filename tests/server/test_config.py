"""One YAML file for `datavisa serve`, flags over it, defaults shown in --help."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.api import config
from datavisa.engine.api.config import ServeConfig
from datavisa.engine.api.limits import Limits
from datavisa.engine.api.serve import running
from datavisa.engine.model.errors import DataVisaError


def test_a_full_file_is_read_with_paths_relative_to_it(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "listen: 0.0.0.0:9000\n"
        "database: data/datavisa.db\n"
        "instance: engine-a\n"
        "bundle: /srv/bundle.tar.gz\n"
        "opa: {url: http://127.0.0.1:8181, timeout: 1s}\n"
        "tokens: {database: tokens.db}\n"
        "max_body_bytes: 4096\n"
        "sweep_every: 1m\n"
        "limits: {context_bytes: 2048, context_depth: 8, log_value_bytes: 4096, "
        "log_value_depth: 16}\n"
    )
    cfg = config.load(path)
    assert cfg == ServeConfig(
        listen="0.0.0.0:9000",
        database=tmp_path / "data" / "datavisa.db",
        instance="engine-a",
        bundle=Path("/srv/bundle.tar.gz"),
        opa_url="http://127.0.0.1:8181",
        opa_timeout_s=1.0,
        tokens_database=tmp_path / "tokens.db",
        max_body_bytes=4096,
        sweep_every_s=60.0,
        limits=Limits(
            context_bytes=2048, context_depth=8, log_value_bytes=4096, log_value_depth=16
        ),
    )
    assert cfg.host_port == ("0.0.0.0", 9000)


def test_no_file_means_the_defaults_and_the_env_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    assert config.load(None) == ServeConfig()
    path = tmp_path / "serve.yaml"
    path.write_text("listen: 127.0.0.1:9999\n")
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    assert config.load(None).listen == "127.0.0.1:9999"


def test_the_opa_token_comes_from_a_file_beside_the_config_and_stays_out_of_its_repr(
    tmp_path: Path,
):
    (tmp_path / "opa.token").write_text("s3cret-for-their-opa\n")
    path = tmp_path / "serve.yaml"
    path.write_text("opa: {url: http://127.0.0.1:8181, token_file: opa.token}\n")
    cfg = config.load(path)
    assert cfg.opa_token == "s3cret-for-their-opa"
    assert "s3cret" not in repr(cfg)
    path.write_text("opa: {url: http://127.0.0.1:8181, token: inline}\n")
    assert config.load(path).opa_token == "inline"


def test_an_opa_token_without_an_opa_url_is_refused_before_anything_starts(tmp_path: Path):
    cfg = ServeConfig(database=tmp_path / "d.db", opa_token="t")
    with pytest.raises(DataVisaError, match=r"OPA given with opa\.url"), running(cfg):
        pass
    assert not (tmp_path / "d.db").exists()


def test_the_limits_default_to_8_kib_and_32_levels_of_context():
    limits = config.from_dict({"limits": {"context_depth": 4}}, base=Path(".")).limits
    assert limits == Limits(context_bytes=8192, context_depth=4)
    assert ServeConfig().limits == Limits(8192, 32, 65536, 64)


def test_flags_override_the_file(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text("listen: 127.0.0.1:9000\nopa: {timeout: 5s}\n")
    cfg = config.load(path).override(listen="127.0.0.1:9001", opa_url=None)
    assert cfg.listen == "127.0.0.1:9001"
    assert cfg.opa_timeout_s == 5.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listne: 127.0.0.1:1\n", "unknown setting listne"),
        ("opa: {adress: x}\n", "unknown setting opa.adress"),
        ("listen: nowhere\n", "is not HOST:PORT"),
        ("listen: 127.0.0.1:70000\n", "is not HOST:PORT"),
        ("opa: {timeout: soon}\n", "opa.timeout"),
        ("opa: {timeout: 0}\n", "more than zero"),
        ("max_body_bytes: 10\n", "at least 1024"),
        ("max_body_bytes: lots\n", "max_body_bytes has the wrong type"),
        ("- a list\n", "must be a mapping"),
        ("listen: [\n", "not valid YAML"),
        ("opa: {token: x, token_file: t}\n", "opa.token or opa.token_file, not both"),
        ("opa: {token_file: missing}\n", "opa.token_file: cannot read"),
        ("opa: {token: ''}\n", "opa.token must be a non-empty string"),
        ("limits: {context_size: 10}\n", "unknown setting limits.context_size"),
        ("limits: {context_depth: 0}\n", "limits.context_depth must be a whole number from 1"),
        ("limits: {context_depth: 500}\n", "from 1 to 96"),
        ("limits: {context_bytes: 10}\n", "limits.context_bytes must be a whole number from 256"),
        ("limits: {log_value_bytes: 1.5}\n", "limits.log_value_bytes"),
        ("limits: {log_value_depth: true}\n", "limits.log_value_depth"),
        ("limits: 8k\n", "limits has the wrong type"),
        ("gateway: {country: CF-IPCountry}\n", "unknown setting gateway.country"),
        ("gateway: {country_header: 'CF IPCountry'}\n", "gateway.country_header must be"),
        ("gateway: {identity_headers: X-User}\n", "must be a list of header names"),
        ("gateway: {credential_header: X-User, identity_headers: [x-user]}\n", "must differ"),
        ("gateway: {networks: {10.0.0.1/8: DE}}\n", "gateway.networks: 10.0.0.1/8 has host bits"),
        ("gateway: {networks: {10.0.0.0/8: Germany}}\n", "must be an ISO 3166-1 code"),
        ("gateway: {networks: [10.0.0.0/8]}\n", "gateway.networks must map CIDR"),
        ("gateway: {max_header_bytes: 10}\n", "from 64 to 65536"),
        ("gateway: {proxies: 127.0.0.1}\n", "gateway.proxies must be a list"),
        ("gateway: {proxies: [10.0.0.1/8]}\n", "gateway.proxies: 10.0.0.1/8 has host bits"),
        ("instance: engine a\n", "instance must be letters, digits"),
        ("instance: 7\n", "instance has the wrong type"),
        ("identity: {audience: datavisa}\n", "identity.issuer is required"),
        ("identity: {issuer: 'http://idp.example.com', audience: d}\n", "must be an https://"),
        (
            "identity: {issuer: 'https://idp', audience: d, algorithms: [HS256]}\n",
            "asymmetric signatures only",
        ),
        ("identity: {issuer: 'https://idp', audience: d, leeway: 1h}\n", "at most 5m"),
        (
            "identity: {issuer: 'https://idp', audience: d, client: x}\n",
            "unknown setting identity.client",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: d}}\n",
            "client_id must differ from identity.audience",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {}}\n",
            "identity.sign_in.client_id is required",
        ),
        (
            "public_url: http://datavisa.example.com\n"
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: web}}\n",
            "public_url must be https://",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: web, "
            "redirect_uri: 'http://datavisa.example.com/auth/callback'}}\n",
            "redirect_uri must be an https:// URL",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: w, scope: x}}\n",
            "scope must hold openid",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: w, "
            "session: 2d}}\n",
            "session must be at most 24h",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: w, "
            "session: 1h, idle: 2h}}\n",
            "idle must be at most identity.sign_in.session",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: w, "
            "client_secret_file: nowhere}}\n",
            "client_secret_file: cannot read",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, sign_in: {client_id: w, secret: s}}\n",
            "unknown setting identity.sign_in.secret",
        ),
        (
            "identity: {issuer: 'https://idp', audience: d, groups_claim: [groups]}\n",
            "identity.groups_claim must be a claim name",
        ),
    ],
)
def test_a_bad_file_says_what_is_wrong(tmp_path: Path, text, message):
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    with pytest.raises(DataVisaError, match=message):
        config.load(path)


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("sweep_every: 5s\nbogus: 1\n", 2, "unknown setting bogus"),
        ("sweep_every: 5s\nfleet:\n  opas: [a]\n  confirm_within: soon\n", 4,
         "fleet.confirm_within"),
        ("webhooks:\n  - url: http://127.0.0.1:1/\n  - name: x\n", 3, "webhooks[1].url"),
        ("connections:\n  analytics:\n    kind: mysql\n", 3, "connections.analytics.kind"),
        ("listen: 127.0.0.1:1\nsweep_every: [5s\n", 3, "not valid YAML"),
    ],
)  # fmt: skip
def test_a_config_error_names_the_file_the_line_and_the_key(tmp_path: Path, text, line, key):
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    with pytest.raises(DataVisaError) as refused:
        config.load(path)
    assert str(refused.value).startswith(f"{path}, line {line}: "), refused.value
    assert key in str(refused.value)


def test_serve_help_shows_the_defaults_and_examples():
    result = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    out = " ".join(result.stdout.split())
    for default in ("127.0.0.1:8470", "$DATAVISA_DB", "2s", "65536", "30s", "DATAVISA_CONFIG"):
        assert default in out
    assert "datavisa serve --opa-url http://127.0.0.1:8181" in result.stdout


def test_serve_refuses_a_bad_config_without_a_traceback(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text("listne: 1\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert "unknown setting listne" in result.stderr


def test_the_gateway_section_is_read_with_header_names_lower_case(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "gateway:\n"
        "  credential_header: X-Edge-Token\n"
        "  identity_headers: [X-Forwarded-User]\n"
        "  country_header: CloudFront-Viewer-Country\n"
        "  networks: {10.0.0.0/8: FR, 10.20.0.0/16: DE, '2001:db8::/32': NL}\n"
        "  max_header_bytes: 1024\n"
        "  proxies: [10.0.0.5, '2001:db8::/64']\n"
    )
    loaded = config.load(path)
    gateway, location = loaded.gateway, loaded.location
    assert gateway.credential_header == "x-edge-token"
    assert gateway.identity_headers == ("x-forwarded-user",)
    assert gateway.country_header == "cloudfront-viewer-country"
    # Most specific first: a client in 10.20/16 is in Germany, not France. The gateway's
    # networks and proxies, as they were spelled before, are where everyone's caller is.
    assert [(str(n), c) for n, c in location.networks] == [
        ("2001:db8::/32", "NL"),
        ("10.20.0.0/16", "DE"),
        ("10.0.0.0/8", "FR"),
    ]
    assert gateway.max_header_bytes == 1024
    assert [str(n) for n in location.proxies] == ["10.0.0.5/32", "2001:db8::/64"]
    assert ServeConfig().location.proxies == (), "no one may name the client's address"
    assert ServeConfig().location.database == "iptocc"
    assert ServeConfig().gateway.identity_headers == ("x-auth-request-user", "x-forwarded-user")


def test_the_dashboard_sign_in_reads_its_secret_from_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(config.CLIENT_SECRET_ENV, raising=False)
    (tmp_path / "client.secret").write_text("s3cret\n")
    path = tmp_path / "serve.yaml"
    path.write_text(
        "public_url: https://datavisa.example.com/\n"
        "identity:\n  issuer: https://idp.example.com/\n  audience: datavisa\n"
        "  sign_in:\n    client_id: datavisa-dashboard\n"
        "    client_secret_file: client.secret\n    session: 4h\n    idle: 30m\n"
    )
    sign_in = config.load(path).sign_in
    assert sign_in is not None
    assert (sign_in.client_id, sign_in.client_secret) == ("datavisa-dashboard", "s3cret")
    assert sign_in.public_url == "https://datavisa.example.com"
    assert (sign_in.session_s, sign_in.idle_s) == (4 * 3600, 1800)
    assert "s3cret" not in repr(sign_in)  # never in a log line
    monkeypatch.setenv(config.CLIENT_SECRET_ENV, "from-env")
    path.write_text(path.read_text().replace("    client_secret_file: client.secret\n", ""))
    assert config.load(path).sign_in.client_secret == "from-env"  # type: ignore[union-attr]


def test_the_identity_section_names_the_groups_claim(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    path.write_text("identity: {issuer: 'https://idp', audience: d, groups_claim: groups}\n")
    identity = config.load(path).identity
    assert identity is not None and identity.groups_claim == "groups"

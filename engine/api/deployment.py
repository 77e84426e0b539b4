"""A new deployment in one folder (`datavisa init`): the server's config with comments, a
data folder for the store, the deployment's own policy repository, a systemd unit, and
the first admin token.

    DIR/datavisa.yaml      `datavisa serve --config DIR/datavisa.yaml` starts it
    DIR/data/              the store and its log key (mode 0700)
    DIR/policy/            `datavisa policy init`: the deployment's own people and data
    DIR/datavisa.service   a systemd unit running that serve

Paths in the config are relative to it, so the folder can be moved as a whole.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..model.durations import rfc3339
from ..model.errors import DataVisaError
from ..paths import SHIPPED_BUNDLE_DIR
from ..policy.bundle import directory
from ..policy.repo import scaffold
from .config import DEFAULT_LISTEN, load, parse_listen
from .tokens import ADMIN, TokenStore

CONFIG = "datavisa.yaml"
UNIT = "datavisa.service"

_CONFIG_TEXT = """\
# DataVisa's server, as `datavisa init` wrote it on {at}.
#   datavisa serve --config {config}
# Every setting and its default: `datavisa serve --help`. Relative paths are beside this file.

{listen_line:<33} # HOST:PORT of the HTTP API; keep it on loopback behind a gateway
database: data/datavisa.db        # or postgresql://user@host/db, shared by several engines
bundle_dir: policy/data           # the deployment's own people, resources and tiers (git it)

sweep_every: 30s                  # how often expiries and lapses are written down
reconcile_every: 60s              # how often OPA's grants are compared with the store

# public_url: https://datavisa.example.com   # how people reach it, for notifications
# webhooks:                       # Slack-compatible JSON, retried with backoff
#   - {{url: https://hooks.slack.com/services/T000/B000/XXXX, name: security, kinds: [alerts]}}
# gateway:                        # what a gateway in front may vouch for (docs/gateway.md)
#   trusted_headers: {{country: X-Client-Country}}
"""

_UNIT_TEXT = """\
# systemd unit for DataVisa, as `datavisa init` wrote it: install with
#   cp {unit} /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now datavisa
[Unit]
Description=DataVisa: just-in-time, data-residency-aware access approval
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={exec_start}
WorkingDirectory={folder}
# User=datavisa                   # a user of its own, owning {data}
Restart=on-failure
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={data}

[Install]
WantedBy=multi-user.target
"""


def init(
    folder: Path, admin: str, datavisa: Path, listen: str = DEFAULT_LISTEN, now: float = 0.0
) -> tuple[list[Path], str]:
    """Write a deployment into `folder` (new or empty) with `admin` (a person of its
    directory) holding the first admin token; the files written, and that token."""
    parse_listen(listen)  # a bad address is refused before anything is written
    folder = folder.expanduser().resolve()
    if folder.exists() and any(folder.iterdir()):
        raise DataVisaError(f"{folder} is not empty: choose a new folder")
    if admin not in directory(SHIPPED_BUNDLE_DIR):  # the directory policy/ starts with
        raise DataVisaError(
            f"{admin!r} is not in the directory ({SHIPPED_BUNDLE_DIR / 'subjects.yaml'}, "
            "which policy/data starts from): name a person it holds with --admin"
        )
    policy, data = folder / "policy", folder / "data"
    written = scaffold(policy)
    data.mkdir(mode=0o700)
    config = folder / CONFIG
    text = _CONFIG_TEXT.format(at=rfc3339(now), config=config, listen_line=f"listen: {listen}")
    config.write_text(text)
    serve = shlex.join([str(datavisa), "serve", "--config", str(config)])
    unit = folder / UNIT
    unit.write_text(_UNIT_TEXT.format(unit=unit, exec_start=serve, folder=folder, data=data))
    settings = load(config)  # what serve will read, checked now
    tokens = TokenStore(settings.token_path)
    try:
        secret, _record = tokens.issue(admin, ADMIN, actor="datavisa init")
    finally:
        tokens.close()
    return [*written, data, config, unit], secret

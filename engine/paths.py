"""Where DataVisa's own files are (the policy, the bundle data, the OPA build), and where a
user's are by default (the database, an OPA `datavisa opa install` built).

The shipped files are the engine package's siblings: installed from a wheel, setuptools
puts rego/, bundles/ and tools/ inside the datavisa package beside engine/ (package-dir
in pyproject.toml); in a checkout's editable install, engine/ sits beside them at the top
of the tree. DATAVISA_POLICY_DIR and DATAVISA_BUNDLE_DIR point the defaults at another
policy tree, such as an organisation's own policy repository.
"""

import os
from pathlib import Path

from .store import is_url

SHIPPED = Path(__file__).resolve().parent.parent  # site-packages/datavisa, or a checkout
POLICY_DIR = Path(os.environ.get("DATAVISA_POLICY_DIR") or SHIPPED / "rego")
SHIPPED_BUNDLE_DIR = SHIPPED / "bundles" / "default"  # the data DataVisa ships
DEFAULT_BUNDLE_DIR = Path(os.environ.get("DATAVISA_BUNDLE_DIR") or SHIPPED_BUNDLE_DIR)
# Who may call the OPA the engine runs: the engine's own, whatever policy tree is in use,
# so it is loaded beside the bundle and never shipped in one.
AUTHZ_PACKAGE = Path("system", "authz")
AUTHZ_POLICY = SHIPPED / "rego" / AUTHZ_PACKAGE / "authz.rego"
OPA_BUILD = SHIPPED / "tools" / "opa"  # go.mod, go.sum, main.go, gateway/: the pinned OPA's build
LINT_RULES = SHIPPED / "tools" / "lint"  # the house style as Rego, run by the pinned OPA
CHECKOUT_BIN = SHIPPED / ".tools" / "bin"  # `make setup`'s builds (only a checkout has one)


def data_home() -> Path:
    """datavisa/ in the user's data folder (XDG): the default database, an installed OPA."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "datavisa"


def installed_opa() -> Path:
    """Where `datavisa opa install` puts the OPA it builds, by default."""
    return data_home() / "bin" / "opa"


def default_db_path() -> Path | str:
    """$DATAVISA_DB (an SQLite file's path, or a postgresql:// URL, kept as text), else
    datavisa.db in the user's data folder."""
    if env := os.environ.get("DATAVISA_DB"):
        return env if is_url(env) else Path(env)
    return data_home() / "datavisa.db"

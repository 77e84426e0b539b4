"""Where the project's own files are (the policy, the bundle data) and the default database.

DATAVISA_POLICY_DIR and DATAVISA_BUNDLE_DIR point the defaults at another policy tree,
such as an organisation's own policy repository.
"""

import os
from pathlib import Path

from .store import is_url

# engine/ sits at the top of the project tree (installed editable, as `make` does).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = Path(os.environ.get("DATAVISA_POLICY_DIR") or PROJECT_ROOT / "rego")
SHIPPED_BUNDLE_DIR = PROJECT_ROOT / "bundles" / "default"  # the data DataVisa ships
DEFAULT_BUNDLE_DIR = Path(os.environ.get("DATAVISA_BUNDLE_DIR") or SHIPPED_BUNDLE_DIR)
# Who may call the OPA the engine runs: the engine's own, whatever policy tree is in use,
# so it is loaded beside the bundle and never shipped in one.
AUTHZ_PACKAGE = Path("system", "authz")
AUTHZ_POLICY = PROJECT_ROOT / "rego" / AUTHZ_PACKAGE / "authz.rego"


def default_db_path() -> Path | str:
    """$DATAVISA_DB (an SQLite file's path, or a postgresql:// URL, kept as text), else
    datavisa/datavisa.db in the user's data folder (XDG)."""
    if env := os.environ.get("DATAVISA_DB"):
        return env if is_url(env) else Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "datavisa" / "datavisa.db"

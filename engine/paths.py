"""Where the project's own files are: the policy, the default bundle data, the tool folder."""

from pathlib import Path

# engine/ sits at the top of the project tree (installed editable, as `make` does).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = PROJECT_ROOT / "rego"
DEFAULT_BUNDLE_DIR = PROJECT_ROOT / "bundles" / "default"

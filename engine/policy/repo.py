"""A deployment's own policy repository, on top of the shipped rules: `scaffold` makes one.

    DIR/data/extends.yaml    `extends: shipped`: the shipped data is the base
    DIR/data/*.yaml          the sections the deployment owns (replacing the shipped ones)
    DIR/tests/*_test.rego    the deployment's own Rego tests, run against the shipped rules
    DIR/ci/policy.yml        a CI job (GitHub Actions syntax) running those tests
    DIR/README.md            how to change, test and serve it

The rules themselves (rego/) are never copied: the deployment's data is built with the
shipped rules, so it follows their releases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..model.errors import DataVisaError
from ..paths import SHIPPED_BUNDLE_DIR
from .bundle import EXTENDS

# The sections a deployment owns: who its people and services are, what data it holds and
# how sensitive each tier is. The law (jurisdictions, regions, countries) stays shipped.
OWNED = ("subjects.yaml", "resources.yaml", "tiers.yaml")

TEST = """package deployment_test

import data.datavisa.request

# A test of the deployment's own data against the shipped rules: change it to say what
# your policy must always hold, as `opa test` sees it (`datavisa policy test --tests`).

test_every_resource_is_held_in_a_region_the_policy_knows if {
	every name, resource in data.datavisa.resources {
		data.datavisa.regions[resource.region]
		name != ""
	}
}

test_nobody_outside_the_directory_may_ask if {
	decision := request.decision with input as {
		"subject": "nobody-we-know", "resource": "any", "actions": ["read"],
		"duration_s": 60, "location": "unknown", "reason": "x",
	}
	not decision.allow
}
"""

CI = """# Run the deployment's policy tests on every change (GitHub Actions syntax; any CI that
# can run a shell does the same two commands).
name: policy
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: pip install datavisa   # or your build of it, with its pinned OPA
      - run: datavisa policy test --bundle-dir data --tests tests
      - run: datavisa policy impact --bundle-dir data --db "$DATAVISA_DB"   # when a DB is at hand
"""

README = """# Our DataVisa policy

The data in `data/` is ours; the rules are DataVisa's, used as they ship.

- `data/subjects.yaml`: our people and services (sync it from the identity provider).
- `data/resources.yaml`: the data we hold, where, and how sensitive.
- `data/tiers.yaml`: for each tier, the longest grant and who approves.
- `data/extends.yaml`: everything else (jurisdictions, regions, countries) is DataVisa's.
- `tests/`: what our policy must always hold.

    datavisa policy test --bundle-dir data --tests tests    # our tests, the shipped rules
    datavisa policy eval access --bundle-dir data --subject alice --resource ... --from DE
    datavisa policy impact --bundle-dir data --db /var/lib/datavisa/datavisa.db
    datavisa serve --bundle-dir data
"""


def scaffold(directory: Path) -> list[Path]:
    """Make `directory` a deployment's policy repository; the files written."""
    if directory.exists() and any(directory.iterdir()):
        raise DataVisaError(f"{directory} is not empty: choose a new folder")
    data, tests, ci = directory / "data", directory / "tests", directory / "ci"
    for folder in (data, tests, ci):
        folder.mkdir(parents=True, exist_ok=True)
    written = [data / EXTENDS]
    (data / EXTENDS).write_text(
        "# This data is built on the data DataVisa ships: each section defined here\n"
        "# replaces the shipped one; the shipped ones not defined here are kept.\n"
        "extends: shipped\n"
    )
    for name in OWNED:
        written.append(Path(shutil.copyfile(SHIPPED_BUNDLE_DIR / name, data / name)))
    for path, text in (
        (tests / "deployment_test.rego", TEST),
        (ci / "policy.yml", CI),
        (directory / "README.md", README),
    ):
        path.write_text(text)
        written.append(path)
    return written

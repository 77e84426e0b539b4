"""Schemathesis drives every operation in /openapi.json as a client would, once per token
role, with all of its checks: no 5xx, no status the document does not declare, a 405
with `Allow`, valid input accepted and invalid input refused, answers that match their
schema. The document is the one the server serves (its country enum from the bundle in
force), and the server is a real uvicorn on loopback with a real OPA and SQLite.

Bounded: a few examples per operation (MAX_EXAMPLES), one seed, deterministic
generation; the whole run is a minute or two on two cores. Only 127.0.0.1 is reached.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from live_server import served_store

from datavisa.engine.policy.process import OpaProcess

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 8  # per operation and phase
SUBJECTS = {"service": "gw", "auditor": "carol", "user": "alice", "admin": "erin", "scim": "okta"}


# A SCIM body's validity (members that are Users of the directory, PATCH paths that name
# attributes, a filter on what the resource type may be filtered by) is the directory's to
# judge, not a JSON Schema's: for the scim role every other check runs.
EXCLUDED = {"scim": ["--exclude-checks", "positive_data_acceptance"]}


def fuzz(url: str, token: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCHEMATHESIS), "run", url + "/openapi.json", "--checks", "all",
         "--header", f"Authorization: Bearer {token}", "--max-examples", str(MAX_EXAMPLES),
         "--seed", "1", "--generation-deterministic", "--no-color", *extra],
        capture_output=True, text=True, timeout=600, cwd=cwd,  # its cache stays there
    )  # fmt: skip


# The roles of services and auditors here, people's in test_schemathesis_people.py: two
# files, so that the suite's two processes share the minutes this takes.
HERE = ("service", "auditor")


@pytest.mark.parametrize("role", HERE)
def test_every_operation_keeps_its_contract_for_every_role(tmp_path, opa: OpaProcess, role):
    contract(tmp_path, opa, role)


def contract(tmp_path: Path, opa: OpaProcess, role: str) -> None:
    """Schemathesis's whole run as `role`, passed."""
    with served_store(tmp_path / "datavisa.db", opa, "fuzz", SUBJECTS[role], role) as served:
        done = fuzz(*served, tmp_path, *EXCLUDED.get(role, []))
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    generated = int(re.findall(r"(\d+) generated", report)[-1])
    assert generated > 500, report  # the run reached the operations, not only the generator

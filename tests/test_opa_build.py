"""The pinned-OPA setup explains itself when it can neither build nor find OPA."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from datavisa.engine.paths import PROJECT_ROOT


@pytest.mark.skipif(
    shutil.which("go", path="/usr/bin:/bin") or shutil.which("opa", path="/usr/bin:/bin"),
    reason="this machine has go or opa in /usr/bin, so the script would find one",
)
def test_without_go_or_opa_the_error_says_what_to_install(tmp_path: Path):
    tools = tmp_path / "tools"
    (tools / "opa").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "tools" / "build-opa.sh", tools)
    shutil.copy(PROJECT_ROOT / "tools" / "opa" / "go.mod", tools / "opa")
    done = subprocess.run(
        ["bash", str(tools / "build-opa.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},  # the coreutils, but neither go nor opa
    )
    assert done.returncode == 1
    assert "needs OPA v1.22.x" in done.stderr
    assert "Go 1.26 or newer" in done.stderr
    assert "DATAVISA_OPA" in done.stderr
    assert not (tmp_path / ".tools" / "bin" / "opa").exists()

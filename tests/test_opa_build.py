"""The pinned-OPA setup: uses an opa it finds, and explains itself when it finds none."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from datavisa.engine.policy.process import find_opa

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout

pytestmark = pytest.mark.skipif(
    bool(shutil.which("go", path="/usr/bin:/bin") or shutil.which("opa", path="/usr/bin:/bin")),
    reason="this machine has go or opa in /usr/bin, so the script would find one",
)


def _setup_script(tmp_path: Path, path: str) -> subprocess.CompletedProcess:
    tools = tmp_path / "tools"
    (tools / "opa").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "tools" / "build-opa.sh", tools)
    shutil.copy(PROJECT_ROOT / "tools" / "opa" / "go.mod", tools / "opa")
    return subprocess.run(
        ["bash", str(tools / "build-opa.sh")], capture_output=True, text=True, env={"PATH": path}
    )


def test_without_go_or_opa_the_error_says_what_to_install(tmp_path: Path):
    done = _setup_script(tmp_path, "/usr/bin:/bin")  # the coreutils, but neither go nor opa
    assert done.returncode == 1
    assert "needs OPA v1.22.x" in done.stderr
    assert "Go 1.26 or newer" in done.stderr
    assert "DATAVISA_OPA" in done.stderr
    assert not (tmp_path / ".tools" / "bin" / "opa").exists()


def test_without_go_an_opa_of_the_pinned_series_on_path_is_used(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "opa").symlink_to(find_opa().resolve())
    done = _setup_script(tmp_path, f"{bin_dir}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    assert "no Go found; using" in done.stdout
    assert "(Version: 1.22." in done.stdout
    assert (tmp_path / ".tools" / "bin" / "opa").resolve() == find_opa().resolve()

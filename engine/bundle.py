"""The policy bundle: Rego from rego/, data from YAML in bundles/<name>/, built by OPA.

Policy authors write data as several YAML files (regions.yaml, tiers.yaml, ...); each holds
a mapping whose top-level keys land under `data.datavisa`. The builder merges them into the
bundle's data.json, stamps a revision, and lets `opa build` check and pack the result.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .errors import DataVisaError
from .opa import find_opa
from .paths import PROJECT_ROOT

DATA_ROOT = "datavisa"  # the data path bundle data lands under; the bundle owns this root


def load_data(bundle_dir: Path) -> dict[str, Any]:
    """Merge the top-level keys of every YAML file in `bundle_dir` into one document."""
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    files = sorted(bundle_dir.glob("*.yaml")) + sorted(bundle_dir.glob("*.yml"))
    if not files:
        raise DataVisaError(f"{bundle_dir}: no YAML data files")
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise DataVisaError(f"{path}: not valid YAML: {e}") from e
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise DataVisaError(f"{path}: the top level must be a mapping of named sections")
        for key, value in doc.items():
            if key in merged:
                raise DataVisaError(f"{path}: section {key!r} is already defined in {origin[key]}")
            merged[key], origin[key] = value, path
    return merged


def revision(root: Path = PROJECT_ROOT) -> str:
    """The git commit of the policy sources, with `-dirty` when they have local changes."""
    try:
        commit = _git(root, "rev-parse", "--short=12", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--", "rego", "bundles")
    except (OSError, subprocess.CalledProcessError):
        return "unversioned"
    return commit + ("-dirty" if dirty else "")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def write_data(bundle_dir: Path, out_dir: Path) -> Path:
    """Write the bundle's merged data as `out_dir/datavisa/data.json`; return out_dir."""
    target = out_dir / DATA_ROOT / "data.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(load_data(bundle_dir), indent=1, sort_keys=True))
    return out_dir


def stage(policy_dir: Path, bundle_dir: Path, out_dir: Path, rev: str) -> Path:
    """Lay out a bundle directory: policy modules (no tests), data.json and .manifest."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for module in policy_dir.rglob("*.rego"):
        if module.name.endswith("_test.rego"):
            continue
        target = out_dir / module.relative_to(policy_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module, target)
    write_data(bundle_dir, out_dir)
    manifest_path = bundle_dir / ".manifest"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("roots", [DATA_ROOT])
    manifest["revision"] = rev
    (out_dir / ".manifest").write_text(json.dumps(manifest, indent=1))
    return out_dir


def build(policy_dir: Path, bundle_dir: Path, output: Path, rev: str | None = None) -> Path:
    """Build a bundle tarball at `output` with `opa build`; return its path."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = stage(policy_dir, bundle_dir, output.parent / (output.name + ".d"), rev or revision())
    try:
        done = subprocess.run(
            [str(find_opa()), "build", "--bundle", str(staged), "--output", str(output)],
            capture_output=True,
            text=True,
        )
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if done.returncode != 0:
        raise DataVisaError(f"opa build failed:\n{done.stderr.strip() or done.stdout.strip()}")
    return output

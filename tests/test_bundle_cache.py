"""Local commands reuse a built bundle until any of its sources changes."""

from __future__ import annotations

import shutil
from pathlib import Path

from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle


def test_a_bundle_is_built_once_and_again_after_an_edit(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    policy, data = tmp_path / "rego", tmp_path / "bundle"
    shutil.copytree(POLICY_DIR, policy)
    shutil.copytree(DEFAULT_BUNDLE_DIR, data)
    first = bundle.cached_build(policy, data, "r1")
    built_at = first.stat().st_mtime_ns
    assert bundle.cached_build(policy, data, "r1") == first
    assert first.stat().st_mtime_ns == built_at  # reused, not rebuilt
    tiers = data / "tiers.yaml"
    tiers.write_text(tiers.read_text().replace("max_duration_s: 14400", "max_duration_s: 7200"))
    edited = bundle.cached_build(policy, data, "r1")
    assert edited != first and edited.is_file()
    assert bundle.cached_build(policy, data, "r2") not in {first, edited}
    assert (
        sorted(p.name.startswith("bundle-") for p in (tmp_path / "cache" / "datavisa").iterdir())
        == [True] * 3
    )

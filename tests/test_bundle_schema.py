"""The bundle's YAML data is checked against the data model at build time: every breach
names the file, the line, the path inside the file and the reason; nothing passes silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A copy of the default bundle's data that a test may break."""
    return Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "bundle"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _problems(data_dir: Path) -> str:
    with pytest.raises(DataVisaError) as e:
        bundle.load_data(data_dir)
    return str(e.value)


def test_the_default_bundle_fits_the_data_model():
    data = bundle.load_data(DEFAULT_BUNDLE_DIR)
    assert len(data["regions"]) >= 40
    assert {r["provider"] for r in data["regions"].values()} >= {"aws", "gcp", "azure", "onprem"}
    assert set(data["tiers"]) == {"public", "internal", "confidential", "restricted"}


def test_a_region_naming_an_unknown_jurisdiction_is_rejected(data_dir):
    regions = data_dir / "regions.yaml"
    _edit(regions, "country: FR, jurisdiction: EU}", "country: FR, jurisdiction: EUX}")
    message = _problems(data_dir)
    line = next(n for n, text in enumerate(regions.read_text().splitlines(), 1) if "EUX" in text)
    assert f"{regions}:{line}: regions.aws:eu-west-3.jurisdiction:" in message
    assert "'EUX' names nothing defined in jurisdictions" in message


def test_a_negative_duration_is_rejected(data_dir):
    _edit(data_dir / "tiers.yaml", "max_duration_s: 14400", "max_duration_s: -60")
    message = _problems(data_dir)
    assert "tiers.yaml:" in message
    assert "tiers.confidential.max_duration_s: -60 is below the minimum of 1" in message


def test_a_tier_needing_approvals_must_name_an_eligible_group(data_dir):
    tiers = data_dir / "tiers.yaml"
    _edit(
        tiers,
        "      - group: data_owner\n        count: 1\n    residency",
        "      - count: 1\n    residency",
    )
    _edit(tiers, "      - group: security_officer", "      - group: auditors")
    message = _problems(data_dir)
    assert "tiers.confidential.approvals[0]: 'group' is a required property" in message
    assert (
        "tiers.restricted.approvals[1].group: 'auditors' names nothing defined in groups" in message
    )


def test_every_breach_is_reported_not_just_the_first(data_dir):
    _edit(data_dir / "resources.yaml", "tier: confidential", "tier: secret")
    _edit(data_dir / "subjects.yaml", "entity: acme-gmbh", "entity: acme-nowhere")
    message = _problems(data_dir)
    assert "resources.yaml:" in message and "'secret' names nothing defined in tiers" in message
    assert (
        "subjects.yaml:" in message
        and "'acme-nowhere' names nothing defined in entities" in message
    )


def test_malformed_yaml_names_the_file(data_dir):
    _edit(data_dir / "regions.yaml", "regions:", "regions: [")
    message = _problems(data_dir)
    assert "regions.yaml: not valid YAML" in message


def test_a_key_given_twice_is_an_error_not_a_silent_override(data_dir):
    _edit(
        data_dir / "tiers.yaml",
        "    pending_lifetime_s: 3600\n",
        "    pending_lifetime_s: 3600\n    pending_lifetime_s: 60\n",
    )
    message = _problems(data_dir)
    assert "tiers.yaml: not valid YAML" in message
    assert "duplicate key 'pending_lifetime_s'" in message


def test_an_alias_or_merge_key_is_an_error_naming_the_line(data_dir):
    tiers = data_dir / "tiers.yaml"
    text = tiers.read_text()
    tiers.write_text(
        text.replace("  confidential:\n", "  confidential: &conf\n", 1) + "  copy: *conf\n"
    )
    message = _problems(data_dir)
    assert "tiers.yaml: not valid YAML" in message
    assert "an alias (*name) repeats an anchored value" in message
    assert "line" in message


def test_yaml_no_for_norway_must_be_quoted(data_dir):
    # Unquoted, YAML 1.1 reads NO as false: Norway would silently leave the EEA.
    _edit(data_dir / "jurisdictions.yaml", '"NO"]', "NO]")
    message = _problems(data_dir)
    assert "jurisdictions.EU.countries[29]: False is not of type 'string'" in message


def test_an_unknown_section_is_rejected_so_it_cannot_shadow_a_policy_package(data_dir):
    _edit(data_dir / "tiers.yaml", "breakglass_rules:", "breakglass:")
    message = _problems(data_dir)
    assert "(top level)" in message
    assert "'breakglass' was unexpected" in message
    assert "known sections:" in message


def test_policy_build_refuses_data_that_breaks_the_model(data_dir, tmp_path):
    _edit(data_dir / "resources.yaml", "region: aws:eu-central-1", "region: aws:moon-1")
    out = tmp_path / "bundle.tar.gz"
    result = CliRunner().invoke(
        cli,
        [
            *("policy", "build", "--policy-dir", str(POLICY_DIR)),
            *("--bundle-dir", str(data_dir), "--output", str(out)),
        ],
    )
    assert result.exit_code == 1
    assert (
        "resources.eu-customer-analytics.region: 'aws:moon-1' names nothing defined in regions"
        in result.stderr
    )
    assert not out.exists()

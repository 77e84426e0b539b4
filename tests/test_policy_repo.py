"""A deployment's own policy repository: `datavisa policy init`, its data on top of the
shipped data, its own tests against the shipped rules, all with the real pinned OPA."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from datavisa.cli.main import cli
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _init(tmp_path: Path) -> Path:
    repo = tmp_path / "our-policy"
    done = _cli("policy", "init", str(repo))
    assert done.exit_code == 0, done.output
    return repo


def test_init_scaffolds_data_tests_and_ci_without_copying_the_rules(tmp_path: Path):
    repo = _init(tmp_path)
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert files == [
        "README.md", "ci/policy.yml", "data/extends.yaml", "data/resources.yaml",
        "data/subjects.yaml", "data/tiers.yaml", "tests/deployment_test.rego",
    ]  # fmt: skip
    assert not list(repo.rglob("*.rego"))[1:]  # one test of its own, no rules
    again = CliRunner().invoke(cli, ["policy", "init", str(repo)])
    assert again.exit_code == 1 and "is not empty" in again.output


def test_the_deployments_data_replaces_only_the_sections_it_defines(tmp_path: Path):
    repo = _init(tmp_path)
    subjects = repo / "data" / "subjects.yaml"
    subjects.write_text(subjects.read_text().replace("Alice Weber", "Alice Example"))
    data = bundle.load_data(repo / "data")
    shipped = bundle.load_data(DEFAULT_BUNDLE_DIR)
    assert data["subjects"]["alice"]["name"] == "Alice Example"
    assert data["jurisdictions"] == shipped["jurisdictions"]  # the law stays shipped
    assert set(data) == set(shipped)
    assert bundle.revision(POLICY_DIR, repo / "data") != bundle.revision()


def test_its_own_tests_run_against_the_shipped_rules_and_fail_when_its_data_breaks_them(
    tmp_path: Path,
):
    repo = _init(tmp_path)
    args = ("policy", "test", "--bundle-dir", str(repo / "data"), "--tests", str(repo / "tests"))
    passed = _cli(*args)
    assert passed.exit_code == 0, passed.output
    assert "not covered" not in passed.output
    resources = repo / "data" / "resources.yaml"
    (repo / "tests" / "region_test.rego").write_text(
        "package region_test\n\ntest_all_in_frankfurt if {\n"
        '\tevery r in data.datavisa.resources { r.region == "aws:eu-central-1" }\n}\n'
    )
    failed = CliRunner().invoke(cli, list(args))
    assert failed.exit_code == 1 and "policy tests failed" in failed.output
    assert resources.exists()


def test_the_marker_says_exactly_what_it_extends(tmp_path: Path):
    repo = _init(tmp_path)
    (repo / "data" / "extends.yaml").write_text("extends: elsewhere\n")
    try:
        bundle.load_data(repo / "data")
    except DataVisaError as e:
        assert "must say `extends: shipped`" in str(e)
    else:
        raise AssertionError("an unknown base was accepted")
    (repo / "data" / "extends.yaml").write_text(json.dumps({"extends": "shipped"}))
    assert bundle.load_data(repo / "data")["countries"]

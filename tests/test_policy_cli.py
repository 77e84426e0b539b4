"""`datavisa policy test|check|fmt|lint|build`: thin wrappers over the pinned OPA, run for
real; signed bundles load only with the matching key, and the engine refuses any other."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datavisa.cli.main import cli
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess

needs_openssl = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the keys")


def _policy(*args: str) -> Result:
    return CliRunner().invoke(cli, ["policy", *args])


def _module(tmp_path: Path, relative: str, source: str) -> Path:
    path = tmp_path / "rego" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return tmp_path / "rego"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two RSA key pairs: the bundle's, and a stranger's."""
    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for name in ("ours", "theirs"):
        private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
        subprocess.run(
            ["openssl", "genrsa", "-out", private, "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", private, "-pubout", "-out", public],
            check=True,
            capture_output=True,
        )
        found[name], found[f"{name}.pub"] = private, public
    return found


def test_check_fmt_and_lint_pass_on_the_shipped_policy():
    for command in ("check", "fmt", "lint"):
        result = _policy(command)
        assert result.exit_code == 0, f"policy {command}: {result.output}"
    assert "policy lint: ok" in _policy("lint").stdout


def test_policy_tests_pass_with_the_coverage_make_test_demands():
    result = _policy("test", "--threshold", "95")
    assert result.exit_code == 0, result.output
    assert "coverage:" in result.stdout


def test_policy_test_fails_when_a_rego_test_fails(tmp_path):
    policy = _module(tmp_path, "x/x_test.rego", "package x_test\n\ntest_fails if false\n")
    result = _policy("test", "--policy-dir", str(policy))
    assert result.exit_code == 1
    assert "policy tests failed" in result.stderr


def test_fmt_lists_an_unformatted_module(tmp_path):
    policy = _module(tmp_path, "x/x.rego", "package x\n\nallow if {   input.a == 1 }\n")
    result = _policy("fmt", "--policy-dir", str(policy))
    assert result.exit_code == 1
    assert "not formatted" in result.stderr


def test_lint_finds_what_the_house_style_forbids(tmp_path):
    policy = _module(
        tmp_path,
        "datavisa/thing/thing.rego",
        "package datavisa.other\n\nimport input\n\nallow if {\n\tx = input.a\n\tx == 1\n}\n\n"
        "_helper := 1\n\ntest_here if true\n",
    )
    result = _policy("lint", "--policy-dir", str(policy))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    for rule in (
        "package-metadata",
        "rule-metadata",
        "directory-package-mismatch",
        "import-input",
        "use-assignment-operator",
        "test-outside-test-package",
    ):
        assert any(f": {rule}: " in line for line in lines), (
            f"{rule} not reported:\n{result.stdout}"
        )
    assert "datavisa/thing/thing.rego:6: use-assignment-operator:" in result.stdout
    assert not any("_helper" in line for line in lines)  # internal helpers need no METADATA


def test_the_revision_names_the_content_so_two_bundles_never_share_one(tmp_path):
    repo = tmp_path / "repo"  # a policy repository of its own, outside any git at first
    rules = Path(shutil.copytree(POLICY_DIR, repo / "rego"))
    copy = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, repo / "data"))
    shipped = bundle.revision(POLICY_DIR, DEFAULT_BUNDLE_DIR)
    same = bundle.revision(rules, copy)
    assert same == shipped.split("-g")[0]  # the same content, no commit to name
    tiers = copy / "tiers.yaml"
    tiers.write_text(tiers.read_text().replace("max_duration_s: 14400", "max_duration_s: 7200"))
    assert bundle.revision(rules, copy) not in (same, shipped)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert not bundle.revision(rules, copy).endswith("-dirty")  # no commit to name yet
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "x"], check=True, env=env)
    committed = bundle.revision(rules, copy)
    assert "-g" in committed and not committed.endswith("-dirty")
    tiers.write_text(tiers.read_text() + "\n")
    assert bundle.revision(rules, copy).endswith("-dirty")


def test_build_stamps_the_revision(tmp_path):
    out = tmp_path / "bundle.tar.gz"
    result = _policy("build", "--output", str(out))
    assert result.exit_code == 0, result.output
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("/.manifest"))
        names = tar.getnames()
    assert manifest["revision"] == bundle.revision()
    assert manifest["roots"] == ["datavisa", "system/log"]
    assert f"(revision {manifest['revision']})" in result.stdout
    assert not any(name.endswith(".signatures.json") for name in names)
    assert not any(name.endswith("_test.rego") for name in names)
    # Who may call the engine's own OPA is no business of an OPA serving the bundle elsewhere.
    assert not any("system/authz" in name for name in names)


@needs_openssl
def test_signed_bundle_loads_with_its_key_and_answers(tmp_path, keys):
    out = tmp_path / "signed.tar.gz"
    result = _policy("build", "--output", str(out), "--signing-key", str(keys["ours"]))
    assert result.exit_code == 0, result.output
    assert "signed" in result.stdout
    with tarfile.open(out) as tar:
        assert any(name.endswith(".signatures.json") for name in tar.getnames())
    with OpaProcess(out, verification_key=keys["ours.pub"]) as opa:
        client = opa.client()
        answer = client.query(
            "datavisa/request/decision",
            {
                "subject": "alice",
                "resource": "eu-customer-analytics",
                "actions": ["read"],
                "duration_s": 600,
                "location": "DE",
                "reason": "x",
            },
        )
        client.close()
    assert answer.result["allow"] is True


@needs_openssl
def test_engine_refuses_a_bundle_signed_by_another_key(tmp_path, keys):
    out = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "b.tar.gz", "t", keys["theirs"])
    with pytest.raises(DataVisaError, match="OPA did not start"):
        OpaProcess(out, verification_key=keys["ours.pub"], startup_timeout=10).start()


@needs_openssl
def test_engine_refuses_an_unsigned_bundle_when_it_expects_a_signature(tmp_path, keys):
    out = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "b.tar.gz", "t")
    with pytest.raises(DataVisaError, match="OPA did not start"):
        OpaProcess(out, verification_key=keys["ours.pub"], startup_timeout=10).start()


@needs_openssl
def test_engine_refuses_a_signed_bundle_that_was_altered(tmp_path, keys):
    signed = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "b.tar.gz", "t", keys["ours"])
    unpacked = tmp_path / "unpacked"
    with tarfile.open(signed) as tar:
        tar.extractall(unpacked, filter="data")
    data_json = unpacked / "data.json"
    data = json.loads(data_json.read_text())
    data["datavisa"]["tiers"]["restricted"]["approvals"] = []  # someone drops the 4-eyes rule
    data_json.write_text(json.dumps(data))
    altered = tmp_path / "altered.tar.gz"
    with tarfile.open(altered, "w:gz") as tar:
        for path in sorted(unpacked.rglob("*")):
            if path.is_file():
                tar.add(path, arcname="/" + path.relative_to(unpacked).as_posix())
    with pytest.raises(DataVisaError, match="OPA did not start"):
        OpaProcess(altered, verification_key=keys["ours.pub"], startup_timeout=10).start()


def test_a_missing_signing_key_is_an_error_not_an_hmac_secret(tmp_path):
    result = _policy("build", "--output", str(tmp_path / "b.tar.gz"), "--signing-key", "nope.pem")
    assert result.exit_code == 2
    assert "nope.pem" in result.stderr
    with pytest.raises(DataVisaError, match="is not a file"):
        bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "b.tar.gz", "t", Path("nope.pem"))

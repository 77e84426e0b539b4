"""`datavisa policy`: thin wrappers over the pinned OPA (and Regal) for policy authors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR, PROJECT_ROOT
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import find_opa

LINT_RULES = PROJECT_ROOT / "tools" / "lint"  # the house style as Rego, run by the pinned OPA
PROJECT_REGAL = PROJECT_ROOT / ".tools" / "bin" / "regal"

policy_dir_option = click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=POLICY_DIR,
    show_default=True,
    help="Folder of Rego modules and their tests.",
)
bundle_dir_option = click.option(
    "--bundle-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DEFAULT_BUNDLE_DIR,
    show_default=True,
    help="Folder of the bundle's YAML data and .manifest.",
)


def _opa(*args: str | Path, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([str(find_opa()), *map(str, args)], capture_output=capture, text=True)


@click.group()
def policy() -> None:
    """Test, check, format, lint and build the Rego policy with the pinned OPA."""


@policy.command()
@policy_dir_option
@bundle_dir_option
@click.option(
    "--threshold",
    type=click.FloatRange(0, 100),
    default=0,
    help="Fail when line coverage is below this percentage.",
)
def test(policy_dir: Path, bundle_dir: Path, threshold: float) -> None:
    """Run `opa test` on the policy with the bundle's data, and report coverage.

    \b
    Example:
      datavisa policy test --threshold 95
    """
    with tempfile.TemporaryDirectory(prefix="datavisa-data-") as tmp:
        bundle.write_data(bundle_dir, Path(tmp))
        if _opa("test", policy_dir, tmp).returncode != 0:
            click.echo()
            raise DataVisaError("policy tests failed")
        done = _opa("test", "--coverage", "--format=json", policy_dir, tmp, capture=True)
    report = json.loads(done.stdout)
    coverage = report.get("coverage", 0.0)
    for name, file in sorted(report.get("files", {}).items()):
        missed = [f"{r['start']['row']}-{r['end']['row']}" for r in file.get("not_covered", [])]
        if missed:
            click.echo(f"  {name}: lines {', '.join(missed)} not covered")
    click.echo(f"coverage: {coverage:.1f}% (threshold {threshold:g}%)")
    if coverage < threshold:
        raise DataVisaError(f"policy line coverage {coverage:.1f}% is below {threshold:g}%")


@policy.command()
@policy_dir_option
def check(policy_dir: Path) -> None:
    """Compile the policy with `opa check --strict`."""
    if _opa("check", "--strict", policy_dir).returncode != 0:
        raise DataVisaError("policy check failed")
    click.echo("policy check: ok")


@policy.command()
@policy_dir_option
@click.option("--write", is_flag=True, help="Rewrite files in place instead of listing them.")
def fmt(policy_dir: Path, write: bool) -> None:
    """List (or with --write, fix) Rego files that `opa fmt` would change."""
    args = ["fmt", "--write"] if write else ["fmt", "--list", "--fail"]
    if _opa(*args, policy_dir).returncode != 0:
        raise DataVisaError("these files are not formatted; run: datavisa policy fmt --write")


@policy.command()
@policy_dir_option
@bundle_dir_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("build/bundle.tar.gz"),
    show_default=True,
    help="Where to write the bundle.",
)
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM private key (RSA) to sign the bundle with; OPA then loads it only with "
    "the matching --verification-key.",
)
def build(policy_dir: Path, bundle_dir: Path, output: Path, signing_key: Path | None) -> None:
    """Build the policy bundle (Rego + data + revision) with `opa build`.

    The YAML data is checked against the data model first; the revision is the git commit
    of rego/ and bundles/, with -dirty when they have local changes.

    \b
    Examples:
      datavisa policy build
      datavisa policy build --signing-key keys/bundle.pem -o build/signed.tar.gz
    """
    rev = bundle.revision()
    bundle.build(policy_dir, bundle_dir, output, rev, signing_key=signing_key)
    signed = ", signed" if signing_key else ""
    click.echo(f"built {output} (revision {rev}{signed})")


@policy.command()
@policy_dir_option
def lint(policy_dir: Path) -> None:
    """Lint the policy: the house rules (METADATA, naming, layout), then Regal if present.

    The house rules are Rego in tools/lint, run by the pinned OPA over `opa parse`'s AST.
    Regal runs as well when one is found: $DATAVISA_REGAL, .tools/bin/regal or `regal` on
    PATH.

    \b
    Example:
      datavisa policy lint
    """
    findings = house_lint(policy_dir)
    for f in findings:
        click.echo(f"{f['file']}:{f['row']}: {f['rule']}: {f['message']}")
    regal = find_regal()
    regal_failed = False
    if regal is not None:
        regal_failed = subprocess.run([str(regal), "lint", str(policy_dir)]).returncode != 0
    if findings or regal_failed:
        raise DataVisaError(f"policy lint: {len(findings)} finding(s) from the house rules")
    click.echo(f"policy lint: ok (house rules{', Regal' if regal else ''})")


def house_lint(policy_dir: Path) -> list[dict]:
    """The house rules' findings on every module under `policy_dir`, in file order."""
    files = {}
    for module in sorted(policy_dir.rglob("*.rego")):
        done = _opa("parse", "--format=json", "--json-include=locations", module, capture=True)
        if done.returncode != 0:
            raise DataVisaError(f"cannot parse {module}:\n{done.stderr.strip()}")
        files[module.relative_to(policy_dir).as_posix()] = json.loads(done.stdout)
    done = subprocess.run(
        [
            *(str(find_opa()), "eval", "--format=json", "--stdin-input", f"--data={LINT_RULES}"),
            "data.datavisa_lint.report",
        ],
        input=json.dumps({"files": files}),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DataVisaError(f"the lint rules failed:\n{done.stderr.strip()}")
    report = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    return sorted(report, key=lambda f: (f["file"], f["row"], f["rule"]))


def find_regal() -> Path | None:
    """Regal, if this machine has one: $DATAVISA_REGAL, .tools/bin/regal, or on PATH."""
    if env := os.environ.get("DATAVISA_REGAL"):
        return Path(env)
    if PROJECT_REGAL.is_file():
        return PROJECT_REGAL
    on_path = shutil.which("regal")
    return Path(on_path) if on_path else None

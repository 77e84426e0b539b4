"""`datavisa policy`: thin wrappers over the pinned OPA for policy authors."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import click

from datavisa.engine import bundle
from datavisa.engine.errors import DataVisaError
from datavisa.engine.opa import find_opa
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR

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
    """Test, check, format and build the Rego policy with the pinned OPA."""


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
def build(policy_dir: Path, bundle_dir: Path, output: Path) -> None:
    """Build the policy bundle (Rego + data + revision) with `opa build`."""
    rev = bundle.revision()
    bundle.build(policy_dir, bundle_dir, output, rev)
    click.echo(f"built {output} (revision {rev})")

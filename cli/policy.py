"""`datavisa policy`: thin wrappers over the pinned OPA (and Regal) for policy authors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import click

from datavisa.engine.model.durations import parse_rfc3339, rfc3339
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import CHECKOUT_BIN, DEFAULT_BUNDLE_DIR, LINT_RULES, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import find_opa
from datavisa.engine.policy.whatif import KINDS, evaluate

from . import output
from .options import country, json_option, store_option

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
@click.option(
    "--tests",
    "tests_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Run the Rego tests in this folder (a deployment's own) against the policy's "
    "rules, instead of the policy's own tests.",
)
def test(policy_dir: Path, bundle_dir: Path, threshold: float, tests_dir: Path | None) -> None:
    """Run `opa test` on the policy with the bundle's data, and report coverage.

    \b
    Examples:
      datavisa policy test --threshold 95
      datavisa policy test --bundle-dir data --tests tests    # in a `policy init` repo
    """
    with tempfile.TemporaryDirectory(prefix="datavisa-data-") as tmp:
        data = bundle.write_data(bundle_dir, Path(tmp) / "data")
        sources = [policy_dir]
        if tests_dir is not None:  # the rules without their own tests, and the given ones
            sources = [bundle.stage_modules(policy_dir, Path(tmp) / "rules"), tests_dir]
        if _opa("test", *sources, data).returncode != 0:
            click.echo()
            raise DataVisaError("policy tests failed")
        done = _opa("test", "--coverage", "--format=json", *sources, data, capture=True)
    report = json.loads(done.stdout)
    coverage = report.get("coverage", 0.0)
    for name, file in sorted(report.get("files", {}).items()):
        missed = [f"{r['start']['row']}-{r['end']['row']}" for r in file.get("not_covered", [])]
        if missed and tests_dir is None:  # a deployment's tests cover its data, not the rules
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

    The YAML data is checked against the data model first; the revision names the content
    (a hash of every source file), then the git commit of the data's folder, with -dirty
    when there are changes not committed.

    \b
    Examples:
      datavisa policy build
      datavisa policy build --signing-key keys/bundle.pem -o build/signed.tar.gz
    """
    rev = bundle.revision(policy_dir, bundle_dir)
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
    if (CHECKOUT_BIN / "regal").is_file():
        return CHECKOUT_BIN / "regal"
    on_path = shutil.which("regal")
    return Path(on_path) if on_path else None


def _instant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except DataVisaError as e:
        raise click.BadParameter(f"{e} (such as 2032-01-01T00:00:00Z)") from e


def _input(text: str | None) -> dict:
    if text is None:
        return {}
    if text == "-":
        text = click.get_text_stream("stdin").read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            why = f"cannot read {text[1:]}: {e.strerror}"
            raise click.BadParameter(why, param_hint="--input") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="--input") from e
    if not isinstance(doc, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--input")
    return doc


@policy.command(name="eval")
@click.argument("kind", type=click.Choice(list(KINDS)), metavar="KIND")
@click.option(
    "--input",
    "input_text",
    metavar="JSON|@FILE|-",
    help="The decision's input as JSON, @file, or - for standard input.",
)
@click.option("--subject", help="Sets input.subject.")
@click.option("--resource", help="Sets input.resource.")
@click.option("--action", help="Sets input.action.")
@click.option(
    "--from", "location", callback=country, metavar="COUNTRY", help="Sets input.location."
)
@click.option(
    "--at",
    callback=_instant,
    metavar="TIME",
    help="Decide as if it were this instant (RFC 3339), instead of now.",
)
@store_option("Take the live grants from this database, read only (none when it does not exist).")
@json_option
@policy_dir_option
@bundle_dir_option
def eval_(
    kind, input_text, subject, resource, action, location, at, db_path, as_json,
    policy_dir, bundle_dir,
):  # fmt: skip
    """Ask the KIND decision with the clock set, without touching the store.

    KIND is one of: request, access, approval, transfer, extension, breakglass, lifecycle,
    transfer_request, transfer_check.

    The answer is the policy's own (the bundle built from --policy-dir and --bundle-dir),
    given the live grants of --db. Exits 0 when allowed and 1 when denied.

    \b
    Examples:
      datavisa policy eval access --subject alice --resource eu-customer-analytics \\
        --action read --from DE --at 2027-01-01T00:00:00Z
      datavisa policy eval request --at 2032-01-01T00:00:00Z --input @request.json
    """
    from datavisa.engine.lifecycle.grants import live_grants  # the store: only when asked
    from datavisa.engine.store import is_url, open_store

    asked = _input(input_text)
    given = {"subject": subject, "resource": resource, "action": action, "location": location}
    asked |= {k: v for k, v in given.items() if v is not None}
    grants = {}
    if is_url(db_path) or db_path.exists():
        store = open_store(db_path, readonly=True)
        try:
            grants = live_grants(store)
        finally:
            store.close()
    decision = evaluate(
        kind, asked, at=at, grants=grants, policy_dir=policy_dir, bundle_dir=bundle_dir
    )
    if as_json:
        output.echo_json(decision.to_dict())
    else:
        click.echo(f"{kind}, at {rfc3339(at) if at is not None else 'now'}: ", nl=False)
        click.echo(output.describe_decision(decision))
    if not decision.allow:
        raise SystemExit(1)


def _dir_option(name: str, help: str, default: Path) -> Any:
    return click.option(
        name,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=default,
        show_default=True,
        help=help,
    )


def _short(answer: dict) -> str:
    said = "allow" if answer["allow"] else "deny " + ",".join(answer["reasons"])
    needs = answer.get("approvals_required")
    if needs and answer["allow"]:
        said += " needs " + " + ".join(f"{n['count']} {n['group']}" for n in needs)
    return said


@policy.command()
@_dir_option("--policy-dir", "Rego of the new policy.", POLICY_DIR)
@_dir_option("--bundle-dir", "Bundle data of the new policy.", DEFAULT_BUNDLE_DIR)
@_dir_option("--current-policy-dir", "Rego of the policy in force.", POLICY_DIR)
@_dir_option("--current-bundle-dir", "Bundle data of the policy in force.", DEFAULT_BUNDLE_DIR)
@store_option("The database whose live grants and pending requests are judged, read only.")
@click.option("--at", callback=_instant, metavar="TIME", help="Judge at this instant (RFC 3339).")
@json_option
def impact(
    policy_dir, bundle_dir, current_policy_dir, current_bundle_dir, db_path, at, as_json
):  # fmt: skip
    """What a new policy would decide differently about what is live now.

    Every live grant (each action, from each country it allows) and every pending request
    is asked of the policy in force and of the new one; each answer that differs is listed.
    Exits 1 when anything would change, so CI can hold a merge for review.

    \b
    Example:
      datavisa policy impact --bundle-dir ../our-policy/bundle --db /var/lib/datavisa/datavisa.db
    """
    from datavisa.engine.lifecycle.impact import Sources
    from datavisa.engine.lifecycle.impact import impact as judge
    from datavisa.engine.store import is_url, open_store

    if not is_url(db_path) and not db_path.exists():
        raise DataVisaError(f"no database at {db_path}: nothing is live to judge (use --db)")
    store = open_store(db_path, readonly=True)
    try:
        changes = judge(
            store,
            Sources(current_policy_dir, current_bundle_dir),
            Sources(policy_dir, bundle_dir),
            at=at,
        )
    finally:
        store.close()
    if as_json:
        output.echo_json([dataclasses.asdict(c) for c in changes])
    elif not changes:
        click.echo("no change: every live grant and pending request is decided as now")
    else:
        rows = [
            [c.kind, c.request_id, c.subject, c.resource,
             c.asked.get("action") or ",".join(c.asked.get("actions", [])),
             c.asked["location"], _short(c.before), _short(c.after)]
            for c in changes
        ]  # fmt: skip
        headers = ["kind", "request", "subject", "resource", "action", "from", "now", "new"]
        click.echo(output.table(rows, headers))
        click.echo(f"{len(changes)} answer(s) would change")
    if changes:
        raise SystemExit(1)


@policy.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Make DIRECTORY a deployment's own policy repository, built on the shipped rules.

    It holds the deployment's data (the directory of people and services, the resources,
    the tiers) as YAML to edit, on top of the shipped data for everything else
    (jurisdictions, regions, countries), a folder for its own Rego tests, and a CI job that
    runs them. The shipped rules are used as they are, never copied.

    \b
    Example:
      datavisa policy init our-policy && cd our-policy
      datavisa policy test --bundle-dir data --tests tests
      datavisa serve --bundle-dir data
    """
    from datavisa.engine.policy.repo import scaffold

    for path in scaffold(directory):
        click.echo(f"wrote {path}")

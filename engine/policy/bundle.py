"""The policy bundle: Rego from rego/, data from YAML in bundles/<name>/, built by OPA.

Policy authors write data as several YAML files (regions.yaml, tiers.yaml, ...); each holds
a mapping whose top-level keys land under `data.datavisa`. The builder merges them, checks
the result against the data model's JSON Schema (bundle_schema.json: every error names the
file, the line, the path inside it and the reason), writes the bundle's data.json, stamps a
revision, and lets `opa build` check, pack and (with a signing key) sign the result.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..model.errors import DataVisaError
from ..paths import AUTHZ_PACKAGE, DEFAULT_BUNDLE_DIR, POLICY_DIR, SHIPPED_BUNDLE_DIR
from .process import find_opa

if TYPE_CHECKING:
    import jsonschema

DATA_ROOT = "datavisa"  # the data path bundle data lands under; the bundle owns this root
SCHEMA_PATH = Path(__file__).with_name("bundle_schema.json")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping, and an alias (or
    a `<<` merge, which uses one), is an error: what policy data says must read as written,
    not be pulled from elsewhere in the file."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "an alias (*name) repeats an anchored value: write it out",
                self.peek_event().start_mark,
            )  # fmt: skip
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_data(bundle_dir: Path, validate: bool = True) -> dict[str, Any]:
    """Merge the top-level keys of every YAML file in `bundle_dir` into one document.

    A folder with an `extends.yaml` saying `extends: shipped` (a deployment's own, made by
    `datavisa policy init`) starts from the shipped data: each section it defines replaces
    the shipped one, and the shipped ones it leaves out (jurisdictions, regions…) are kept.

    With `validate`, the result is checked against the data model's schema; any breach is a
    DataVisaError naming, for each, the file, line, path inside the file and the reason.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    files = [f for f in _data_files(bundle_dir) if f.name != EXTENDS]
    if _extends_shipped(bundle_dir):
        for path in _data_files(SHIPPED_BUNDLE_DIR):
            for key, value in (yaml.load(path.read_text(), Loader=_StrictLoader) or {}).items():
                merged[key], origin[key] = value, path
    if not files:
        raise DataVisaError(f"{bundle_dir}: no YAML data files")
    shipped = set(merged)
    for path in files:
        try:
            doc = yaml.load(path.read_text(), Loader=_StrictLoader)  # a SafeLoader
        except yaml.YAMLError as e:
            raise DataVisaError(f"{path}: not valid YAML: {e}") from e
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise DataVisaError(f"{path}: the top level must be a mapping of named sections")
        for key, value in doc.items():
            if key in merged and key not in shipped:
                raise DataVisaError(f"{path}: section {key!r} is already defined in {origin[key]}")
            shipped.discard(key)
            merged[key], origin[key] = value, path
    if validate:
        problems = schema_errors(merged, origin)
        if problems:
            raise DataVisaError(
                f"{bundle_dir}: the policy data breaks the data model:\n  " + "\n  ".join(problems)
            )
    return merged


def _data_files(bundle_dir: Path) -> list[Path]:
    return sorted(bundle_dir.glob("*.yaml")) + sorted(bundle_dir.glob("*.yml"))


EXTENDS = "extends.yaml"  # in a deployment's data folder: what it is built on


def _extends_shipped(bundle_dir: Path) -> bool:
    marker = bundle_dir / EXTENDS
    if not marker.is_file():
        return False
    try:
        doc = yaml.safe_load(marker.read_text()) or {}
    except yaml.YAMLError as e:
        raise DataVisaError(f"{marker}: not valid YAML: {e}") from e
    if doc != {"extends": "shipped"}:
        raise DataVisaError(f"{marker}: must say `extends: shipped` and nothing else")
    return True


@cache
def _base_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The data model's schema, with each reference (x-refers-to) limited to what `doc` defines."""
    filled = copy.deepcopy(_base_schema())
    for definition in filled["$defs"].values():
        section = definition.get("x-refers-to")
        if section is not None:
            defined = doc.get(section)
            definition["enum"] = sorted(defined) if isinstance(defined, dict) else []
    return filled


def schema_errors(doc: dict[str, Any], origin: dict[str, Path] | None = None) -> list[str]:
    """Every way `doc` breaks the data model, as `file:line: path: reason`, in file order."""
    import jsonschema  # a slow import, needed only to build or check a bundle

    validator = jsonschema.Draft202012Validator(schema(doc))
    found = []
    for error in validator.iter_errors(doc):
        path = list(error.absolute_path)
        file = (origin or {}).get(path[0]) if path else None
        line = _line_of(file, path) if file else None
        where = f"{file}:{line}" if file and line else str(file or "<data>")
        found.append((str(file or ""), line or 0, f"{where}: {_dotted(path)}: {_reason(error)}"))
    return [message for *_, message in sorted(found)]


def _dotted(path: list[Any]) -> str:
    return (
        ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        or "(top level)"
    )


def _reason(error: jsonschema.ValidationError) -> str:
    section = error.schema.get("x-refers-to") if isinstance(error.schema, dict) else None
    if error.validator == "enum" and section:
        return f"{error.instance!r} names nothing defined in {section}"
    if error.validator == "additionalProperties" and not error.absolute_path:
        known = ", ".join(sorted(_base_schema()["properties"]))
        return f"{error.message} (known sections: {known})"
    if error.validator == "minimum":
        return f"{error.instance!r} is below the minimum of {error.validator_value}"
    return error.message


def _line_of(file: Path, path: list[Any]) -> int | None:
    """The line in `file` where the value at `path` starts (or the closest enclosing one)."""
    try:
        node = yaml.compose(file.read_text(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for step in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(step)]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line


def countries(data: dict[str, Any]) -> frozenset[str]:
    """The country codes a bundle's data knows: the keys of its `countries` section."""
    known = data.get("countries")
    return frozenset(known) if isinstance(known, dict) else frozenset()


@cache
def shipped_countries() -> frozenset[str]:
    """The countries the shipped bundle data knows (DATAVISA_BUNDLE_DIR, or the default)."""
    return countries(_shipped_section("countries"))


@cache
def shipped_subjects() -> frozenset[str]:
    """The people and services in the shipped bundle's directory (`subjects`)."""
    known = _shipped_section("subjects").get("subjects")
    return frozenset(known) if isinstance(known, dict) else frozenset()


def directory(bundle_dir: Path | None = None, built: Path | None = None) -> frozenset[str]:
    """The people and services a deployment's policy knows (`subjects`): see `names`."""
    if built is None and bundle_dir is None:
        return shipped_subjects()  # the fast path of a CLI option
    return names("subjects", bundle_dir, built)


def names(
    section: str, bundle_dir: Path | None = None, built: Path | None = None
) -> frozenset[str]:
    """The names a deployment's policy data defines in `section` (subjects, resources):
    those of the built bundle it serves, else of its data folder (with the shipped data it
    extends), else of the shipped folder's."""
    if built is not None:
        known = built_data(built).get(section)
        if not isinstance(known, dict):
            raise DataVisaError(f"{built} holds no {section} (data.datavisa.{section})")
    else:
        known = load_data(bundle_dir or DEFAULT_BUNDLE_DIR).get(section)
    return frozenset(known) if isinstance(known, dict) else frozenset()


@cache
def shipped_evidence() -> dict[str, str]:
    """The kinds of evidence the shipped bundle knows, with what each is (`evidence`)."""
    known = _shipped_section("evidence").get("evidence")
    return dict(known) if isinstance(known, dict) else {}


def _shipped_section(section: str) -> dict[str, Any]:
    """The shipped data file that defines `section`, read fast, for a CLI option: that one
    file, with libyaml when there is one, unchecked (building the bundle checks it)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in _data_files(DEFAULT_BUNDLE_DIR):
        try:
            doc = yaml.load(path.read_text(), Loader=loader)  # a SafeLoader
        except (OSError, yaml.YAMLError) as e:
            raise DataVisaError(f"{path}: not valid YAML: {e}") from e
        if isinstance(doc, dict) and section in doc:
            return doc
    return {}


def built_data(path: Path) -> dict[str, Any]:
    """The data under DATA_ROOT of a built bundle (a tarball, as `opa build` merges it into
    one data.json, or a staged folder); {} when it has none that reads."""
    try:
        if path.is_dir():
            data = json.loads((path / DATA_ROOT / "data.json").read_bytes())
        else:
            with tarfile.open(path) as tar:
                member = next(m for m in tar.getmembers() if m.name.lstrip("/") == "data.json")
                data = json.loads(tar.extractfile(member).read()).get(DATA_ROOT)  # type: ignore[union-attr]
    except (OSError, StopIteration, tarfile.TarError, ValueError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def revision(policy_dir: Path = POLICY_DIR, bundle_dir: Path = DEFAULT_BUNDLE_DIR) -> str:
    """The name of these sources' content: a hash of every file a bundle is built from (the
    modules, the data, the manifest), then `-g` and the git commit of the data's folder
    where it is in git, with `-dirty` when either folder has changes not committed. Two
    bundles built from different sources never share a revision."""
    digest = hashlib.sha256()
    for path in _sources(policy_dir, bundle_dir):
        if path.is_file():
            root = next(
                r for r in (policy_dir, bundle_dir, SHIPPED_BUNDLE_DIR) if path.is_relative_to(r)
            )
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    named = digest.hexdigest()[:12]
    try:
        commit = _git(bundle_dir, "rev-parse", "--short=12", "HEAD")
        dirty = any(_git(d, "status", "--porcelain", "--", ".") for d in (policy_dir, bundle_dir))
    except (OSError, subprocess.CalledProcessError):
        return named
    return f"{named}-g{commit}" + ("-dirty" if dirty else "")


def _sources(policy_dir: Path, bundle_dir: Path) -> list[Path]:
    """Every file a bundle is built from."""
    files = [*modules(policy_dir), *sorted(bundle_dir.glob("*.y*ml")), bundle_dir / ".manifest"]
    if _extends_shipped(bundle_dir):
        files += [*_data_files(SHIPPED_BUNDLE_DIR), SHIPPED_BUNDLE_DIR / ".manifest"]
    return files


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


LOCATION_SOURCES = ("attested", "derived", "declared")  # a step a tier does not list: all
LOOKUP = "lookup"  # the section the builder derives (the schema lets no YAML file name it)


def lookup(data: dict[str, Any]) -> dict[str, Any]:
    """The data reshaped for lookup, derived from a checked document at build time.

    The Rego on every decision's path then finds a fact by key instead of scanning a list
    or matching a pattern. Nothing here decides: each entry restates what the YAML says,
    keyed the way the policy looks it up (rego/datavisa/residency, rego/datavisa/access).

    - `places`: every location the data names (a country of `countries`, a subdivision of
      a jurisdiction) → its place, `{country, subdivision}`, as `residency.place` reads it;
    - `inside`: jurisdiction → `countries` and `subdivisions`, each as {code: true};
    - `resources`: resource → `jurisdiction` (of its region), `inside` (that jurisdiction's
      countries, as {code: true}), `bases` (those its tier
      accepts, as {basis: true}), `sectoral` (its tags that a sectoral rule names, as
      {tag: true}), `sources` (the location sources its tier accepts for access, as
      {source: true}: datavisa.origin) and `us_sensitive` (it declares US sensitive or
      government-related data, which the US Data Security Program judges:
      `us_sensitive_data`, `government_related_data`);
    - `routes`: host (or "*") → prefix → the position in `routes` of the first route with
      that host and prefix, which the route that matches first is the least of
      (rego/datavisa/gateway).
    """
    jurisdictions = data.get("jurisdictions", {})
    places = {code: {"country": code, "subdivision": ""} for code in data.get("countries", {})}
    inside: dict[str, dict[str, bool]] = {}
    for jid, jurisdiction in jurisdictions.items():
        subdivisions = jurisdiction.get("subdivisions", [])
        places |= {sub: {"country": sub[:2], "subdivision": sub} for sub in subdivisions}
        inside[jid] = {
            "countries": dict.fromkeys(jurisdiction.get("countries", []), True),
            "subdivisions": dict.fromkeys(subdivisions, True),
        }
    regions, tiers = data.get("regions", {}), data.get("tiers", {})
    sectoral = data.get("sectoral_rules", {})
    resources = {}
    for rid, resource in data.get("resources", {}).items():
        tier = tiers[resource["tier"]]
        jid = regions[resource["region"]]["jurisdiction"]
        resources[rid] = {
            "jurisdiction": jid,
            "inside": inside[jid]["countries"],
            "bases": dict.fromkeys(tier["bases"], True),
            "sectoral": {tag: True for tag in resource.get("tags", []) if tag in sectoral},
            "sources": dict.fromkeys(
                tier.get("location_sources", {}).get("access", LOCATION_SOURCES), True
            ),
            "us_sensitive": bool(
                resource.get("us_sensitive_data") or resource.get("government_related_data")
            ),
        }
    routes: dict[str, dict[str, int]] = {}
    for position, route in enumerate(data.get("routes", [])):
        for host in route["hosts"]:
            routes.setdefault(host, {}).setdefault(route["prefix"], position)
    return {"places": places, "inside": inside, "resources": resources, "routes": routes}


def write_data(bundle_dir: Path, out_dir: Path) -> Path:
    """Write the bundle's merged data, with the section derived for lookup (`lookup`), as
    `out_dir/datavisa/data.json`; return out_dir."""
    data = load_data(bundle_dir)
    data[LOOKUP] = lookup(data)
    target = out_dir / DATA_ROOT / "data.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1, sort_keys=True))
    return out_dir


def modules(policy_dir: Path) -> list[Path]:
    """The policy modules a bundle holds: neither tests nor the API authorization of the
    OPA the engine runs (system/authz), which holds nothing for an OPA serving the bundle
    elsewhere and would take that OPA's own system.authz root."""
    return [
        module
        for module in sorted(policy_dir.rglob("*.rego"))
        if not module.name.endswith("_test.rego")
        and not module.relative_to(policy_dir).is_relative_to(AUTHZ_PACKAGE)
    ]


def stage_modules(policy_dir: Path, out_dir: Path) -> Path:
    """Copy the policy modules a bundle holds (`modules`) into `out_dir`; return it."""
    for module in modules(policy_dir):
        target = out_dir / module.relative_to(policy_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module, target)
    return out_dir


def stage(policy_dir: Path, bundle_dir: Path, out_dir: Path, rev: str) -> Path:
    """Lay out a bundle directory: policy modules (`modules`), data.json and .manifest."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    stage_modules(policy_dir, out_dir)
    write_data(bundle_dir, out_dir)
    manifest_path = bundle_dir / ".manifest"
    if not manifest_path.exists() and _extends_shipped(bundle_dir):
        manifest_path = SHIPPED_BUNDLE_DIR / ".manifest"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("roots", [DATA_ROOT])
    manifest["revision"] = rev
    (out_dir / ".manifest").write_text(json.dumps(manifest, indent=1))
    return out_dir


def build(
    policy_dir: Path,
    bundle_dir: Path,
    output: Path,
    rev: str | None = None,
    signing_key: Path | None = None,
) -> Path:
    """Build a bundle tarball at `output` with `opa build`; return its path.

    With `signing_key` (a PEM private key, RSA for the default RS256), OPA signs the bundle
    (.signatures.json), so an OPA started with the matching verification key loads it and
    refuses any bundle that was altered or signed by another key.
    """
    if signing_key is not None and not Path(signing_key).is_file():
        # opa would take a missing path as an HMAC secret: never sign with a typo.
        raise DataVisaError(f"signing key {signing_key} is not a file")
    output.parent.mkdir(parents=True, exist_ok=True)
    rev = rev or revision(policy_dir, bundle_dir)
    staged = stage(policy_dir, bundle_dir, output.parent / (output.name + ".d"), rev)
    signing = ["--signing-key", str(signing_key)] if signing_key is not None else []
    try:
        done = subprocess.run(  # from inside the staging folder, so module paths are relative
            [
                str(find_opa()),
                "build",
                "--bundle",
                ".",
                "--output",
                str(output.resolve()),
                *signing,
            ],
            capture_output=True,
            text=True,
            cwd=staged,
        )
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if done.returncode != 0:
        raise DataVisaError(f"opa build failed:\n{done.stderr.strip() or done.stdout.strip()}")
    return output


def cached_build(policy_dir: Path, bundle_dir: Path, rev: str) -> Path:
    """The bundle for these sources, built once and kept in the user's cache folder.

    Keyed by a hash of every input (modules, data, manifest, schema, revision, OPA), so an
    edit builds afresh; each local CLI command then starts its OPA without rebuilding.
    """
    digest = hashlib.sha256(rev.encode())
    sources = [*_sources(policy_dir, bundle_dir), SCHEMA_PATH, find_opa().resolve()]
    for path in sources:
        if path.is_file():
            digest.update(str(path).encode() + b"\0" + path.read_bytes())
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "datavisa"
    target = folder / f"bundle-{digest.hexdigest()[:24]}.tar.gz"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = build(policy_dir, bundle_dir, folder / f".{target.name}.{os.getpid()}", rev)
        partial.replace(target)  # atomic: a concurrent command never sees half a bundle
    return target


# What a sidecar OPA is asked: the access decision, and the decision-log mask its own
# decision logger applies (docs/deploy.md). The sidecar bundle holds what these depend on.
SIDECAR_QUERIES = (
    "data.datavisa.access.decision",
    "data.datavisa.gateway.answer",  # the gateway plugin's (tools/opa/gateway)
    "data.system.log.mask",
)


def sidecar(tarball: Path) -> bytes:
    """The policy bundle for sidecar OPAs: every file of the bundle `tarball` as it is
    (data, manifest, so its revision) except the modules that none of `SIDECAR_QUERIES`
    depends on. OPA activates each new grants bundle on a fresh compiler, parsing and
    compiling every module it holds again (bundle.Activate in OPA's v1/bundle/store.go),
    so a sidecar holding three modules rather than all of them applies a grant change
    several times faster, and answers those queries as the whole bundle does. A signed
    bundle is returned whole: its signatures cover every file."""
    out = io.BytesIO()
    with tarfile.open(tarball) as source:
        members = source.getmembers()
        if any(m.name.lstrip("/") == ".signatures.json" for m in members):
            return Path(tarball).read_bytes()
        needed = _modules_needed(tarball, "; ".join(SIDECAR_QUERIES))
        with (
            gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w") as slim,
        ):
            for member in members:
                if member.isfile() and (
                    not member.name.endswith(".rego") or "/" + member.name.lstrip("/") in needed
                ):
                    slim.addfile(member, source.extractfile(member))
    return out.getvalue()


def _modules_needed(tarball: Path, query: str) -> set[str]:
    """The modules (paths inside the bundle, from /) holding a rule that `query` depends
    on: those whose package is a prefix of a virtual document `opa deps` names, by the
    packages `opa inspect` finds in each file."""

    def opa(*args: str) -> dict[str, Any]:
        try:
            done = subprocess.run(
                [str(find_opa()), *args, "--format", "json"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:  # serve then hands sidecars the whole bundle
            raise DataVisaError(f"opa {args[0]} did not finish in {e.timeout:.0f} s") from None
        if done.returncode != 0:
            raise DataVisaError(f"opa {args[0]} failed:\n{done.stderr.strip()}")
        return json.loads(done.stdout)

    deps = opa("deps", "--bundle", str(tarball), query)
    virtual = {
        ".".join(str(part["value"]) for part in ref if part["type"] in ("var", "string"))
        for ref in deps.get("virtual") or []
    }
    namespaces = opa("inspect", str(tarball)).get("namespaces") or {}
    return {
        "/" + file.lstrip("/")
        for namespace, files in namespaces.items()
        if any(ref == namespace or ref.startswith(namespace + ".") for ref in virtual)
        for file in files
        if file.endswith(".rego")
    }

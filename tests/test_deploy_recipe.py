"""The container recipe (deploy/Dockerfile) and the Kubernetes manifests (deploy/kubernetes),
checked without a container runtime or a cluster: the manifests against the Kubernetes API's
JSON schemas with kubeconform (built by `make setup`), the facts of the Dockerfile that can be
read from it, and both against the commands and configuration they start.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from datavisa.cli.fleet import sidecar_config
from datavisa.cli.main import cli
from datavisa.engine.api import config as serve_config
from datavisa.engine.policy.process import pinned_version

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest and the newest release whose schemas kubernetes-validate carries that a cluster
# of today may run.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
PLACEHOLDER = "REPLACE-ME"


# -- the manifests against the schemas ------------------------------------------------------


def _kubeconform() -> Path:
    built = ROOT / ".tools" / "bin" / "kubeconform"
    if built.is_file():
        return built
    if found := shutil.which("kubeconform"):
        return Path(found)
    if shutil.which("go"):  # make setup would have built it: not a reason to skip
        pytest.fail(f"{built} is missing: run make setup, which builds it")
    pytest.skip("no kubeconform and no Go to build it with (make setup builds it)")


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubernetes-validate's strict schemas of KUBERNETES_VERSIONS, laid out as kubeconform
    reads them. They point at their shared definitions as `/api/_definitions.json`, which
    only a registry resolves; here that becomes the file beside them."""
    shipped = Path(str(resources.files("kubernetes_validate") / "kubernetes-json-schema"))
    out = tmp_path_factory.mktemp("kubernetes-json-schema")
    for version in KUBERNETES_VERSIONS:
        source = shipped / f"v{version}-local-strict"
        assert source.is_dir(), f"kubernetes-validate carries no schemas of {version}: upgrade it"
        target = out / source.name
        target.mkdir()
        definitions = (target / "_definitions.json").as_uri()
        for schema in source.glob("*.json"):
            text = schema.read_text().replace('"/api/_definitions.json#', f'"{definitions}#')
            (target / schema.name).write_text(text)
    return out


def _validate(schemas: Path, version: str, *paths: Path) -> tuple[int, dict[str, Any]]:
    location = f"{schemas}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/"
    location += "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    done = subprocess.run(
        [str(_kubeconform()), "-strict", "-summary", "-verbose", "-output", "json",
         "-kubernetes-version", version, "-schema-location", location, *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifests_are_valid_kubernetes_objects(schemas, version):
    code, report = _validate(schemas, version, MANIFESTS)
    assert code == 0, json.dumps(report["resources"], indent=1)
    kinds = {(r["kind"], r["name"]) for r in report["resources"]}
    assert {("StatefulSet", "datavisa"), ("Deployment", "payments-api")} <= kinds
    assert report["summary"] == {"valid": len(_objects()), "invalid": 0, "errors": 0,
                                 "skipped": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "says"),
    [
        # a misspelt field: strict schemas refuse what the API server would drop silently
        (lambda s: s.replace("readinessProbe:", "readinesProbe:", 1), "readinesProbe"),
        (lambda s: s.replace("replicas: 2", "replicas: two", 1), "replicas"),
        (lambda s: s.replace("kind: StatefulSet", "kind: StatefullSet", 1), "StatefullSet"),
    ],
    ids=["unknown-field", "wrong-type", "unknown-kind"],
)
def test_an_invalid_manifest_fails_the_validation(schemas, tmp_path, change, says):
    text = (MANIFESTS / "engine.yaml").read_text()
    broken = tmp_path / "engine.yaml"
    broken.write_text(change(text))
    assert broken.read_text() != text
    code, report = _validate(schemas, KUBERNETES_VERSIONS[-1], broken)
    assert code != 0
    failed = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert failed and says in failed[0]["msg"], failed


# -- the manifests against what they run ----------------------------------------------------


def _objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _object(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in _objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _containers(kind: str, name: str) -> dict[str, dict[str, Any]]:
    pod = _object(kind, name)["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def _engine_config() -> serve_config.ServeConfig:
    text = _object("ConfigMap", "datavisa-config")["data"]["datavisa.yaml"]
    return serve_config.from_dict(yaml.safe_load(text), base=ROOT, origin="datavisa-config")


def test_every_pod_runs_as_a_user_without_privileges():
    for kind, name in (("StatefulSet", "datavisa"), ("Deployment", "payments-api")):
        pod = _object(kind, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]


def test_the_engine_serves_its_config_with_probes_on_health_and_secrets_from_the_secret():
    (engine,) = _containers("StatefulSet", "datavisa").values()
    command, options = _resolve(engine["args"])
    assert command.name == "serve"
    config_mount = "/etc/datavisa"
    assert [m for m in engine["volumeMounts"] if m["mountPath"] == config_mount]
    assert Path(options["config_path"]) == Path(config_mount, "datavisa.yaml")
    settings = _engine_config()  # what serve reads there, checked as serve checks it
    port = settings.host_port[1]
    assert settings.host_port[0] == "0.0.0.0" and engine["ports"][0]["containerPort"] == port
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert engine[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    secret = _object("Secret", "datavisa-engine")["stringData"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in engine["env"]}
    assert set(env) == {"DATAVISA_DB", "DATAVISA_LOG_KEY"}
    for ref in env.values():
        assert ref["name"] == "datavisa-engine" and ref["key"] in secret
    assert secret[env["DATAVISA_DB"]["key"]].startswith("postgresql://")


def test_the_sidecar_runs_the_config_opa_config_prints_and_is_in_the_fleet():
    sidecar = _containers("Deployment", "payments-api")["opa"]
    config = yaml.safe_load(_object("Secret", "payments-opa-config")["stringData"]["config.yaml"])
    name = config["labels"]["datavisa_opa"]
    server = config["services"]["datavisa"]["url"].removesuffix("/v1")
    service = _object("Service", "datavisa")
    assert server == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert config == sidecar_config(server, name, PLACEHOLDER, _engine_config().fleet.long_poll_s)
    assert name in _engine_config().fleet.opas
    args = dict(a.removeprefix("--").split("=", 1) for a in sidecar["args"] if "=" in a)
    assert sidecar["command"] == ["opa"] and sidecar["args"][:2] == ["run", "--server"]
    assert args["addr"].startswith("127.0.0.1:")  # only the service beside it asks it
    mount = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}["opa-config"]
    assert Path(args["config-file"]).parent == Path(mount)
    port = args["diagnostic-addr"].rsplit(":", 1)[1]
    assert sidecar["ports"] == [{"name": "diagnostic", "containerPort": int(port)}]
    assert sidecar["readinessProbe"]["httpGet"] == {
        "path": "/health?bundles=true",
        "port": "diagnostic",
    }
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/health"


def test_both_containers_run_the_image_the_dockerfile_builds():
    image = {c["image"] for c in _containers("StatefulSet", "datavisa").values()}
    image |= {_containers("Deployment", "payments-api")["opa"]["image"]}
    version = metadata.version("datavisa")  # pyproject.toml's, as `datavisa --version` says
    assert image == {f"datavisa:{version}"}
    assert f"-t datavisa:{version} ." in DOCKERFILE.read_text()


# -- the Dockerfile, read ---------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]


def _stages() -> list[tuple[str, str | None, list[tuple[str, str]]]]:
    """(base image, stage name, its instructions) of each stage, in order."""
    stages: list[tuple[str, str | None, list[tuple[str, str]]]] = []
    for word, args in _instructions():
        if word == "FROM":
            image, _, name = args.partition(" AS ")
            stages.append((image.strip(), name.strip() or None, []))
        else:
            stages[-1][2].append((word, args))
    return stages


def test_the_dockerfile_builds_opa_then_the_wheel_then_an_image_of_both():
    stages = _stages()
    assert [name for _, name, _ in stages] == ["opa", "wheel", None]
    final = stages[-1][2]
    copied = [args for word, args in final if word == "COPY" and args.startswith("--from=")]
    assert any(a.startswith("--from=opa ") and a.endswith(" /usr/local/bin/opa") for a in copied)
    assert any(a.startswith("--from=wheel ") for a in copied)
    installs = " ".join(args for word, args in final if word == "RUN")
    assert "pip install" in installs and ".whl" in installs
    assert any(w == "RUN" and "python -m build" in a for w, a in stages[1][2])


def test_the_opa_stage_builds_the_pin_of_tools_opa_with_a_go_new_enough():
    image, _, steps = _stages()[0]
    assert ("RUN", "tools/build-opa.sh && .tools/bin/opa version") in steps
    assert ("COPY", "tools/opa/ tools/opa/") in steps
    # No second pin: the only OPA version the recipe may name is the one go.mod pins.
    named = set(re.findall(r"\bv?1\.2\d\.\d+\b", DOCKERFILE.read_text()))
    assert named <= {pinned_version(), pinned_version().lstrip("v")}
    go_line = re.search(r"^go (\d+)\.(\d+)", (ROOT / "tools/opa/go.mod").read_text(), re.M)
    tag = re.fullmatch(r"golang:(\d+)\.(\d+)(\.\d+)?(-\w+)?", image)
    assert go_line and tag, image
    assert tuple(map(int, tag.groups()[:2])) >= tuple(map(int, go_line.groups()))


def test_the_image_runs_as_a_user_of_its_own():
    final = _stages()[-1][2]
    users = [args for word, args in final if word == "USER"]
    assert users, "the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(w == "RUN" and f"--uid {user}" in a for w, a in final)


def test_the_entry_point_is_datavisa_serve_with_the_config_the_image_carries():
    final = dict((w, a) for w, a in _stages()[-1][2] if w in ("ENTRYPOINT", "CMD"))
    argv = json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])
    assert argv[0] == "datavisa"
    command, options = _resolve(argv[1:])
    assert command.name == "serve"
    image_config = options["config_path"]
    (source,) = [
        ROOT / args.split()[0]
        for word, args in _stages()[-1][2]
        if word == "COPY" and args.split()[-1] == str(image_config)
    ]
    settings = serve_config.load(source)  # the image's config, checked as serve checks it
    host, port = settings.host_port
    assert host == "0.0.0.0"
    assert f"EXPOSE {port}" in DOCKERFILE.read_text()
    volume = [json.loads(a) for w, a in _stages()[-1][2] if w == "VOLUME"]
    env = " ".join(a for w, a in _stages()[-1][2] if w == "ENV")
    assert volume == [["/var/lib/datavisa"]] and "DATAVISA_DB=/var/lib/datavisa/" in env
    (check,) = [a for w, a in _stages()[-1][2] if w == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/health" in check


def test_every_file_the_dockerfile_copies_is_in_the_build_context():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for word, args in _instructions()
        if word == "COPY" and not args.startswith("--from=")
        for src in shlex.split(args)[:-1]
    ]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the checkout"
        assert src.rstrip("/").split("/")[0] not in ignored, f"COPY {src}: .dockerignore drops it"
    # The wheel stage copies everything pyproject.toml builds from.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs = {d.split("/")[0] for d in setuptools["package-dir"].values()}
    assert {s.rstrip("/") for s in sources} >= package_dirs | {"pyproject.toml", "README.md"}


def _resolve(args: list[str]) -> tuple[click.Command, dict[str, Any]]:
    """The subcommand `datavisa ARGS` would run and its options as given, without running
    it: an unknown command or option fails here as it would there. Values are not
    converted, since a path they name is the image's, not this machine's."""
    name, *rest = args
    with cli.make_context("datavisa", [], resilient_parsing=True) as top:
        command = cli.get_command(top, name)
        assert command is not None, f"datavisa has no command {name}"
        with command.make_context(name, [], parent=top, resilient_parsing=True) as ctx:
            options, extra, _order = command.make_parser(ctx).parse_args(list(rest))
    assert not extra, f"datavisa {name} takes no arguments {extra}"
    return command, options

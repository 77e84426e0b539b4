"""Running OPA: finding the pinned binary (or building it), and starting an OPA server of
the engine's own.

The binary is $DATAVISA_OPA, a checkout's own build (`make setup`), the one `datavisa opa
install` built from the pinned Go module, or an `opa` of the pinned minor release on PATH.
`OpaProcess` serves one bundle on a free loopback port.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.errors import DataVisaError
from ..paths import AUTHZ_PACKAGE, AUTHZ_POLICY, CHECKOUT_BIN, OPA_BUILD, installed_opa
from .opa import OpaClient

OPA_MODULE = "github.com/open-policy-agent/opa"
PINNED_SERIES = "1.22"  # the OPA minor release DataVisa is built and tested against
NO_OPA = (
    f"no OPA v{PINNED_SERIES}.x found: put one on PATH, set DATAVISA_OPA to one, or run "
    f"`datavisa opa install` to build it from its Go module (needs Go)"
)


def find_opa() -> Path:
    """The OPA binary to use: $DATAVISA_OPA, a checkout's build, the one `datavisa opa
    install` built, or `opa` of the pinned series on PATH."""
    if env := os.environ.get("DATAVISA_OPA"):
        path = Path(env)
        if not path.is_file():
            raise DataVisaError(f"DATAVISA_OPA={env} is not a file")
        return path
    for built in (CHECKOUT_BIN / "opa", installed_opa()):
        if built.is_file():
            return built
    on_path = shutil.which("opa")
    if on_path and opa_version(Path(on_path)).startswith(PINNED_SERIES + "."):
        return Path(on_path)
    raise DataVisaError(NO_OPA)


def pinned_opa() -> tuple[Path, str]:
    """The OPA binary to use and its version, refused unless of the pinned series."""
    binary = find_opa()
    version = opa_version(binary)
    if not version.startswith(PINNED_SERIES + "."):
        raise DataVisaError(
            f"{binary} is OPA {version}; DataVisa is built and tested against "
            f"v{PINNED_SERIES}.x ({pinned_version()}): `datavisa opa install` builds it"
        )
    return binary, version


def pinned_version() -> str:
    """The OPA release the shipped Go module pins, such as `v1.22.3`."""
    for line in (OPA_BUILD / "go.mod").read_text().splitlines():
        words = line.split()
        if len(words) == 3 and words[:2] == ["require", OPA_MODULE]:
            return words[2]
    raise DataVisaError(f"{OPA_BUILD / 'go.mod'} pins no {OPA_MODULE}")


def install_opa(dest: Path, say: Callable[[str], None] = lambda line: None) -> Path:
    """Build the pinned OPA from its Go module (the shipped go.mod, go.sum, main.go and the
    gateway plugin's package, every module checked against go.sum) with this machine's
    Go, to `dest`."""
    go = shutil.which("go")
    if go is None:
        raise DataVisaError(
            "building OPA needs Go 1.26 or newer on PATH (Debian: apt-get install golang-go); "
            f"or put an opa v{PINNED_SERIES}.x on PATH, or set DATAVISA_OPA to one"
        )
    dest = dest.expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    say(f"building OPA {pinned_version()} from its Go module with {go} (a few minutes cold)...")
    with tempfile.TemporaryDirectory(prefix="datavisa-opa-") as work:
        source = Path(work, "opa")
        source.mkdir()
        (source / "gateway").mkdir()
        shipped = ["go.mod", "go.sum", "main.go"] + [
            f"gateway/{p.name}" for p in (OPA_BUILD / "gateway").glob("*.go")
        ]
        for name in shipped:  # the install may be read-only
            shutil.copyfile(OPA_BUILD / name, source / name)
        partial = dest.with_name(dest.name + ".partial")
        built = subprocess.run(
            [go, "build", "-trimpath", "-o", str(partial), "."],
            cwd=source, capture_output=True, text=True,
            env={**os.environ, "GOFLAGS": "-buildvcs=false"},
        )  # fmt: skip
        if built.returncode != 0:
            partial.unlink(missing_ok=True)
            raise DataVisaError(f"go build of OPA failed:\n{built.stderr.strip()[-2000:]}")
        partial.replace(dest)
    say(f"OPA {opa_version(dest)} at {dest}")
    return dest


def opa_version(binary: Path) -> str:
    """The version an OPA binary reports, such as `1.22.3`."""
    try:
        out = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise DataVisaError(f"cannot run {binary} version: {e}") from e
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise DataVisaError(f"{binary} version printed no version")


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """End `proc`: SIGTERM and up to `grace_s` for it to exit (at once with 0), then
    SIGKILL; returns once it is gone. A process already ended is left as it is."""
    if proc.poll() is not None:
        return
    if grace_s > 0:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Every OPA this process runs is started from this one thread, which lives as long as the
# process: Linux's parent-death signal fires when the *thread* that forked a child ends,
# so a child started from a short-lived thread would die with that thread instead.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opa-spawner")


def spawn(args: list[str], **popen: Any) -> subprocess.Popen:
    """Popen(args) as a child that cannot outlive this process: on Linux it gets SIGKILL
    when this process dies, however it dies (kill -9 included), so no OPA is left
    answering on its port with the grants it last had. Elsewhere, a plain Popen."""
    if sys.platform.startswith("linux"):
        popen["preexec_fn"] = _dies_with(os.getpid())
    return _SPAWNER.submit(subprocess.Popen, args, **popen).result()


def _dies_with(parent: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)

    def in_the_child() -> None:  # between fork and exec: no locks, no allocation to speak of
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return in_the_child


@dataclass(frozen=True)
class DecisionUpload:
    """Where an OPA sends the decision-log events of the queries services make of it: a
    DataVisa server's API (`url`, such as http://127.0.0.1:8181/v1), with a service token."""

    url: str
    token: str
    delay_s: tuple[int, int] = (1, 2)  # OPA's min and max delay between uploads

    def config(self) -> dict[str, Any]:
        """The OPA configuration that does it (OPA's decision-log plugin, gzip batches)."""
        low, high = self.delay_s
        return {
            "services": {
                "datavisa": {"url": self.url, "credentials": {"bearer": {"token": self.token}}}
            },
            "decision_logs": {
                "service": "datavisa",
                "reporting": {"min_delay_seconds": low, "max_delay_seconds": high},
            },
        }


@dataclass
class OpaProcess:
    """An OPA server this engine starts on a free loopback port, serving one bundle.

    OPA answers its engine only: started with token authentication and the engine's API
    authorization (rego/system/authz), it takes a fresh random secret made at each start
    (`token`; `client()` bears it) for anything, and serves anyone else an access decision
    and /health, nothing more. The secret lives in memory and in files in a folder only
    this user may enter (`token_file` holds it alone), never on OPA's command line.

    With `verification_key` (a PEM public key), OPA verifies the bundle's signature at load
    and refuses it when the signature is missing or does not verify; start() then fails.
    With `upload`, the decisions services ask this OPA directly are uploaded to the server
    named there, so they land in its decision log too; without, OPA logs them to its console
    (which only gives every answer a decision id).
    """

    bundle: Path
    binary: Path = field(default_factory=find_opa)
    startup_timeout: float = 20.0
    verification_key: Path | None = None
    upload: DecisionUpload | None = None
    url: str = ""
    token: str = field(default="", repr=False)
    token_file: Path | None = None
    _proc: subprocess.Popen | None = None
    _log: Any = None
    _private: Any = None

    def start(self) -> OpaProcess:
        verification = []
        if self.verification_key is not None:
            if not Path(self.verification_key).is_file():
                raise DataVisaError(f"verification key {self.verification_key} is not a file")
            verification = ["--verification-key", str(self.verification_key)]
        if not Path(self.bundle).exists():
            raise DataVisaError(f"bundle {self.bundle} does not exist")
        if not AUTHZ_POLICY.is_file():
            raise DataVisaError(
                f"{AUTHZ_POLICY} is missing: it says who may call the OPA the engine runs "
                "(restore it from the DataVisa sources)"
            )
        # mkdtemp makes the folder 0700: the secrets in it are this user's alone.
        self._private = tempfile.TemporaryDirectory(prefix="datavisa-opa-")
        private = Path(self._private.name)
        self.token = secrets.token_urlsafe(32)
        self.token_file = _write_private(private / "token", self.token)
        config = _write_private(private / "opa.json", json.dumps(self._config(private)))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # OPA's own messages, kept to explain a failed start; closed in stop().
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self._proc = spawn(
            [
                str(self.binary),
                "run",
                "--server",
                "--addr",
                f"127.0.0.1:{port}",
                "--log-level",
                "error",
                "--authentication=token",
                "--authorization=basic",
                # Decision logging gives every answer a decision_id the engine records; the
                # engine records its own queries itself, so OPA drops those events rather
                # than write them out (or upload them) a second time.
                "--config-file",
                str(config),
                "--set",
                "decision_logs.drop_decision=/datavisa/logged/recorded_by_engine",
                *verification,
                "--bundle",
                str(self.bundle),
            ],
            stdout=self._log,  # where OPA prints why its command line is refused
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        client = self.client(timeout=0.5)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while not client.ready():
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self._log.seek(0)
                    detail = self._log.read().strip()[-2000:]
                    self.stop()
                    raise DataVisaError(f"OPA did not start on {self.url}: {detail or 'timeout'}")
                time.sleep(0.02)
        finally:
            client.close()
        return self

    def _config(self, private: Path) -> dict[str, Any]:
        """OPA's configuration: the API authorization as a bundle of its own, read from a
        folder in `private` (a bundle named in the configuration, not on the command line,
        so that --verification-key asks a signature of the policy bundle alone: the engine
        cannot sign one, and needs not, for a folder only its user may write); and where the
        decision log goes."""
        authz = private / "authz"
        package = authz / AUTHZ_PACKAGE
        package.mkdir(parents=True)
        (authz / ".manifest").write_text(json.dumps({"roots": [AUTHZ_PACKAGE.as_posix()]}))
        shutil.copyfile(AUTHZ_POLICY, package / AUTHZ_POLICY.name)
        _write_private(package / "data.json", json.dumps({"engine_token": self.token}))
        logs = self.upload.config() if self.upload else {"decision_logs": {"console": True}}
        return {"bundles": {"datavisa-authz": {"resource": authz.as_uri()}}, **logs}

    def client(self, timeout: float = 2.0) -> OpaClient:
        """A client of this OPA, bearing the engine's secret (call after start)."""
        return OpaClient(self.url, timeout=timeout, token=self.token)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop OPA: SIGTERM, on which it uploads the decisions it holds, then SIGKILL after
        `grace_s` (at once with 0). Removes its private folder; leaves no process.

        A stopped (SIGSTOP) process acts on SIGTERM only once continued, and is never
        continued here: it would answer the checks queued in it, by grants it may no
        longer hold. SIGKILL ends it where it stands.
        """
        if self._proc is not None:
            stop_process(self._proc, grace_s)
        self._proc = None
        self.token, self.token_file = "", None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._private is not None:
            self._private.cleanup()
            self._private = None

    def __enter__(self) -> OpaProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> Path:
    """Write `text` to a new file only this user may read; return its path."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path

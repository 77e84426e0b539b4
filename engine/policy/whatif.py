"""What-if: a decision asked of the policy with the clock set, outside any server.

`evaluate` runs the pinned OPA once (`opa eval`) on the bundle built from the given
sources, with the given live grants as `data.grants` and OPA's clock (`time.now_ns`) set to
the instant asked about, so "what would this decide on 2032-01-01?" is answered by the
very rules a server runs. Nothing is recorded and nothing is changed.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..model.decision import Decision
from ..model.errors import DataVisaError
from . import bundle
from .decide import (
    ACCESS,
    APPROVAL,
    BREAKGLASS,
    EXTENSION,
    LIFECYCLE,
    REQUEST,
    TRANSFER,
    TRANSFER_CHECK,
    TRANSFER_REQUEST,
)
from .process import find_opa

KINDS = {
    "request": REQUEST,
    "access": ACCESS,
    "approval": APPROVAL,
    "transfer": TRANSFER,
    "extension": EXTENSION,
    "breakglass": BREAKGLASS,
    "lifecycle": LIFECYCLE,
    "transfer_request": TRANSFER_REQUEST,
    "transfer_check": TRANSFER_CHECK,
}


def evaluate(
    kind: str,
    input: dict[str, Any],
    *,
    at: float | None = None,
    grants: dict[str, dict[str, Any]] | None = None,
    policy_dir: Path,
    bundle_dir: Path,
) -> Decision:
    """The `kind` decision for `input`, as policy answers it at epoch second `at` (now
    when None), given `grants` ({subject: {grant id: grant}}, as a server holds them)."""
    return evaluate_many(
        kind, [input], at=at, grants=grants, policy_dir=policy_dir, bundle_dir=bundle_dir
    )[0]


def evaluate_many(
    kind: str,
    inputs: list[dict[str, Any]],
    *,
    at: float | None = None,
    grants: dict[str, dict[str, Any]] | None = None,
    policy_dir: Path,
    bundle_dir: Path,
) -> list[Decision]:
    """`evaluate` for several inputs in one run of OPA, in their order."""
    if kind not in KINDS:
        raise DataVisaError(f"no decision {kind!r}: one of {', '.join(KINDS)}")
    if not inputs:
        return []
    decision = "data." + KINDS[kind].replace("/", ".")
    clock = f" with time.now_ns as {int(at * 1e9)}" if at is not None else ""
    query = f"[d | some asked in input.batch; d := {decision} with input as asked{clock}]"
    tarball = bundle.cached_build(policy_dir, bundle_dir, bundle.revision(policy_dir, bundle_dir))
    with tempfile.TemporaryDirectory(prefix="datavisa-whatif-") as tmp:
        data, asked = Path(tmp) / "grants.json", Path(tmp) / "input.json"
        data.write_text(json.dumps({"grants": grants or {}}))
        asked.write_text(json.dumps({"batch": inputs}))
        done = subprocess.run(
            [str(find_opa()), "eval", "--format", "json", "--bundle", str(tarball),
             "--data", str(data), "--input", str(asked), query],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    if done.returncode != 0:
        raise DataVisaError(f"OPA could not evaluate {decision}: {done.stderr.strip()[-500:]}")
    results = json.loads(done.stdout).get("result") or []
    answers = results[0]["expressions"][0]["value"] if results else []
    if len(answers) != len(inputs) or not all(_is_decision(v) for v in answers):
        raise DataVisaError(
            f"the policy gives no {kind} decision for some input (is a field missing?)"
        )
    return [Decision(v["allow"], v.get("reasons", []), v) for v in answers]


def _is_decision(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("allow"), bool)

"""Schemathesis drives every operation in /openapi.json with generated input: no 5xx.

Valid and invalid input both, for every operation. Bounded twice: a few examples per
operation and mode, and a wall-clock budget after which no more requests are sent.
Only 127.0.0.1 is reached.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from live_server import served_store
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from datavisa.engine.policy.process import OpaProcess

MAX_EXAMPLES = 20  # per operation and mode
BUDGET_S = 100.0


@pytest.fixture
def fuzzed(tmp_path, opa: OpaProcess) -> Iterator[tuple[str, str]]:
    """A server on a fresh database, and a service token (it may check any subject)."""
    with served_store(tmp_path / "datavisa.db", opa, "fuzz", "alice", "service") as served:
        yield served


def test_no_generated_input_makes_the_server_fail(fuzzed):
    url, token = fuzzed
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    deadline = time.monotonic() + BUDGET_S
    failures, sent = [], 0

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            def call(case):
                nonlocal sent
                if time.monotonic() > deadline:
                    return
                sent += 1
                case.call_and_validate(base_url=url, headers=headers, checks=[not_a_server_error])

            try:
                call()
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
            except Exception as e:  # collect them all: one report names every failing operation
                failures.append(f"{operation.label} ({mode.value}): {e}")

    assert not failures, "\n\n".join(failures)
    assert sent > 100  # the run reached the server, not only the generator

"""test_schemathesis's run for the roles people hold (user, admin) and the directory's
(scim): a file of its own so the suite's two processes share the fuzzing."""

from __future__ import annotations

import pytest
from test_schemathesis import HERE, SUBJECTS, contract

from datavisa.engine.policy.process import OpaProcess


@pytest.mark.parametrize("role", sorted(set(SUBJECTS) - set(HERE)))
def test_every_operation_keeps_its_contract_for_every_role(tmp_path, opa: OpaProcess, role):
    contract(tmp_path, opa, role)

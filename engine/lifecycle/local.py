"""The embedded default: a SQLite file, the shipped bundle, and an OPA process of our own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..ledger.decision_log import DecisionLog, load_key
from ..model.errors import DataVisaError
from ..paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from ..policy import bundle
from ..policy.opa import OpaClient
from ..policy.process import OpaProcess
from ..store import open_store
from .engine import Engine
from .grants import SinkUnavailable


@contextmanager
def local_engine(
    db_path: Path | str,
    opa_url: str | None = None,
    policy_dir: Path = POLICY_DIR,
    bundle_dir: Path = DEFAULT_BUNDLE_DIR,
    policy: bool = True,
    opa_token: str | None = None,
) -> Iterator[Engine]:
    """An engine on `db_path`, asking the OPA at `opa_url` (with `opa_token` as its bearer
    credential, if it wants one) or one started for the call.

    With `policy=False` no OPA is started: enough for reading records, and any decision
    asked for fails closed.
    """
    if opa_token and not opa_url:
        raise DataVisaError(
            "an OPA token is the credential for an OPA given with --opa-url; "
            "the OPA started for a command makes its own"
        )
    store = open_store(db_path)
    log = DecisionLog(store, load_key(db_path))
    try:
        if not policy:
            yield Engine(store, None, revision=bundle.revision(policy_dir, bundle_dir), log=log)
            return
        if opa_url:
            client = OpaClient(opa_url, token=opa_token)
            engine = Engine(store, client, revision="external", log=log)
            with contextlib.suppress(SinkUnavailable):  # decisions then fail closed
                engine.grants.sync()
            yield engine
            return
        rev = bundle.revision(policy_dir, bundle_dir)
        with OpaProcess(bundle.cached_build(policy_dir, bundle_dir, rev)) as opa:
            engine = Engine(store, opa.client(), revision=rev, log=log)
            engine.grants.sync()
            yield engine
    finally:
        store.close()

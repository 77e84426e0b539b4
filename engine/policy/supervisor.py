"""Keeping OPA answering for a long-running engine.

The supervisor probes OPA's health a few times a second. When OPA stops answering it marks
the grants in OPA as stale; an OPA it started itself (the embedded default) is killed
(SIGKILL, which a hung or stopped process obeys too) and restarted with backoff on a fresh
loopback port, with a fresh secret, and the engine's shared client is pointed at it.
Whenever OPA answers again, every live grant is pushed back before the supervisor calls
itself in sync, since an OPA that restarted has lost them. Until then decisions fail
closed and `in_sync` is false, which turns the server's /health unready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ..model.errors import DataVisaError
from .opa import OpaClient, OpaUnavailable
from .process import DecisionUpload, OpaProcess

log = logging.getLogger("datavisa.supervisor")

PROBE_EVERY_S = 0.25
PROBE_TIMEOUT_S = 0.5
FAILURES_BEFORE_RESTART = 2  # one slow answer is not a dead OPA
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 10.0


class OpaSupervisor:
    """Watches the OPA behind `client`; with a `bundle`, runs that OPA and restarts it."""

    def __init__(
        self,
        client: OpaClient,
        resync: Callable[[], None],
        bundle: Path | None = None,
        probe_every_s: float = PROBE_EVERY_S,
        upload: DecisionUpload | None = None,
    ) -> None:
        self.client = client
        self.resync = resync
        self.bundle, self.upload = bundle, upload
        self.probe_every_s = probe_every_s
        self.restarts = 0
        self.in_sync = False
        self.process: OpaProcess | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe = OpaClient(client.url, timeout=PROBE_TIMEOUT_S, token=client.token)

    @property
    def embedded(self) -> bool:
        return self.bundle is not None

    def start(self) -> OpaSupervisor:
        """Start OPA (embedded) and push the grants; then watch from a thread of its own."""
        if self.embedded:
            self._start_process()
        self._try_resync()
        self._thread = threading.Thread(target=self._watch, name="opa-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and stop the OPA this supervisor started; leaves no process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.process is not None:
            self.process.stop()
            self.process = None
        self._probe.close()
        self.in_sync = False

    def __enter__(self) -> OpaSupervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_process(self) -> None:
        assert self.bundle is not None
        # Held before it starts, so stop() reaches a process interrupted mid-start.
        self.process = OpaProcess(self.bundle, upload=self.upload)
        self.process.start()
        self.client.point(self.process.url, self.process.token)
        log.info("OPA serving on %s", self.process.url)

    def _try_resync(self) -> None:
        try:
            self.resync()
        except (OpaUnavailable, DataVisaError) as e:
            log.warning("could not push the grants to OPA yet: %s", e)
            return
        self.in_sync = True

    def _healthy(self) -> bool:
        self._probe.follow(self.client)
        return self._probe.ready()

    def _watch(self) -> None:
        failures, backoff = 0, BACKOFF_FIRST_S
        while not self._stop.wait(self.probe_every_s):
            if self._healthy():
                failures, backoff = 0, BACKOFF_FIRST_S
                if not self.in_sync:
                    self._try_resync()
                continue
            failures += 1
            if failures < FAILURES_BEFORE_RESTART:
                continue
            if self.in_sync:
                log.warning("OPA at %s stopped answering", self.client.url)
            self.in_sync = False
            if self.embedded and not self._restart():
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _restart(self) -> bool:
        if self.process is not None:
            # Killed at once: a hung OPA let go on would answer the checks queued in it
            # by grants revoked since, and every moment waited is one more deny.
            self.process.stop(grace_s=0)
            self.process = None
        try:
            self._start_process()
        except DataVisaError as e:
            log.error("OPA restart failed: %s", e)
            return False
        self.restarts += 1
        self._try_resync()
        return True

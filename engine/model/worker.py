"""A background worker: one daemon thread running `_run` until `stop()`."""

from __future__ import annotations

import threading
from typing import Self


class Worker:
    """Subclasses define `_run`, which returns once `self._stop` is set (wait on it)."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the thread to end and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError

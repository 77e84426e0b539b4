"""Supervised grants: presence as a lease, and the timer that notices a lapsed one."""

from .presence import Supervision, SupervisionTimer

__all__ = ["Supervision", "SupervisionTimer"]

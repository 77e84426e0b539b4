"""Durations as people write them (`90s`, `15m`, `1h30m`), times as RFC 3339 UTC, and
epoch seconds as the nanoseconds OPA's clock counts in."""

import re
from datetime import UTC, datetime

from .errors import DataVisaError

_PART = re.compile(r"([0-9]+)([dhms])")  # ASCII digits: \d matches every script's
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# On the wire (the API) a duration is its parts in the order d, h, m, s, each at most once
# and of at most WIRE_DIGITS digits: the grammar the OpenAPI document states, so whatever
# it allows the server takes, and the longest it can say (WIRE_MAX_S) is a time a clock
# can still add. People at the CLI may write the parts in any order (`parse_duration`).
WIRE_DIGITS = 6
WIRE_MAX_S = (10**WIRE_DIGITS - 1) * sum(_UNIT_S.values())
_WIRE_PARTS = [f"[0-9]{{1,{WIRE_DIGITS}}}{unit}" for unit in _UNIT_S]
DURATION_PATTERN = "^(?:{})$".format(
    "|".join(
        first + "".join(f"(?:{later})?" for later in _WIRE_PARTS[i + 1 :])
        for i, first in enumerate(_WIRE_PARTS)
    )
)


def parse_duration(text: str) -> int:
    """Seconds in a duration such as `20s`, `15m`, `1h30m` or `2d`."""
    cleaned = text.strip().lower()
    parts = _PART.findall(cleaned)
    if not text.isascii() or not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise DataVisaError(
            f"invalid duration {text!r}: use a number with a unit, such as 90s, 15m, 1h30m or 2d"
        )
    units = [u for _, u in parts]
    if len(set(units)) != len(units):
        raise DataVisaError(f"invalid duration {text!r}: each unit may appear once")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """The shortest readable form: 3600 -> `1h`, 5400 -> `1h30m`, 20 -> `20s`."""
    seconds = round(seconds)
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in _UNIT_S.items():
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def parse_rfc3339(text: str) -> float:
    """An RFC 3339 time (with `Z` or an offset) as epoch seconds."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise DataVisaError(f"{text!r} is not an RFC 3339 time") from e
    if parsed.tzinfo is None:
        raise DataVisaError(f"{text!r} has no time zone; add Z for UTC")
    return parsed.timestamp()


def rfc3339(epoch_s: float) -> str:
    """An instant as RFC 3339 UTC with second precision, as on the wire."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_ns(epoch_s: float | None) -> int | None:
    """Epoch seconds as epoch nanoseconds (OPA's time.now_ns), None kept as None."""
    return None if epoch_s is None else int(epoch_s * 1e9)

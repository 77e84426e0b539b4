from __future__ import annotations

import pytest

from datavisa.engine.model.durations import format_duration, parse_duration, rfc3339
from datavisa.engine.model.errors import DataVisaError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), (" 1H ", 3600), ("0s", 0)],
)
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "1h1h", "1.5h", "-5m", "1w", "1h 30m"])
def test_parse_rejects(text):
    with pytest.raises(DataVisaError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (20, "20s"), (5400, "1h30m"), (90061, "1d1h1m1s")]
)
def test_format(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_rfc3339_is_utc_to_the_second():
    assert rfc3339(1800000000.7) == "2027-01-15T08:00:00Z"

import pytest

from durations import format_clock, format_duration, parse, parse_clock, split


def test_parse_week():
    assert parse("1w") == 604800


def test_parse_repeated_units():
    assert parse("1m1m") == 120


def test_format_max_parts():
    assert format_duration(90061, max_parts=2) == "1d1h"


def test_negative_rejected():
    with pytest.raises(ValueError):
        split(-1)
    with pytest.raises(ValueError):
        format_clock(-5)


def test_parse_clock_rejects():
    with pytest.raises(ValueError):
        parse_clock("1:60")
    with pytest.raises(ValueError):
        parse_clock("12")


def test_roundtrip():
    for s in (0, 59, 60, 3599, 3600, 86399):
        assert parse_clock(format_clock(s)) == s

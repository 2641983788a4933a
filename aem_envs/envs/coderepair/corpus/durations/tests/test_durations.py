import pytest

from durations import format_clock, format_duration, parse, parse_clock, split


def test_parse_simple():
    assert parse("90s") == 90
    assert parse("1h30m") == 5400


def test_parse_spaces_and_case():
    assert parse(" 2D 4h ") == 2 * 86400 + 4 * 3600


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        parse("5 apples")
    with pytest.raises(ValueError):
        parse("")


def test_split():
    assert split(3661) == [("h", 1), ("m", 1), ("s", 1)]


def test_format_duration():
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"


def test_format_clock():
    assert format_clock(3725) == "1:02:05"


def test_parse_clock():
    assert parse_clock("1:02:05") == 3725
    assert parse_clock("2:30") == 150

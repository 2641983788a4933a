import pytest

from numfmt import from_base, group_thousands, human_bytes, ordinal, parse_number, to_base


def test_to_base():
    assert to_base(255, 16) == "ff"
    assert to_base(5, 2) == "101"
    assert to_base(0, 7) == "0"


def test_from_base():
    assert from_base("ff", 16) == 255
    assert from_base("-101", 2) == -5


def test_invalid_digit():
    with pytest.raises(ValueError):
        from_base("12", 2)


def test_group_thousands():
    assert group_thousands(1234567) == "1,234,567"
    assert group_thousands(999) == "999"


def test_human_bytes():
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(512) == "512 B"


def test_ordinal():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21)] == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st"]


def test_parse_number():
    assert parse_number("1,234") == 1234
    assert parse_number("3.5M") == 3500000

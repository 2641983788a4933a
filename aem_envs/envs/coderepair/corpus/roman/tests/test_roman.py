import pytest

from roman import add, from_roman, is_roman, sort_numerals, subtract, to_roman


@pytest.mark.parametrize("n,s", [(1, "I"), (4, "IV"), (9, "IX"), (14, "XIV"), (40, "XL"), (90, "XC"), (400, "CD"), (1994, "MCMXCIV"), (3999, "MMMCMXCIX")])
def test_to_roman(n, s):
    assert to_roman(n) == s


def test_to_roman_range():
    with pytest.raises(ValueError):
        to_roman(0)
    with pytest.raises(ValueError):
        to_roman(4000)


def test_from_roman_basic():
    assert from_roman("mmxxiv") == 2024


def test_from_roman_subtractive():
    assert from_roman("XLIX") == 49


def test_from_roman_rejects_noncanonical():
    with pytest.raises(ValueError):
        from_roman("IIII")


def test_add():
    assert add("XIV", "VI") == "XX"

import pytest

from money import allocate, convert, format_amount, parse_amount, percent_of, round_half_even, split_evenly


def test_parse():
    assert parse_amount("$1,234.5") == 123450
    assert parse_amount("0.07") == 7
    assert parse_amount("-3") == -300


def test_parse_parentheses():
    assert parse_amount("($2.50)") == -250


def test_parse_invalid():
    with pytest.raises(ValueError):
        parse_amount("1.234")
    with pytest.raises(ValueError):
        parse_amount("abc")


def test_format():
    assert format_amount(123456789) == "$1,234,567.89"
    assert format_amount(-5) == "-$0.05"


def test_split_evenly():
    assert split_evenly(100, 3) == [34, 33, 33]


def test_allocate():
    assert allocate(100, [1, 1, 2]) == [25, 25, 50]
    assert sum(allocate(1001, [3, 7])) == 1001


def test_round_half_even():
    assert round_half_even(5, 2) == 2
    assert round_half_even(7, 2) == 4

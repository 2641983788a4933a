import pytest

from money import allocate, convert, format_amount, parse_amount, percent_of, round_half_even, split_evenly


def test_convert():
    assert convert(1000, 9, 10) == 900
    assert convert(5, 1, 2) == 2


def test_percent_of():
    assert percent_of(2000, 15) == 300
    assert percent_of(1000, (25, 10)) == 25


def test_allocate_remainder_order():
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(5, [1, 3]) == [1, 4]


def test_allocate_invalid():
    with pytest.raises(ValueError):
        allocate(10, [])
    with pytest.raises(ValueError):
        split_evenly(10, 0)


def test_format_symbol():
    assert format_amount(100, symbol="€") == "€1.00"


def test_roundtrip():
    for c in (0, 1, 99, 100, 123456, -42):
        assert parse_amount(format_amount(c)) == c


def test_round_half_even_up():
    assert round_half_even(7, 3) == 2
    assert round_half_even(8, 3) == 3

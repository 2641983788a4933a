import pytest

from datecalc import add_days, add_months, day_of_year, from_ordinal, to_ordinal, validate, weekday


def test_ordinal_origin():
    assert to_ordinal(1, 1, 1) == 1
    assert from_ordinal(1) == (1, 1, 1)


def test_ordinal_roundtrip():
    for n in (59, 60, 365, 366, 730000, 738000):
        assert to_ordinal(*from_ordinal(n)) == n


def test_invalid_day():
    with pytest.raises(ValueError):
        validate(2023, 2, 29)
    with pytest.raises(ValueError):
        day_of_year(2023, 4, 0)


def test_add_months_backwards():
    assert add_months((2024, 3, 31), -1) == (2024, 2, 29)
    assert add_months((2024, 1, 15), -13) == (2022, 12, 15)


def test_add_negative_days():
    assert add_days((2024, 3, 1), -1) == (2024, 2, 29)


def test_weekday_sunday():
    assert weekday(2023, 1, 1) == "Sunday"

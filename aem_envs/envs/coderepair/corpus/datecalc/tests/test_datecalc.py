import pytest

from datecalc import add_days, add_months, day_of_year, days_between, days_in_month, is_leap, to_ordinal, weekday


def test_leap_years():
    assert is_leap(2024)
    assert not is_leap(1900)
    assert is_leap(2000)
    assert not is_leap(2023)


def test_days_in_february():
    assert days_in_month(2024, 2) == 29
    assert days_in_month(2023, 2) == 28


def test_bad_month():
    with pytest.raises(ValueError):
        days_in_month(2024, 13)


def test_day_of_year():
    assert day_of_year(2024, 3, 1) == 61
    assert day_of_year(2023, 12, 31) == 365


def test_days_between():
    assert days_between((2024, 1, 1), (2024, 12, 31)) == 365
    assert days_between((2024, 3, 1), (2024, 2, 28)) == -2


def test_weekday():
    assert weekday(2024, 7, 4) == "Thursday"
    assert weekday(2000, 1, 1) == "Saturday"


def test_add_days_across_year():
    assert add_days((2023, 12, 30), 3) == (2024, 1, 2)


def test_add_months_clamps():
    assert add_months((2024, 1, 31), 1) == (2024, 2, 29)

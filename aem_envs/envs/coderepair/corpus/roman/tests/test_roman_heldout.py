import pytest

from roman import add, from_roman, is_roman, sort_numerals, subtract, to_roman


def test_roundtrip_all():
    for n in range(1, 4000):
        assert from_roman(to_roman(n)) == n


def test_is_roman():
    assert is_roman("MCM")
    assert not is_roman("MMMM")
    assert not is_roman("ABC")


def test_subtract():
    assert subtract("X", "I") == "IX"


def test_subtract_nonpositive():
    with pytest.raises(ValueError):
        subtract("V", "V")


def test_sort_numerals():
    assert sort_numerals(["X", "II", "V"]) == ["II", "V", "X"]
    assert sort_numerals(["X", "II", "V"], reverse=True) == ["X", "V", "II"]


def test_empty_rejected():
    with pytest.raises(ValueError):
        from_roman("  ")

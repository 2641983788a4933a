import pytest

from intervals import contains, gaps, intersect, length, merge, overlaps, subtract, total_length


def test_length():
    assert length((3, 7)) == 4


def test_bad_interval():
    with pytest.raises(ValueError):
        length((5, 1))


def test_overlaps():
    assert overlaps((0, 5), (4, 9))
    assert not overlaps((0, 5), (5, 9))


def test_contains_half_open():
    assert contains((0, 5), 0)
    assert not contains((0, 5), 5)


def test_merge():
    assert merge([(5, 8), (1, 3), (2, 4)]) == [(1, 4), (5, 8)]


def test_merge_touching():
    assert merge([(1, 3), (3, 6)]) == [(1, 6)]


def test_intersect():
    assert intersect((0, 10), (5, 15)) == (5, 10)
    assert intersect((0, 5), (5, 10)) is None


def test_subtract():
    assert subtract((0, 10), [(2, 4), (6, 7)]) == [(0, 2), (4, 6), (7, 10)]

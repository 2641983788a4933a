import pytest

from searching import bisect_left, bisect_right, closest, count, index_of, isqrt, search_rotated


def test_bisect_left():
    assert bisect_left([1, 2, 2, 2, 3], 2) == 1
    assert bisect_left([1, 2, 3], 0) == 0


def test_bisect_right():
    assert bisect_right([1, 2, 2, 2, 3], 2) == 4
    assert bisect_right([1, 2, 3], 5) == 3


def test_index_of():
    assert index_of([1, 3, 5, 7], 5) == 2
    assert index_of([1, 3, 5, 7], 4) == -1


def test_count():
    assert count([1, 1, 2, 3, 3, 3], 3) == 3


def test_search_rotated():
    a = [15, 18, 22, 3, 6, 9, 12]
    assert search_rotated(a, 3) == 3
    assert search_rotated(a, 18) == 1
    assert search_rotated(a, 7) == -1


def test_closest():
    assert closest([1, 4, 9], 6) == 4
    assert closest([1, 4, 9], 8) == 9


def test_isqrt():
    assert isqrt(15) == 3
    assert isqrt(16) == 4

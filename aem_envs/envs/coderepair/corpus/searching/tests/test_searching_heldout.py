import pytest

from searching import bisect_left, bisect_right, closest, index_of, isqrt, search_rotated


def test_bounds_args():
    assert bisect_left([0, 1, 2, 3, 4], 1, lo=2) == 2
    assert bisect_right([5, 5, 5], 5, hi=2) == 2


def test_index_of_end():
    assert index_of([1, 2], 2) == 1
    assert index_of([], 2) == -1


def test_rotated_all_positions():
    base = [2, 4, 6, 8, 10, 12]
    for k in range(len(base)):
        a = base[k:] + base[:k]
        for i, x in enumerate(a):
            assert search_rotated(a, x) == i


def test_closest_edges_and_tie():
    assert closest([3, 5], 4) == 3
    assert closest([3, 5], -10) == 3
    assert closest([3, 5], 10) == 5
    with pytest.raises(ValueError):
        closest([], 1)


def test_isqrt_small():
    assert [isqrt(n) for n in range(10)] == [0, 1, 1, 1, 2, 2, 2, 2, 2, 3]
    with pytest.raises(ValueError):
        isqrt(-1)

import pytest

from sorts import counting_sort, insertion_sort, is_sorted, merge, merge_sort, quick_sort, selection_sort

DATA = [5, 3, 9, 1, 5, 0, -2, 8]


def test_insertion():
    assert insertion_sort(DATA) == sorted(DATA)


def test_merge_sort():
    assert merge_sort(DATA) == sorted(DATA)


def test_quick_sort():
    assert quick_sort(DATA) == sorted(DATA)


def test_selection():
    assert selection_sort(DATA) == sorted(DATA)


def test_merge():
    assert merge([1, 4, 6], [2, 3, 7]) == [1, 2, 3, 4, 6, 7]


def test_is_sorted():
    assert is_sorted([1, 2, 2, 3])
    assert not is_sorted([2, 1])


def test_counting_sort():
    assert counting_sort([3, 0, 2, 3, 1], 3) == [0, 1, 2, 3, 3]
    with pytest.raises(ValueError):
        counting_sort([4], 3)

import pytest

from minheap import MinHeap, heap_sort, merge_sorted, n_smallest


def test_push_pop_order():
    h = MinHeap()
    for x in [5, 1, 4, 2, 3]:
        h.push(x)
    assert [h.pop() for _ in range(5)] == [1, 2, 3, 4, 5]


def test_peek():
    h = MinHeap([3, 1, 2])
    assert h.peek() == 1
    assert len(h) == 3


def test_empty_errors():
    with pytest.raises(IndexError):
        MinHeap().pop()
    with pytest.raises(IndexError):
        MinHeap().peek()


def test_heap_sort():
    assert heap_sort([9, 3, 7, 3, 0, -2]) == [-2, 0, 3, 3, 7, 9]


def test_heap_sort_key():
    assert heap_sort(["ccc", "a", "bb"], key=len) == ["a", "bb", "ccc"]


def test_n_smallest():
    assert n_smallest([5, 2, 8, 1, 9], 3) == [1, 2, 5]


def test_merge_sorted():
    assert merge_sorted([[1, 4, 7], [2, 5], [3, 6, 8, 9]]) == [1, 2, 3, 4, 5, 6, 7, 8, 9]

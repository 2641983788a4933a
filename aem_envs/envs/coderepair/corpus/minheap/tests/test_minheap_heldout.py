from minheap import MinHeap, heap_sort, merge_sorted, n_smallest


def test_large_random_like():
    items = [(i * 7919) % 1000 for i in range(300)]
    assert heap_sort(items) == sorted(items)


def test_n_smallest_edge():
    assert n_smallest([3, 1], 5) == [1, 3]
    assert n_smallest([3, 1], 0) == []


def test_merge_with_empty():
    assert merge_sorted([[], [1], [], [0, 2]]) == [0, 1, 2]


def test_pop_single():
    h = MinHeap([42])
    assert h.pop() == 42
    assert len(h) == 0


def test_key_descending():
    assert heap_sort([1, 3, 2], key=lambda x: -x) == [3, 2, 1]

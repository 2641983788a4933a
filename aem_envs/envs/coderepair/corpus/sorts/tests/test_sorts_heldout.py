from sorts import insertion_sort, merge_sort, quick_sort, selection_sort

PAIRS = [("b", 2), ("a", 1), ("c", 2), ("d", 1)]


def test_stable_with_key():
    expect = [("a", 1), ("d", 1), ("b", 2), ("c", 2)]
    assert insertion_sort(PAIRS, key=lambda p: p[1]) == expect
    assert merge_sort(PAIRS, key=lambda p: p[1]) == expect


def test_quick_sort_key():
    assert [p[1] for p in quick_sort(PAIRS, key=lambda p: p[1])] == [1, 1, 2, 2]


def test_does_not_mutate():
    data = [3, 1, 2]
    merge_sort(data)
    selection_sort(data)
    assert data == [3, 1, 2]


def test_edge_sizes():
    for f in (insertion_sort, merge_sort, quick_sort, selection_sort):
        assert f([]) == []
        assert f([1]) == [1]
        assert f([2, 1]) == [1, 2]


def test_reverse_input():
    data = list(range(20, 0, -1))
    for f in (insertion_sort, merge_sort, quick_sort, selection_sort):
        assert f(data) == sorted(data)

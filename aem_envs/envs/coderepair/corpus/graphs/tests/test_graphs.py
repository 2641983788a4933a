import pytest

from graphs import add_edge, bfs_order, components, degree, has_cycle, shortest_path, topological_sort


def grid():
    g = {}
    for a, b in [(1, 2), (1, 3), (2, 4), (3, 4), (4, 5)]:
        add_edge(g, a, b)
    return g


def test_add_edge_undirected():
    g = add_edge({}, "a", "b")
    assert g == {"a": ["b"], "b": ["a"]}


def test_bfs_order():
    assert bfs_order(grid(), 1) == [1, 2, 3, 4, 5]


def test_shortest_path():
    assert shortest_path(grid(), 1, 5) == [1, 2, 4, 5]
    assert shortest_path(grid(), 3, 3) == [3]


def test_topological_sort():
    g = {"shirt": ["tie"], "tie": ["jacket"], "pants": ["shoes", "jacket"], "shoes": [], "jacket": []}
    assert topological_sort(g) == ["pants", "shirt", "shoes", "tie", "jacket"]


def test_cycle():
    with pytest.raises(ValueError):
        topological_sort({"a": ["b"], "b": ["a"]})


def test_components():
    g = grid()
    add_edge(g, 8, 9)
    assert components(g) == [[1, 2, 3, 4, 5], [8, 9]]

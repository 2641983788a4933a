from graphs import add_edge, degree, has_cycle, shortest_path, topological_sort


def test_no_path():
    g = {"a": ["b"], "b": [], "c": []}
    assert shortest_path(g, "a", "c") is None


def test_directed_edge():
    g = add_edge({}, 1, 2, directed=True)
    assert g == {1: [2], 2: []}


def test_has_cycle():
    assert has_cycle({1: [2], 2: [3], 3: [1]})
    assert not has_cycle({1: [2], 2: [3], 3: []})


def test_degree():
    g = {}
    add_edge(g, 1, 2)
    add_edge(g, 1, 3)
    assert degree(g, 1) == 2
    assert degree(g, 99) == 0


def test_topo_chain():
    assert topological_sort({3: [2], 2: [1], 1: []}) == [3, 2, 1]

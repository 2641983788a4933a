from intervals import gaps, merge, subtract, total_length


def test_merge_drops_empty():
    assert merge([(2, 2), (0, 1)]) == [(0, 1)]


def test_merge_nested():
    assert merge([(0, 10), (2, 3)]) == [(0, 10)]


def test_total_length():
    assert total_length([(0, 4), (2, 6), (10, 11)]) == 7


def test_gaps():
    assert gaps([(0, 2), (5, 6), (8, 9)]) == [(2, 5), (6, 8)]


def test_subtract_all():
    assert subtract((0, 5), [(0, 5)]) == []


def test_subtract_outside():
    assert subtract((3, 6), [(0, 1), (8, 9)]) == [(3, 6)]

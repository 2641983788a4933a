import pytest

from statkit import correlation, mean, median, mode, percentile, stdev, variance, zscores


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_odd_even():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_mode_tie_first():
    assert mode([2, 1, 1, 2, 3]) == 2


def test_variance():
    assert variance([2, 4, 4, 4, 5, 5, 7, 9], sample=False) == 4
    assert variance([1, 2, 3, 4]) == pytest.approx(1.6666667)


def test_percentile():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([10, 20], 25) == 12.5


def test_correlation():
    assert correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_empty_errors():
    with pytest.raises(ValueError):
        mean([])
    with pytest.raises(ValueError):
        median([])

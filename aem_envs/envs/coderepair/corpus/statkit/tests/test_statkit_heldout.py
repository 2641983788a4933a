import pytest

from statkit import correlation, mode, percentile, stdev, variance, zscores


def test_stdev():
    assert stdev([2, 4, 4, 4, 5, 5, 7, 9], sample=False) == 2


def test_sample_variance_needs_two():
    with pytest.raises(ValueError):
        variance([5])
    assert variance([5], sample=False) == 0


def test_percentile_extremes():
    assert percentile([5, 1, 3], 0) == 1
    assert percentile([5, 1, 3], 100) == 5
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_zscores():
    z = zscores([1, 2, 3])
    assert z == pytest.approx([-1.0, 0.0, 1.0])


def test_mode_single():
    assert mode([7]) == 7
    assert mode([1, 3, 3]) == 3


def test_correlation_mismatch():
    with pytest.raises(ValueError):
        correlation([1, 2], [1])

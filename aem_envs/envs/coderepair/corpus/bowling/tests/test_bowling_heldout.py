import pytest

from bowling import count_strikes, frame_scores, score, validate


def test_tenth_frame_spare():
    assert score([0] * 18 + [7, 3, 10]) == 20


def test_incomplete_game():
    with pytest.raises(ValueError):
        score([1] * 19)


def test_example_game():
    rolls = [10, 7, 3, 9, 0, 10, 0, 8, 8, 2, 0, 6, 10, 10, 10, 8, 1]
    assert score(rolls) == 167


def test_count_strikes():
    assert count_strikes([10] * 12) == 12
    assert count_strikes([10, 3, 4] + [0] * 16) == 1


def test_too_many_rolls():
    with pytest.raises(ValueError):
        validate([0] * 18 + [10, 10, 10, 10])


def test_bad_pin_count():
    with pytest.raises(ValueError):
        validate([11])

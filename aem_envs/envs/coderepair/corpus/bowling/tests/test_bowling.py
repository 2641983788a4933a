import pytest

from bowling import count_strikes, frame_scores, is_perfect, score, validate


def test_gutter_game():
    assert score([0] * 20) == 0


def test_all_ones():
    assert score([1] * 20) == 20


def test_spare_bonus():
    assert score([5, 5, 3] + [0] * 17) == 16


def test_strike_bonus():
    assert score([10, 3, 4] + [0] * 16) == 24


def test_perfect_game():
    assert score([10] * 12) == 300
    assert is_perfect([10] * 12)


def test_frame_scores_pending():
    assert frame_scores([10, 5]) == []
    assert frame_scores([3, 4, 10, 2, 3]) == [7, 22, 27]


def test_invalid_frame():
    with pytest.raises(ValueError):
        validate([6, 5])

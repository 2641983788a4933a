import pytest

from tictactoe import best_move, minimax, moves, play, status, winner


def test_center_opening_is_draw():
    assert minimax("X...O....") == 0


def test_o_blocks():
    assert best_move("XX..O....") == 2


def test_moves():
    assert moves("XO.X.O...") == [2, 4, 6, 7, 8]


def test_play_after_win():
    with pytest.raises(ValueError):
        play("XXXOO....", 8)


def test_column_win():
    assert winner("XO.XO.X..") == "X"
    assert status("XO.XO.X..") == "X wins"


def test_o_win_score():
    assert minimax("XX.OOO.X.") == -1

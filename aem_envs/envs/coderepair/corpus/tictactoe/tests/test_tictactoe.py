import pytest

from tictactoe import best_move, check_board, minimax, moves, play, status, to_move, winner


def test_winner_row_and_diagonal():
    assert winner("XXXOO....") == "X"
    assert winner("O.XXO.X.O") == "O"
    assert winner("XOXOXOOXO") is None


def test_to_move():
    assert to_move(".........") == "X"
    assert to_move("X........") == "O"


def test_play():
    assert play(".........", 4) == "....X...."
    assert play("....X....", 0) == "O...X...."


def test_play_occupied():
    with pytest.raises(ValueError):
        play("X........", 0)


def test_status():
    assert status("XXXOO....") == "X wins"
    assert status("XOXXOOOXX") == "draw"
    assert status("X........") == "in progress"


def test_best_move_wins():
    assert best_move("XX.OO....") == 2


def test_check_board():
    with pytest.raises(ValueError):
        check_board("XX.......")

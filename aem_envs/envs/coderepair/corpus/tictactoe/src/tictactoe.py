"""Tic-tac-toe on a 9-character board string ('X', 'O' or '.'), with a perfect-play solver."""

LINES = [
    (0, 1, 2), (3, 4, 5), (6, 7, 8),
    (0, 3, 6), (1, 4, 7), (2, 5, 8),
    (0, 4, 8), (2, 4, 6),
]


def check_board(board):
    if len(board) != 9 or any(c not in "XO." for c in board):
        raise ValueError("board must be 9 characters of X, O or .")
    x, o = board.count("X"), board.count("O")
    if not (x == o or x == o + 1):
        raise ValueError("impossible piece counts")


def winner(board):
    """'X', 'O' or None."""
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return None


def to_move(board):
    return "X" if board.count("X") == board.count("O") else "O"


def moves(board):
    return [i for i, c in enumerate(board) if c == "."]


def play(board, index):
    check_board(board)
    if winner(board) is not None:
        raise ValueError("game is over")
    if not 0 <= index < 9 or board[index] != ".":
        raise ValueError(f"square {index} is not free")
    return board[:index] + to_move(board) + board[index + 1:]


def status(board):
    """'X wins', 'O wins', 'draw' or 'in progress'."""
    check_board(board)
    w = winner(board)
    if w:
        return f"{w} wins"
    if "." not in board:
        return "draw"
    return "in progress"


def minimax(board):
    """Score from X's point of view under perfect play: 1 win, 0 draw, -1 loss."""
    w = winner(board)
    if w == "X":
        return 1
    if w == "O":
        return -1
    free = moves(board)
    if not free:
        return 0
    player = to_move(board)
    scores = [minimax(board[:i] + player + board[i + 1:]) for i in free]
    return max(scores) if player == "X" else min(scores)


def best_move(board):
    """The lowest-index move that is optimal for the player to move."""
    player = to_move(board)
    best, best_score = None, None
    for i in moves(board):
        s = minimax(board[:i] + player + board[i + 1:])
        if player == "O":
            s = -s
        if best_score is None or s > best_score:
            best, best_score = i, s
    return best

"""Ten-pin bowling: validate rolls and score a game, frame by frame."""


def validate(rolls):
    """Raise ValueError for impossible roll sequences."""
    frame = 1
    i = 0
    while frame < 10 and i < len(rolls):
        first = rolls[i]
        if first < 0 or first > 10:
            raise ValueError(f"bad roll {first}")
        if first == 10:
            i += 1
        else:
            if i + 1 < len(rolls) and first + rolls[i + 1] > 10:
                raise ValueError(f"frame {frame} knocks down more than 10 pins")
            i += 2
        frame += 1
    tail = rolls[i:]
    if any(r < 0 or r > 10 for r in tail):
        raise ValueError("bad roll in last frame")
    if len(tail) > 3:
        raise ValueError("too many rolls")


def frame_scores(rolls):
    """Cumulative score after each completed frame (frames whose bonus is still pending are omitted)."""
    validate(rolls)
    scores = []
    total = 0
    i = 0
    for _ in range(10):
        if i >= len(rolls):
            break
        if rolls[i] == 10:
            bonus = rolls[i + 1:i + 3]
            if len(bonus) < 2:
                break
            total += 10 + sum(bonus)
            i += 1
        elif i + 1 < len(rolls) and rolls[i] + rolls[i + 1] == 10:
            if i + 2 >= len(rolls):
                break
            total += 10 + rolls[i + 2]
            i += 2
        else:
            if i + 1 >= len(rolls):
                break
            total += rolls[i] + rolls[i + 1]
            i += 2
        scores.append(total)
    return scores


def score(rolls):
    """Total score of a complete game."""
    frames = frame_scores(rolls)
    if len(frames) != 10:
        raise ValueError("game is not complete")
    return frames[-1]


def is_perfect(rolls):
    return score(rolls) == 300


def count_strikes(rolls):
    """Strikes in frames 1-9 plus any strikes rolled in the tenth."""
    strikes = 0
    i = 0
    frame = 1
    while i < len(rolls):
        if frame == 10:
            strikes += sum(1 for r in rolls[i:] if r == 10)
            break
        if rolls[i] == 10:
            strikes += 1
            i += 1
        else:
            i += 2
        frame += 1
    return strikes

"""Classical ciphers: Caesar, Vigenere, Atbash and rail fence."""

import string

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase


def shift_char(ch, k):
    """Shift a letter by k places keeping case; other characters pass through."""
    if ch in LOWER:
        return LOWER[(LOWER.index(ch) + k) % 26]
    if ch in UPPER:
        return UPPER[(UPPER.index(ch) + k) % 26]
    return ch


def caesar(text, k):
    return "".join(shift_char(ch, k) for ch in text)


def caesar_decrypt(text, k):
    return caesar(text, -k)


def vigenere(text, key, decrypt=False):
    """Letters of the key give the shifts; non-letters in the text do not consume key letters."""
    if not key or not key.isalpha():
        raise ValueError("key must be non-empty letters")
    shifts = [LOWER.index(c) for c in key.lower()]
    out = []
    j = 0
    for ch in text:
        if ch.isalpha() and ch.isascii():
            k = shifts[j % len(shifts)]
            out.append(shift_char(ch, -k if decrypt else k))
            j += 1
        else:
            out.append(ch)
    return "".join(out)


def atbash(text):
    out = []
    for ch in text:
        if ch in LOWER:
            out.append(LOWER[25 - LOWER.index(ch)])
        elif ch in UPPER:
            out.append(UPPER[25 - UPPER.index(ch)])
        else:
            out.append(ch)
    return "".join(out)


def rail_pattern(n, rails):
    """Rail index of each of n positions in the zig-zag."""
    if rails < 2:
        return [0] * n
    pattern = []
    rail, step = 0, 1
    for _ in range(n):
        pattern.append(rail)
        if rail == 0:
            step = 1
        elif rail == rails - 1:
            step = -1
        rail += step
    return pattern


def rail_fence(text, rails):
    pattern = rail_pattern(len(text), rails)
    return "".join(ch for r in range(max(rails, 1)) for ch, p in zip(text, pattern) if p == r)


def rail_fence_decrypt(text, rails):
    pattern = rail_pattern(len(text), rails)
    order = sorted(range(len(text)), key=lambda i: (pattern[i], i))
    out = [""] * len(text)
    for ch, i in zip(text, order):
        out[i] = ch
    return "".join(out)


def crack_caesar(text, common="e"):
    """Guess the Caesar key assuming the most frequent letter stands for ``common``."""
    counts = {}
    for ch in text.lower():
        if ch in LOWER:
            counts[ch] = counts.get(ch, 0) + 1
    if not counts:
        return 0
    top = max(sorted(counts), key=lambda c: counts[c])
    return (LOWER.index(top) - LOWER.index(common)) % 26

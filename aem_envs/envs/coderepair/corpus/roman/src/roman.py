"""Roman numeral conversion and arithmetic."""

VALUES = [
    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"),
    (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
    (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
]
SYMBOLS = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def to_roman(n):
    """Convert 1..3999 to a canonical Roman numeral."""
    if not isinstance(n, int) or n < 1 or n > 3999:
        raise ValueError("n must be an integer in 1..3999")
    out = []
    for value, symbol in VALUES:
        count, n = divmod(n, value)
        out.append(symbol * count)
    return "".join(out)


def from_roman(text):
    """Parse a Roman numeral (case-insensitive); reject non-canonical forms."""
    s = text.strip().upper()
    if not s:
        raise ValueError("empty numeral")
    total = 0
    for i, ch in enumerate(s):
        if ch not in SYMBOLS:
            raise ValueError(f"bad symbol {ch!r}")
        value = SYMBOLS[ch]
        if i + 1 < len(s) and SYMBOLS.get(s[i + 1], 0) > value:
            total -= value
        else:
            total += value
    if total < 1 or total > 3999 or to_roman(total) != s:
        raise ValueError(f"non-canonical numeral {text!r}")
    return total


def is_roman(text):
    """True when ``text`` is a canonical numeral."""
    try:
        from_roman(text)
    except ValueError:
        return False
    return True


def add(a, b):
    """Add two numerals and return a numeral."""
    return to_roman(from_roman(a) + from_roman(b))


def subtract(a, b):
    """Subtract numerals; the result must stay positive."""
    diff = from_roman(a) - from_roman(b)
    if diff <= 0:
        raise ValueError("result is not positive")
    return to_roman(diff)


def sort_numerals(items, reverse=False):
    """Sort numerals by value."""
    return sorted(items, key=from_roman, reverse=reverse)

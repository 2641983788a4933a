"""Money amounts as integer cents: parsing, formatting, allocation and currency conversion."""


def parse_amount(text):
    """'$1,234.5' -> 123450 cents; a leading '-' or parentheses mean negative."""
    s = text.strip()
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative = True
        s = s[1:-1].strip()
    if s.startswith("-"):
        negative = not negative
        s = s[1:]
    s = s.lstrip("$").replace(",", "")
    whole, _, frac = s.partition(".")
    if not whole.isdigit() and not (whole == "" and frac):
        raise ValueError(f"bad amount {text!r}")
    if len(frac) > 2 or (frac and not frac.isdigit()):
        raise ValueError(f"bad cents in {text!r}")
    cents = int(whole or "0") * 100 + int(frac.ljust(2, "0") or "0")
    return -cents if negative else cents


def format_amount(cents, symbol="$"):
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    whole, frac = divmod(cents, 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def allocate(cents, weights):
    """Split cents proportionally to weights; leftover cents go to the largest remainders."""
    if not weights or sum(weights) <= 0:
        raise ValueError("weights must have a positive sum")
    total = sum(weights)
    shares = [cents * w // total for w in weights]
    remainders = [cents * w % total for w in weights]
    leftover = cents - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        shares[i] += 1
    return shares


def split_evenly(cents, n):
    if n < 1:
        raise ValueError("n must be positive")
    return allocate(cents, [1] * n)


def round_half_even(numerator, denominator):
    """numerator / denominator rounded to the nearest integer, ties to even."""
    q, r = divmod(numerator, denominator)
    twice = 2 * r
    if twice > denominator or (twice == denominator and q % 2 == 1):
        q += 1
    return q


def convert(cents, rate_num, rate_den=1):
    """Convert at rate rate_num/rate_den with banker's rounding."""
    return round_half_even(cents * rate_num, rate_den)


def percent_of(cents, percent):
    """percent may be fractional as a (numerator, denominator) pair or an int."""
    if isinstance(percent, tuple):
        num, den = percent
    else:
        num, den = percent, 1
    return round_half_even(cents * num, 100 * den)

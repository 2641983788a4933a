"""Integer base conversion and human-friendly number formatting."""

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base(n, base):
    if not 2 <= base <= 36:
        raise ValueError("base must be in 2..36")
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    n = abs(n)
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(DIGITS[r])
    return sign + "".join(reversed(out))


def from_base(text, base):
    if not 2 <= base <= 36:
        raise ValueError("base must be in 2..36")
    s = text.strip().lower()
    sign = 1
    if s.startswith("-"):
        sign = -1
        s = s[1:]
    if not s:
        raise ValueError("no digits")
    value = 0
    for ch in s:
        d = DIGITS.find(ch)
        if d < 0 or d >= base:
            raise ValueError(f"digit {ch!r} invalid in base {base}")
        value = value * base + d
    return sign * value


def group_thousands(n, sep=","):
    """1234567 -> '1,234,567'."""
    digits = str(abs(n))
    groups = []
    while len(digits) > 3:
        groups.append(digits[-3:])
        digits = digits[:-3]
    groups.append(digits)
    text = sep.join(reversed(groups))
    return "-" + text if n < 0 else text


def human_bytes(n):
    """Binary units with one decimal: 1536 -> '1.5 KiB'; under 1024 stays in bytes."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(n)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}"
        value /= 1024


def ordinal(n):
    """1 -> '1st', 12 -> '12th', 23 -> '23rd'."""
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def parse_number(text):
    """Parse '1,234', '-5', '2k', '3.5M' into an int (k=1e3, M=1e6, G=1e9)."""
    s = text.strip().replace(",", "").replace("_", "")
    scale = {"k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9}
    mult = 1
    if s and s[-1].lower() in scale:
        mult = scale[s[-1].lower()]
        s = s[:-1]
    return int(round(float(s) * mult))

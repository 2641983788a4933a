"""Parse and format human durations such as '1h30m', '2d 4h' or '90s'."""

import re

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
ORDER = ["w", "d", "h", "m", "s"]
_TOKEN = re.compile(r"(\d+)\s*([wdhms])")


def parse(text):
    """Total seconds in a duration string; units may repeat and appear in any order."""
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    total = 0
    pos = 0
    for match in _TOKEN.finditer(s):
        between = s[pos:match.start()]
        if between.strip():
            raise ValueError(f"unexpected text {between!r}")
        total += int(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if s[pos:].strip() or pos == 0:
        raise ValueError(f"cannot parse duration {text!r}")
    return total


def split(seconds):
    """Break seconds into (unit, amount) pairs, largest unit first, zero parts omitted."""
    if seconds < 0:
        raise ValueError("negative duration")
    parts = []
    for unit in ORDER:
        amount, seconds = divmod(seconds, UNITS[unit])
        if amount:
            parts.append((unit, amount))
    return parts


def format_duration(seconds, max_parts=None):
    """Compact form such as '1h30m'; '0s' for zero. ``max_parts`` keeps the largest parts."""
    parts = split(seconds)
    if not parts:
        return "0s"
    if max_parts is not None:
        parts = parts[:max_parts]
    return "".join(f"{amount}{unit}" for unit, amount in parts)


def format_clock(seconds):
    """H:MM:SS, hours unbounded."""
    if seconds < 0:
        raise ValueError("negative duration")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def parse_clock(text):
    """Inverse of format_clock; also accepts M:SS."""
    pieces = text.strip().split(":")
    if len(pieces) < 2 or len(pieces) > 3 or not all(p.isdigit() for p in pieces):
        raise ValueError(f"bad clock {text!r}")
    values = [int(p) for p in pieces]
    if any(v >= 60 for v in values[1:]):
        raise ValueError(f"bad clock {text!r}")
    total = 0
    for v in values:
        total = total * 60 + v
    return total

"""Wall-clock times as minutes after midnight: parsing, arithmetic and scheduling helpers."""

MINUTES_PER_DAY = 24 * 60


def parse(text):
    """'09:30', '9:30 pm', '12:00 am' -> minutes after midnight."""
    s = text.strip().lower()
    suffix = None
    if s.endswith("am") or s.endswith("pm"):
        suffix = s[-2:]
        s = s[:-2].strip()
    hours_text, sep, minutes_text = s.partition(":")
    if not sep or not hours_text.isdigit() or not minutes_text.isdigit() or len(minutes_text) != 2:
        raise ValueError(f"bad time {text!r}")
    hours, minutes = int(hours_text), int(minutes_text)
    if minutes > 59:
        raise ValueError(f"bad minutes in {text!r}")
    if suffix:
        if not 1 <= hours <= 12:
            raise ValueError(f"bad hour in {text!r}")
        hours = hours % 12 + (12 if suffix == "pm" else 0)
    elif hours > 23:
        raise ValueError(f"bad hour in {text!r}")
    return hours * 60 + minutes


def format_24(minutes):
    minutes %= MINUTES_PER_DAY
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def format_12(minutes):
    minutes %= MINUTES_PER_DAY
    hours, mins = divmod(minutes, 60)
    suffix = "am" if hours < 12 else "pm"
    hours = hours % 12
    if hours == 0:
        hours = 12
    return f"{hours}:{mins:02d} {suffix}"


def add(time_text, delta_minutes):
    return format_24(parse(time_text) + delta_minutes)


def difference(start, end):
    """Minutes from start to end, wrapping past midnight."""
    return (parse(end) - parse(start)) % MINUTES_PER_DAY


def overlaps(a_start, a_end, b_start, b_end):
    """Whether two same-day meetings [start, end) overlap."""
    a0, a1, b0, b1 = parse(a_start), parse(a_end), parse(b_start), parse(b_end)
    return a0 < b1 and b0 < a1


def free_slots(busy, day_start="09:00", day_end="17:00", min_length=30):
    """Free (start, end) gaps of at least ``min_length`` minutes between busy intervals."""
    intervals = sorted((parse(s), parse(e)) for s, e in busy)
    cursor = parse(day_start)
    end_of_day = parse(day_end)
    slots = []
    for s, e in intervals:
        if s - cursor >= min_length:
            slots.append((format_24(cursor), format_24(s)))
        cursor = max(cursor, e)
    if end_of_day - cursor >= min_length:
        slots.append((format_24(cursor), format_24(end_of_day)))
    return slots

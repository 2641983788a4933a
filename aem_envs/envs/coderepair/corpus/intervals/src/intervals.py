"""Half-open integer intervals [start, end) and sets of them."""


def normalize(interval):
    start, end = interval
    if end < start:
        raise ValueError(f"interval {interval} ends before it starts")
    return (start, end)


def length(interval):
    start, end = normalize(interval)
    return end - start


def overlaps(a, b):
    """True when the intervals share at least one point (touching is not overlapping)."""
    return a[0] < b[1] and b[0] < a[1]


def contains(interval, x):
    return interval[0] <= x < interval[1]


def merge(intervals):
    """Union of intervals as a sorted list of disjoint intervals; touching ones are joined."""
    items = sorted(normalize(i) for i in intervals if i[0] != i[1])
    out = []
    for start, end in items:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def intersect(a, b):
    """Intersection of two intervals or None."""
    start = max(a[0], b[0])
    end = min(a[1], b[1])
    if start >= end:
        return None
    return (start, end)


def total_length(intervals):
    return sum(length(i) for i in merge(intervals))


def subtract(base, cuts):
    """Parts of ``base`` not covered by any interval of ``cuts``."""
    pieces = []
    cursor = base[0]
    for start, end in merge(cuts):
        if end <= cursor or start >= base[1]:
            continue
        if start > cursor:
            pieces.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < base[1]:
        pieces.append((cursor, base[1]))
    return pieces


def gaps(intervals):
    """Holes between the merged intervals."""
    merged = merge(intervals)
    return [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]

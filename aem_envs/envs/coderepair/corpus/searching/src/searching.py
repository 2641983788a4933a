"""Binary search variants on sorted sequences."""


def bisect_left(a, x, lo=0, hi=None):
    """First index i such that a[i] >= x."""
    if hi is None:
        hi = len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def bisect_right(a, x, lo=0, hi=None):
    """First index i such that a[i] > x."""
    if hi is None:
        hi = len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def index_of(a, x):
    """Index of x in a, or -1."""
    i = bisect_left(a, x)
    if i < len(a) and a[i] == x:
        return i
    return -1


def count(a, x):
    return bisect_right(a, x) - bisect_left(a, x)


def search_rotated(a, x):
    """Index of x in a sorted list rotated at an unknown pivot (distinct values), or -1."""
    lo, hi = 0, len(a) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if a[mid] == x:
            return mid
        if a[lo] <= a[mid]:
            if a[lo] <= x < a[mid]:
                hi = mid - 1
            else:
                lo = mid + 1
        else:
            if a[mid] < x <= a[hi]:
                lo = mid + 1
            else:
                hi = mid - 1
    return -1


def closest(a, x):
    """Value of a closest to x; ties go to the smaller value."""
    if not a:
        raise ValueError("empty sequence")
    i = bisect_left(a, x)
    if i == 0:
        return a[0]
    if i == len(a):
        return a[-1]
    before, after = a[i - 1], a[i]
    return before if x - before <= after - x else after


def isqrt(n):
    """Largest r with r * r <= n, by binary search."""
    if n < 0:
        raise ValueError("negative")
    lo, hi = 0, n + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid * mid <= n:
            lo = mid
        else:
            hi = mid
    return lo

"""Calendar arithmetic on (year, month, day) tuples, without the datetime module."""

MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def is_leap(year):
    """Gregorian leap year rule."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year, month):
    if month < 1 or month > 12:
        raise ValueError(f"bad month {month}")
    if month == 2 and is_leap(year):
        return 29
    return MONTH_DAYS[month - 1]


def validate(year, month, day):
    """Raise ValueError unless the date exists."""
    if year < 1:
        raise ValueError("year must be >= 1")
    if day < 1 or day > days_in_month(year, month):
        raise ValueError(f"bad day {day} for {year}-{month:02d}")


def day_of_year(year, month, day):
    """1 for January 1st."""
    validate(year, month, day)
    total = day
    for m in range(1, month):
        total += days_in_month(year, m)
    return total


def to_ordinal(year, month, day):
    """Days since 0001-01-01, which is ordinal 1."""
    y = year - 1
    days_before_year = y * 365 + y // 4 - y // 100 + y // 400
    return days_before_year + day_of_year(year, month, day)


def from_ordinal(n):
    """Inverse of :func:`to_ordinal`."""
    if n < 1:
        raise ValueError("ordinal must be >= 1")
    year = 1
    while True:
        length = 366 if is_leap(year) else 365
        if n <= length:
            break
        n -= length
        year += 1
    month = 1
    while n > days_in_month(year, month):
        n -= days_in_month(year, month)
        month += 1
    return (year, month, n)


def days_between(a, b):
    """Signed number of days from date a to date b."""
    return to_ordinal(*b) - to_ordinal(*a)


def add_days(date, n):
    return from_ordinal(to_ordinal(*date) + n)


def weekday(year, month, day):
    """Name of the weekday; 0001-01-01 was a Monday."""
    return WEEKDAYS[(to_ordinal(year, month, day) - 1) % 7]


def add_months(date, n):
    """Add n months, clamping the day to the end of the target month."""
    year, month, day = date
    index = year * 12 + (month - 1) + n
    new_year, new_month = divmod(index, 12)
    new_month += 1
    return (new_year, new_month, min(day, days_in_month(new_year, new_month)))

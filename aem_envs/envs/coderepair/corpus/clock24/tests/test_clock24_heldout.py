from clock24 import add, format_12, free_slots, overlaps, parse


def test_overlaps():
    assert overlaps("09:00", "10:00", "09:30", "11:00")
    assert not overlaps("09:00", "10:00", "10:00", "11:00")


def test_noon():
    assert format_12(12 * 60) == "12:00 pm"
    assert parse("12:00 pm") == 720


def test_add_negative():
    assert add("00:10", -20) == "23:50"


def test_free_slots_overlapping_busy():
    busy = [("09:00", "12:00"), ("10:00", "11:00")]
    assert free_slots(busy, min_length=60) == [("12:00", "17:00")]


def test_free_slots_min_length_exact():
    assert free_slots([("09:30", "17:00")], min_length=30) == [("09:00", "09:30")]


def test_empty_day():
    assert free_slots([], "08:00", "08:45", 45) == [("08:00", "08:45")]

import pytest

from clock24 import add, difference, format_12, format_24, free_slots, overlaps, parse


def test_parse_24h():
    assert parse("09:30") == 570
    assert parse("23:59") == 1439


def test_parse_12h():
    assert parse("9:30 pm") == 21 * 60 + 30
    assert parse("12:00 am") == 0
    assert parse("12:15 pm") == 735


def test_parse_invalid():
    for bad in ("24:00", "7:60", "13:00 pm", "7", "7:5"):
        with pytest.raises(ValueError):
            parse(bad)


def test_format():
    assert format_24(65) == "01:05"
    assert format_12(0) == "12:00 am"
    assert format_12(13 * 60 + 7) == "1:07 pm"


def test_add_wraps():
    assert add("23:30", 45) == "00:15"


def test_difference():
    assert difference("22:00", "01:30") == 210


def test_free_slots():
    busy = [("09:00", "10:00"), ("11:00", "11:15"), ("11:30", "12:00")]
    assert free_slots(busy) == [("10:00", "11:00"), ("12:00", "17:00")]

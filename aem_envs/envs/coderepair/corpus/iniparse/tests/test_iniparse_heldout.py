import pytest

from iniparse import ParseError, dump, get_bool, get_int, parse


def test_value_with_equals():
    assert parse("url = a=b")["DEFAULT"]["url"] == "a=b"


def test_empty_section_name():
    with pytest.raises(ParseError):
        parse("[  ]")


def test_bool_values():
    d = parse("[s]\na = off\nb = maybe")
    assert get_bool(d, "s", "a") is False
    with pytest.raises(ValueError):
        get_bool(d, "s", "b")
    assert get_bool(d, "s", "zzz", fallback=True) is True


def test_int_fallback():
    assert get_int(parse(""), "s", "n", fallback=7) == 7


def test_dump_roundtrip():
    d = parse("[a]\nx = 1\ny = two\n  lines\n")
    assert parse(dump(d)) == d


def test_error_line_number():
    with pytest.raises(ParseError) as e:
        parse("a = 1\n\n= nokey")
    assert e.value.line_no == 3

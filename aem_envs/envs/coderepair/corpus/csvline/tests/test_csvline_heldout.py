import pytest

from csvline import format_line, parse_line, parse_table, quote, to_text


def test_roundtrip():
    fields = ["a", "b,c", 'd"e', " padded ", ""]
    assert parse_line(format_line(fields)) == fields


def test_other_separator():
    assert parse_line("a;b;'c'", sep=";") == ["a", "b", "'c'"]


def test_table_width_error():
    with pytest.raises(ValueError, match="line 3"):
        parse_table("a,b\n1,2\n3\n")


def test_empty_table():
    assert parse_table("\n\n") == []


def test_to_text():
    assert to_text([{"k": "x,y"}, {}], ["k"]) == 'k\n"x,y"\n\n'


def test_quote_whitespace():
    assert quote(" x") == '" x"'

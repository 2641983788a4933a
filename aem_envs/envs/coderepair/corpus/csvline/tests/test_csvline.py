import pytest

from csvline import column, format_line, parse_line, parse_table, quote, to_text


def test_parse_plain():
    assert parse_line("a,b,c") == ["a", "b", "c"]


def test_parse_quoted_separator():
    assert parse_line('x,"y,z",w') == ["x", "y,z", "w"]


def test_parse_escaped_quote():
    assert parse_line('"say ""hi""",2') == ['say "hi"', "2"]


def test_parse_empty_fields():
    assert parse_line(",,") == ["", "", ""]


def test_unterminated():
    with pytest.raises(ValueError):
        parse_line('"abc')


def test_quote():
    assert quote("plain") == "plain"
    assert quote("a,b") == '"a,b"'
    assert quote('q"') == '"q"""'


def test_parse_table():
    rows = parse_table("name,age\nann,31\n\nbob,40\n")
    assert rows == [{"name": "ann", "age": "31"}, {"name": "bob", "age": "40"}]
    assert column(rows, "age", int) == [31, 40]

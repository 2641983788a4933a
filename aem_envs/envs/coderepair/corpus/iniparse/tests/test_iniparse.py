import pytest

from iniparse import ParseError, dump, get, get_bool, get_int, get_list, parse

TEXT = """
# comment
name = demo

[server]
Host = example.org
port: 8080
debug = yes
paths = /a,
    /b
"""


def test_sections():
    d = parse(TEXT)
    assert d["DEFAULT"] == {"name": "demo"}
    assert d["server"]["host"] == "example.org"


def test_colon_separator():
    assert parse(TEXT)["server"]["port"] == "8080"


def test_fallback_to_default():
    assert get(parse(TEXT), "server", "name") == "demo"
    assert get(parse(TEXT), "server", "missing", "x") == "x"


def test_typed():
    d = parse(TEXT)
    assert get_int(d, "server", "port") == 8080
    assert get_bool(d, "server", "debug") is True


def test_continuation_list():
    assert get_list(parse(TEXT), "server", "paths") == ["/a", "/b"]


def test_errors():
    with pytest.raises(ParseError, match="line 1"):
        parse("[broken")
    with pytest.raises(ParseError):
        parse("no separator here")

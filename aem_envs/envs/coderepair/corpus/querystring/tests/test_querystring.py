import pytest

from querystring import add_params, build_qs, parse_qs, quote, split_url, unquote


def test_quote():
    assert quote("a b&c") == "a+b%26c"
    assert quote("a b", plus_spaces=False) == "a%20b"


def test_quote_unicode():
    assert quote("é") == "%C3%A9"


def test_unquote():
    assert unquote("a+b%26c") == "a b&c"
    assert unquote("%C3%A9") == "é"


def test_unquote_bad():
    with pytest.raises(ValueError):
        unquote("%zz")


def test_parse_qs():
    assert parse_qs("?a=1&b=2&a=3") == {"a": ["1", "3"], "b": ["2"]}


def test_build_qs():
    assert build_qs({"q": "x y", "n": [1, 2]}) == "n=1&n=2&q=x+y"


def test_add_params():
    assert add_params("http://h/p?a=1#top", b=2) == "http://h/p?a=1&b=2#top"

import pytest

from querystring import add_params, build_qs, parse_qs, quote, split_url, unquote


def test_roundtrip():
    params = {"name": ["Zoë & co"], "tag": ["a", "b"], "empty": [""]}
    assert parse_qs(build_qs(params)) == params


def test_parse_qs_skips_empty_pairs():
    assert parse_qs("a=1&&b") == {"a": ["1"], "b": [""]}


def test_split_url():
    assert split_url("http://x/y?q=1#f") == ("http://x/y", "q=1", "f")
    assert split_url("http://x/y") == ("http://x/y", "", "")


def test_unquote_truncated():
    with pytest.raises(ValueError):
        unquote("abc%4")


def test_plus_literal():
    assert unquote("a+b", plus_spaces=False) == "a+b"
    assert quote("~-._") == "~-._"


def test_add_params_no_query():
    assert add_params("/search", q="cats") == "/search?q=cats"

import pytest

from textwrap_lite import indent, justify, justify_line, shorten, split_words, wrap


def test_split_words_collapses_whitespace():
    assert split_words("  a\tb \n c ") == ["a", "b", "c"]


def test_wrap_basic():
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]


def test_wrap_exact_fit():
    assert wrap("abc def", 7) == ["abc def"]


def test_wrap_long_word_alone():
    assert wrap("a supercalifragilistic b", 5) == ["a", "supercalifragilistic", "b"]


def test_wrap_rejects_zero_width():
    with pytest.raises(ValueError):
        wrap("x", 0)


def test_justify_line_spreads_left_first():
    assert justify_line("a b c", 8) == "a   b  c"


def test_justify_keeps_last_line():
    assert justify("aa bb cc dd", 6) == ["aa  bb", "cc dd"]


def test_indent_hanging():
    assert indent(["x", "y"], "  ", first_prefix="- ") == ["- x", "  y"]

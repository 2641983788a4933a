from textwrap_lite import indent, justify, justify_line, shorten, wrap


def test_wrap_empty():
    assert wrap("   ", 4) == []


def test_wrap_width_one_boundary():
    assert wrap("ab cd e", 5) == ["ab cd", "e"]


def test_justify_single_word_padded():
    assert justify_line("hi", 5) == "hi   "


def test_justify_empty():
    assert justify("", 10) == []


def test_indent_plain():
    assert indent(["a", "b"], "> ") == ["> a", "> b"]


def test_shorten_fits():
    assert shorten("hello   world", 11) == "hello world"


def test_shorten_cuts_at_word():
    assert shorten("hello beautiful world", 15) == "hello..."


def test_shorten_placeholder_only():
    assert shorten("extraordinary", 5, placeholder="[..]") == "[..]"

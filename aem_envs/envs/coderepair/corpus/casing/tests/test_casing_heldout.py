from casing import camel, pascal, slugify, snake, title, words


def test_words_digits_and_mixed():
    assert words("HTTPServer2Go") == ["http", "server2", "go"]
    assert words("  a__b--c ") == ["a", "b", "c"]


def test_empty():
    assert camel("") == ""
    assert snake("") == ""


def test_title_last_word_capitalised():
    assert title("what it is for") == "What It Is For"
    assert title("a tale") == "A Tale"


def test_slugify_truncates_at_word():
    assert slugify("alpha beta gamma", max_length=12) == "alpha-beta"
    assert slugify("alpha beta", max_length=10) == "alpha-beta"


def test_pascal_from_constant():
    assert pascal("MAX_SIZE") == "MaxSize"

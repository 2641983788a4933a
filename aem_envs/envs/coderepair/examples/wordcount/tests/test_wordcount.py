from wordcount import count, most_common, words


def test_words():
    assert words("Hello, hello world!") == ["hello", "hello", "world"]


def test_count():
    assert count("a b a") == {"a": 2, "b": 1}


def test_most_common():
    assert most_common("b a b c b a", 2) == ["b", "a"]

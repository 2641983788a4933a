from casing import camel, constant, kebab, pascal, slugify, snake, title, words


def test_words_from_camel():
    assert words("parseHttpResponse") == ["parse", "http", "response"]


def test_words_acronym():
    assert words("HTTPServer") == ["http", "server"]


def test_snake_and_kebab():
    assert snake("userId") == "user_id"
    assert kebab("User Name") == "user-name"


def test_camel_pascal():
    assert camel("user_id_value") == "userIdValue"
    assert pascal("user-id") == "UserId"


def test_constant():
    assert constant("maxRetryCount") == "MAX_RETRY_COUNT"


def test_title_small_words():
    assert title("the lord of the rings") == "The Lord of the Rings"


def test_slugify():
    assert slugify("Hello, World!  2024") == "hello-world-2024"

import pytest

from templating import apply_filters, lookup, render, variables


def test_simple():
    assert render("Hello {{ name }}!", {"name": "Ada"}) == "Hello Ada!"


def test_dotted_and_index():
    ctx = {"user": {"emails": ["a@x", "b@x"]}}
    assert lookup(ctx, "user.emails.1") == "b@x"


def test_filters():
    assert render("{{ name | upper }}", {"name": "ada"}) == "ADA"
    assert render("{{ items | length }}", {"items": [1, 2, 3]}) == "3"


def test_missing_strict():
    with pytest.raises(KeyError):
        render("{{ nope }}", {})


def test_missing_lenient():
    assert render("[{{ nope }}]", {}, strict=False) == "[]"


def test_for_loop():
    out = render("{% for x in xs %}{{ x }},{% endfor %}", {"xs": [1, 2]})
    assert out == "1,2,"


def test_variables():
    assert variables("{{ a.b }} {{ c | upper }} {{ a }}") == ["a", "c"]

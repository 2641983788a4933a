import pytest

from templating import apply_filters, lookup, render


def test_loop_metadata():
    t = "{% for n in names %}{{ loop.index }}:{{ n }}{% endfor %}"
    assert render(t, {"names": ["a", "b", "c"]}) == "1:a2:b3:c"


def test_loop_first_last():
    t = "{% for n in ns %}{{ loop.first }}/{{ loop.last }} {% endfor %}"
    assert render(t, {"ns": [1, 2]}) == "True/False False/True "


def test_unknown_filter():
    with pytest.raises(ValueError):
        apply_filters("x", ["shout"])


def test_chained_filters():
    assert render("{{ s | strip | title }}", {"s": "  hello world "}) == "Hello World"


def test_index_out_of_range():
    with pytest.raises(KeyError):
        lookup({"xs": [1]}, "xs.1")


def test_attribute_lookup():
    class P:
        name = "obj"

    assert render("{{ p.name }}", {"p": P()}) == "obj"

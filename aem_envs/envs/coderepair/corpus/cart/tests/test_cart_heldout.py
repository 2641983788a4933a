import pytest

from cart import Cart, format_cents


def test_remove_all():
    c = Cart({"a": 1})
    c.add("a", 2)
    c.remove("a")
    assert c.count() == 0
    with pytest.raises(KeyError):
        c.remove("a")


def test_remove_more_than_present():
    c = Cart({"a": 1})
    c.add("a", 2)
    c.remove("a", 5)
    assert "a" not in c.items


def test_invalid_quantity_and_percent():
    c = Cart({"a": 1})
    with pytest.raises(ValueError):
        c.add("a", 0)
    with pytest.raises(ValueError):
        c.set_percent_off("a", 0)


def test_tax_rounding_half_up():
    c = Cart({"x": 150})
    c.add("x")
    assert c.total(tax_percent=7) == 161
    assert c.total() == 150


def test_combined_promotions():
    c = Cart({"x": 100})
    c.add("x", 4)
    c.set_buy_x_get_y("x", 1, 1)
    c.set_percent_off("x", 50)
    assert c.line_total("x") == 100


def test_negative_format():
    assert format_cents(-250) == "-$2.50"

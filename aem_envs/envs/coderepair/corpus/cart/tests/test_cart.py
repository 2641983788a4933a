import pytest

from cart import Cart, format_cents


def make():
    return Cart({"apple": 50, "bread": 250, "milk": 120})


def test_add_and_subtotal():
    c = make()
    c.add("apple", 3)
    c.add("bread")
    assert c.subtotal() == 400
    assert c.count() == 4


def test_unknown_sku():
    with pytest.raises(KeyError):
        make().add("caviar")


def test_remove_partial():
    c = make()
    c.add("apple", 5)
    c.remove("apple", 2)
    assert c.items["apple"] == 3


def test_percent_off():
    c = make()
    c.add("bread", 2)
    c.set_percent_off("bread", 10)
    assert c.line_total("bread") == 450


def test_buy_two_get_one():
    c = make()
    c.add("milk", 7)
    c.set_buy_x_get_y("milk", 2, 1)
    assert c.line_total("milk") == 5 * 120


def test_total_with_tax():
    c = make()
    c.add("bread")
    assert c.total(tax_percent=8) == 270


def test_format_cents():
    assert format_cents(1234) == "$12.34"
    assert format_cents(5) == "$0.05"

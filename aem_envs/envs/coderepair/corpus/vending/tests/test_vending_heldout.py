import pytest

from vending import IDLE, OUT_OF_SERVICE, VendingMachine, make_change


def test_sold_out_and_service():
    m = VendingMachine({"gum": 5}, {"gum": 1})
    m.insert(5)
    m.select("gum")
    assert m.state == OUT_OF_SERVICE
    with pytest.raises(RuntimeError):
        m.insert(5)
    m.restock("gum", 3)
    assert m.state == IDLE


def test_sold_out_item():
    m = VendingMachine({"a": 5, "b": 5}, {"a": 0, "b": 1})
    m.insert(5)
    with pytest.raises(RuntimeError, match="sold out"):
        m.select("a")


def test_sales_total():
    m = VendingMachine({"a": 30}, {"a": 5})
    for _ in range(2):
        m.insert(25)
        m.insert(5)
        m.select("a")
    assert m.sales == 60


def test_restock_validation():
    with pytest.raises(ValueError):
        VendingMachine({}, {}).restock("x", 0)


def test_make_change_edges():
    assert make_change(0) == []
    with pytest.raises(ValueError):
        make_change(7)

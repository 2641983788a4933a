import pytest

from vending import HAS_MONEY, IDLE, OUT_OF_SERVICE, VendingMachine, make_change


def machine():
    return VendingMachine({"cola": 125, "chips": 50}, {"cola": 2, "chips": 1})


def test_insert_changes_state():
    m = machine()
    assert m.insert(25) == 25
    assert m.state == HAS_MONEY


def test_bad_coin():
    with pytest.raises(ValueError):
        machine().insert(3)


def test_select_exact_and_change():
    m = machine()
    m.insert(100)
    m.insert(25)
    assert m.select("cola") == ("cola", 0)
    m.insert(100)
    assert m.select("chips") == ("chips", 50)
    assert m.state == IDLE


def test_select_without_money():
    with pytest.raises(RuntimeError):
        machine().select("cola")


def test_insufficient_money():
    m = machine()
    m.insert(100)
    with pytest.raises(RuntimeError, match="25 more"):
        m.select("cola")


def test_cancel():
    m = machine()
    m.insert(10)
    m.insert(5)
    assert m.cancel() == 15
    assert m.state == IDLE


def test_make_change():
    assert make_change(140) == [100, 25, 10, 5]

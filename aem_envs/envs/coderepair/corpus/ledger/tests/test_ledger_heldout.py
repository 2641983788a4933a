import pytest

from ledger import Account, apply_interest


def test_interest():
    a = Account("a")
    a.deposit(1050)
    assert apply_interest(a, 10) == 105
    assert a.balance == 1155


def test_interest_on_negative_balance():
    a = Account("a", overdraft=100)
    a.withdraw(20)
    assert apply_interest(a, 5) == 0
    assert a.balance == -20


def test_lowest_balance():
    a = Account("a", overdraft=10)
    assert a.lowest_balance() == 0
    a.deposit(5)
    a.withdraw(12)
    a.deposit(50)
    assert a.lowest_balance() == -7


def test_negative_overdraft():
    with pytest.raises(ValueError):
        Account("x", overdraft=-1)


def test_available():
    a = Account("a", overdraft=25)
    a.deposit(5)
    assert a.available() == 30


def test_full_history():
    a = Account("a")
    a.deposit(3)
    assert a.history() == [("deposit", 3, 3)]

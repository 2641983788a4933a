import pytest

from ledger import Account, InsufficientFunds, apply_interest, transfer


def test_deposit_withdraw():
    a = Account("ann")
    a.deposit(100)
    assert a.withdraw(30) == 70


def test_insufficient():
    a = Account("ann")
    a.deposit(10)
    with pytest.raises(InsufficientFunds):
        a.withdraw(11)


def test_overdraft():
    a = Account("bob", overdraft=50)
    assert a.withdraw(50) == -50
    with pytest.raises(InsufficientFunds):
        a.withdraw(1)


def test_invalid_amounts():
    a = Account("c")
    with pytest.raises(ValueError):
        a.deposit(0)
    with pytest.raises(ValueError):
        a.withdraw(-5)


def test_transfer():
    a, b = Account("a"), Account("b")
    a.deposit(100)
    assert transfer(a, b, 40) == (60, 40)


def test_transfer_failure_is_atomic():
    a, b = Account("a"), Account("b")
    with pytest.raises(InsufficientFunds):
        transfer(a, b, 5)
    assert b.balance == 0


def test_history_and_totals():
    a = Account("a")
    a.deposit(5)
    a.deposit(7)
    a.withdraw(2)
    assert a.total("deposit") == 12
    assert len(a.history("withdraw")) == 1

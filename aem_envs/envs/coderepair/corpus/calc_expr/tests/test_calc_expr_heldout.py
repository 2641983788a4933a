import pytest

from calc_expr import eval_rpn, evaluate, to_rpn, tokenize


def test_rpn():
    assert to_rpn(tokenize("1 + 2 * 3")) == [1.0, 2.0, 3.0, "*", "+"]


def test_unary_binds_tight():
    assert evaluate("-2 * 3") == -6
    assert evaluate("2 * -3") == -6


def test_nested():
    assert evaluate("((1 + 2) * (3 + 4)) - 1") == 20


def test_bad_char():
    with pytest.raises(ValueError):
        tokenize("2 & 3")


def test_missing_operand():
    with pytest.raises(ValueError):
        evaluate("2 +")


def test_left_assoc_division():
    assert evaluate("8 / 4 / 2") == 1

import pytest

from calc_expr import eval_rpn, evaluate, to_rpn, tokenize


def test_tokenize():
    assert tokenize("12 + 3.5*(2)") == [12.0, "+", 3.5, "*", "(", 2.0, ")"]


def test_tokenize_unary():
    assert tokenize("-3 - -2") == ["neg", 3.0, "-", "neg", 2.0]


def test_precedence():
    assert evaluate("2 + 3 * 4") == 14


def test_parentheses():
    assert evaluate("(2 + 3) * 4") == 20


def test_left_assoc_subtraction():
    assert evaluate("10 - 4 - 3") == 3


def test_power_right_assoc():
    assert evaluate("2 ^ 3 ^ 2") == 512


def test_unbalanced():
    with pytest.raises(ValueError):
        evaluate("(1 + 2")
    with pytest.raises(ValueError):
        evaluate("1 + 2)")


def test_division_and_mod():
    assert evaluate("7 / 2") == 3.5
    assert evaluate("7 % 4") == 3

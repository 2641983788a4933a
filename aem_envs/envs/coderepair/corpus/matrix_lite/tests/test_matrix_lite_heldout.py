import pytest

from matrix_lite import determinant, multiply, power, trace, zeros


def test_determinant_small():
    assert determinant([[7]]) == 7
    assert determinant([[1, 2], [3, 4]]) == -2


def test_determinant_non_square():
    with pytest.raises(ValueError):
        determinant([[1, 2, 3], [4, 5, 6]])


def test_power_fibonacci():
    assert power([[1, 1], [1, 0]], 10) == [[89, 55], [55, 34]]
    assert power([[2, 0], [0, 2]], 0) == [[1, 0], [0, 1]]


def test_trace():
    assert trace([[1, 2], [3, 4]]) == 5


def test_zeros():
    z = zeros(2, 3)
    z[0][0] = 5
    assert z == [[5, 0, 0], [0, 0, 0]]


def test_multiply_rectangular():
    assert multiply([[1, 2, 3]], [[1], [2], [3]]) == [[14]]

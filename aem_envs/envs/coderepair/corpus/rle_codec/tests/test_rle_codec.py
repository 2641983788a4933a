import pytest

from rle_codec import compression_ratio, decode, decode_compact, encode, encode_compact, expand, runs


def test_runs():
    assert runs("aabccc") == [("a", 2), ("b", 1), ("c", 3)]
    assert runs([1, 1, 2]) == [(1, 2), (2, 1)]


def test_expand():
    assert expand([("x", 2), ("y", 1)]) == ["x", "x", "y"]


def test_encode():
    assert encode("aaabcc") == "3a1b2c"


def test_decode_multi_digit():
    assert decode("12x1y") == "x" * 12 + "y"


def test_encode_rejects_digits():
    with pytest.raises(ValueError):
        encode("a1")


def test_compact():
    assert encode_compact("aaabcc") == "3ab2c"
    assert decode_compact("3ab2c") == "aaabcc"


def test_decode_errors():
    with pytest.raises(ValueError):
        decode("a")
    with pytest.raises(ValueError):
        decode("3a4")

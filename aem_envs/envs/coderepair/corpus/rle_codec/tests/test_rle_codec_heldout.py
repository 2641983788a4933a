import pytest

from rle_codec import compression_ratio, decode, decode_compact, encode, encode_compact, expand


def test_roundtrip():
    for text in ["", "a", "abc", "zzzzzzzzzzzz", "aabbaa"]:
        assert decode(encode(text)) == text
        assert decode_compact(encode_compact(text)) == text


def test_expand_rejects_zero():
    with pytest.raises(ValueError):
        expand([("a", 0)])


def test_ratio():
    assert compression_ratio("") == 0.0
    assert compression_ratio("aaaa") == 0.5


def test_compact_dangling():
    with pytest.raises(ValueError):
        decode_compact("ab3")


def test_encode_empty():
    assert encode("") == ""

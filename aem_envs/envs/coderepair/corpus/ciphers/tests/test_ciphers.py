import pytest

from ciphers import atbash, caesar, caesar_decrypt, crack_caesar, rail_fence, rail_fence_decrypt, vigenere


def test_caesar():
    assert caesar("Hello, World!", 3) == "Khoor, Zruog!"


def test_caesar_wraps():
    assert caesar("xyz", 3) == "abc"
    assert caesar_decrypt("abc", 3) == "xyz"


def test_vigenere():
    assert vigenere("ATTACKATDAWN", "LEMON") == "LXFOPVEFRNHR"


def test_vigenere_skips_non_letters():
    assert vigenere("a a", "bc") == "b c"


def test_vigenere_bad_key():
    with pytest.raises(ValueError):
        vigenere("x", "k3y")


def test_atbash():
    assert atbash("Abc xyz") == "Zyx cba"


def test_rail_fence():
    assert rail_fence("WEAREDISCOVERED", 3) == "WECRERDSOEEAIVD"

from ciphers import atbash, caesar, crack_caesar, rail_fence, rail_fence_decrypt, rail_pattern, vigenere


def test_rail_roundtrip():
    for rails in (1, 2, 3, 4, 7):
        text = "THE QUICK BROWN FOX"
        assert rail_fence_decrypt(rail_fence(text, rails), rails) == text


def test_rail_pattern():
    assert rail_pattern(7, 3) == [0, 1, 2, 1, 0, 1, 2]


def test_vigenere_roundtrip():
    text = "Attack at dawn, 5am!"
    assert vigenere(vigenere(text, "Key"), "Key", decrypt=True) == text


def test_crack():
    plain = "meet me here at the tree near the steeple"
    assert crack_caesar(caesar(plain, 11)) == 11
    assert crack_caesar("123") == 0


def test_atbash_involution():
    assert atbash(atbash("Mixed Case 42")) == "Mixed Case 42"


def test_large_shift():
    assert caesar("a", 27) == "b"

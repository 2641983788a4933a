import pytest

from numfmt import from_base, group_thousands, human_bytes, ordinal, parse_number, to_base


def test_roundtrip_bases():
    for base in (2, 8, 10, 16, 36):
        for n in (-1000, -1, 0, 1, 35, 36, 12345):
            assert from_base(to_base(n, base), base) == n


def test_bad_base():
    with pytest.raises(ValueError):
        to_base(3, 1)
    with pytest.raises(ValueError):
        from_base("1", 37)


def test_group_negative_and_sep():
    assert group_thousands(-1000, sep=".") == "-1.000"
    assert group_thousands(100000) == "100,000"


def test_human_bytes_large():
    assert human_bytes(1024 ** 2 * 3) == "3.0 MiB"
    assert human_bytes(1023) == "1023 B"


def test_ordinal_teens():
    assert ordinal(111) == "111th"
    assert ordinal(102) == "102nd"


def test_parse_number_k():
    assert parse_number("2k") == 2000
    assert parse_number(" -5 ") == -5

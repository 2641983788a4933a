import pytest

from semver_lite import bump, compare, format_version, latest, parse, satisfies


def test_parse():
    assert parse("1.2.3") == (1, 2, 3, ())
    assert parse("1.0.0-alpha.1") == (1, 0, 0, ("alpha", 1))


def test_parse_invalid():
    with pytest.raises(ValueError):
        parse("1.2")


def test_compare_numeric_not_lexical():
    assert compare("1.10.0", "1.9.0") == 1


def test_prerelease_before_release():
    assert compare("1.0.0-rc.1", "1.0.0") == -1


def test_bump():
    assert bump("1.2.3", "minor") == "1.3.0"
    assert bump("1.2.3", "major") == "2.0.0"
    assert bump("1.2.3", "patch") == "1.2.4"


def test_satisfies_caret():
    assert satisfies("1.9.0", "^1.2.0")
    assert not satisfies("2.0.0", "^1.2.0")


def test_latest():
    assert latest(["1.0.0", "1.2.0-beta", "1.1.5"]) == "1.1.5"

from semver_lite import bump, compare, format_version, latest, parse, satisfies


def test_format_roundtrip():
    for s in ["0.0.1", "10.20.30", "1.0.0-rc.2", "2.0.0-x.7.z"]:
        assert format_version(parse(s)) == s


def test_prerelease_ordering():
    assert compare("1.0.0-alpha", "1.0.0-alpha.1") == -1
    assert compare("1.0.0-alpha.2", "1.0.0-alpha.10") == -1
    assert compare("1.0.0-1", "1.0.0-alpha") == -1


def test_equal():
    assert compare("1.2.3", "1.2.3") == 0


def test_tilde_and_operators():
    assert satisfies("1.2.9", "~1.2.3")
    assert not satisfies("1.3.0", "~1.2.3")
    assert satisfies("1.2.3", ">=1.2.3")
    assert not satisfies("1.2.3", "<1.2.3")
    assert satisfies("1.2.3", "1.2.3")


def test_bump_prerelease_patch():
    assert bump("1.2.3-rc.1", "patch") == "1.2.3"


def test_latest_include_pre():
    assert latest(["1.0.0", "1.1.0-beta"], include_pre=True) == "1.1.0-beta"
    assert latest([]) is None

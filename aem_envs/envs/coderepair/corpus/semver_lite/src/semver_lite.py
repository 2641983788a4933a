"""Semantic versions: parse, compare (with pre-release rules), bump and match ranges."""

import re

_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def parse(text):
    """'1.2.3-rc.1' -> (1, 2, 3, ('rc', 1)); pre-release is () when absent."""
    m = _RE.match(text.strip())
    if not m:
        raise ValueError(f"not a semantic version: {text!r}")
    major, minor, patch = (int(m.group(i)) for i in (1, 2, 3))
    pre = ()
    if m.group(4):
        pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split("."))
    return (major, minor, patch, pre)


def format_version(v):
    major, minor, patch, pre = v
    core = f"{major}.{minor}.{patch}"
    if pre:
        core += "-" + ".".join(str(p) for p in pre)
    return core


def _pre_key(pre):
    # A release sorts after all of its pre-releases; numeric ids sort before alphanumeric ones.
    if not pre:
        return (1,)
    return (0,) + tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in pre)


def compare(a, b):
    """-1, 0 or 1."""
    va, vb = parse(a), parse(b)
    ka = (va[:3], _pre_key(va[3]))
    kb = (vb[:3], _pre_key(vb[3]))
    if ka < kb:
        return -1
    if ka > kb:
        return 1
    return 0


def bump(text, part):
    major, minor, patch, pre = parse(text)
    if part == "major":
        return format_version((major + 1, 0, 0, ()))
    if part == "minor":
        return format_version((major, minor + 1, 0, ()))
    if part == "patch":
        # Bumping a pre-release's patch releases it.
        return format_version((major, minor, patch if pre else patch + 1, ()))
    raise ValueError(f"unknown part {part!r}")


def satisfies(version, spec):
    """Support '^1.2.3' (same major), '~1.2.3' (same minor) and comparison operators."""
    spec = spec.strip()
    for op in (">=", "<=", ">", "<", "="):
        if spec.startswith(op):
            c = compare(version, spec[len(op):])
            return {">=": c >= 0, "<=": c <= 0, ">": c > 0, "<": c < 0, "=": c == 0}[op]
    if spec[0] in "^~":
        base = parse(spec[1:])
        v = parse(version)
        if compare(version, spec[1:]) < 0:
            return False
        if spec[0] == "^":
            return v[0] == base[0]
        return v[0] == base[0] and v[1] == base[1]
    return compare(version, spec) == 0


def latest(versions, include_pre=False):
    best = None
    for v in versions:
        if parse(v)[3] and not include_pre:
            continue
        if best is None or compare(v, best) > 0:
            best = v
    return best

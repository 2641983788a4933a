"""Percent-encoding and URL query strings, without urllib."""

SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(text, plus_spaces=True):
    """Percent-encode UTF-8 bytes outside the unreserved set; spaces become '+' by default."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in SAFE:
            out.append(ch)
        elif ch == " " and plus_spaces:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def unquote(text, plus_spaces=True):
    data = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            hex_part = text[i + 1:i + 3]
            if len(hex_part) != 2 or any(c not in "0123456789abcdefABCDEF" for c in hex_part):
                raise ValueError(f"bad escape at position {i}")
            data.append(int(hex_part, 16))
            i += 3
            continue
        if ch == "+" and plus_spaces:
            data.append(32)
        else:
            data.extend(ch.encode("utf-8"))
        i += 1
    return data.decode("utf-8")


def parse_qs(query):
    """'a=1&b=2&a=3' -> {'a': ['1', '3'], 'b': ['2']}; a leading '?' is ignored."""
    if query.startswith("?"):
        query = query[1:]
    out = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        out.setdefault(unquote(key), []).append(unquote(value))
    return out


def build_qs(params):
    """Inverse of parse_qs; accepts scalars or lists; keys sorted for stable output."""
    parts = []
    for key in sorted(params):
        values = params[key]
        if not isinstance(values, (list, tuple)):
            values = [values]
        for v in values:
            parts.append(f"{quote(str(key))}={quote(str(v))}")
    return "&".join(parts)


def split_url(url):
    """(base, query, fragment) of a URL."""
    base, _, fragment = url.partition("#")
    base, _, query = base.partition("?")
    return base, query, fragment


def add_params(url, **params):
    """Add parameters to a URL, keeping existing ones and any fragment."""
    base, query, fragment = split_url(url)
    merged = parse_qs(query)
    for k, v in params.items():
        merged.setdefault(k, []).append(str(v))
    out = base + "?" + build_qs(merged)
    if fragment:
        out += "#" + fragment
    return out

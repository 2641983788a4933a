"""Run-length encoding of strings and lists, in two text formats."""


def runs(seq):
    """Consecutive runs as (item, count) pairs."""
    out = []
    for item in seq:
        if out and out[-1][0] == item:
            out[-1] = (item, out[-1][1] + 1)
        else:
            out.append((item, 1))
    return out


def expand(pairs):
    out = []
    for item, count in pairs:
        if count < 1:
            raise ValueError(f"run count must be positive, got {count}")
        out.extend([item] * count)
    return out


def encode(text):
    """'aaabcc' -> '3a1b2c'. Digits cannot be encoded in this format."""
    if any(ch.isdigit() for ch in text):
        raise ValueError("digits cannot be run-length encoded")
    return "".join(f"{count}{ch}" for ch, count in runs(text))


def decode(code):
    out = []
    number = ""
    for ch in code:
        if ch.isdigit():
            number += ch
        else:
            if not number:
                raise ValueError(f"missing count before {ch!r}")
            out.append(ch * int(number))
            number = ""
    if number:
        raise ValueError("dangling count at end")
    return "".join(out)


def encode_compact(text):
    """Like encode, but runs of length 1 drop the count: 'aaabcc' -> '3ab2c'."""
    if any(ch.isdigit() for ch in text):
        raise ValueError("digits cannot be run-length encoded")
    parts = []
    for ch, count in runs(text):
        parts.append(ch if count == 1 else f"{count}{ch}")
    return "".join(parts)


def decode_compact(code):
    out = []
    number = ""
    for ch in code:
        if ch.isdigit():
            number += ch
        else:
            out.append(ch * (int(number) if number else 1))
            number = ""
    if number:
        raise ValueError("dangling count at end")
    return "".join(out)


def compression_ratio(text):
    """len(encoded) / len(text); 0.0 for empty text."""
    if not text:
        return 0.0
    return len(encode_compact(text)) / len(text)

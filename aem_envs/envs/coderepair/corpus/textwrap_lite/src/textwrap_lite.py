"""Greedy word wrapping, justification and indentation helpers."""


def split_words(text):
    """Split on any whitespace; empty input gives an empty list."""
    return text.split()


def wrap(text, width):
    """Greedy wrap: each line holds as many words as fit in ``width`` characters.

    A word longer than ``width`` gets a line of its own.
    """
    if width < 1:
        raise ValueError("width must be positive")
    lines = []
    current = []
    length = 0
    for word in split_words(text):
        extra = len(word) if not current else len(word) + 1
        if current and length + extra > width:
            lines.append(" ".join(current))
            current = [word]
            length = len(word)
        else:
            current.append(word)
            length += extra
    if current:
        lines.append(" ".join(current))
    return lines


def justify_line(line, width):
    """Pad the gaps between words with spaces so the line is exactly ``width`` long.

    Extra spaces go to the leftmost gaps first. A single word is left-aligned.
    """
    words = line.split()
    if len(words) == 1:
        return words[0].ljust(width)
    gaps = len(words) - 1
    spaces = width - sum(len(w) for w in words)
    base, extra = divmod(spaces, gaps)
    out = []
    for i, word in enumerate(words[:-1]):
        out.append(word)
        out.append(" " * (base + (1 if i < extra else 0)))
    out.append(words[-1])
    return "".join(out)


def justify(text, width):
    """Wrap and justify every line except the last, which stays left-aligned."""
    lines = wrap(text, width)
    if not lines:
        return []
    body = [justify_line(line, width) for line in lines[:-1]]
    return body + [lines[-1]]


def indent(lines, prefix, first_prefix=None):
    """Prefix every line; the first line may get its own prefix (hanging indent)."""
    out = []
    for i, line in enumerate(lines):
        if i == 0 and first_prefix is not None:
            out.append(first_prefix + line)
        else:
            out.append(prefix + line)
    return out


def shorten(text, width, placeholder="..."):
    """Collapse whitespace and cut at a word boundary so the result fits in ``width``."""
    words = split_words(text)
    joined = " ".join(words)
    if len(joined) <= width:
        return joined
    kept = []
    for word in words:
        candidate = " ".join(kept + [word]) + placeholder
        if len(candidate) > width:
            break
        kept.append(word)
    if not kept:
        return placeholder[:width]
    return " ".join(kept) + placeholder

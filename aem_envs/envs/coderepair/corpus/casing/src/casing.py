"""Convert identifiers between camelCase, PascalCase, snake_case, kebab-case and titles."""

import re

_BOUNDARY = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def words(name):
    """Split an identifier in any style into lower-case words ('HTTPServer2Go' -> ['http', 'server2', 'go'])."""
    parts = []
    for chunk in re.split(r"[\s_\-]+", name.strip()):
        parts.extend(m.group(0).lower() for m in _BOUNDARY.finditer(chunk))
    return parts


def snake(name):
    return "_".join(words(name))


def kebab(name):
    return "-".join(words(name))


def camel(name):
    ws = words(name)
    if not ws:
        return ""
    return ws[0] + "".join(w.capitalize() for w in ws[1:])


def pascal(name):
    return "".join(w.capitalize() for w in words(name))


def constant(name):
    return snake(name).upper()


SMALL_WORDS = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to"}


def title(text):
    """Title case that keeps small words lower-case except at the start and end."""
    ws = text.split()
    out = []
    for i, w in enumerate(ws):
        if 0 < i < len(ws) - 1 and w.lower() in SMALL_WORDS:
            out.append(w.lower())
        else:
            out.append(w[:1].upper() + w[1:].lower())
    return " ".join(out)


def slugify(text, max_length=50):
    """URL slug: ASCII letters and digits joined by single hyphens, cut at a word boundary."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(cleaned) <= max_length:
        return cleaned
    cut = cleaned[:max_length + 1]
    if "-" in cut:
        cut = cut[:cut.rindex("-")]
    return cut[:max_length].strip("-")

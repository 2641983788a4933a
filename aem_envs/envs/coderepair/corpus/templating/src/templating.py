"""A tiny template engine: {{ name }}, dotted lookups, filters and {% for %} loops."""

import re

_VAR = re.compile(r"\{\{\s*(.+?)\s*\}\}")
_FOR = re.compile(r"\{%\s*for\s+(\w+)\s+in\s+([\w.]+)\s*%\}(.*?)\{%\s*endfor\s*%\}", re.S)

FILTERS = {
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "strip": str.strip,
    "length": lambda v: len(v),
}


def lookup(context, dotted):
    """Resolve 'a.b.0' through dict keys, attributes and list indices."""
    value = context
    for part in dotted.split("."):
        if isinstance(value, dict):
            if part not in value:
                raise KeyError(dotted)
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.isdigit():
            index = int(part)
            if index >= len(value):
                raise KeyError(dotted)
            value = value[index]
        elif hasattr(value, part):
            value = getattr(value, part)
        else:
            raise KeyError(dotted)
    return value


def apply_filters(value, names):
    for name in names:
        if name not in FILTERS:
            raise ValueError(f"unknown filter {name!r}")
        value = FILTERS[name](value if name == "length" else str(value))
    return value


def render_vars(template, context, strict=True):
    def replace(match):
        expr, *filters = [p.strip() for p in match.group(1).split("|")]
        try:
            value = lookup(context, expr)
        except KeyError:
            if strict:
                raise
            return ""
        return str(apply_filters(value, filters))

    return _VAR.sub(replace, template)


def render(template, context, strict=True):
    """Expand loops (one level) then variables. Missing names raise KeyError when strict."""

    def expand(match):
        var, source, body = match.group(1), match.group(2), match.group(3)
        items = lookup(context, source)
        parts = []
        for index, item in enumerate(items):
            scope = dict(context)
            scope[var] = item
            scope["loop"] = {"index": index + 1, "first": index == 0, "last": index == len(items) - 1}
            parts.append(render_vars(body, scope, strict))
        return "".join(parts)

    return render_vars(_FOR.sub(expand, template), context, strict)


def variables(template):
    """Names used by {{ }} blocks (before any dot or filter), in order of first use."""
    seen = []
    for match in _VAR.finditer(template):
        name = match.group(1).split("|")[0].strip().split(".")[0]
        if name not in seen:
            seen.append(name)
    return seen

"""A small INI parser: sections, key = value pairs, comments, continuation lines, typed getters."""


class ParseError(ValueError):
    def __init__(self, line_no, message):
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no


def parse(text):
    """{section: {key: value}}; keys before any section go to 'DEFAULT'. Keys are lower-cased."""
    data = {"DEFAULT": {}}
    section = "DEFAULT"
    last_key = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if raw[:1] in (" ", "\t") and last_key is not None:
            data[section][last_key] += "\n" + stripped
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise ParseError(line_no, "unterminated section header")
            section = stripped[1:-1].strip()
            if not section:
                raise ParseError(line_no, "empty section name")
            data.setdefault(section, {})
            last_key = None
            continue
        sep = min((i for i in (stripped.find("="), stripped.find(":")) if i >= 0), default=-1)
        if sep <= 0:
            raise ParseError(line_no, f"expected 'key = value', got {stripped!r}")
        key = stripped[:sep].strip().lower()
        data[section][key] = stripped[sep + 1:].strip()
        last_key = key
    return data


def get(data, section, key, fallback=None):
    """Look up a key, falling back to DEFAULT, then to ``fallback``."""
    key = key.lower()
    if key in data.get(section, {}):
        return data[section][key]
    return data.get("DEFAULT", {}).get(key, fallback)


def get_int(data, section, key, fallback=0):
    value = get(data, section, key)
    return fallback if value is None else int(value)


TRUE = {"1", "yes", "true", "on"}
FALSE = {"0", "no", "false", "off"}


def get_bool(data, section, key, fallback=False):
    value = get(data, section, key)
    if value is None:
        return fallback
    v = value.lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise ValueError(f"{section}.{key}: not a boolean: {value!r}")


def get_list(data, section, key):
    """Comma- or newline-separated list, blanks dropped."""
    value = get(data, section, key, "")
    items = value.replace("\n", ",").split(",")
    return [i.strip() for i in items if i.strip()]


def dump(data):
    lines = []
    for section, values in data.items():
        if section == "DEFAULT" and not values:
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = " + value.replace("\n", "\n    "))
        lines.append("")
    return "\n".join(lines)

"""Parse and write single CSV records with quoting, plus small table helpers."""


def parse_line(line, sep=","):
    """Split one record. Fields may be quoted with double quotes; "" inside quotes is a quote."""
    fields = []
    field = []
    in_quotes = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_quotes:
            if ch == '"':
                if i + 1 < len(line) and line[i + 1] == '"':
                    field.append('"')
                    i += 1
                else:
                    in_quotes = False
            else:
                field.append(ch)
        elif ch == '"':
            in_quotes = True
        elif ch == sep:
            fields.append("".join(field))
            field = []
        else:
            field.append(ch)
        i += 1
    if in_quotes:
        raise ValueError("unterminated quoted field")
    fields.append("".join(field))
    return fields


def quote(field, sep=","):
    """Quote a field only when needed."""
    if any(c in field for c in (sep, '"', "\n")) or field != field.strip():
        return '"' + field.replace('"', '""') + '"'
    return field


def format_line(fields, sep=","):
    return sep.join(quote(str(f), sep) for f in fields)


def parse_table(text, sep=","):
    """Rows of a CSV text as dicts keyed by the header row; blank lines are skipped."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = parse_line(lines[0], sep)
    rows = []
    for number, ln in enumerate(lines[1:], start=2):
        values = parse_line(ln, sep)
        if len(values) != len(header):
            raise ValueError(f"line {number}: expected {len(header)} fields, got {len(values)}")
        rows.append(dict(zip(header, values)))
    return rows


def column(rows, name, cast=str):
    return [cast(row[name]) for row in rows]


def to_text(rows, header, sep=","):
    lines = [format_line(header, sep)]
    for row in rows:
        lines.append(format_line([row.get(h, "") for h in header], sep))
    return "\n".join(lines) + "\n"

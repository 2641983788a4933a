"""The code-repair action language: parsing (pure) and the text the agent is taught.

One action per turn, inside ``<action>...</action>``. The first word decides the kind; a body
that is not a known command word is a shell command. Multi-line edits use delimiter blocks
whose marker lines cannot be confused with code.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from aem_envs.core import InvalidAction

SEARCH, DIVIDER, REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"

ACTION_HELP = f"""\
Reply with exactly one action per turn inside <action></action>. Think first if you like; only
the last <action> block is executed. Paths are relative to the repository root.

  <action>ls -R src</action>
      Any other text is a shell command, run in a persistent bash shell at the repository root
      (cd and export persist). Output is truncated when long.

  <action>view src/module.py 10 40</action>
      Show a file with line numbers; the optional START and END lines select a range.

  <action>replace src/module.py
{SEARCH}
exact existing lines
{DIVIDER}
their replacement
{REPLACE}</action>
      Replace an exact snippet (it must occur exactly once in the file; copy it from `view`,
      without the line numbers). An empty replacement deletes the snippet.

  <action>insert src/module.py 12
new lines
</action>
      Insert the lines that follow after line 12 (0 inserts at the top).

  <action>create src/new_file.py
file content
</action>
      Create (or overwrite) a file with the content that follows.

  <action>run_tests</action>
      Run the visible tests (pytest). Optional pytest arguments may follow, e.g.
      `run_tests tests/test_x.py -k name`. You get the failing tests and their first
      assertion lines.

  <action>submit</action>
      Finish. Your changes (the diff of the work tree) are graded in a fresh sandbox by the
      visible tests plus held-out tests. Changes to test files are ignored when grading."""

COMMANDS = ("view", "replace", "insert", "create", "run_tests", "submit")


@dataclass(frozen=True)
class Action:
    kind: str  # "shell" | one of COMMANDS
    path: str = ""
    start: int | None = None
    end: int | None = None
    line: int = 0
    old: str = ""
    text: str = ""  # replacement / inserted / created text, or the shell command / test args


def _path(raw: str, kind: str) -> str:
    p = raw.strip().strip("'\"")
    if not p:
        raise InvalidAction(f"`{kind}` needs a file path, e.g. `{kind} src/module.py`")
    if p.startswith("/"):
        raise InvalidAction(f"path {p!r} must be relative to the repository root, e.g. src/module.py")
    norm = posixpath.normpath(p)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise InvalidAction(f"path {p!r} must name a file inside the repository")
    if norm == ".git" or norm.startswith(".git/"):
        raise InvalidAction("files under .git cannot be edited with structured edits")
    return norm


def _int(tok: str, what: str, kind: str) -> int:
    try:
        v = int(tok)
    except ValueError:
        raise InvalidAction(f"`{kind}`: {what} must be an integer line number, got {tok!r}") from None
    if v < 0:
        raise InvalidAction(f"`{kind}`: {what} must be >= 0, got {v}")
    return v


def parse(action: str) -> Action:
    """Parse one action body (the text inside the tag, already stripped)."""
    first, _, rest = action.partition("\n")
    words = first.split()
    word = words[0] if words else ""
    if word not in COMMANDS:
        return Action("shell", text=action)
    args = words[1:]
    if word == "submit":
        if args or rest.strip():
            raise InvalidAction("`submit` takes no arguments; reply <action>submit</action>")
        return Action("submit")
    if word == "run_tests":
        if rest.strip():
            raise InvalidAction("`run_tests` takes its optional pytest arguments on the same line")
        return Action("run_tests", text=first[len("run_tests"):].strip())
    if word == "view":
        if not 1 <= len(args) <= 3 or rest.strip():
            raise InvalidAction("use `view PATH` or `view PATH START END` (one line)")
        path = _path(args[0], word)
        start = _int(args[1], "START", word) if len(args) > 1 else None
        end = _int(args[2], "END", word) if len(args) > 2 else None
        if start is not None and end is not None and end < start:
            raise InvalidAction(f"`view`: END ({end}) is before START ({start})")
        return Action("view", path=path, start=start, end=end)
    if word == "replace":
        if len(args) != 1:
            raise InvalidAction("use `replace PATH` followed by a SEARCH/REPLACE block on the next lines")
        path = _path(args[0], word)
        old, new = _search_replace(rest)
        return Action("replace", path=path, old=old, text=new)
    if word == "insert":
        if len(args) != 2:
            raise InvalidAction("use `insert PATH LINE` followed by the lines to insert")
        path = _path(args[0], word)
        line = _int(args[1], "LINE", word)
        if not rest.strip("\n"):
            raise InvalidAction("`insert`: put the lines to insert after the `insert PATH LINE` line")
        return Action("insert", path=path, line=line, text=_as_lines(rest))
    # create
    if len(args) != 1:
        raise InvalidAction("use `create PATH` followed by the file content")
    return Action("create", path=_path(args[0], word), text=_as_lines(rest) if rest.strip("\n") else "")


def _as_lines(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _search_replace(body: str) -> tuple[str, str]:
    lines = body.split("\n")
    marks = [ln.rstrip() for ln in lines]
    help_ = f"a `replace` body is:\n{SEARCH}\nold lines\n{DIVIDER}\nnew lines\n{REPLACE}"
    try:
        s = marks.index(SEARCH)
        r = len(marks) - 1 - marks[::-1].index(REPLACE)
    except ValueError:
        raise InvalidAction(f"missing `{SEARCH}` or `{REPLACE}` line; {help_}") from None
    dividers = [i for i in range(s + 1, r) if marks[i] == DIVIDER]
    if len(dividers) != 1:
        raise InvalidAction(f"expected exactly one `{DIVIDER}` line between the markers, found {len(dividers)}; {help_}")
    d = dividers[0]
    old = "\n".join(lines[s + 1 : d])
    new = "\n".join(lines[d + 1 : r])
    if not old.strip():
        raise InvalidAction("the SEARCH part is empty; copy the exact lines to replace (use `insert` to add lines)")
    return old, new


def apply_replace(content: str, old: str, new: str, path: str) -> str:
    n = content.count(old)
    if n == 0:
        # Agents often copy lines with trailing spaces or the line-number gutter: say so.
        hint = " (do not include the `  12| ` line-number gutter of `view`)" if "| " in old else ""
        raise InvalidAction(f"the SEARCH text does not occur in {path}{hint}; `view {path}` and copy the lines exactly")
    if n > 1:
        raise InvalidAction(f"the SEARCH text occurs {n} times in {path}; include more surrounding lines to make it unique")
    return content.replace(old, new, 1)


def apply_insert(content: str, line: int, text: str, path: str) -> str:
    lines = content.splitlines(keepends=True)
    if line > len(lines):
        raise InvalidAction(f"`insert`: {path} has {len(lines)} lines; LINE must be 0..{len(lines)}")
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    return "".join(lines[:line]) + text + "".join(lines[line:])


def numbered(content: str, path: str, start: int | None, end: int | None, max_lines: int) -> str:
    lines = content.splitlines()
    n = len(lines)
    if n == 0:
        return f"{path} is empty."
    a = max(1, start or 1)
    if a > n:
        raise InvalidAction(f"`view`: {path} has {n} lines; START must be 1..{n}")
    b = min(n, end if end is not None else n, a + max_lines - 1)
    width = len(str(b))
    body = "\n".join(f"{i:>{width}}| {lines[i - 1]}" for i in range(a, b + 1))
    head = f"{path} (lines {a}-{b} of {n})"
    tail = f"\n[{n - b} more lines; `view {path} {b + 1} {min(n, b + max_lines)}` shows the next part]" if b < n else ""
    return f"{head}\n{body}{tail}"

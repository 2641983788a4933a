"""Git-style unified diffs between file trees, and splitting/filtering them per file.

The agent's submission is the diff between the files it was given and the files in its work
tree at submit time, computed on the host from an archive of the work tree. Computing it
outside the sandbox means an agent that deletes or rewrites ``.git`` cannot change what is
graded. The diff applies with ``git apply``.
"""

from __future__ import annotations

import difflib
import re

_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)


def file_diff(path: str, before: str | None, after: str | None) -> str:
    """Diff of one text file; ``None`` means absent (a created or deleted file)."""
    if before == after:
        return ""
    head = f"diff --git a/{path} b/{path}\n"
    if before is None:
        head += "new file mode 100644\n"
    elif after is None:
        head += "deleted file mode 100644\n"
    a_lines = (before or "").splitlines(keepends=True)
    b_lines = (after or "").splitlines(keepends=True)
    if not a_lines and not b_lines:
        return head  # an empty file created or deleted: git needs the header only
    body = difflib.unified_diff(
        a_lines, b_lines,
        "/dev/null" if before is None else f"a/{path}",
        "/dev/null" if after is None else f"b/{path}",
        n=3,
    )
    out = []
    for ln in body:
        if ln.startswith(("---", "+++")):
            ln = ln.rstrip("\n") + "\n"  # difflib may add a trailing tab-less date field; none here
        elif not ln.endswith("\n"):
            ln += "\n\\ No newline at end of file\n"
        out.append(ln)
    return head + "".join(out)


def tree_diff(before: dict[str, bytes], after: dict[str, bytes]) -> tuple[str, list[str]]:
    """(diff of every changed text file, paths skipped because they are not UTF-8 text)."""
    parts, skipped = [], []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        try:
            ta = a.decode() if a is not None else None
            tb = b.decode() if b is not None else None
        except UnicodeDecodeError:
            skipped.append(path)
            continue
        if any(c in path for c in " \t\n\"\\"):
            skipped.append(path)  # git quotes such names; not worth supporting in a repair task
            continue
        parts.append(file_diff(path, ta, tb))
    return "".join(parts), skipped


def split_patch(patch: str) -> list[tuple[str, str]]:
    """[(path, section)] for each file section of a git-style diff."""
    starts = [m.start() for m in _HEADER.finditer(patch)]
    out = []
    for i, s in enumerate(starts):
        section = patch[s : starts[i + 1] if i + 1 < len(starts) else len(patch)]
        m = _HEADER.match(section)
        out.append((m.group(2), section))
    return out


def patch_paths(patch: str) -> list[str]:
    return [p for p, _ in split_patch(patch)]


def filter_patch(patch: str, drop) -> tuple[str, list[str]]:
    """(the patch without the sections whose path satisfies ``drop(path)``, dropped paths)."""
    kept, dropped = [], []
    for path, section in split_patch(patch):
        if drop(path):
            dropped.append(path)
        else:
            kept.append(section)
    return "".join(kept), dropped

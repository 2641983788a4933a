"""Procedural InterCode-Bash-style tasks: a generated file tree, an instruction, a gold command.

Task ``k`` is built from ``random.Random(f"shell-v{VERSION}:{k}")`` (a private generator: the
global RNG is never touched), so an id always means the same files, instruction and gold.
The family is ``FAMILIES[k % len(FAMILIES)]``; train ids and test ids use disjoint ``k``.

Every family says how it is graded (see :mod:`aem_envs.envs.shell.grading`):

- ``answer`` families: the agent submits ``submit <answer>``; the gold command's output in a
  fresh copy of the task is the expected answer, compared as ``number`` (integer),
  ``word`` (exact string), ``path`` (one path, ``./`` and trailing ``/`` ignored) or ``paths``
  (a set of paths, any order, separated by newlines, spaces or commas).
- ``state`` families: the agent changes files and submits ``submit``; the final tree under the
  work directory must equal the tree the gold command makes from a fresh copy (paths, file
  types, permission bits, contents; tar archives compared by their members; mtimes ignored).
"""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

VERSION = "0"
BASE_MTIME = 1_709_294_400  # 2024-03-01T12:00:00Z; file times are deterministic

WORDS = (
    "alpha beta gamma delta system network server client request response cache memory disk "
    "process thread queue worker schedule report invoice customer order payment refund account "
    "balance ledger budget forecast quarter review release deploy build test staging production "
    "backup restore archive index search filter column table record field value metric latency "
    "throughput error warning notice summary detail draft final version change update migrate "
    "config setting option feature module package library service endpoint gateway proxy route "
    "token session login logout user group role policy audit compliance security incident "
    "monitor alert dashboard chart graph trend sample batch stream event signal timer clock"
).split()
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter")
SERVICES = ("auth", "billing", "api", "db", "cache", "worker", "scheduler", "mailer", "search", "gateway")
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = ("widget", "gadget", "gizmo", "doohickey", "sprocket", "flange", "bracket", "valve")
COUNTRIES = ("DE", "FR", "US", "JP", "BR", "IN", "CA", "ES", "IT", "NL")
PATHS = ("/", "/login", "/logout", "/api/orders", "/api/users", "/static/app.js", "/health", "/search",
         "/cart", "/checkout", "/api/items", "/docs")
MSGS = ("request handled", "cache miss", "connection reset", "retrying operation", "job finished",
        "slow query detected", "token refreshed", "payment declined", "queue is full", "config reloaded")


@dataclass
class FileSpec:
    data: bytes | None  # None: a directory
    mode: int = 0o644
    mtime: int = BASE_MTIME


@dataclass
class ShellTask:
    task_id: str
    family: str
    instruction: str
    gold: str
    check: Literal["answer", "state"]
    answer_kind: Literal["number", "word", "path", "paths"] | None
    files: dict[str, FileSpec] = field(default_factory=dict)

    def tar(self) -> bytes:
        """The task's work tree as a tar rooted at ``.`` (deterministic bytes)."""
        buf = io.BytesIO()
        entries: dict[str, FileSpec] = {}
        for path, spec in self.files.items():
            parts = path.split("/")
            for i in range(1, len(parts)):
                entries.setdefault("/".join(parts[:i]), FileSpec(None, 0o755))
            entries[path] = spec
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
            for path in sorted(entries):
                spec = entries[path]
                ti = tarfile.TarInfo(path)
                ti.mode, ti.mtime, ti.uname, ti.gname = spec.mode, spec.mtime, "agent", "agent"
                ti.uid = ti.gid = 1000
                if spec.data is None:
                    ti.type = tarfile.DIRTYPE
                    tf.addfile(ti)
                else:
                    ti.size = len(spec.data)
                    tf.addfile(ti, io.BytesIO(spec.data))
        return buf.getvalue()


# --------------------------------------------------------------------------- content
def _words(r: random.Random, n: int) -> str:
    return " ".join(r.choice(WORDS) for _ in range(n))


def _prose(r: random.Random, lines: int) -> bytes:
    out = []
    for _ in range(lines):
        s = _words(r, r.randint(4, 11))
        out.append(s[0].upper() + s[1:] + ".")
    return ("\n".join(out) + "\n").encode()


def _ts(r: random.Random, day: int) -> str:
    return f"2024-03-{day:02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"


def _log(r: random.Random, service: str, day: int, n: int, users: tuple[str, ...] = USERS) -> bytes:
    lines = []
    for _ in range(n):
        lines.append(
            f"{_ts(r, day)} {r.choice(LEVELS)} [{service}] {r.choice(MSGS)} "
            f"user={r.choice(users)} latency_ms={r.randint(1, 900)}"
        )
    lines.sort()
    return ("\n".join(lines) + "\n").encode()


def _access_log(r: random.Random, n: int, ips: list[str], paths: list[str]) -> bytes:
    lines = []
    for i in range(n):
        lines.append(
            f'{r.choice(ips)} - - [01/Mar/2024:12:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
            f'"GET {r.choice(paths)} HTTP/1.1" {r.choice((200, 200, 200, 304, 404, 500))} {r.randint(120, 9000)}'
        )
    return ("\n".join(lines) + "\n").encode()


def _sales(r: random.Random, rows: int) -> list[list[str]]:
    out = []
    for i in range(rows):
        out.append([str(1000 + i), f"2024-03-{r.randint(1, 28):02d}", r.choice(REGIONS), r.choice(PRODUCTS),
                    str(r.randint(1, 40)), str(r.randint(2, 99))])
    return out


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    return ("\n".join(",".join(x) for x in [header, *rows]) + "\n").encode()


def _users_csv(r: random.Random, n: int) -> bytes:
    rows = []
    names = r.sample(USERS, min(n, len(USERS)))
    for i, name in enumerate(names):
        dom = r.choice(("example.com", "example.org", "mail.test"))
        rows.append([str(i + 1), name, f"{name}@{dom}", r.choice(COUNTRIES), str(r.randint(19, 70))])
    return _csv(["id", "name", "email", "country", "age"], rows)


def _code(r: random.Random, ext: str) -> bytes:
    fn = r.choice(WORDS) + "_" + r.choice(WORDS)
    if ext == "py":
        body = f'def {fn}(x):\n    """{_words(r, 6)}."""\n    return x * {r.randint(2, 9)}\n\n\nprint({fn}({r.randint(1, 9)}))\n'
    elif ext == "sh":
        body = f"#!/bin/sh\n# {_words(r, 6)}\necho \"{_words(r, 3)}\"\n"
    elif ext == "js":
        body = f"function {fn}(x) {{\n  // {_words(r, 5)}\n  return x + {r.randint(1, 9)};\n}}\nmodule.exports = {fn};\n"
    else:
        body = _words(r, 12) + "\n"
    return body.encode()


def _name(r: random.Random, used: set[str], ext: str, prefix: str = "") -> str:
    while True:
        n = f"{prefix}{r.choice(WORDS)}_{r.choice(WORDS)}.{ext}" if not prefix else f"{prefix}{r.randint(1, 999):03d}.{ext}"
        if n not in used:
            used.add(n)
            return n


def base_tree(r: random.Random) -> dict[str, FileSpec]:
    """Background files every task has: docs, code, data, logs, notes, a nested archive."""
    f: dict[str, FileSpec] = {}
    used: set[str] = set()
    f["README.md"] = FileSpec(f"# {_words(r, 3)}\n\n".encode() + _prose(r, r.randint(3, 8)))
    for _ in range(r.randint(2, 4)):
        f[f"docs/{_name(r, used, r.choice(('txt', 'md')))}"] = FileSpec(_prose(r, r.randint(3, 25)))
    for _ in range(r.randint(2, 4)):
        ext = r.choice(("py", "js", "sh"))
        f[f"src/{_name(r, used, ext)}"] = FileSpec(_code(r, ext), 0o755 if ext == "sh" else 0o644)
    f["data/users.csv"] = FileSpec(_users_csv(r, r.randint(6, 14)))
    for svc in r.sample(SERVICES, r.randint(2, 3)):
        f[f"logs/{svc}-2024-03-{r.randint(1, 28):02d}.log"] = FileSpec(_log(r, svc, r.randint(1, 28), r.randint(8, 30)))
    for _ in range(r.randint(1, 3)):
        f[f"notes/{_name(r, used, 'txt')}"] = FileSpec(_prose(r, r.randint(2, 8)))
    year = r.choice((2021, 2022, 2023))
    for q in r.sample(("q1", "q2", "q3", "q4"), r.randint(1, 3)):
        f[f"archive/{year}/{q}/summary.txt"] = FileSpec(_prose(r, r.randint(2, 6)))
    return f


# --------------------------------------------------------------------------- families
Family = Callable[[random.Random, dict[str, FileSpec]], tuple[str, str, str, str | None]]
FAMILIES: dict[str, Family] = {}


def family(name: str):
    def deco(fn: Family) -> Family:
        FAMILIES[name] = fn
        return fn

    return deco


def _unique_sizes(files: dict[str, FileSpec], paths: list[str]) -> None:
    """Pad files so their sizes differ (largest-file questions need one answer)."""
    seen: set[int] = set()
    for p in sorted(paths, key=lambda p: len(files[p].data or b"")):
        data = files[p].data or b""
        while len(data) in seen:
            data += b"\n"
        seen.add(len(data))
        files[p].data = data


@family("count_ext")
def _count_ext(r, files):
    ext = r.choice(("txt", "log", "py", "csv", "md", "js"))
    for _ in range(r.randint(0, 3)):
        d = r.choice(("misc", "tmp/cache", "archive/extra", "src/lib"))
        files[f"{d}/{r.choice(WORDS)}{r.randint(1, 99)}.{ext}"] = FileSpec(_prose(r, 2))
    return (f"How many files with the extension .{ext} are in this directory tree (search all "
            f"subdirectories)? Submit only the number.", f"find . -type f -name '*.{ext}' | wc -l", "answer", "number")


@family("count_level_lines")
def _count_level(r, files):
    level = r.choice(("ERROR", "WARN", "DEBUG"))
    return (f"How many lines across all .log files in logs/ have the log level {level}? Submit only the number.",
            f"cat logs/*.log | grep -c ' {level} '", "answer", "number")


@family("files_mentioning_user")
def _files_user(r, files):
    user = r.choice(USERS)
    for _ in range(r.randint(1, 3)):
        files[f"notes/ticket_{r.randint(100, 999)}.txt"] = FileSpec(
            f"Ticket assigned to user={user}\n".encode() + _prose(r, 2))
    return (f"List every file (paths relative to the current directory) that contains the text 'user={user}'. "
            f"Submit the paths separated by spaces or newlines.",
            f"grep -rlF 'user={user}' . | sed 's|^\\./||' | sort", "answer", "paths")


@family("sum_column")
def _sum_column(r, files):
    name = f"sales_{r.choice(('jan', 'feb', 'mar', 'apr'))}"
    rows = _sales(r, r.randint(8, 30))
    files[f"data/{name}.csv"] = FileSpec(_csv(["id", "date", "region", "product", "quantity", "unit_price"], rows))
    return (f"What is the sum of the quantity column in data/{name}.csv? Submit only the number.",
            f"awk -F, 'NR>1 {{s+=$5}} END {{print s}}' data/{name}.csv", "answer", "number")


@family("top_region")
def _top_region(r, files):
    rows = _sales(r, r.randint(10, 30))
    while True:
        tot = Counter()
        for row in rows:
            tot[row[2]] += int(row[4]) * int(row[5])
        best = tot.most_common(2)
        if len(best) < 2 or best[0][1] != best[1][1]:
            break
        rows[0][4] = str(int(rows[0][4]) + 1)
    files["data/sales.csv"] = FileSpec(_csv(["id", "date", "region", "product", "quantity", "unit_price"], rows))
    return ("In data/sales.csv, which region has the highest total revenue (sum of quantity * unit_price)? "
            "Submit only the region name.",
            "awk -F, 'NR>1 {t[$3]+=$5*$6} END {for (k in t) print t[k], k}' data/sales.csv | sort -nr | head -1 | cut -d' ' -f2",
            "answer", "word")


def _ips(r: random.Random, n: int) -> list[str]:
    return sorted({f"10.{r.randint(0, 3)}.{r.randint(0, 9)}.{r.randint(1, 254)}" for _ in range(n)})


@family("distinct_ips")
def _distinct_ips(r, files):
    files["logs/access.log"] = FileSpec(_access_log(r, r.randint(15, 60), _ips(r, r.randint(3, 12)), list(PATHS)))
    return ("How many distinct client IP addresses (first field) appear in logs/access.log? Submit only the number.",
            "cut -d' ' -f1 logs/access.log | sort -u | wc -l", "answer", "number")


@family("top_path")
def _top_path(r, files):
    paths = r.sample(PATHS, 6)
    while True:
        data = _access_log(r, r.randint(20, 60), _ips(r, 5), paths)
        c = Counter(line.split()[6] for line in data.decode().splitlines()).most_common(2)
        if len(c) < 2 or c[0][1] != c[1][1]:
            break
    files["logs/access.log"] = FileSpec(data)
    return ("Which request path appears most often in logs/access.log? Submit only the path (e.g. /login).",
            "awk '{print $7}' logs/access.log | sort | uniq -c | sort -nr | head -1 | awk '{print $2}'", "answer", "word")


@family("largest_file")
def _largest_file(r, files):
    d = r.choice(("docs", "src", "notes", "archive"))
    paths = [p for p in files if p.startswith(d + "/")]
    _unique_sizes(files, paths)
    return (f"Which file under {d}/ (searching its subdirectories too) is the largest in bytes? Submit its path "
            f"relative to the current directory.",
            f"find {d} -type f -printf '%s %p\\n' | sort -nr | head -1 | cut -d' ' -f2-", "answer", "path")


@family("newest_file")
def _newest_file(r, files):
    n = r.randint(3, 7)
    offs = r.sample(range(1, 500), n)
    used: set[str] = set()
    for o in offs:
        files[f"reports/{_name(r, used, 'txt', 'report_')}"] = FileSpec(_prose(r, 3), mtime=BASE_MTIME + 3600 * o)
    return ("Which file in reports/ was modified most recently? Submit only its file name.",
            "ls -t reports | head -1", "answer", "word")


@family("word_count")
def _word_count(r, files):
    docs = sorted(p for p in files if p.startswith("docs/"))
    p = r.choice(docs)
    return (f"How many words does {p} contain (as counted by wc -w)? Submit only the number.",
            f"wc -w < {p}", "answer", "number")


@family("count_dirs")
def _count_dirs(r, files):
    for _ in range(r.randint(0, 3)):
        files[f"empty/{r.choice(WORDS)}{r.randint(1, 9)}"] = FileSpec(None)
    return ("How many directories are below the current directory, at any depth (not counting the current "
            "directory itself)? Submit only the number.", "find . -mindepth 1 -type d | wc -l", "answer", "number")


@family("most_lines")
def _most_lines(r, files):
    docs = sorted(p for p in files if p.startswith("docs/"))
    counts = Counter()
    for p in docs:
        counts[p] = (files[p].data or b"").count(b"\n")
    best = counts.most_common(2)
    if len(best) > 1 and best[0][1] == best[1][1]:
        files[best[0][0]].data = (files[best[0][0]].data or b"") + _prose(r, 1)
    return ("Which file in docs/ has the most lines? Submit its path relative to the current directory.",
            "wc -l docs/* | grep -v ' total$' | sort -nr | head -1 | awk '{print $2}'", "answer", "path")


@family("rename_ext")
def _rename_ext(r, files):
    a, b = r.choice((("txt", "md"), ("log", "txt"), ("jpeg", "jpg"), ("htm", "html")))
    used: set[str] = set()
    for _ in range(r.randint(2, 6)):
        files[f"inbox/{_name(r, used, a)}"] = FileSpec(_prose(r, 2))
    files[f"inbox/{_name(r, used, 'csv')}"] = FileSpec(_prose(r, 1))
    return (f"Rename every .{a} file directly inside inbox/ so that its name ends in .{b} instead (keep the rest "
            f"of the name). Then submit.",
            f"for f in inbox/*.{a}; do mv \"$f\" \"${{f%.{a}}}.{b}\"; done", "state", None)


@family("archive_dir")
def _archive_dir(r, files):
    d = r.choice(("logs", "docs", "notes"))
    name = f"{d}_backup"
    return (f"Create a gzip-compressed tar archive named {name}.tar.gz in the current directory that contains the "
            f"{d} directory (with {d}/ as the top-level folder inside the archive). Keep {d}/ itself. Then submit.",
            f"tar -czf {name}.tar.gz {d}", "state", None)


@family("make_executable")
def _make_exec(r, files):
    used: set[str] = set()
    for _ in range(r.randint(2, 5)):
        files[f"scripts/{_name(r, used, 'sh')}"] = FileSpec(_code(r, "sh"), r.choice((0o644, 0o640, 0o600)))
    files[f"scripts/{_name(r, used, 'txt')}"] = FileSpec(_prose(r, 2), 0o644)
    return ("Make every .sh file in scripts/ executable by its owner, its group and everyone else, leaving all "
            "other permission bits unchanged. Then submit.",
            "chmod a+x scripts/*.sh", "state", None)


@family("delete_pattern")
def _delete_pattern(r, files):
    ext = r.choice(("tmp", "bak", "swp"))
    for _ in range(r.randint(2, 5)):
        d = r.choice(("", "docs/", "src/", "notes/", "archive/"))
        files[f"{d}{r.choice(WORDS)}{r.randint(1, 99)}.{ext}"] = FileSpec(_prose(r, 1))
    return (f"Delete every file whose name ends in .{ext}, anywhere in this directory tree. Then submit.",
            f"find . -type f -name '*.{ext}' -delete", "state", None)


@family("dedupe")
def _dedupe(r, files):
    blobs = [bytes(r.getrandbits(8) for _ in range(r.randint(40, 200))) for _ in range(r.randint(2, 4))]
    names = r.sample([f"img_{i:03d}.jpg" for i in range(1, 200)], r.randint(5, 9))
    for i, n in enumerate(names):
        files[f"photos/{n}"] = FileSpec(blobs[i % len(blobs)] if i < len(blobs) else r.choice(blobs))
    return ("Some files in photos/ have identical contents. For each set of identical files keep only the one whose "
            "name sorts first alphabetically and delete the others. Then submit.",
            "md5sum photos/* | sort -k1,1 -k2,2 | awk 'seen[$1]++ {print $2}' | xargs -r rm --", "state", None)


@family("upper_case")
def _upper_case(r, files):
    p = r.choice(sorted(x for x in files if x.startswith(("docs/", "notes/"))))
    return (f"Convert all letters in {p} to upper case, in place (same file name). Then submit.",
            f"tr '[:lower:]' '[:upper:]' < {p} > {p}.new && mv {p}.new {p}", "state", None)


@family("replace_text")
def _replace_text(r, files):
    old, new = r.sample(("localhost", "staging", "production", "debug", "primary", "replica"), 2)
    used: set[str] = set()
    for _ in range(r.randint(2, 4)):
        lines = [f"{r.choice(WORDS)}_host={old if r.random() < 0.6 else r.choice(WORDS)}" for _ in range(r.randint(3, 7))]
        files[f"config/{_name(r, used, 'conf')}"] = FileSpec(("\n".join(lines) + "\n").encode())
    files[f"config/{_name(r, used, 'txt')}"] = FileSpec(f"{old} stays here\n".encode())
    return (f"In every .conf file in config/, replace each occurrence of '{old}' with '{new}'. Then submit.",
            f"sed -i 's/{old}/{new}/g' config/*.conf", "state", None)


@family("sort_unique")
def _sort_unique(r, files):
    name = r.choice(("names", "hosts", "tags"))
    pool = list(USERS) if name == "names" else [f"{w}{r.randint(1, 9)}" for w in r.sample(WORDS, 12)]
    lines = [r.choice(pool) for _ in range(r.randint(8, 25))]
    files[f"data/{name}.txt"] = FileSpec(("\n".join(lines) + "\n").encode())
    return (f"Write the lines of data/{name}.txt, sorted alphabetically with duplicate lines removed, to a new file "
            f"data/{name}_sorted.txt. Then submit.", f"sort -u data/{name}.txt > data/{name}_sorted.txt", "state", None)


@family("extract_column")
def _extract_column(r, files):
    return ("Create a file emails.txt in the current directory that holds the email column of data/users.csv "
            "(without the header), one address per line in the original order. Then submit.",
            "tail -n +2 data/users.csv | cut -d, -f3 > emails.txt", "state", None)


@family("move_by_ext")
def _move_by_ext(r, files):
    used: set[str] = set()
    for _ in range(r.randint(2, 5)):
        files[f"downloads/{_name(r, used, 'csv')}"] = FileSpec(_csv(["a", "b"], [["1", "2"]]))
    for _ in range(r.randint(1, 3)):
        files[f"downloads/{_name(r, used, r.choice(('pdf', 'txt')))}"] = FileSpec(_prose(r, 1))
    return ("Move every .csv file in downloads/ into a new directory downloads/csv/ (create it). Then submit.",
            "mkdir -p downloads/csv && mv downloads/*.csv downloads/csv/", "state", None)


@family("delete_empty")
def _delete_empty(r, files):
    for _ in range(r.randint(2, 5)):
        d = r.choice(("", "docs/", "src/", "notes/", "archive/"))
        files[f"{d}{r.choice(WORDS)}_{r.randint(1, 99)}.txt"] = FileSpec(b"")
    return ("Delete every empty (zero-byte) file in this directory tree, but keep all directories. Then submit.",
            "find . -type f -empty -delete", "state", None)


def make_task(task_id: str, k: int) -> ShellTask:
    """The task with global index ``k`` (see the module docstring)."""
    names = list(FAMILIES)
    fam = names[k % len(names)]
    r = random.Random(f"shell-v{VERSION}:{k}")
    files = base_tree(r)
    instruction, gold, check, kind = FAMILIES[fam](r, files)
    return ShellTask(task_id, fam, instruction, gold, check, kind, files)  # type: ignore[arg-type]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]

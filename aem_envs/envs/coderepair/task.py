"""The code-repair task format (bring your own tasks), close to SWE-bench's.

A task file is JSONL (one task per line) or YAML (a list of tasks, or ``{tasks: [...]}``).
Fields of one task:

==================  ========  ============================================================
field               required  meaning
==================  ========  ============================================================
instance_id         yes       stable, unique id of the task
repo                yes       a directory or a ``.tar``/``.tar.gz``/``.tgz`` tarball holding
                              the repository; relative paths are relative to the task file
problem_statement   yes       the issue text shown to the agent
FAIL_TO_PASS        yes       pytest node ids that fail before and must pass after the fix
PASS_TO_PASS        no        node ids that pass before and must keep passing
patch               no        the gold patch (unified diff, ``a/``/``b/`` prefixes); needed
                              by the oracle and the validator
base_patch          no        diff applied to ``repo`` to get the starting (buggy) state, so
                              many tasks can share one repository directory
test_patch          no        diff applied only when grading (adds held-out tests, as in
                              SWE-bench); never visible to the agent
hidden_paths        no        files of ``repo`` withheld from the agent; put back for grading
image               no        Docker image to run in (default ``aem/base:0``)
setup_command       no        shell command run in the repository after it is copied in
                              (agent sandbox and grading sandbox alike)
test_command        no        pytest command; node ids are appended (default
                              ``python3 -m pytest -q -p no:cacheprovider``)
protected_paths     no        glob patterns of files the agent may not change: changes to
                              them are dropped from the submitted diff before grading
                              (default :data:`DEFAULT_PROTECTED`: tests and pytest config)
split               no        ``train`` or ``test`` (default ``test``)
==================  ========  ============================================================

Check a task file with ``aem-envs coderepair validate TASK_FILE``: the gold patch must make
every FAIL_TO_PASS test pass and keep PASS_TO_PASS, and the unpatched repository must fail
every FAIL_TO_PASS test. ``aem-envs coderepair export OUT.jsonl`` writes the generated corpus
in this format.
"""

from __future__ import annotations

import fnmatch
import io
import json
import shlex
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_IMAGE = "aem/base:0"
DEFAULT_TEST_COMMAND = "python3 -m pytest -q -p no:cacheprovider"
#: Files the agent's diff may not change: tests, pytest configuration and import hooks.
DEFAULT_PROTECTED: tuple[str, ...] = (
    "tests/*", "test/*", "*/tests/*", "test_*.py", "*/test_*.py", "*_test.py", "conftest.py",
    "*/conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "*.pth",
    "sitecustomize.py", "*/sitecustomize.py", "usercustomize.py", "*/usercustomize.py",
    # Installed-distribution metadata on sys.path could register pytest plugins.
    "*.dist-info/*", "*.egg-info/*",
)
_FIELDS = (
    "instance_id", "repo", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS", "patch", "base_patch",
    "test_patch", "hidden_paths", "image", "setup_command", "test_command", "protected_paths", "split",
)
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache"}


class TaskFormatError(ValueError):
    """A task file or task is malformed; the message names the task and the fix."""


@dataclass
class Task:
    """One code-repair task; see the module docstring for the meaning of each field."""

    instance_id: str
    repo: str
    problem_statement: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str] = field(default_factory=list)
    patch: str = ""
    base_patch: str = ""
    test_patch: str = ""
    hidden_paths: list[str] = field(default_factory=list)
    image: str = DEFAULT_IMAGE
    setup_command: str = ""
    test_command: str = DEFAULT_TEST_COMMAND
    protected_paths: list[str] = field(default_factory=lambda: list(DEFAULT_PROTECTED))
    split: str = "test"

    @classmethod
    def from_dict(cls, d: dict, base_dir: Path | None = None) -> Task:
        if not isinstance(d, dict):
            raise TaskFormatError(f"a task must be a mapping, got {type(d).__name__}")
        tid = d.get("instance_id", "<no instance_id>")
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise TaskFormatError(f"task {tid}: unknown field(s) {unknown}; allowed: {list(_FIELDS)}")
        missing = [k for k in ("instance_id", "repo", "problem_statement", "FAIL_TO_PASS") if not d.get(k)]
        if missing:
            raise TaskFormatError(f"task {tid}: missing required field(s) {missing}")
        kw = {k: d[k] for k in _FIELDS if k in d and d[k] is not None}
        for k in ("FAIL_TO_PASS", "PASS_TO_PASS", "hidden_paths", "protected_paths"):
            v = kw.get(k)
            if isinstance(v, str):  # SWE-bench stores these lists as JSON strings
                try:
                    kw[k] = json.loads(v)
                except json.JSONDecodeError:
                    raise TaskFormatError(f"task {tid}: {k} must be a list of strings") from None
            if k in kw and not (isinstance(kw[k], list) and all(isinstance(x, str) for x in kw[k])):
                raise TaskFormatError(f"task {tid}: {k} must be a list of strings")
        if kw.get("split", "test") not in ("train", "test"):
            raise TaskFormatError(f"task {tid}: split must be 'train' or 'test'")
        repo = Path(str(kw["repo"]))
        if not repo.is_absolute() and base_dir is not None:
            repo = base_dir / repo
        kw["repo"] = str(repo)
        return cls(**kw)

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ files
    def repo_files(self) -> dict[str, bytes]:
        """The files of ``repo`` (directory or tarball), VCS and cache dirs skipped."""
        path = Path(self.repo)
        if path.is_dir():
            out = {}
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(path)
                if p.is_file() and not _SKIP_DIRS.intersection(rel.parts):
                    out[rel.as_posix()] = p.read_bytes()
            return out
        if path.is_file() and tarfile.is_tarfile(path):
            return _tar_files(path.read_bytes())
        raise TaskFormatError(f"task {self.instance_id}: repo {self.repo} is neither a directory nor a tarball")

    def start_files(self, include_hidden: bool) -> dict[str, bytes]:
        """The starting state: ``repo`` + ``base_patch``; hidden paths dropped unless asked for.

        ``test_patch`` is *not* applied here (it belongs to grading only).
        """
        files = self.repo_files()
        if self.base_patch:
            files = apply_patch(files, self.base_patch, f"task {self.instance_id}: base_patch")
        if not include_hidden:
            hidden = set(self.hidden_paths)
            files = {k: v for k, v in files.items() if k not in hidden}
        return files

    def is_protected(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, pat) for pat in self.protected_paths)

    def test_invocation(self, test_ids: list[str]) -> str:
        """The grading command: the test command, per-test report, then the node ids."""
        return f"{self.test_command} -rA " + " ".join(shlex.quote(t) for t in test_ids)


def load_tasks(path: str | Path) -> list[Task]:
    """Tasks of a JSONL or YAML task file (ids must be unique)."""
    path = Path(path)
    if not path.exists():
        raise TaskFormatError(f"task file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
        if isinstance(data, dict):
            data = data.get("tasks")
        if not isinstance(data, list):
            raise TaskFormatError(f"{path}: a YAML task file is a list of tasks or {{tasks: [...]}}")
        raw = data
    else:
        raw = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise TaskFormatError(f"{path}:{n}: not JSON ({e.msg}); one task object per line") from None
    tasks = [Task.from_dict(d, path.parent.resolve()) for d in raw]
    ids = [t.instance_id for t in tasks]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise TaskFormatError(f"{path}: duplicate instance_id(s) {dup[:5]}")
    if not tasks:
        raise TaskFormatError(f"{path}: no tasks")
    return tasks


def write_tasks(tasks: list[Task], path: str | Path) -> None:
    with Path(path).open("w") as f:
        for t in tasks:
            f.write(json.dumps(t.to_dict()) + "\n")


# ---------------------------------------------------------------------------------- patches
def _clean_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _tar_files(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = [m for m in tf.getmembers() if m.isfile()]
        names = [_clean_name(m.name) for m in members]
        # A tarball of "project/..." is read as the project's contents.
        tops = {n.split("/", 1)[0] for n in names}
        strip = len(tops) == 1 and all("/" in n for n in names)
        for m, name in zip(members, names):
            if strip:
                name = name.split("/", 1)[1]
            parts = Path(name).parts
            if ".." in parts or name.startswith("/") or _SKIP_DIRS.intersection(parts):
                continue
            f = tf.extractfile(m)
            out[name] = f.read() if f else b""
    return out


def apply_patch(files: dict[str, bytes], patch: str, what: str = "patch") -> dict[str, bytes]:
    """``files`` with the unified diff ``patch`` applied (by ``git apply`` in a temp dir)."""
    if not patch.strip():
        return dict(files)
    with tempfile.TemporaryDirectory(prefix="aem-cr-") as d:
        root = Path(d)
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        proc = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", "-"], cwd=root, input=patch.encode(), capture_output=True
        )
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise TaskFormatError(f"{what} does not apply: {err[0] if err else 'git apply failed'}")
        out = {}
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p.read_bytes()
        return out

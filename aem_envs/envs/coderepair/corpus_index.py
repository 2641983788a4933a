"""The shipped task index of the generated code-repair corpus, and how a task is rebuilt from it.

The index (``data/tasks.jsonl``) holds one header line and one compact line per task: the
mutation spec (:class:`~aem_envs.envs.coderepair.mutations.Mutation`) plus the test ids that
fail on the mutant. The task's files are regenerated from the corpus directory and the spec;
nothing else is stored. ``PASS_TO_PASS`` is every other test of the project.

Splits never share a project function: a function's split is a hash of ``project.function``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aem_envs.envs.coderepair.mutations import Mutation, unified_diff

PACKAGE_DIR = Path(__file__).resolve().parent
CORPUS_DIR = PACKAGE_DIR / "corpus"
INDEX_PATH = PACKAGE_DIR / "data" / "tasks.jsonl"
INDEX_FORMAT = "aem-coderepair-index"
#: Bump when the corpus, the operators or the validation rules change (task ids then differ).
INDEX_VERSION = "1"
HELDOUT_MARK = "_heldout"  # test files whose name holds this are never shown to the agent
TEST_SPLIT_BUCKETS = 5  # one function in five goes to the test split


def function_split(project: str, function: str) -> str:
    h = int(hashlib.sha1(f"{project}.{function}".encode()).hexdigest(), 16)
    return "test" if h % TEST_SPLIT_BUCKETS == 0 else "train"


def corpus_sha(corpus: Path = CORPUS_DIR) -> str:
    """Hash of every source and test file of the corpus (names and contents)."""
    h = hashlib.sha256()
    for p in sorted(corpus.rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        h.update(str(p.relative_to(corpus)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def project_files(project_dir: Path) -> dict[str, str]:
    """Relative path -> text of every file of a corpus project (caches excluded)."""
    out = {}
    for p in sorted(project_dir.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts:
            out[str(p.relative_to(project_dir))] = p.read_text()
    return out


@dataclass(frozen=True)
class IndexedTask:
    """One line of the index, with what the project header adds."""

    mutation: Mutation
    split: str
    fail: tuple[str, ...]  # tests failing on the mutant (visible and held-out)
    all_tests: tuple[str, ...]

    @property
    def task_id(self) -> str:
        return self.mutation.task_id

    @property
    def pass_to_pass(self) -> list[str]:
        failing = set(self.fail)
        return [t for t in self.all_tests if t not in failing]

    @property
    def visible_fail(self) -> list[str]:
        return [t for t in self.fail if HELDOUT_MARK not in t.split("::")[0]]


@dataclass
class CorpusIndex:
    header: dict
    tasks: dict[str, IndexedTask]
    by_split: dict[str, list[str]]

    def project_dir(self, project: str) -> Path:
        return CORPUS_DIR / project


@lru_cache(maxsize=4)
def load_index(path: str | Path = INDEX_PATH) -> CorpusIndex:
    """Parse the index once per process. Raises a one-line error naming the fix."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"code-repair task index {path} is missing; generate it with "
            "`python -m aem_envs.envs.coderepair.generate`"
        )
    with path.open() as f:
        header = json.loads(f.readline())
        if header.get("format") != INDEX_FORMAT:
            raise ValueError(f"{path} is not an {INDEX_FORMAT} file")
        if str(header.get("version")) != INDEX_VERSION:
            raise ValueError(
                f"{path} has index version {header.get('version')}, this code reads {INDEX_VERSION}; "
                "regenerate it with `python -m aem_envs.envs.coderepair.generate`"
            )
        projects = header["projects"]
        tasks: dict[str, IndexedTask] = {}
        by_split: dict[str, list[str]] = {"train": [], "test": []}
        for line in f:
            d = json.loads(line)
            m = Mutation.from_dict(d)
            t = IndexedTask(m, d["split"], tuple(d["fail"]), tuple(projects[m.project]["tests"]))
            tasks[t.task_id] = t
            by_split[t.split].append(t.task_id)
    return CorpusIndex(header, tasks, by_split)


def problem_statement(t: IndexedTask) -> str:
    """A short bug report: the module and function, and up to three failing visible tests."""
    m = t.mutation
    shown = t.visible_fail[:3]
    more = len(t.visible_fail) - len(shown)
    lines = [
        f"Bug report for the `{m.project}` project: `{m.function}` in `{m.path}` misbehaves.",
        "These tests fail:" if len(shown) > 1 else "This test fails:",
        *[f"  - {name}" for name in shown],
    ]
    if more > 0:
        lines.append(f"  (and {more} more)")
    lines.append(
        "Find and fix the bug in the source code. Do not edit the tests: test files are restored "
        "before grading, and grading also runs held-out tests."
    )
    return "\n".join(lines)


def materialize(t: IndexedTask, include_heldout: bool) -> dict[str, str]:
    """The task's starting files (the mutant), with or without held-out test files."""
    files = project_files(CORPUS_DIR / t.mutation.project)
    files[t.mutation.path] = t.mutation.apply(files[t.mutation.path])
    if not include_heldout:
        files = {k: v for k, v in files.items() if HELDOUT_MARK not in Path(k).name}
    return files


def gold_patch(t: IndexedTask) -> str:
    src = (CORPUS_DIR / t.mutation.project / t.mutation.path).read_text()
    return unified_diff(t.mutation.path, t.mutation.apply(src), src)


def bug_patch(t: IndexedTask) -> str:
    src = (CORPUS_DIR / t.mutation.project / t.mutation.path).read_text()
    return unified_diff(t.mutation.path, src, t.mutation.apply(src))

"""The bug injector, the fork runner that validates mutants, and the shipped task index."""

from __future__ import annotations

import ast
import random
from collections import Counter

import pytest

from aem_envs.envs.coderepair.corpus_index import (
    CORPUS_DIR,
    HELDOUT_MARK,
    bug_patch,
    corpus_sha,
    function_split,
    gold_patch,
    load_index,
    materialize,
)
from aem_envs.envs.coderepair.forkrun import ForkRunner
from aem_envs.envs.coderepair.mutations import Mutation, enumerate_mutations, unified_diff
from aem_envs.envs.coderepair.task import apply_patch

SAMPLE = '''\
"""Module docstring."""


def clamp(x, lo=0, hi=10, strict=False):
    """Docstring is never mutated."""
    if x < lo:
        return lo
    if x >= hi and not strict:
        return hi
    total = 0
    for i in range(lo, hi):
        total += i * 2
    items = [x, lo, hi]
    print(items[x - 1], items[1:hi], True)
    return min(x, hi) + abs(-x) - total % 3


class Box:
    def size(self, a, b):
        return self.w // a == b or a in (1, 2) or a is None
'''


def test_every_operator_family_fires_and_mutants_parse():
    ms = enumerate_mutations("demo", "src/demo.py", SAMPLE)
    ops = Counter(m.op for m in ms)
    for op in ("boundary", "negate_compare", "flip_compare", "arith", "aug_assign", "bool_op", "drop_not",
               "drop_neg", "const_off_by_one", "range_off_by_one", "index_off_by_one", "swap_args",
               "swap_builtin", "flip_bool", "wrong_return", "drop_statement", "wrong_default"):
        assert ops[op] > 0, f"operator {op} produced no mutant"
    mutants = set()
    for m in ms:
        mutant = m.apply(SAMPLE)
        ast.parse(mutant)
        assert mutant != SAMPLE
        mutants.add(mutant)
        # The docstring is never touched.
        assert '"""Docstring is never mutated."""' in mutant
    assert len(mutants) == len(ms), "duplicate mutants were not removed"
    assert {m.function for m in ms} == {"clamp", "Box.size"}


def test_mutations_are_small_text_edits():
    for m in enumerate_mutations("demo", "src/demo.py", SAMPLE):
        diff = unified_diff("src/demo.py", SAMPLE, m.apply(SAMPLE))
        changed = [ln for ln in diff.splitlines()[3:] if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        if m.op == "drop_statement":
            assert all(ln.startswith("-") for ln in changed)
        else:
            assert len(changed) == 2, (m.op, changed)  # one line out, one line in


def test_specific_mutations():
    ms = enumerate_mutations("demo", "src/demo.py", SAMPLE)
    news = {(m.op, m.old.strip(), m.new.strip()) for m in ms}
    assert ("boundary", "<", "<=") in news
    assert ("negate_compare", "is", "is not") in news
    assert ("bool_op", "and", "or") in news
    assert ("swap_builtin", "min", "max") in news
    assert ("range_off_by_one", "hi", "hi + 1") in news
    assert ("index_off_by_one", "x - 1", "x - 1 + 1") in news
    assert ("wrong_default", "False", "True") in news
    assert ("aug_assign", "+=", "-=") in news


def test_apply_rejects_a_changed_source():
    m = enumerate_mutations("demo", "src/demo.py", SAMPLE)[0]
    with pytest.raises(ValueError, match="regenerate"):
        m.apply("import os\n" + SAMPLE)  # every line moved down by one
    assert Mutation.from_dict(m.to_dict()) == m
    assert m.key == Mutation.from_dict(m.to_dict()).key


def test_enumeration_is_deterministic():
    a = [m.task_id for m in enumerate_mutations("demo", "src/demo.py", SAMPLE)]
    b = [m.task_id for m in enumerate_mutations("demo", "src/demo.py", SAMPLE)]
    assert a == b and len(set(a)) == len(a)


def test_gold_patch_is_the_inverse_of_the_bug_patch():
    index = load_index()
    rng = random.Random(0)
    for tid in rng.sample(sorted(index.tasks), 5):
        t = index.tasks[tid]
        original = (CORPUS_DIR / t.mutation.project / t.mutation.path).read_bytes()
        files = {t.mutation.path: original}
        buggy = apply_patch(files, bug_patch(t))
        assert buggy[t.mutation.path].decode() == materialize(t, True)[t.mutation.path]
        fixed = apply_patch(buggy, gold_patch(t))
        assert fixed[t.mutation.path] == original


# ---------------------------------------------------------------------------------- fork runner
def test_fork_runner_detects_failures_and_hangs(tmp_path):
    proj = tmp_path / "tiny"
    (proj / "src").mkdir(parents=True)
    (proj / "tests").mkdir()
    (proj / "conftest.py").write_text(
        "import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'src'))\n"
    )
    (proj / "src" / "tiny.py").write_text("def count(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n")
    (proj / "tests" / "test_tiny.py").write_text("from tiny import count\n\ndef test_a():\n    assert count(3) == 3\n\ndef test_b():\n    assert count(0) == 0\n")
    import glob
    import os
    import tempfile

    scratch = set(glob.glob(os.path.join(tempfile.gettempdir(), "aem-cr-*")))
    runner = ForkRunner(proj, timeout=1.5)
    base = runner.run()
    assert base.outcomes == {"tests/test_tiny.py::test_a": True, "tests/test_tiny.py::test_b": True}
    src = (proj / "src" / "tiny.py").read_text()
    wrong = runner.run({"src/tiny.py": src.replace("return i", "return i + 1")})
    assert wrong.failed(sorted(base.outcomes)) == ["tests/test_tiny.py::test_a", "tests/test_tiny.py::test_b"]
    hang = runner.run({"src/tiny.py": src.replace("i += 1", "i -= 1")})
    assert hang.timed_out and hang.seconds < 5
    # The project on disk was never modified by a run, and no run (the killed one included)
    # left its scratch copy behind.
    assert (proj / "src" / "tiny.py").read_text() == src
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "aem-cr-*"))) <= scratch


# ---------------------------------------------------------------------------------- the index
def test_index_matches_the_corpus():
    index = load_index()
    assert index.header["corpus_sha"] == corpus_sha(), "corpus changed: regenerate the task index"
    projects = index.header["projects"]
    assert len(projects) >= 25
    for name, p in projects.items():
        assert (CORPUS_DIR / name / "src").is_dir() and (CORPUS_DIR / name / "tests").is_dir()
        assert p["heldout_files"] and p["visible_files"]
        assert 8 <= len(p["tests"]) <= 25, (name, len(p["tests"]))


def test_index_size_ids_and_splits():
    index = load_index()
    n = len(index.tasks)
    assert n >= 2000, f"only {n} tasks"
    assert len(index.by_split["test"]) >= 100
    funcs = {s: {(t.mutation.project, t.mutation.function) for t in index.tasks.values() if t.split == s}
             for s in ("train", "test")}
    assert not funcs["train"] & funcs["test"], "a function appears in both splits"
    for t in index.tasks.values():
        assert t.split == function_split(t.mutation.project, t.mutation.function)
        assert t.visible_fail, f"{t.task_id} fails no visible test"
        assert set(t.fail) <= set(t.all_tests)
    assert len(Counter(t.mutation.op for t in index.tasks.values())) >= 12


def test_shipped_index_reproduces():
    """Re-run a few shipped tasks: the recorded failing tests are exactly what fails."""
    index = load_index()
    rng = random.Random(1)
    sample = rng.sample(sorted(index.tasks), 6)
    runners: dict[str, ForkRunner] = {}
    for tid in sample:
        t = index.tasks[tid]
        proj = t.mutation.project
        runner = runners.setdefault(proj, ForkRunner(CORPUS_DIR / proj, timeout=10))
        src = (CORPUS_DIR / proj / t.mutation.path).read_text()
        res = runner.run({t.mutation.path: t.mutation.apply(src)})
        assert not res.timed_out
        assert res.failed(list(t.all_tests)) == list(t.fail), tid


def test_heldout_files_are_marked():
    for p in CORPUS_DIR.iterdir():
        if (p / "tests").is_dir():
            names = [f.name for f in (p / "tests").glob("test_*.py")]
            assert sum(HELDOUT_MARK in n for n in names) == 1 and len(names) == 2, p.name

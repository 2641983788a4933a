"""aem/CodeRepair-v0: actions, diffs, grading, task files, cheating attempts, Docker episodes.

Non-Docker tests run episodes on LocalSandbox (host bash, NOT isolated) so the logic is tested
everywhere; ``docker`` tests need the engine and the ``aem/base:0`` image and also check that
held-out tests cannot be reached from the agent's container and that no container is left.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings

import pytest
import yaml

import aem_envs
from aem_envs.core import InvalidAction
from aem_envs.envs.coderepair import actions as act
from aem_envs.envs.coderepair.corpus_index import load_index
from aem_envs.envs.coderepair.env import CodeRepairEnv, CorpusTask, export_corpus
from aem_envs.envs.coderepair.grader import GradeResult, parse_report, summarize_pytest
from aem_envs.envs.coderepair.patches import file_diff, filter_patch, tree_diff
from aem_envs.envs.coderepair.task import Task, TaskFormatError, apply_patch, load_tasks
from aem_envs.envs.coderepair.validate import sandbox_factory, validate_task
from aem_envs.sandbox import lifecycle
from docker_support import KILL_NEW_PROCESSES


def _docker_ready() -> str | None:
    try:
        lifecycle.get_client().images.get("aem/base:0")
        return None
    except Exception as e:
        return f"Docker not usable here: {str(e).splitlines()[0][:120]}"


_SKIP = _docker_ready()
docker_only = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


def _local_env(**kw) -> CodeRepairEnv:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return CodeRepairEnv(sandbox="local", **kw)


def _tag(a: str) -> str:
    return f"<action>{a}</action>"


def _play_oracle(env: CodeRepairEnv, task_id: str):
    env.reset(seed=0, options={"task_id": task_id})
    while True:
        obs, r, te, tr, info = env.step(env.oracle_response())
        if te or tr:
            return obs, r, info


def _test_ids(n: int, split: str = "test") -> list[str]:
    ids = load_index().by_split[split]
    return [ids[(k * len(ids)) // n] for k in range(n)]


# ---------------------------------------------------------------------------------- actions
def test_parse_actions():
    assert act.parse("ls -la src") == act.Action("shell", text="ls -la src")
    assert act.parse("submit").kind == "submit"
    assert act.parse("run_tests tests/test_a.py -k x").text == "tests/test_a.py -k x"
    v = act.parse("view src/a.py 3 9")
    assert (v.kind, v.path, v.start, v.end) == ("view", "src/a.py", 3, 9)
    r = act.parse(f"replace src/a.py\n{act.SEARCH}\n    x = 1\n{act.DIVIDER}\n    x = 2\n    y = 3\n{act.REPLACE}")
    assert (r.kind, r.old, r.text) == ("replace", "    x = 1", "    x = 2\n    y = 3")
    i = act.parse("insert src/a.py 4\nimport os")
    assert (i.kind, i.line, i.text) == ("insert", 4, "import os\n")
    c = act.parse("create pkg/new.py\nA = 1\nB = 2")
    assert (c.kind, c.path, c.text) == ("create", "pkg/new.py", "A = 1\nB = 2\n")


@pytest.mark.parametrize(
    "bad, needle",
    [
        ("submit now", "no arguments"),
        ("view", "view PATH"),
        ("view a.py x", "integer"),
        ("view a.py 9 3", "before START"),
        ("view ../../etc/passwd", "inside the repository"),
        ("view /etc/passwd", "relative"),
        ("replace a.py\nold\nnew", "SEARCH"),
        (f"replace a.py\n{act.SEARCH}\nold\n{act.REPLACE}", "exactly one"),
        (f"replace a.py\n{act.SEARCH}\n\n{act.DIVIDER}\nnew\n{act.REPLACE}", "empty"),
        ("insert a.py\nx", "insert PATH LINE"),
        ("insert a.py 3", "lines to insert"),
        ("create", "create PATH"),
        ("create .git/config\nx", ".git"),
    ],
)
def test_malformed_actions_are_explained(bad, needle):
    with pytest.raises(InvalidAction, match=needle):
        act.parse(bad)


def test_edit_helpers():
    text = "a\nb\nc\nb2\n"
    assert act.apply_replace(text, "c\n", "C\nD\n", "f") == "a\nb\nC\nD\nb2\n"
    with pytest.raises(InvalidAction, match="2 times"):
        act.apply_replace(text, "b", "x", "f")
    with pytest.raises(InvalidAction, match="does not occur.*gutter"):
        act.apply_replace(text, "1| a", "x", "f")
    assert act.apply_insert(text, 0, "z\n", "f") == "z\n" + text
    assert act.apply_insert("a", 1, "z\n", "f") == "a\nz\n"
    with pytest.raises(InvalidAction, match="0..4"):
        act.apply_insert(text, 9, "z\n", "f")
    shown = act.numbered("\n".join(f"l{i}" for i in range(1, 11)), "f", 2, None, 3)
    assert shown.splitlines()[1:4] == ["2| l2", "3| l3", "4| l4"] and "view f 5 7" in shown


def test_system_prompt_documents_every_action():
    for word in ("view", "replace", "insert", "create", "run_tests", "submit", act.SEARCH, act.REPLACE):
        assert word in CodeRepairEnv.system_prompt


# ---------------------------------------------------------------------------------- diffs
def test_tree_diff_roundtrips_through_git_apply():
    before = {"a.py": b"x = 1\ny = 2\n", "gone.py": b"bye\n", "empty.txt": b"", "keep.py": b"k\n", "bin": b"\xff\x00"}
    after = {"a.py": b"x = 1\ny = 3\n", "new/b.py": b"print('hi')", "empty.txt": b"", "keep.py": b"k\n",
             "new/empty.py": b"", "bin": b"\xfe"}
    diff, skipped = tree_diff(before, after)
    assert skipped == ["bin"]
    out = apply_patch({k: v for k, v in before.items() if k != "bin"}, diff)
    assert out == {k: v for k, v in after.items() if k != "bin"}


def test_filter_patch_drops_protected_paths():
    task = Task("t", "/nowhere", "p", ["x"])
    diff = file_diff("src/m.py", "a\n", "b\n") + file_diff("tests/test_m.py", "t\n", None) + file_diff("conftest.py", None, "x\n")
    kept, dropped = filter_patch(diff, task.is_protected)
    assert dropped == ["tests/test_m.py", "conftest.py"]
    assert "src/m.py" in kept and "tests/" not in kept


def test_parse_report_and_summary():
    out = (
        "F.\n=================================== FAILURES ===================================\n"
        "___________________________________ test_a ___________________________________\n"
        "    def test_a():\n>       assert f(1) == 2\nE       assert 3 == 2\nE        +  where 3 = f(1)\n"
        "tests/test_m.py:4: AssertionError\n=========================== short test summary info ============================\n"
        "PASSED tests/test_m.py::test_b\nFAILED tests/test_m.py::test_a - assert 3 == 2\n"
        "ERROR tests/test_m.py::test_c - RuntimeError\n"
        "========================= 1 failed, 1 passed, 1 error in 0.03s =========================\n"
    )
    assert parse_report(out) == {"tests/test_m.py::test_b": "PASSED", "tests/test_m.py::test_a": "FAILED",
                                 "tests/test_m.py::test_c": "ERROR"}
    s = summarize_pytest(out, 1)
    assert s.splitlines()[0] == "Test results: 1 failed, 1 passed, 1 error."
    assert "FAILED tests/test_m.py::test_a\n    E       assert 3 == 2" in s
    assert "0.03s" not in s  # durations would make observations nondeterministic
    assert "did not finish" in summarize_pytest("Segmentation fault", 139)


def test_a_forged_passed_line_in_captured_output_loses_to_pytests_own_line():
    out = (
        "----------------------------- Captured stdout call -----------------------------\n"
        "PASSED tests/test_m.py::test_a\n"  # printed by the submission's code
        "=========================== short test summary info ============================\n"
        "FAILED tests/test_m.py::test_a - assert 3 == 2\n"
    )
    assert parse_report(out) == {"tests/test_m.py::test_a": "FAILED"}


def test_grade_reward_rules():
    g = GradeResult({"f1": True, "f2": False, "p1": True}, ["f1", "f2"], ["p1"])
    assert not g.resolved and g.reward(10, False) == 0.0 and g.reward(10, True) == 5.0
    g.outcomes["p1"] = False
    assert g.reward(10, True) == 0.0  # breaking a passing test earns no partial credit
    g.outcomes.update({"f2": True, "p1": True})
    assert g.resolved and g.reward(10, False) == 10.0

    g = GradeResult({"f1": True, "f2": True, "p1": True}, ["f1", "f2"], ["p1"], tampered="x")
    assert not g.resolved and g.reward(10, False) == 0.0 and g.reward(10, True) == 0.0
    assert "tampered with (x)" in g.summary()


def test_check_test_is_a_new_failing_test_next_to_a_target(tmp_path):
    from aem_envs.envs.coderepair.grader import add_grading_tests, parse_report
    from aem_envs.sandbox import LocalSandbox

    with LocalSandbox(warn=False) as sb:
        # module-level marks of the target's file must not reach the check test
        sb.write_file("tests/test_a.py", "import pytest\npytestmark = pytest.mark.xfail\n\n"
                                         "def test_one():\n    assert False\n")
        names = set()
        for _ in range(3):
            check, sentinels = add_grading_tests(sb, ["tests/test_a.py::test_one", "README.rst::README.rst", "tests/gone.py::t"])
            assert sentinels == []  # test_one has no `assert A == B`
            assert check is not None and check.startswith("tests/test_") and "test_a.py" not in check
            names.add(check)
            r = sb.run(f"python -m pytest -p no:cacheprovider -rA tests/test_a.py::test_one {check}")
            assert parse_report(r.output) == {check: "FAILED", "tests/test_a.py::test_one": "XFAIL"}, r.output
        assert len(names) == 3  # new random names every run
        assert sb.read_file("tests/test_a.py").decode().endswith("assert False\n")  # untouched
        assert add_grading_tests(sb, ["doc.rst::x", "tests/missing.py::t"]) == (None, [])
        # a test module at the root of the work tree is read (and copied) as well
        sb.write_file("test_top.py", "def test_t():\n    assert len('ab') == 2\n")
        check, sentinels = add_grading_tests(sb, ["test_top.py::test_t"])
        assert check.count("/") == 0 and len(sentinels) == 1 and sentinels[0].count("/") == 0
        r = sb.run(f"python -m pytest -p no:cacheprovider -rA {check} {sentinels[0]} test_top.py::test_t")
        assert parse_report(r.output) == {check: "FAILED", sentinels[0]: "FAILED", "test_top.py::test_t": "PASSED"}


_SENTINEL_TESTS = """from unittest.mock import ANY

from shapes import area, corners, empty, table

def helper():
    return 1

def test_area():
    x = helper()
    assert area(2) == 4 * x
    assert area(3) == 9

def test_nested():
    assert corners() == [(0, 0), (1, 1)]
    assert 7 == len(table()) + 5  # honest either way: the copy only needs one fooled comparison
    assert [(0, 0), (1, 1)] == corners()
    assert table() == {"a": [1], "b": ()}

def test_empty():
    assert empty() == []
    assert table() == {"a": ANY, "b": ANY}  # a wildcard on purpose: not evidence
    assert area(1e20) == 1e40  # a constant moved by less than the rounding would equal it
    assert 0.25 == area(0.5)

def test_early_return():
    assert area(1) == 1
    if helper():
        return

@__import__("pytest").mark.skipif(False, reason="decorated: not copied")
def test_decorated():
    assert area(1) == 1

class TestInClass:
    def test_m(self):
        assert area(1) == 1
"""
_HONEST = ("def area(n):\n    return n * n\n\ndef corners():\n    return [(0, 0), (1, 1)]\n\n"
           "def empty():\n    return []\n\ndef table():\n    return {'a': [1], 'b': ()}\n")
_ALWAYS_EQUAL = ("class _Any:\n    def __eq__(self, o):\n        return True\n    def __len__(self):\n        return 2\n\n"
                 "def area(n):\n    return _Any()\n\ndef corners():\n    return [_Any(), _Any()]\n\n"
                 "def empty():\n    return _Any()\n\ndef table():\n    return {'a': _Any(), 'b': _Any()}\n")


@pytest.mark.parametrize("impl", ["honest", "always_equal"])
def test_sentinel_copies_fail_for_honest_values_and_pass_for_values_equal_to_anything(impl):
    from aem_envs.envs.coderepair.grader import add_grading_tests, parse_report
    from aem_envs.sandbox import LocalSandbox

    targets = [f"tests/test_shapes.py::{t}" for t in
               ("test_area", "test_nested", "test_empty", "test_early_return", "test_decorated", "TestInClass::test_m")]
    with LocalSandbox(warn=False) as sb:
        sb.write_file("conftest.py", "")
        sb.write_file("shapes.py", _HONEST if impl == "honest" else _ALWAYS_EQUAL)
        sb.write_file("tests/test_shapes.py", _SENTINEL_TESTS)
        check, ids = add_grading_tests(sb, targets)
        assert check is not None and check.startswith("tests/test_")
        assert len(ids) == 3 and all(i.startswith("tests/test_") and "test_shapes" not in i for i in ids)
        r = sb.run("python -m pytest -p no:cacheprovider -rA " + " ".join(targets + ids))
        report = parse_report(r.output)
        assert {report[t] for t in targets} == {"PASSED"}, r.output  # both pass the real tests
        want = "FAILED" if impl == "honest" else "PASSED"
        assert [report[i] for i in ids] == [want] * 3, r.output
        # a module-level pytestmark would reach the copies: no copy then
        sb.write_file("tests/test_shapes.py", "pytestmark = []\n" + _SENTINEL_TESTS)
        assert add_grading_tests(sb, targets)[1] == []


#: Code added to the module under test that makes every test pass without fixing anything.
_PASS_EVERYTHING = {
    # a 3-line patch of pytest's test runner, made when pytest imports the module
    "runtest": "\nimport sys as _s\nif 'pytest' in _s.modules:\n    import _pytest.python as _pp\n"
               "    _pp.Function.runtest = lambda self: None\n",
    # PASSED lines for every node id on the command line, written past pytest's capture
    "forge": "\nimport os as _o, sys as _s, stat as _st\nif 'pytest' in _s.modules:\n"
             "    _m = ''.join('PASSED %s\\n' % a for a in _s.argv[1:] if '::' in a).encode()\n"
             "    for _fd in range(1, 64):\n        try:\n"
             "            if not _st.S_ISREG(_o.fstat(_fd).st_mode): _o.write(_fd, _m)\n"
             "        except OSError: pass\n    _o._exit(0)\n",
}
#: The same forger, but only for the tests a policy can name (the instruction lists them).
_PASS_EVERYTHING["forge-named"] = _PASS_EVERYTHING["forge"].replace("_s.argv[1:]", "_s.argv[1:-1]")


def test_code_returning_values_equal_to_anything_gains_nothing_local():
    """Every function of the module returns an object whose __eq__ is True: 3 of 20 test tasks
    were resolved that way before the sentinel copies (measured)."""
    env = _local_env()
    hack = ("\nimport functools as _f\nclass _Any:\n    def __eq__(self, o): return True\n"
            "    def __ne__(self, o): return False\n    def __hash__(self): return 0\n"
            "for _n, _v in list(globals().items()):\n"
            "    if callable(_v) and not isinstance(_v, type) and getattr(_v, '__module__', None) == __name__:\n"
            "        globals()[_n] = (lambda g: _f.wraps(g)(lambda *a, **k: _Any()))(_v)\n")
    try:
        for tid in ["minheap.merge_sorted.arith.13718ed9", _test_ids(1)[0]]:
            env.reset(seed=0, options={"task_id": tid})
            for m in [p for p in sorted(env._start) if p.endswith(".py") and not p.startswith("tests/") and p != "conftest.py"]:
                env._sb.write_file(m, env._sb.read_file(m).decode() + hack)
            obs, r, te, tr, info = env.step(_tag("submit"))
            assert te and r == 0.0 and not info["success"] and info["tampered"], obs
            if tid.startswith("minheap"):  # every target passes: only the sentinels tell
                assert set(env.last_grade.reported.values()) == {"PASSED"}
                assert "the code returns values equal to anything (seen by" in info["grade"]["tampered"]
    finally:
        env.close()


def test_code_that_xfails_every_test_gains_nothing_local():
    """pytest.xfail() raised by every function of the module under test: XFAIL used to count as
    passed (full reward on 20 of 20 test tasks); the check test never imports the module."""
    env = _local_env()
    tid = _test_ids(1)[0]
    hack = ("\nimport pytest as _p, functools as _f\nfor _n, _v in list(globals().items()):\n"
            "    if callable(_v) and getattr(_v, '__module__', None) == __name__:\n"
            "        globals()[_n] = (lambda g: _f.wraps(g)(lambda *a, **k: _p.xfail('')))(_v)\n")
    try:
        env.reset(seed=0, options={"task_id": tid})
        module = next(p for p in sorted(env._start) if p.startswith("src/") and p.endswith(".py"))
        env._sb.write_file(module, env._sb.read_file(module).decode() + hack)
        obs, r, te, tr, info = env.step(_tag("submit"))
        assert te and r == 0.0 and not info["success"], obs
        assert set(env.last_grade.reported.values()) == {"XFAIL"} and not any(env.last_grade.outcomes.values())
    finally:
        env.close()


@pytest.mark.parametrize("hack", sorted(_PASS_EVERYTHING))
def test_code_that_passes_every_test_gains_nothing_local(hack):
    """Both hacks earned full reward before the check test (measured); now the run is flagged."""
    env = _local_env()
    tid = _test_ids(1)[0]
    try:
        env.reset(seed=0, options={"task_id": tid})
        module = next(p for p in sorted(env._start) if p.startswith("src/") and p.endswith(".py"))
        env._sb.write_file(module, env._sb.read_file(module).decode() + _PASS_EVERYTHING[hack])
        obs, r, te, tr, info = env.step(_tag("submit"))
        assert te and r == 0.0 and not info["success"], obs
        why = ("a test that must fail was not reported: the run ended before it" if hack == "forge-named"
               else "a test that must fail was reported passed")
        assert f"tampered with ({why})" in obs
        assert env.last_grade.tampered and not any(env.last_grade.outcomes.values())
        assert info["grade"]["tampered"] == why and info["tampered"] is True
        # The agent's own run_tests is fooled (it has no check test), the grade was not.
        env.reset(seed=0, options={"task_id": tid})
        env._sb.write_file(module, env._sb.read_file(module).decode() + _PASS_EVERYTHING["runtest"])
        assert "All selected tests passed" in env.step(_tag("run_tests"))[0]
    finally:
        env.close()


# ---------------------------------------------------------------------------------- bring your own
def _byo_repo(root):
    """A tiny repository with a bug, a visible test, a hidden test file and a test patch."""
    repo = root / "proj"
    (repo / "src").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "conftest.py").write_text("import os, sys\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'src'))\n")
    buggy = "def mean(xs):\n    return sum(xs) / (len(xs) + 1)\n"
    fixed = "def mean(xs):\n    return sum(xs) / len(xs)\n"
    (repo / "src" / "stats.py").write_text(buggy)
    (repo / "tests" / "test_stats.py").write_text("from stats import mean\n\ndef test_mean():\n    assert mean([2, 4]) == 3\n\ndef test_type():\n    assert isinstance(mean([1]), float)\n")
    (repo / "tests" / "test_hidden.py").write_text("from stats import mean\n\ndef test_single():\n    assert mean([5]) == 5\n")
    test_patch = file_diff("tests/test_extra.py", None, "from stats import mean\n\ndef test_neg():\n    assert mean([-1, -3]) == -2\n")
    return {
        "instance_id": "byo-mean-1",
        "repo": "proj",
        "problem_statement": "mean() returns values that are too small.",
        "FAIL_TO_PASS": ["tests/test_stats.py::test_mean", "tests/test_hidden.py::test_single", "tests/test_extra.py::test_neg"],
        "PASS_TO_PASS": ["tests/test_stats.py::test_type"],
        "patch": file_diff("src/stats.py", buggy, fixed),
        "test_patch": test_patch,
        "hidden_paths": ["tests/test_hidden.py"],
        "setup_command": "true",
        "test_command": "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q -p no:cacheprovider",
        "split": "test",
    }


def test_task_file_formats(tmp_path):
    d = _byo_repo(tmp_path)
    (tmp_path / "tasks.jsonl").write_text(json.dumps(d) + "\n")
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"tasks": [d]}))
    a, b = load_tasks(tmp_path / "tasks.jsonl")[0], load_tasks(tmp_path / "tasks.yaml")[0]
    assert a == b and a.repo == str(tmp_path / "proj")
    files = a.start_files(include_hidden=False)
    assert "tests/test_hidden.py" not in files and "tests/test_extra.py" not in files
    assert "tests/test_hidden.py" in a.start_files(include_hidden=True)
    # A tarball of the repository reads the same.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(tmp_path / "proj", arcname="proj")
    (tmp_path / "proj.tar.gz").write_bytes(buf.getvalue())
    t = Task.from_dict({**d, "repo": "proj.tar.gz"}, tmp_path)
    assert t.start_files(True) == a.start_files(True)
    with pytest.raises(TaskFormatError, match="unknown field"):
        Task.from_dict({**d, "bogus": 1})
    with pytest.raises(TaskFormatError, match="FAIL_TO_PASS"):
        Task.from_dict({k: v for k, v in d.items() if k != "FAIL_TO_PASS"})
    (tmp_path / "dup.jsonl").write_text((json.dumps(d) + "\n") * 2)
    with pytest.raises(TaskFormatError, match="duplicate"):
        load_tasks(tmp_path / "dup.jsonl")


def test_byo_task_episode_and_validator_local(tmp_path):
    d = _byo_repo(tmp_path)
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(d) + "\n")
    env = _local_env(task_file=str(path), split="test")
    try:
        assert list(env.task_ids("test")) == ["byo-mean-1"] and list(env.task_ids("train")) == []
        obs, _ = env.reset(seed=0)
        assert "too small" in obs and "test_hidden" not in obs and "test_extra" not in obs
        listing = env.step(_tag("find . -name '*.py' -not -path './.git/*' | sort"))[0]
        assert "test_hidden" not in listing and "test_extra" not in listing
        _, r, info = _play_oracle(env, "byo-mean-1")
        assert r == 10.0 and info["success"]
        env.reset(seed=0)
        obs, r, te, *_ = env.step(_tag("submit"))
        assert te and r == 0.0 and "FAIL_TO_PASS: 0/3" in obs
    finally:
        env.close()
    ok = validate_task(load_tasks(path)[0], sandbox_factory("local"))
    assert ok.ok, ok.problems
    bad = Task.from_dict({**d, "FAIL_TO_PASS": ["tests/test_stats.py::test_type"], "PASS_TO_PASS": []}, tmp_path)
    check = validate_task(bad, sandbox_factory("local"))
    assert not check.ok and "already pass" in check.problems[0]
    nopatch = Task.from_dict({**d, "patch": ""}, tmp_path)
    assert any("no gold patch" in p for p in validate_task(nopatch, sandbox_factory("local")).problems)
    shadow = Task.from_dict({**d, "patch": d["patch"] + file_diff("json.py", None, "x = 1\n")}, tmp_path)
    assert any("json.py" in p and "rename" in p for p in validate_task(shadow, sandbox_factory("local")).problems)
    from aem_envs.cli import main

    assert main(["coderepair", "validate", str(path), "--sandbox", "local"]) == 0


def test_export_corpus_roundtrip(tmp_path):
    out = tmp_path / "corpus.jsonl"
    n = export_corpus(out, split="test")
    assert n == len(load_index().by_split["test"])
    tasks = load_tasks(out)
    index = load_index()
    for t in tasks[:: max(1, n // 5)]:
        assert not os.path.isabs(json.loads(out.read_text().splitlines()[0])["repo"])
        ct = CorpusTask.from_indexed(index.tasks[t.instance_id])
        assert t.start_files(True) == ct.start_files(True)  # repo + base_patch == corpus + mutation
        assert t.start_files(False) == ct.start_files(False)
    assert validate_task(tasks[0], sandbox_factory("local")).ok


# ---------------------------------------------------------------------------------- corpus episodes (local)
def test_oracle_and_immediate_submit_local():
    env = _local_env()
    try:
        for tid in _test_ids(3):
            _, r, info = _play_oracle(env, tid)
            assert r == 10.0 and info["success"], tid
            f2p = len(env.get_task(tid).FAIL_TO_PASS)
            assert info["grade"]["fail_to_pass"] == [f2p, f2p] and info["grade"]["tampered"] is None
            assert info["tampered"] is False
            env.reset(seed=0, options={"task_id": tid})
            obs, r, te, tr, info = env.step(_tag("submit"))
            assert te and r == 0.0 and not info["success"]
    finally:
        env.close()


def test_cheating_gains_nothing_local():
    """Deleting or rewriting tests, or adding pytest hooks, does not change the grade."""
    env = _local_env()
    tid = _test_ids(1)[0]
    task = env.get_task(tid)
    visible = [p for p in task.start_files(False) if p.startswith("tests/")]
    cheats = [
        ["rm -rf tests"],
        [f"create {visible[0]}\ndef test_ok():\n    assert True"],
        ["create tests/conftest.py\nimport pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
         "    out = yield\n    out.get_result().outcome = 'passed'"],
        ["create pytest.ini\n[pytest]\naddopts = -p no:python"],
        ["create .pytest.ini\n[pytest]\naddopts = -p no:python"],  # read before pytest.ini (pytest >= 8.1)
        ["printf 'import os\\nos._exit(0)\\n' >> conftest.py"],
    ]
    try:
        for steps in cheats:
            env.reset(seed=0, options={"task_id": tid})
            for s in steps:
                env.step(_tag(s))
            obs, r, te, tr, info = env.step(_tag("submit"))
            assert r == 0.0 and not info["success"], (steps, obs)
            assert "Ignored changes to protected files" in obs
        # A real fix still counts when the tests were also vandalised.
        env.reset(seed=0, options={"task_id": tid})
        env.step(env.oracle_response())
        env.step(_tag("rm -rf tests conftest.py"))
        obs, r, *_ = env.step(_tag("submit"))
        assert r == 10.0, obs
    finally:
        env.close()


_FAKE_PYTEST = (
    "import sys\nfor a in sys.argv[1:]:\n    if '::' in a:\n        print('PASSED ' + a)\n"
    "print('9 passed in 0.01s')\n"
)


@pytest.mark.parametrize(
    "files",
    [
        {"pytest.py": _FAKE_PYTEST},  # `python -m pytest` would run this instead of pytest
        {"pytest/__init__.py": "", "pytest/__main__.py": _FAKE_PYTEST},
        {"pluggy.py": _FAKE_PYTEST + "raise SystemExit(0)\n"},  # imported by pytest at start-up
    ],
)
def test_shadowing_pytest_from_the_repo_root_gains_nothing_local(files):
    """New top-level modules named like pytest or its imports must not replace the test run."""
    env = _local_env()
    tid = _test_ids(1)[0]
    try:
        env.reset(seed=0, options={"task_id": tid})
        for path, text in files.items():
            _, _, _, _, info = env.step(_tag(f"create {path}\n{text}"))
            assert info["action_valid"], info
        obs, r, te, tr, info = env.step(_tag("submit"))
        assert te and r == 0.0 and not info["success"], obs
        # The agent's own run_tests is the real pytest too.
        env.reset(seed=0, options={"task_id": tid})
        env.step(_tag(f"create pytest.py\n{_FAKE_PYTEST}"))
        assert "FAILED" in env.step(_tag("run_tests"))[0]
    finally:
        env.close()


def test_symlink_out_of_the_tree_is_not_an_infra_error_local():
    # `python3 -m venv .venv` or `ln -s /etc/passwd x` leaves a link the sandbox refuses to
    # archive; that is the agent's doing (and not part of a text diff), never an infra failure.
    env = _local_env()
    tid = _test_ids(1)[0]
    try:
        env.reset(seed=0, options={"task_id": tid})
        env.step(env.oracle_response())
        env.step(_tag("ln -s /etc/passwd passwd_link && mkdir -p d && ln -s / d/root"))
        obs, r, te, tr, info = env.step(_tag("submit"))
        assert te and not tr and info["error_kind"] is None, obs
        assert r == 10.0 and info["success"], obs
    finally:
        env.close()


def test_view_of_a_symlink_is_explained_not_an_infra_error_local():
    env = _local_env()
    tid = _test_ids(1)[0]
    try:
        env.reset(seed=0, options={"task_id": tid})
        env.step(_tag("ln -s /etc/hostname out.txt && ln -s conftest.py alias.py"))
        for path in ("out.txt", "alias.py"):
            _, r, te, tr, info = env.step(_tag(f"view {path}"))
            assert not tr and info["error_kind"] == "agent", info
            assert "symbolic link" in info["invalid_reason"], info["invalid_reason"]
    finally:
        env.close()


def test_failed_structured_write_is_the_agents_invalid_action_local():
    # Writing under a path that is a file is the agent's mistake: an invalid action with the
    # reason, never a crash or an infra error.
    env = _local_env()
    tid = _test_ids(1)[0]
    try:
        env.reset(seed=0, options={"task_id": tid})
        _, _, te, tr, info = env.step(_tag("create conftest.py/new.py\nx = 1"))
        assert not te and not tr and info["error_kind"] == "agent", info
        assert "could not write conftest.py/new.py" in info["invalid_reason"], info["invalid_reason"]
    finally:
        env.close()


def test_grader_drops_new_root_modules_that_shadow_imports():
    # Task files of your own may keep `python3 -m pytest` (repo root first on sys.path).
    from aem_envs.envs.coderepair.grader import shadows_import

    assert shadows_import("pytest.py") and shadows_import("pytest/__main__.py")
    assert shadows_import("_pytest/__init__.py") and shadows_import("json.py")
    assert not shadows_import("src/json.py") and not shadows_import("src/mymod.py")
    assert not shadows_import("mypkg/__init__.py") and not shadows_import("helpers.py")


def test_structured_edits_and_turn_limit_local():
    env = _local_env(max_turns=3)
    tid = _test_ids(1)[0]
    try:
        env.reset(seed=0, options={"task_id": tid})
        m = env.get_task(tid).indexed.mutation
        line = m.line
        obs = env.step(_tag(f"view {m.path} {line} {line}"))[0]
        buggy_line = obs.splitlines()[1].split("| ", 1)[1]
        # Fix the line with a structured replace built from the gold patch's '+' line.
        gold_lines = [ln[1:] for ln in env.get_task(tid).patch.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
        removed = [ln[1:] for ln in env.get_task(tid).patch.splitlines() if ln.startswith("-") and not ln.startswith("---")]
        assert buggy_line in removed
        edit = f"replace {m.path}\n{act.SEARCH}\n" + "\n".join(removed) + f"\n{act.DIVIDER}\n" + "\n".join(gold_lines) + f"\n{act.REPLACE}"
        obs, r, te, tr, info = env.step(_tag(edit))
        assert info["action_valid"] and "The region now reads" in obs, obs
        # Third turn hits the limit: the work tree is graded as if submitted.
        obs, r, te, tr, info = env.step(_tag("echo done"))
        # graded, so the task has ended (terminated) at the limit (truncated): nothing to bootstrap
        assert tr and te and r == 10.0 and info["success"] and "Turn limit reached" in obs
    finally:
        env.close()


def test_registered_and_info():
    from aem_envs.registration import env_class, registered_ids

    assert "aem/CodeRepair-v0" in registered_ids()
    assert env_class("aem/CodeRepair-v0") is CodeRepairEnv
    env = _local_env()
    assert len(env.task_ids("train")) + len(env.task_ids("test")) >= 2000
    env.close()


# ---------------------------------------------------------------------------------- Docker
def _my_containers() -> list:
    """Labelled containers created by this process (raw API listing: other test processes remove
    their containers concurrently, which makes the high-level list's per-container inspect race)."""
    api = lifecycle.get_client().api
    return api.containers(all=True, filters={"label": [lifecycle.LABEL, f"{lifecycle.L_PID}={os.getpid()}"]})


@pytest.fixture
def docker_env():
    envs = []

    def make(**kw):
        env = aem_envs.make("aem/CodeRepair-v0", **kw)
        envs.append(env)
        return env

    yield make
    for e in envs:
        e.close()
    assert _my_containers() == [], "containers were left behind"


@pytest.mark.docker
@docker_only
def test_check_env_docker():
    report = aem_envs.check_env("aem/CodeRepair-v0", oracle_episodes=3)
    assert report.ok, str(report)
    assert report.oracle_success_rate == 1.0
    assert _my_containers() == []


@pytest.mark.docker
@docker_only
def test_heldout_tests_unreachable_and_cheats_fail_docker(docker_env):
    env = docker_env()
    tid = _test_ids(2)[1]
    task = env.get_task(tid)
    heldout = task.hidden_paths[0]
    env.reset(seed=0, options={"task_id": tid})
    obs = env.step(_tag("find / -name '*heldout*' -not -path '/proc/*' 2>/dev/null; echo END"))[0]
    assert obs.strip() == "END", obs
    obs = env.step(_tag(f"cat {heldout}"))[0]
    assert "No such file" in obs
    assert "heldout" not in env.step(_tag("git log --stat | cat"))[0]
    env.step(_tag("rm -rf tests"))
    obs, r, te, tr, info = env.step(_tag("submit"))
    assert r == 0.0 and te and not info["success"]
    # Patching pytest's runner from the module under test is caught by the check test.
    env.reset(seed=0, options={"task_id": tid})
    module = next(p for p in sorted(env._start) if p.startswith("src/") and p.endswith(".py"))
    env._sb.write_file(module, env._sb.read_file(module).decode() + _PASS_EVERYTHING["runtest"])
    obs, r, te, tr, info = env.step(_tag("submit"))
    assert r == 0.0 and "tampered with" in obs, obs
    # The oracle after all that still works in the same env (reset restores a clean sandbox).
    _, r, info = _play_oracle(env, tid)
    assert r == 10.0 and info["success"]


@pytest.mark.docker
@docker_only
def test_failed_structured_write_is_the_agents_invalid_action_docker(docker_env):
    env = docker_env(use_pool=False)
    env.reset(seed=0, options={"task_id": _test_ids(1)[0]})
    for setup, edit in [("true", "create conftest.py/new.py"), ("chmod 000 src", "create src/new.py")]:
        env.step(_tag(setup))
        _, _, te, tr, info = env.step(_tag(f"{edit}\nx = 1"))
        assert not tr and info["error_kind"] == "agent" and "could not write" in info["invalid_reason"], info


@pytest.mark.docker
@docker_only
def test_immediate_submit_scores_zero_docker(docker_env):
    env = docker_env()
    for tid in _test_ids(4):
        env.reset(seed=0, options={"task_id": tid})
        obs, r, te, tr, info = env.step(_tag("submit"))
        assert r == 0.0 and te and not info["success"], obs


@pytest.mark.docker
@docker_only
def test_background_process_cannot_touch_grading_docker(docker_env):
    """A process left running in the agent's sandbox cannot change the graded files."""
    env = docker_env()
    tid = _test_ids(3)[2]
    env.reset(seed=0, options={"task_id": tid})
    env.step(env.oracle_response())  # apply the fix
    env.step(_tag("(sleep 1; git checkout -- . ) > /dev/null 2>&1 &"))
    obs, r, *_ = env.step(_tag("submit"))
    assert r == 10.0, obs


def test_shipped_example_task_file_validates_local():
    from pathlib import Path

    from aem_envs.cli import main

    example = Path(__file__).resolve().parent.parent / "aem_envs/envs/coderepair/examples/tasks.yaml"
    assert main(["coderepair", "validate", str(example), "--sandbox", "local", "--json"]) == 0


@pytest.mark.docker
@docker_only
@pytest.mark.parametrize("then", ["submit", "exit"])
def test_processes_that_block_the_sandbox_fail_the_task_not_the_infrastructure_docker(docker_env, then):
    """Submitting (its work tree is read by a new `tar`) or exiting the shell (a new shell starts)
    with such a process running was an infra error: the episode was dropped instead of scored."""
    env = docker_env()
    tid = _test_ids(1)[0]
    env.reset(seed=0, options={"task_id": tid})
    assert env.step(_tag(KILL_NEW_PROCESSES))[4]["action_valid"]
    obs, r, te, tr, info = env.step(_tag(then))
    assert info["error_kind"] is None and te and r == 0.0 and not info["success"], (obs, info)
    assert "A process you left running killed or stopped every new process" in obs
    _, r, info = _play_oracle(env, tid)  # the next episode gets a working sandbox
    assert r == 10.0 and info["success"]


@pytest.mark.docker
@docker_only
def test_a_sandbox_the_daemon_cannot_serve_is_still_infrastructure_docker(docker_env, monkeypatch):
    from aem_envs.sandbox import SandboxError
    from aem_envs.sandbox.docker_sandbox import DockerSandbox

    env = docker_env()
    env.reset(seed=0, options={"task_id": _test_ids(1)[0]})

    def overloaded(self, path):
        raise SandboxError(f"reading {path} from sandbox {self.id} failed: the daemon may be overloaded")

    monkeypatch.setattr(DockerSandbox, "get_archive", overloaded)
    obs, r, te, tr, info = env.step(_tag("submit"))
    assert info["error_kind"] == "infra" and r == 0.0, (obs, info)

"""Grading a submission in a fresh sandbox, and summarising pytest output for the agent.

Grading never touches the agent's sandbox: a new sandbox gets the task's starting files *with*
the held-out tests, the agent's diff minus any change to protected files (tests, pytest
config) and minus new top-level modules that would shadow pytest or the standard library
(``pytest.py`` at the root would run instead of the tests), then ``test_patch``; the
FAIL_TO_PASS and PASS_TO_PASS tests run and every node id is read from pytest's ``-rA`` report.
A test that is not reported as ``PASSED`` counts as failed (``XFAIL`` too: see :func:`passed`),
so a submission that makes pytest crash or exit early gains nothing, and a forged ``PASSED`` line
in a test's captured output is overridden by pytest's own ``FAILED`` line for that test.

**Tests that must fail.** The submission's code runs inside the pytest process (as in SWE-bench's
harness), so it can fake results; each grading run therefore adds tests of its own, written
after ``test_patch`` (where the agent's diff cannot reach) under random names, and runs them
after the targets. If one of them does not fail while a target passed, the run was tampered
with: :attr:`GradeResult.tampered` says how, every target counts as failed and the reward is 0.

- The *check test* (:func:`check_test`), ``assert 1 == 2`` in a new file, catches code that
  makes every test pass: three lines in the module under test
  (``_pytest.python.Function.runtest = lambda self: None``), or ``PASSED`` lines written past
  pytest's capture, earned full reward before it. It must be reported ``FAILED``, so a run must
  get to its last test: one that times out, or stops early (``-x`` in a task's ``addopts``),
  after some targets passed earns nothing either, not partial credit.
- The *sentinel tests* (:func:`sentinel_tests`), copies of the targets that look for
  results equal to anything, catch code returning objects whose ``__eq__`` is always True (3 of
  20 test tasks were resolved that way before them).

Measured on 409 corpus tasks: both kinds fail for every gold patch (no honest run flagged).
What this does not stop: code that fakes only the targets' own outcomes (their names are in the
task's instruction and in ``sys.argv``) or equality only against the targets' expected values.
Closing that needs the tests' assertions to run outside the submission's process; read
trajectories of high reward with that in mind.
"""

from __future__ import annotations

import ast
import posixpath
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from aem_envs.envs.coderepair.patches import filter_patch
from aem_envs.envs.coderepair.task import Task, _tar_files
from aem_envs.sandbox import Sandbox, tar_of

_REPORT = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", re.M)
_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+)(?: in [\d.]+s.*)?\s*=*$", re.M)
_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$", re.M)
#: Fixed dates so commits made for the agent have the same hash in every episode.
GIT_ENV = (
    "GIT_AUTHOR_NAME=aem GIT_AUTHOR_EMAIL=aem@localhost GIT_COMMITTER_NAME=aem "
    "GIT_COMMITTER_EMAIL=aem@localhost GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' "
    "GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'"
)
#: Top-level names a new file at the repository root may not take: ``python -m pytest`` puts
#: the root first on sys.path, so such a file would replace pytest (or a module it imports).
SHADOWED_MODULES = frozenset(sys.stdlib_module_names) | {
    "pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py", "exceptiongroup", "tomli", "colorama",
}


def shadows_import(path: str) -> bool:
    """Whether repo path ``path`` defines a top-level module in :data:`SHADOWED_MODULES`."""
    top = path.split("/", 1)[0]
    name = top[:-3] if top.endswith(".py") and "/" not in path else top
    return name in SHADOWED_MODULES


def parse_report(output: str) -> dict[str, str]:
    """node id -> outcome word, from pytest's ``-rA`` short summary lines."""
    out: dict[str, str] = {}
    for word, nodeid in _REPORT.findall(output):
        prev = out.get(nodeid)
        # A test that passed its call but errored in teardown is reported twice: keep the failure.
        if prev in ("FAILED", "ERROR"):
            continue
        out[nodeid] = word
    return out


def passed(outcome: str | None) -> bool:
    """Only ``PASSED`` counts: ``XFAIL`` would let code under test that calls ``pytest.xfail()``
    pass any test (20 of 20 test tasks earned full reward that way), and ``XPASS`` is a test
    that was expected to fail."""
    return outcome == "PASSED"


@dataclass
class GradeResult:
    outcomes: dict[str, bool]  # target test -> passed
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    dropped_paths: list[str] = field(default_factory=list)
    apply_error: str | None = None
    #: Why the run cannot be trusted (one of grading's own tests did not fail), else None.
    tampered: str | None = None
    #: pytest's word for the check test ("FAILED" when all is well; "missing" if not reported);
    #: None when no check test could be added.
    check_outcome: str | None = None
    #: sentinel test (:func:`sentinel_tests`) -> pytest's word for it
    sentinels: dict[str, str] = field(default_factory=dict)
    #: target test -> pytest's word for it ("missing" if not reported)
    reported: dict[str, str] = field(default_factory=dict)

    @property
    def f2p_passed(self) -> int:
        return sum(self.outcomes.get(t, False) for t in self.fail_to_pass)

    @property
    def p2p_passed(self) -> int:
        return sum(self.outcomes.get(t, False) for t in self.pass_to_pass)

    @property
    def resolved(self) -> bool:
        return (
            self.apply_error is None
            and self.tampered is None
            and self.f2p_passed == len(self.fail_to_pass)
            and self.p2p_passed == len(self.pass_to_pass)
        )

    def reward(self, max_reward: float, partial_credit: bool) -> float:
        """``max_reward`` when resolved. With partial credit: ``max_reward`` times the fraction of
        FAIL_TO_PASS tests passing, but only while every PASS_TO_PASS test still passes (breaking
        working code earns nothing)."""
        if self.resolved:
            return max_reward
        if not partial_credit or self.apply_error or self.tampered or self.p2p_passed < len(self.pass_to_pass):
            return 0.0
        return max_reward * self.f2p_passed / max(len(self.fail_to_pass), 1)

    def summary(self) -> str:
        lines = [
            f"FAIL_TO_PASS: {self.f2p_passed}/{len(self.fail_to_pass)} pass; "
            f"PASS_TO_PASS: {self.p2p_passed}/{len(self.pass_to_pass)} pass."
        ]
        if self.dropped_paths:
            lines.append(f"Ignored changes to protected files: {', '.join(self.dropped_paths[:10])}.")
        if self.apply_error:
            lines.append(f"Your diff did not apply: {self.apply_error}")
        if self.tampered:
            lines.append(f"The test run was tampered with ({self.tampered}); no test counts.")
        return "\n".join(lines)


def grade(
    task: Task,
    agent_diff: str,
    new_sandbox: Callable[[str], Sandbox],
    timeout: float = 300.0,
    dispose: Callable[[Sandbox], None] | None = None,
) -> GradeResult:
    """Grade ``agent_diff`` for ``task`` in a sandbox from ``new_sandbox(image)``.

    The sandbox is handed to ``dispose`` afterwards (default: ``sb.close()``); it has run the
    submission, so ``dispose`` must never give it to another episode.
    """
    hidden = set(task.hidden_paths)
    files = task.start_files(include_hidden=True)
    diff, dropped = filter_patch(
        agent_diff,
        lambda p: task.is_protected(p) or p in hidden or (p not in files and shadows_import(p)),
    )
    targets = list(task.FAIL_TO_PASS) + [t for t in task.PASS_TO_PASS if t not in set(task.FAIL_TO_PASS)]
    result = GradeResult({}, list(task.FAIL_TO_PASS), list(task.PASS_TO_PASS), dropped)
    sb = new_sandbox(task.image)
    try:
        wd = sb.workdir
        sb.put_archive(wd, tar_of(files))
        # Patches go to scratch outside the repository so they never show up as repo files.
        extra = {}
        if diff:
            extra["agent.diff"] = diff.encode()
        if task.test_patch:
            extra["test.diff"] = task.test_patch.encode()
        scratch = f"{scratch_dir(sb)}/aem-grade"
        if extra:
            sb.run(f"mkdir -p {scratch}", timeout=30)
            sb.put_archive(scratch, tar_of(extra))
        if diff:
            r = sb.run(f"cd {wd} && git apply --whitespace=nowarn {scratch}/agent.diff", timeout=60)
            if not r.ok:
                result.apply_error = r.output.strip().splitlines()[0] if r.output.strip() else f"exit {r.exit_code}"
                return result
        if task.test_patch:
            r = sb.run(f"cd {wd} && git apply --whitespace=nowarn {scratch}/test.diff", timeout=60)
            if not r.ok:
                raise RuntimeError(f"task {task.instance_id}: test_patch does not apply: {r.output.strip()[:200]}")
        if task.setup_command:
            sb.run(f"cd {wd} && {task.setup_command}", timeout=timeout)
        check, sentinels = add_grading_tests(sb, targets)
        # last: a `-x` in the task's addopts stops before them
        run = targets + sentinels + ([check] if check else [])
        r = sb.run(f"cd {wd} && COLUMNS=200 {task.test_invocation(run)}", timeout=timeout)
        report = parse_report(r.output)
        result.reported = {t: report.get(t, "missing") for t in targets}
        result.outcomes = {t: passed(report.get(t)) for t in targets}
        result.check_outcome = report.get(check, "missing") if check else None
        result.sentinels = {t: report.get(t, "missing") for t in sentinels}
        fooled = [t for t, w in result.sentinels.items() if w in ("PASSED", "XPASS")]
        if any(result.outcomes.values()):
            if check and result.check_outcome != "FAILED":
                result.tampered = (
                    f"a test that must fail was reported {result.check_outcome.lower()}" if check in report
                    else "a test that must fail was not reported: the run ended before it"
                    + (" (timed out)" if r.timed_out else "")
                )
            elif fooled:
                result.tampered = (f"the code returns values equal to anything (seen by {len(fooled)} of "
                                   f"{len(sentinels)} sentinel tests)")
        if result.tampered:
            result.outcomes = dict.fromkeys(targets, False)
        return result
    finally:
        if dispose is None:
            sb.close()
        else:
            dispose(sb)


def add_grading_tests(sb: Sandbox, targets: list[str]) -> tuple[str | None, list[str]]:
    """Write grading's own tests into the work tree (one archive); (check id, sentinel ids).

    Reads each target test module once; :func:`check_test` and :func:`sentinel_tests` say what
    is written. No check test when no target lives in a Python file of the work tree.
    """
    sources = _read_sources(sb, [p for p in dict.fromkeys(t.split("::", 1)[0] for t in targets) if p.endswith(".py")])
    files, sentinels = sentinel_tests(sources, targets)
    check = check_test(sources)
    if check is not None:
        files[check[0]] = check[1]
    if files:
        sb.put_archive(sb.workdir, tar_of({p: text.encode() for p, text in files.items()}))
    return (f"{check[0]}::{check[2]}" if check else None), sentinels


def _read_sources(sb: Sandbox, paths: list[str]) -> dict[str, str]:
    """The text of each of ``paths`` (relative to the work tree) that is a readable file; one
    archive per directory (each read is a container exec, ~50 ms)."""
    from aem_envs.sandbox.errors import UnsafeArchive

    out: dict[str, str] = {}
    by_dir: dict[str, set[str]] = {}
    for path in paths:
        by_dir.setdefault(posixpath.dirname(path), set()).add(path)
    for d, wanted in by_dir.items():
        try:
            files = _tar_files(sb.get_archive(d or "."))  # named relative to d
        except (FileNotFoundError, UnsafeArchive):
            continue
        for name, data in files.items():
            if (rel := posixpath.join(d, name)) in wanted:
                try:
                    out[rel] = data.decode()
                except UnicodeDecodeError:
                    pass
    return out


def check_test(sources: dict[str, str]) -> tuple[str, str, str] | None:
    """A test that must fail, in a new file next to a random target module: (path, text, name).

    A file of its own (not an edit of the target's file) so module-level marks there
    (``pytestmark = pytest.mark.xfail``) cannot apply to it; the same directory, so it shares
    the targets' conftest files and leaves pytest's rootdir (and so every node id) unchanged.
    File name, test name and the assertion's numbers are random per run, so no submission can
    know them in advance; names start with ``test`` as pytest's defaults collect.
    """
    if not sources:
        return None
    path = posixpath.join(posixpath.dirname(secrets.SystemRandom().choice(sorted(sources))),
                          f"test_{secrets.token_hex(6)}.py")
    name = f"test_{secrets.token_hex(6)}"
    a = secrets.randbelow(10**9)
    return path, f"def {name}():\n    assert {a} == {a + 1 + secrets.randbelow(10**6)}\n", name


def sentinel_tests(sources: dict[str, str], targets: list[str]) -> tuple[dict[str, str], list[str]]:
    """Copies of the target tests that look for results equal to anything: ({path: text}, ids).

    Catches code that returns objects whose ``__eq__`` is always True, which pass ``assert
    f(x) == [1, 2]`` without computing anything (3 of 20 test tasks resolved that way before
    this check) and which :func:`check_test`'s test never meets. Per test module, the copy
    is the module verbatim plus each target test function under a random name, in which every
    top-level ``assert A == B`` only records whether ``A == m(A)`` or ``B == m(B)``, ``m(v)``
    being ``v`` with every leaf changed (see :data:`_SENTINEL_HELPERS`), and which ends by
    asserting that some record was True. An honest value never equals its changed copy, so the
    copy fails (or errors); results that equal anything make it pass. A target qualifies when
    it is a top-level, undecorated function with such an assert and no ``return`` or ``yield``
    (the copy must reach its end), in a module without a module-level ``pytestmark``.
    """
    by_module: dict[str, list[str]] = {}
    for t in dict.fromkeys(targets):
        if t.count("::") == 1 and "[" not in t and t.split("::")[0] in sources:
            path, func = t.split("::")
            by_module.setdefault(path, []).append(func)
    files: dict[str, str] = {}
    ids: list[str] = []
    for path, funcs in by_module.items():
        try:
            copy = _sentinel_module(sources[path], funcs)
        except (SyntaxError, ValueError):
            continue
        if copy is None:
            continue
        text, names = copy
        new_path = posixpath.join(posixpath.dirname(path), f"test_{secrets.token_hex(6)}.py")
        files[new_path] = text
        ids += [f"{new_path}::{n}" for n in names]
    return files, ids


#: What a sentinel copy calls for each ``assert A == B`` (``{name}``, ``{k}``, ``{tag}`` random
#: per copy). ``_m(v)`` is ``v`` with every leaf changed: a number moved, a string extended, a
#: bool flipped, anything else (and an empty container) a new ``object()``; an honest value
#: never equals its ``_m``. ``ca``/``cb`` are False for a side that names ``ANY`` (``mock.ANY``
#: equals anything by design).
_SENTINEL_HELPERS = """
def {name}_m(v):
    t = type(v)
    if t in (list, tuple) and v:
        return t({name}_m(x) for x in v)
    if t is dict and v:
        return {{k: {name}_m(x) for k, x in v.items()}}
    if t is int:
        return v + {k}
    if t is float and v == v and abs(v) != float("inf"):
        return v + (abs(v) + 1) / 2  # never within v's rounding, unlike a constant
    if t is str:
        return v + "{tag}"
    if t is bool:
        return not v
    return object()


def {name}(a, b, ca, cb):
    return bool((ca and a == {name}_m(a)) or (cb and b == {name}_m(b)))
"""


def _sentinel_module(source: str, funcs: list[str]) -> tuple[str, list[str]] | None:
    """``source`` plus the sentinel copies of ``funcs`` (:func:`sentinel_tests`), or None."""
    tree = ast.parse(source)
    if any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)
           for n in tree.body):
        return None
    helper, seen = f"_eq_{secrets.token_hex(4)}", f"_seen_{secrets.token_hex(4)}"
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    copies, names = [], []
    for func in funcs:
        fn = defs.get(func)
        if fn is None or fn.decorator_list or any(
                isinstance(n, (ast.Return, ast.Yield, ast.YieldFrom)) for n in ast.walk(fn)):
            continue
        body, rewritten = [ast.parse(f"{seen} = []").body[0]], 0
        for stmt in fn.body:
            if (isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare)
                    and len(stmt.test.ops) == 1 and isinstance(stmt.test.ops[0], ast.Eq)):
                a, b = stmt.test.left, stmt.test.comparators[0]
                record = ast.parse(f"{seen}.append({helper}(A, B, {not _names_any(a)}, {not _names_any(b)}))").body[0]
                record.value.args[0].args[:2] = [a, b]
                stmt, rewritten = record, rewritten + 1
            body.append(stmt)
        if not rewritten:
            continue  # no top-level `assert A == B`
        body.append(ast.parse(f"assert any({seen})").body[0])
        name = f"test_{secrets.token_hex(6)}"
        new = ast.parse(ast.unparse(fn)).body[0]  # a copy: the module's tree stays as parsed
        new.name, new.body = name, body
        copies.append(ast.unparse(ast.fix_missing_locations(new)))
        names.append(name)
    if not names:
        return None
    helpers = _SENTINEL_HELPERS.format(name=helper, k=1 + secrets.randbelow(10**6), tag=secrets.token_hex(4))
    text = "\n\n\n".join([source.rstrip(), helpers.strip(), *copies])
    return text + "\n", names


def _names_any(expr) -> bool:
    """Whether ``expr`` mentions a name or attribute ``ANY`` (``unittest.mock.ANY``)."""
    return any((isinstance(n, ast.Name) and n.id == "ANY") or (isinstance(n, ast.Attribute) and n.attr == "ANY")
               for n in ast.walk(expr))


def scratch_dir(sb: Sandbox) -> str:
    """A writable directory of ``sb`` outside its work tree."""
    local = getattr(sb, "scratch", None)
    if isinstance(local, str):
        return local
    config = getattr(sb, "config", None)
    return getattr(config, "scratch", None) or "/tmp"


# ---------------------------------------------------------------------------------- run_tests
def summarize_pytest(output: str, exit_code: int, max_failures: int = 15) -> str:
    """Counts, failing tests and their first ``E`` lines; durations removed (deterministic)."""
    summary = None
    for m in _SUMMARY.finditer(output):
        summary = m.group(1).strip().rstrip(",")
    report = parse_report(output)
    bad = [(n, w) for n, w in report.items() if w in ("FAILED", "ERROR")]
    if summary is None and not bad:
        tail = "\n".join(output.strip().splitlines()[-40:])
        return f"pytest did not finish normally (exit {exit_code}). Last output:\n{tail}"
    if exit_code == 5 and not bad:
        return "No tests were collected."
    errors = _first_errors(output)
    lines = [f"Test results: {summary or 'see below'}."]
    for nodeid, word in bad[:max_failures]:
        lines.append(f"{word} {nodeid}")
        name = nodeid.split("::")[-1]
        for e in errors.get(name, errors.get(nodeid, []))[:3]:
            lines.append(f"    {e}")
    if len(bad) > max_failures:
        lines.append(f"... and {len(bad) - max_failures} more failing tests")
    if not bad:
        lines.append("All selected tests passed.")
    return "\n".join(lines)


def _first_errors(output: str) -> dict[str, list[str]]:
    """Section title (test name or 'ERROR collecting ...') -> its ``E`` lines, in order."""
    out: dict[str, list[str]] = {}
    matches = list(_SECTION.finditer(output))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(output)
        body = output[m.end() : end]
        title = m.group(1).strip()
        if title.startswith("ERROR collecting "):
            title = title[len("ERROR collecting "):]
        elines = [ln.strip() for ln in body.splitlines() if ln.startswith("E ")]
        out.setdefault(title, elines)
    return out

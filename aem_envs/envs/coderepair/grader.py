"""Grading a submission in a fresh sandbox, and summarising pytest output for the agent.

Grading never touches the agent's sandbox: a new sandbox gets the task's starting files *with*
the held-out tests, the agent's diff minus any change to protected files (tests, pytest
config) and minus new top-level modules that would shadow pytest or the standard library
(``pytest.py`` at the root would run instead of the tests), then ``test_patch``; the
FAIL_TO_PASS and PASS_TO_PASS tests run and every node id is read from pytest's ``-rA`` report.
A test that is not reported as ``PASSED`` counts as failed (``XFAIL`` too: see :func:`passed`), so
a submission that makes pytest crash or exit early gains nothing, and a forged ``PASSED`` line in a test's captured output is
overridden by pytest's own ``FAILED`` line for that test.

**Check test.** Code imported into the pytest process can make *every* test pass without fixing
anything: three lines in the module under test (``_pytest.python.Function.runtest = lambda self:
None``) earned full reward before this check. So each grading run writes one more test file next
to a target's test file (after ``test_patch``, where the agent's diff cannot reach), with random
names and an assertion that is false, and runs its test last. pytest must report it ``FAILED``; if it
is reported otherwise (passed, skipped, missing) while any target passed, the run was tampered
with: :attr:`GradeResult.tampered` says how, every target counts as failed and the reward is 0.
So a run must get to its last test: one that times out, or stops early (``-x`` in a task's
``addopts``), after some targets passed earns nothing either, not partial credit.

What this does not stop: the submission's code still runs *inside* the pytest process (as in
SWE-bench's harness), so code that fakes only the targets' outcomes (it can read their names
from the task's instruction or from ``sys.argv``) and leaves the check test alone still fakes a
pass. Closing that needs the tests' assertions to run outside the submission's process; read
trajectories of high reward with that in mind.
"""

from __future__ import annotations

import posixpath
import re
import secrets
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from aem_envs.envs.coderepair.patches import filter_patch
from aem_envs.envs.coderepair.task import Task
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
    #: Why the run cannot be trusted (the check test was not reported FAILED), else None.
    tampered: str | None = None
    #: pytest's word for the check test ("FAILED" when all is well; "missing" if not reported);
    #: None when no check test could be added.
    check_outcome: str | None = None
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
        check = add_check_test(sb, targets)
        run = targets + ([check] if check else [])  # last: a `-x` in the task's addopts stops before it
        r = sb.run(f"cd {wd} && COLUMNS=200 {task.test_invocation(run)}", timeout=timeout)
        report = parse_report(r.output)
        result.reported = {t: report.get(t, "missing") for t in targets}
        result.outcomes = {t: passed(report.get(t)) for t in targets}
        result.check_outcome = report.get(check, "missing") if check else None
        if check and result.check_outcome != "FAILED" and any(result.outcomes.values()):
            result.tampered = (
                f"a test that must fail was reported {result.check_outcome.lower()}" if check in report
                else "a test that must fail was not reported: the run ended before it"
                + (" (timed out)" if r.timed_out else "")
            )
            result.outcomes = dict.fromkeys(targets, False)
        return result
    finally:
        if dispose is None:
            sb.close()
        else:
            dispose(sb)


def add_check_test(sb: Sandbox, targets: list[str]) -> str | None:
    """Write a test that must fail next to a random target's test file; its node id.

    A file of its own (not an edit of the target's file) so module-level marks there
    (``pytestmark = pytest.mark.xfail``) cannot apply to it; the same directory, so it shares
    the targets' conftest files and leaves pytest's rootdir (and so every node id) unchanged.
    File name, test name and the assertion's numbers are random per run, so no submission can
    know them in advance; names start with ``test`` as pytest's defaults collect. None when no
    target lives in a Python file present in the work tree.
    """
    files = list(dict.fromkeys(t.split("::", 1)[0] for t in targets if t.split("::", 1)[0].endswith(".py")))
    if not files:
        return None
    quoted = " ".join(shlex.quote(f) for f in files)
    r = sb.run(f"cd {shlex.quote(sb.workdir)} && for f in {quoted}; do [ -f \"$f\" ] && printf '%s\\n' \"$f\"; done",
               timeout=30)
    present = [f for f in r.output.splitlines() if f in files]
    if not present:
        return None
    rng = secrets.SystemRandom()
    path = posixpath.join(posixpath.dirname(rng.choice(present)), f"test_{secrets.token_hex(6)}.py")
    name = f"test_{secrets.token_hex(6)}"
    a = secrets.randbelow(10**9)
    sb.write_file(path, f"def {name}():\n    assert {a} == {a + 1 + secrets.randbelow(10**6)}\n")
    return f"{path}::{name}"


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

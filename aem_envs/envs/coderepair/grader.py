"""Grading a submission in a fresh sandbox, and summarising pytest output for the agent.

Grading never touches the agent's sandbox: a new sandbox gets the task's starting files *with*
the held-out tests, the agent's diff minus any change to protected files (tests, pytest
config) and minus new top-level modules that would shadow pytest or the standard library
(``pytest.py`` at the root would run instead of the tests), then ``test_patch``; the
FAIL_TO_PASS and PASS_TO_PASS tests run and every node id is read from pytest's ``-rA`` report.
A test that is not reported as passed counts as failed, so a submission that makes pytest crash
or exit early gains nothing, and a forged ``PASSED`` line in a test's captured output is
overridden by pytest's own ``FAILED`` line for that test.

What this does not stop: the submission's code is imported *into* the pytest process (as in
SWE-bench's harness), so code written to subvert the runner — patching pytest from inside, or
writing forged report lines to the process's original stdout and then exiting — can still fake
a pass. Reading a result file instead would not help (the same code can write it). Closing that
needs the tests' assertions to run outside the submission's process; read trajectories of high
reward with that in mind.
"""

from __future__ import annotations

import re
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
    return outcome in ("PASSED", "XFAIL")


@dataclass
class GradeResult:
    outcomes: dict[str, bool]  # target test -> passed
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    dropped_paths: list[str] = field(default_factory=list)
    apply_error: str | None = None

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
            and self.f2p_passed == len(self.fail_to_pass)
            and self.p2p_passed == len(self.pass_to_pass)
        )

    def reward(self, max_reward: float, partial_credit: bool) -> float:
        """``max_reward`` when resolved. With partial credit: ``max_reward`` times the fraction of
        FAIL_TO_PASS tests passing, but only while every PASS_TO_PASS test still passes (breaking
        working code earns nothing)."""
        if self.resolved:
            return max_reward
        if not partial_credit or self.apply_error or self.p2p_passed < len(self.pass_to_pass):
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
        r = sb.run(f"cd {wd} && COLUMNS=200 {task.test_invocation(targets)}", timeout=timeout)
        report = parse_report(r.output)
        result.outcomes = {t: passed(report.get(t)) for t in targets}
        return result
    finally:
        if dispose is None:
            sb.close()
        else:
            dispose(sb)


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

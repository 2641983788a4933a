"""Validate a code-repair task file: every task must be solvable and not already solved.

For each task, in fresh sandboxes: (1) with no patch, every FAIL_TO_PASS test fails and every
PASS_TO_PASS test passes; (2) with the gold ``patch`` (graded exactly as an agent's submission
would be, protected files dropped), every FAIL_TO_PASS and PASS_TO_PASS test passes. Both runs
also need grading's own tests (:func:`~aem_envs.envs.coderepair.grader.check_test`,
:func:`~aem_envs.envs.coderepair.grader.sentinel_tests`) to be collected and to fail, or
every grade of the task would count as tampered with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aem_envs.envs.coderepair.grader import GradeResult, grade, shadows_import
from aem_envs.envs.coderepair.patches import patch_paths
from aem_envs.envs.coderepair.task import Task, TaskFormatError
from aem_envs.sandbox import Sandbox


@dataclass
class TaskCheck:
    instance_id: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def validate_task(task: Task, new_sandbox: Callable[[str], Sandbox], timeout: float = 300.0) -> TaskCheck:
    t0 = time.perf_counter()
    problems: list[str] = []
    try:
        files = task.start_files(include_hidden=True)  # repo readable and base_patch applies
        if not task.patch.strip():
            problems.append("no gold patch: add `patch` (a unified diff that fixes the bug)")
        protected = [p for p in patch_paths(task.patch) if task.is_protected(p)]
        if protected:
            problems.append(f"the gold patch changes protected files {protected}; move test changes to test_patch")
        shadowing = [p for p in patch_paths(task.patch) if p not in files and shadows_import(p)]
        if shadowing:
            problems.append(f"the gold patch adds {shadowing}, named like a module pytest or the standard "
                            "library imports; grading ignores such files, so rename them")
        before = grade(task, "", new_sandbox, timeout)
        if _check_problem(before, problems):
            return TaskCheck(task.instance_id, False, problems, time.perf_counter() - t0)
        still_pass = [t for t in task.FAIL_TO_PASS if before.outcomes.get(t)]
        if still_pass:
            problems.append(f"FAIL_TO_PASS tests already pass without the patch: {still_pass[:5]}")
        broken = [t for t in task.PASS_TO_PASS if not before.outcomes.get(t)]
        xfail = [t for t in broken if before.reported.get(t) in ("XFAIL", "XPASS")]
        if xfail:
            problems.append(f"PASS_TO_PASS tests are xfail-marked: {xfail[:5]}; grading counts only PASSED "
                            "(pytest.xfail() in the code under test would otherwise pass any test), so drop them")
        if broken := [t for t in broken if t not in xfail]:
            problems.append(f"PASS_TO_PASS tests fail without the patch: {broken[:5]}")
        if task.patch.strip():
            after = grade(task, task.patch, new_sandbox, timeout)
            if after.apply_error:
                problems.append(f"the gold patch does not apply: {after.apply_error}")
            elif not _check_problem(after, problems):
                f = [t for t in task.FAIL_TO_PASS if not after.outcomes.get(t)]
                p = [t for t in task.PASS_TO_PASS if not after.outcomes.get(t) and t not in xfail]
                if f:
                    problems.append(f"FAIL_TO_PASS tests still fail with the gold patch: {f[:5]}")
                if p:
                    problems.append(f"PASS_TO_PASS tests fail with the gold patch: {p[:5]}")
    except TaskFormatError as e:
        problems.append(str(e))
    return TaskCheck(task.instance_id, not problems, problems, time.perf_counter() - t0)


def _check_problem(result: GradeResult, problems: list[str]) -> bool:
    """Whether grading's own tests misbehaved on an honest run (then grades would count for nothing)."""
    if result.check_outcome not in (None, "FAILED"):
        problems.append(
            f"grading's check test was reported {result.check_outcome.lower()} instead of failed: the task's "
            "pytest setup has to collect and run a plain `def test_x(): assert False` from a new `test_x.py` "
            "next to the target test files (check python_functions and conftest hooks)"
        )
        return True
    if result.tampered:
        problems.append(
            f"grading counts an honest run as tampered with ({result.tampered}): a target test compares a "
            "value that equals a fresh object(); report it, with the test, as an aem issue"
        )
        return True
    return False


def sandbox_factory(kind: str, command_timeout: float = 60.0) -> Callable[[str], Sandbox]:
    """``image -> fresh sandbox`` for ``kind`` ``"docker"`` or ``"local"`` (not isolated)."""
    if kind == "local":
        from aem_envs.sandbox import LocalSandbox

        return lambda image: LocalSandbox(warn=False, default_timeout=command_timeout)
    if kind != "docker":
        raise ValueError(f"sandbox={kind!r} is unknown; use 'docker' or 'local'")
    from aem_envs.sandbox import DockerSandbox, SandboxConfig

    return lambda image: DockerSandbox(SandboxConfig(image=image, default_timeout=command_timeout))

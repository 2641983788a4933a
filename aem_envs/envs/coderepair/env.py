"""``aem/CodeRepair-v0``: fix a bug in a small Python repository, graded by hidden tests.

The agent gets a repository in a sandbox (Docker by default) with one bug and a short bug
report. Each turn it runs one action (see :data:`~aem_envs.envs.coderepair.actions.ACTION_HELP`):
a shell command, a structured edit, ``run_tests`` or ``submit``. On ``submit``, or when the
turn limit is reached, the diff of its work tree is graded in a *fresh* sandbox that also holds
the held-out tests, which are never copied into the agent's sandbox.

Tasks come from the shipped corpus index (thousands of injected bugs in 30+ small projects,
train/test splits that never share a function) or from a task file of your own
(``task_file=...``, format in :mod:`aem_envs.envs.coderepair.task`).

With ``use_pool=True`` (the default) Docker sandboxes come from a small warm
:class:`~aem_envs.sandbox.pool.SandboxPool` owned by the env: a grading sandbox is taken ready
from the pool instead of being started on ``submit``, and closed in the background afterwards
(it ran the submission, so it never serves another grade). ``close()`` removes every container.

Reward: ``max_reward`` (10) when every FAIL_TO_PASS and PASS_TO_PASS test passes, else 0; with
``partial_credit=True``, ``max_reward`` times the fraction of FAIL_TO_PASS tests passing while
all PASS_TO_PASS tests still pass. A grading run in which one of grading's own tests (tests
that must fail, see :mod:`~aem_envs.envs.coderepair.grader`) did not fail counts as tampered
with: reward 0.
The step that grades adds ``info["grade"]``: ``fail_to_pass`` and ``pass_to_pass`` as [passed,
total] and ``tampered`` (why, or None); ``info["tampered"]`` (core's key) is then True.
"""

from __future__ import annotations

import shlex
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aem_envs.core import InvalidAction, Outcome, TextEnv
from aem_envs.envs.coderepair import actions as act
from aem_envs.envs.coderepair.corpus_index import (
    CORPUS_DIR,
    INDEX_PATH,
    INDEX_VERSION,
    CorpusIndex,
    IndexedTask,
    bug_patch,
    gold_patch,
    load_index,
    materialize,
    problem_statement,
)
from aem_envs.envs.coderepair.grader import GIT_ENV, GradeResult, grade, summarize_pytest
from aem_envs.envs.coderepair.patches import tree_diff
from aem_envs.envs.coderepair.task import DEFAULT_IMAGE, Task, _tar_files, load_tasks
from aem_envs.sandbox import Sandbox, tar_of

MAX_FILE_BYTES = 1 << 20  # larger files in the agent's tree are not part of the submission


@dataclass
class CorpusTask(Task):
    """A task of the generated corpus: files come from the corpus and the mutation spec."""

    indexed: IndexedTask | None = None

    def start_files(self, include_hidden: bool) -> dict[str, bytes]:
        assert self.indexed is not None
        return {k: v.encode() for k, v in materialize(self.indexed, include_hidden).items()}

    @classmethod
    def from_indexed(cls, t: IndexedTask, index: CorpusIndex | None = None) -> CorpusTask:
        header = (index or load_index()).header["projects"][t.mutation.project]
        return cls(
            instance_id=t.task_id,
            repo=str(CORPUS_DIR / t.mutation.project),
            problem_statement=problem_statement(t),
            FAIL_TO_PASS=list(t.fail),
            PASS_TO_PASS=t.pass_to_pass,
            patch=gold_patch(t),
            base_patch=bug_patch(t),
            hidden_paths=list(header["heldout_files"]),
            split=t.split,
            # Corpus projects use no pytest plugins; not scanning for them halves pytest start-up.
            # PYTHONSAFEPATH: `-m` must not put the repo root first on sys.path, or an agent's
            # pytest.py (or pluggy.py, ...) there would run instead of the tests (src/ comes
            # from conftest.py).
            test_command="PYTHONSAFEPATH=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q -p no:cacheprovider",
            indexed=t,
        )

    def export(self) -> Task:
        """The same task as a plain :class:`Task` (repo + base_patch), for task files."""
        d = self.to_dict()
        d.pop("indexed", None)
        return Task(**d)


class CodeRepairEnv(TextEnv):
    version = INDEX_VERSION
    description = "Fix an injected bug in a small Python repo (shell + structured edits); hidden tests grade it in Docker."
    action_format = "tag"
    max_observation_length = 32_768
    oracle_min_success = 0.98
    system_prompt = (
        "You are a software engineer fixing a bug in a small Python repository. Explore the code, "
        "find the bug, fix it in the source (not in the tests), check your fix with the tests, then "
        "submit.\n\n" + act.ACTION_HELP
    )

    def __init__(
        self,
        *,
        task_file: str | None = None,
        index_path: str | None = None,
        sandbox: str = "docker",
        image: str | None = None,
        partial_credit: bool = False,
        max_reward: float = 10.0,
        command_timeout: float = 60.0,
        test_timeout: float = 120.0,
        view_lines: int = 200,
        max_output_chars: int = 8000,
        max_turns: int = 30,
        use_pool: bool = True,
        **kwargs: Any,
    ):
        super().__init__(max_turns=max_turns, **kwargs)
        if sandbox not in ("docker", "local"):
            raise ValueError(f"sandbox={sandbox!r} is unknown; use 'docker' or 'local' (not isolated)")
        if sandbox == "local":
            warnings.warn(
                "CodeRepairEnv(sandbox='local') runs agent commands on this machine without isolation "
                "and the held-out tests are readable from the host; use it for development only",
                RuntimeWarning,
                stacklevel=2,
            )
        self.sandbox_kind = sandbox
        if sandbox == "docker":  # on the caller's thread: the first container may start on a worker
            from aem_envs.sandbox import lifecycle

            lifecycle.install_hooks()
        self.image_override = image
        self.partial_credit = bool(partial_credit)
        self.max_reward = float(max_reward)
        self.command_timeout = float(command_timeout)
        self.test_timeout = float(test_timeout)
        self.view_lines = int(view_lines)
        self.max_output_chars = int(max_output_chars)
        self.task_file = task_file
        self.use_pool = bool(use_pool)
        self._pools: dict[str, Any] = {}  # image -> SandboxPool (docker only)
        self._closers: list[threading.Thread] = []
        self._file_tasks: dict[str, Task] | None = None
        self._file_splits: dict[str, list[str]] = {}
        if task_file is not None:
            tasks = load_tasks(task_file)
            self._file_tasks = {t.instance_id: t for t in tasks}
            for s in self.splits:
                self._file_splits[s] = [t.instance_id for t in tasks if t.split == s]
        # Loaded at construction (cached per process) so a missing index fails here, not at reset.
        self._index = load_index(index_path or INDEX_PATH) if task_file is None else None
        self._sb: Sandbox | None = None
        self._sb_image: str | None = None
        self._task: Task | None = None
        self._start: dict[str, bytes] = {}
        self._graded = False
        self._oracle_stage = 0
        self.last_grade: GradeResult | None = None

    # ------------------------------------------------------------------ tasks
    def task_ids(self, split: str) -> Sequence[str]:
        if self._file_tasks is not None:
            return self._file_splits.get(split, [])
        return self._index.by_split.get(split, [])

    def get_task(self, task_id: str) -> Task:
        if self._file_tasks is not None:
            return self._file_tasks[task_id]
        return CorpusTask.from_indexed(self._index.tasks[task_id], self._index)

    # ------------------------------------------------------------------ sandboxes
    def _image(self, task: Task) -> str:
        return self.image_override or task.image or DEFAULT_IMAGE

    def new_sandbox(self, image: str) -> Sandbox:
        """A fresh sandbox (the grader calls this too)."""
        if self.sandbox_kind == "local":
            from aem_envs.sandbox import LocalSandbox

            return LocalSandbox(warn=False, default_timeout=self.command_timeout)
        from aem_envs.sandbox import DockerSandbox, SandboxConfig

        return DockerSandbox(SandboxConfig(image=self.image_override or image, default_timeout=self.command_timeout))

    def _warm_sandbox(self, image: str) -> Sandbox:
        """A started sandbox: from the env's warm pool when pooling Docker, else a new one."""
        if self.sandbox_kind != "docker" or not self.use_pool:
            return self.new_sandbox(image)
        image = self.image_override or image
        pool = self._pools.get(image)
        if pool is None:
            from aem_envs.sandbox import SandboxConfig
            from aem_envs.sandbox.pool import SandboxPool

            # One spare container is enough: a grade takes one, the filler restarts one while
            # the next episode runs (several seconds), so the next submit finds it ready.
            cfg = SandboxConfig(image=image, default_timeout=self.command_timeout)
            pool = self._pools[image] = SandboxPool(cfg, low=1, high=1, max_parked=0)
        return pool.acquire()

    def _dispose(self, sb: Sandbox) -> None:
        """Close a used grading sandbox off the episode's critical path (joined by ``close``)."""
        if self.sandbox_kind != "docker" or not self.use_pool:
            sb.close()
            return
        self._closers = [t for t in self._closers if t.is_alive()]
        t = threading.Thread(target=sb.close, name="aem-coderepair-close", daemon=False)
        t.start()
        self._closers.append(t)

    def _agent_sandbox(self, image: str) -> Sandbox:
        if self._sb is not None and self._sb_image == image:
            try:
                self._sb.reset()  # kills what the last episode left running, fresh shell
                return self._sb
            except Exception:  # the container died since the last episode: start a new one
                self._sb.close()
                self._sb = None
        if self._sb is not None:
            self._sb.close()
            self._sb = None
        self._sb = self._warm_sandbox(image)
        self._sb_image = image
        return self._sb

    # ------------------------------------------------------------------ episode
    def _load_task(self, task_id: str) -> str:
        task = self.get_task(task_id)
        self._task = task
        self._start = task.start_files(include_hidden=False)
        self._graded = False
        self._oracle_stage = 0
        self.last_grade = None
        sb = self._agent_sandbox(self._image(task))
        wd = sb.workdir
        sb.run(f"find {wd} -mindepth 1 -delete", timeout=60)
        sb.put_archive(wd, tar_of(self._start))
        # A git baseline lets the agent use `git diff` / `git checkout`; grading does not rely on it.
        r = sb.run(
            f"cd {wd} && git init -q && git add -A && {GIT_ENV} git commit -qm 'starting state' >/dev/null",
            timeout=60,
        )
        if not r.ok:
            from aem_envs.core import InfraError

            raise InfraError(f"could not prepare the repository: {r.output.strip()[:200]}")
        if task.setup_command:
            r = sb.run(f"cd {wd} && {task.setup_command}", timeout=self.test_timeout)
            if not r.ok:
                from aem_envs.core import InfraError

                raise InfraError(f"task {task_id}: setup_command failed (exit {r.exit_code}): {r.output.strip()[-200:]}")
        sb.snapshot()
        sb.run(f"cd {wd}", timeout=10)
        self.instruction = task.problem_statement
        listing = "\n".join(f"  {p}" for p in sorted(self._start))
        return (
            f"{task.problem_statement}\n\nThe repository is your current directory. Files:\n{listing}\n\n"
            "Reply with one action inside <action></action>."
        )

    def _act(self, action: str) -> Outcome:
        return self._unless_blocked(lambda: self._act_in_sandbox(action))

    def _unless_blocked(self, act_: Callable[[], Outcome]) -> Outcome:
        """``act_()``, or :meth:`_blocked` when its sandbox failure is the agent's doing."""
        from aem_envs.sandbox.errors import SandboxError

        try:
            return act_()
        except SandboxError as e:
            if self._sb is None or not self._sb.blocked_by_agent():
                raise  # the daemon or the container: infrastructure
            return self._blocked(e)

    def _blocked(self, error: Exception) -> Outcome:
        """End the episode as not solved: processes the agent left running kill or stop every new
        shell or ``tar`` in its sandbox, so its work tree cannot even be read. As an infra error
        the episode would be dropped instead of scored, and a policy could have any failing
        episode excluded from training and evaluation. The sandbox is closed (the next reset
        would stall on it too)."""
        self._graded = True
        sb, self._sb, self._sb_image = self._sb, None, None
        if sb is not None:
            sb.close()
        return Outcome(
            f"A process you left running killed or stopped every new process ({error}). The episode "
            "is over; the task counts as not solved.", reward=0.0, done=True, success=False,
        )

    def _act_in_sandbox(self, action: str) -> Outcome:
        assert self._task is not None and self._sb is not None
        a = act.parse(action)
        if self._oracle_stage < 3 and action == self._oracle_plan()[self._oracle_stage]:
            self._oracle_stage += 1
        if a.kind == "submit":
            return self._submit("Submitted.")
        if a.kind == "shell":
            return Outcome(self._shell(a.text))
        if a.kind == "run_tests":
            cmd = f"COLUMNS=200 {self._task.test_command} -rfE --tb=short {a.text}".rstrip()
            r = self._sb.run(cmd, timeout=self.test_timeout)
            if r.timed_out:
                return Outcome(f"The tests timed out after {self.test_timeout:g} s (an infinite loop?).")
            return Outcome(self._clip_output(summarize_pytest(r.output, r.exit_code)))
        if a.kind == "view":
            content = self._read(a.path)
            return Outcome(act.numbered(content, a.path, a.start, a.end, self.view_lines))
        if a.kind == "replace":
            content = self._read(a.path)
            new = act.apply_replace(content, a.old, a.text, a.path)
            self._write(a.path, new)
            start = content[: content.index(a.old)].count("\n") + 1
            return Outcome(self._edited(a.path, new, start, a.text.count("\n") + 1, "Replaced the snippet"))
        if a.kind == "insert":
            content = self._read(a.path)
            new = act.apply_insert(content, a.line, a.text, a.path)
            self._write(a.path, new)
            return Outcome(self._edited(a.path, new, a.line + 1, a.text.count("\n"), f"Inserted after line {a.line}"))
        if a.kind == "create":
            self._write(a.path, a.text)
            return Outcome(f"Wrote {a.path} ({a.text.count(chr(10))} lines).")
        raise InvalidAction(f"unknown action kind {a.kind}")  # unreachable: parse() knows every kind

    def step(self, action: str):
        graded_before = self._graded
        obs, reward, terminated, truncated, info = self._step_and_grade(action)
        if self.last_grade is not None and not graded_before:
            g = self.last_grade
            self._tampered = info["tampered"] = bool(g.tampered)
            info["grade"] = {
                "fail_to_pass": [g.f2p_passed, len(g.fail_to_pass)],
                "pass_to_pass": [g.p2p_passed, len(g.pass_to_pass)],
                "tampered": g.tampered,
            }
        return obs, reward, terminated, truncated, info

    def _step_and_grade(self, action: str):
        obs, reward, terminated, truncated, info = super().step(action)
        # The turn limit grades the work tree as if the agent had submitted; the graded task has
        # ended, so the step is terminated as well as truncated (core.TextEnv's contract).
        if truncated and not terminated and not self._graded and info["error_kind"] != "infra":
            try:
                out = self._unless_blocked(lambda: self._submit("Turn limit reached; your work was submitted."))
            except Exception as e:  # an infra failure while grading: report it, never crash
                info["error_kind"] = "infra"
                obs = self._clip(f"{obs}\n[infrastructure error while grading] {e}")
                return obs, reward, terminated, truncated, info
            reward += out.reward
            terminated = True
            self._success = out.success
            info["success"] = out.success
            obs = self._clip(f"{obs}\n\n{out.observation}")
            self._last_obs = obs
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ actions
    def _shell(self, cmd: str) -> str:
        r = self._sb.run(cmd, timeout=self.command_timeout)
        out = r.output.rstrip("\n")
        text = out if out else "(no output)"
        if r.exit_code != 0 and not r.timed_out:
            text += f"\n[exit code {r.exit_code}]"
        if r.shell_restarted:
            text += "\n[the shell exited and was restarted; cwd and variables were reset]"
        return self._clip_output(text)

    def _clip_output(self, text: str) -> str:
        n = self.max_output_chars
        if len(text) <= n:
            return text
        return text[: n // 2] + f"\n[... {len(text) - n} characters omitted ...]\n" + text[-n // 2 :]

    def _repo_path(self, path: str) -> str:
        """Shell-quoted absolute path (the agent's shell may have changed directory)."""
        return shlex.quote(f"{self._sb.workdir.rstrip('/')}/{path}")

    def _read(self, path: str) -> str:
        # read_file on a directory would return the first file inside it: check the kind first.
        # A symlink is archived as a link (refused, or not a file), never as its target.
        p = self._repo_path(path)
        kind = self._sb.run(f"if test -h {p}; then echo link; elif test -f {p}; then echo file; fi", timeout=10)
        if kind.output.strip() == "link":
            raise InvalidAction(f"{path} is a symbolic link; view the file it points to (`ls -l {path}`) or use `cat`")
        if kind.output.strip() != "file":
            raise InvalidAction(f"{path} does not exist or is not a file; list files with `ls` or `find . -name '*.py'`")
        try:
            data = self._sb.read_file(path, max_bytes=MAX_FILE_BYTES)
        except FileNotFoundError:
            raise InvalidAction(f"{path} does not exist or is not a file; list files with `ls` or `find . -name '*.py'`") from None
        except ValueError as e:  # UnsafeArchive: above max_bytes
            raise InvalidAction(f"{path} cannot be viewed ({e}); inspect it with shell commands") from None
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise InvalidAction(f"{path} is not UTF-8 text; use shell commands for binary files") from None

    def _write(self, path: str, text: str) -> None:
        # Parent directories are created by the archive; the work tree belongs to the agent user.
        if self._sb.run(f"test -d {self._repo_path(path)}", timeout=10).ok:
            raise InvalidAction(f"{path} is a directory; give a file path")
        from aem_envs.sandbox.errors import SandboxError, SandboxLost

        try:
            self._sb.write_file(path, text)
        except SandboxLost:
            raise  # the container is gone: infrastructure
        except (SandboxError, OSError) as e:  # a parent that is a file, chmod 000, a full disk
            detail = " ".join(str(e).split())[:250] or type(e).__name__
            raise InvalidAction(f"could not write {path}: {detail}; check it with `ls -ld` on its directories") from None

    def _edited(self, path: str, content: str, first: int, count: int, what: str) -> str:
        lines = content.splitlines()
        a = max(1, first - 3)
        b = min(len(lines), first + max(count, 1) + 2)
        ctx = act.numbered(content, path, a, b, self.view_lines) if lines else f"{path} is now empty."
        return f"{what} in {path}. The region now reads:\n{ctx}"

    def _agent_files(self) -> dict[str, bytes]:
        files = _tar_files(self._sb.get_archive(self._sb.workdir))
        return {k: v for k, v in files.items() if len(v) <= MAX_FILE_BYTES}

    def submission_diff(self) -> str:
        """The diff of the agent's work tree against the starting files (what is graded)."""
        diff, _skipped = tree_diff(self._start, self._agent_files())
        return diff

    def _submit(self, head: str) -> Outcome:
        assert self._task is not None
        from aem_envs.sandbox.errors import UnsafeArchive

        try:
            diff = self.submission_diff()
        except UnsafeArchive:
            # Links leaving the tree (a venv's bin/python -> /usr/bin/python3) make the archive
            # unsafe to read, but a diff holds regular files only: drop them and read again.
            self._sb.run(f"find {shlex.quote(self._sb.workdir)} -type l -delete", timeout=60)
            try:
                diff = self.submission_diff()
            except UnsafeArchive as e:  # e.g. a file too large: the agent's doing, not infra
                self._graded = True
                return Outcome(f"{head} Your work tree could not be read ({e}); nothing was graded.", done=True)
        self._graded = True
        res = grade(self._task, diff, self._warm_sandbox, timeout=self.test_timeout, dispose=self._dispose)
        self.last_grade = res
        reward = res.reward(self.max_reward, self.partial_credit)
        verdict = "All target tests pass: the bug is fixed." if res.resolved else "The bug is not fixed."
        return Outcome(f"{head} {verdict}\n{res.summary()}", reward=reward, done=True, success=res.resolved)

    # ------------------------------------------------------------------ oracle
    def _oracle_plan(self) -> list[str]:
        assert self._task is not None
        patch = self._task.patch
        if not patch:
            return ["submit", "submit", "submit"]
        delim = "AEM_GOLD_PATCH"
        while delim in patch:
            delim += "_"
        return [f"git apply --whitespace=nowarn <<'{delim}'\n{patch}{delim}", "run_tests", "submit"]

    def oracle_action(self) -> str:
        """Apply the gold patch, run the tests, submit."""
        plan = self._oracle_plan()
        return plan[min(self._oracle_stage, len(plan) - 1)]

    def _close(self) -> None:
        if self._sb is not None:
            self._sb.close()
            self._sb = None
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        for t in self._closers:
            t.join(timeout=60)
        self._closers.clear()


def export_corpus(path: str | Path, split: str | None = None, index_path: str | None = None) -> int:
    """Write the generated corpus as a task file (format of :mod:`task`); returns the count.

    ``repo`` entries are written relative to the task file's directory when possible.
    """
    import os

    from aem_envs.envs.coderepair.task import write_tasks

    index = load_index(index_path or INDEX_PATH)
    out_dir = Path(path).resolve().parent
    ids = [i for s, lst in index.by_split.items() if split in (None, s) for i in lst]
    tasks = []
    for i in ids:
        t = CorpusTask.from_indexed(index.tasks[i], index).export()
        t.repo = os.path.relpath(t.repo, out_dir)
        tasks.append(t)
    write_tasks(tasks, path)
    return len(tasks)

"""``aem/Shell-v0``: solve file-system tasks with bash commands in a Docker sandbox.

Each turn the agent sends one shell command (``<action>ls -la</action>``) and sees its output
and exit status; the shell persists between turns (``cd``, variables). The episode ends with
``<action>submit</action>`` or ``<action>submit ANSWER</action>``.

Grading (after submit, when the agent can no longer act): the agent's processes are killed,
a fresh copy of the task's files is unpacked in a private scratch directory and the gold
command runs there in a fresh shell. Answer tasks compare the submitted answer with the gold
output; state tasks compare the agent's work tree with the gold one (see
:mod:`aem_envs.envs.shell.grading`). The gold command and expected results never enter the
container before the submit. Reward ``success_reward`` (10) on success, otherwise
``partial_credit * similarity * success_reward`` (``partial_credit`` defaults to 0; for state
tasks the similarity counts only the entries the task or the agent changed, so doing nothing
earns nothing).

Sandboxes come from a process-wide :class:`~aem_envs.sandbox.pool.SandboxPool`: a new task
takes a fresh warm container, a repeated task reuses its own container after a reset.
Infrastructure failures surface as ``info["error_kind"] == "infra"``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any, Literal

from aem_envs.core import InfraError, Outcome, TaskIds, TextEnv
from aem_envs.envs.shell import grading
from aem_envs.envs.shell.tasks import FAMILIES, VERSION, ShellTask, make_task

_SUBMIT_RE = re.compile(r"^submit(?:\s+(.*))?$", re.DOTALL)


def _default_image() -> str:
    try:
        from aem_envs.images import BASE_IMAGE

        return BASE_IMAGE
    except Exception:  # images module absent in a trimmed install
        return "aem/base:0"


class ShellEnv(TextEnv):
    version = VERSION
    description = "InterCode-Bash-style file-system tasks solved with shell commands in a Docker sandbox"
    action_format = "tag"
    max_observation_length = 16_384
    oracle_min_success = 0.95
    system_prompt = (
        "You are working in a Linux bash shell. Each turn, reply with exactly one shell command inside "
        "<action></action>, for example <action>ls -la</action>. You will see its output and exit code. "
        "The shell keeps its current directory and variables between turns; there is no terminal, so "
        "interactive programs get no input. When the task is done, reply <action>submit</action>; if the "
        "task asks a question, reply <action>submit YOUR_ANSWER</action> instead."
    )

    def __init__(
        self,
        *,
        sandbox: Literal["docker", "local"] = "docker",
        image: str | None = None,
        command_timeout: float = 10.0,
        success_reward: float = 10.0,
        partial_credit: float = 0.0,
        output_limit: int = 8192,
        use_pool: bool = True,
        mem_limit: str = "512m",
        cpus: float = 1.0,
        pids_limit: int = 256,
        **kwargs: Any,
    ):
        kwargs.setdefault("max_turns", 15)
        super().__init__(**kwargs)
        if sandbox not in ("docker", "local"):
            raise ValueError(f"sandbox={sandbox!r} is unknown; use 'docker' (isolated) or 'local' (NOT isolated)")
        if not 0.0 <= partial_credit <= 1.0:
            raise ValueError(f"partial_credit={partial_credit} must be in [0, 1]")
        self.sandbox_kind = sandbox
        if sandbox == "docker":  # on the caller's thread: the first container may start on a worker
            from aem_envs.sandbox import lifecycle

            lifecycle.install_hooks()
        self.command_timeout = float(command_timeout)
        self.success_reward = float(success_reward)
        self.partial_credit = float(partial_credit)
        self.use_pool = use_pool
        self._image = image or _default_image()
        self._output_limit = output_limit
        self._limits = {"mem_limit": mem_limit, "cpus": cpus, "pids_limit": pids_limit}
        self._sb: Any = None
        self._sb_task: str | None = None
        self._task: ShellTask | None = None
        self._tar = b""
        self._gold_ran = False
        self._last_output = ""
        self.last_grade: dict[str, Any] = {}

    # ------------------------------------------------------------------ tasks
    def task_ids(self, split: str) -> Sequence[str]:
        if split == "train":
            return TaskIds("shell-train-", 0, 20_000)
        if split == "test":
            return TaskIds("shell-test-", 500_000, 2_000)
        raise ValueError(f"split={split!r} is unknown; use 'train' or 'test'")

    @staticmethod
    def families() -> list[str]:
        return list(FAMILIES)

    def task(self, task_id: str) -> ShellTask:
        """The task behind ``task_id`` (files, instruction, gold command)."""
        for split in self.splits:
            k = self.task_ids(split).index_of(task_id)  # type: ignore[attr-defined]
            if k is not None:
                return make_task(task_id, k)
        raise ValueError(f"unknown task id {task_id!r}")

    # ------------------------------------------------------------------ sandbox
    def _config(self):
        from aem_envs.sandbox.config import SandboxConfig

        return SandboxConfig(
            image=self._image, output_limit=self._output_limit, default_timeout=self.command_timeout, **self._limits
        )

    def _new_sandbox(self, task_id: str):
        if self.sandbox_kind == "local":
            from aem_envs.sandbox.local import LocalSandbox

            return LocalSandbox(output_limit=self._output_limit, default_timeout=self.command_timeout)
        if self.use_pool:
            from aem_envs.sandbox.pool import shared_pool

            return shared_pool(self._config()).acquire(task_id)
        from aem_envs.sandbox.docker_sandbox import DockerSandbox

        return DockerSandbox(self._config())

    def _give_back(self) -> None:
        sb, key = self._sb, self._sb_task
        self._sb, self._sb_task = None, None
        if sb is None:
            return
        if self.sandbox_kind == "docker" and self.use_pool:
            from aem_envs.sandbox.pool import shared_pool

            shared_pool(self._config()).release(sb, key)
        else:
            sb.close()

    def _prepare(self, task_id: str) -> None:
        from aem_envs.sandbox.errors import SandboxError

        sb = self._sb
        if sb is not None and self._sb_task == task_id and getattr(sb, "expires_in", 1e9) > 600:
            try:
                sb.reset()  # same task: restore the snapshot, kill processes, new shell
                return
            except SandboxError:  # the old container died (an earlier infra error): replace it
                self._sb, self._sb_task = None, None
                sb.close()
        self._give_back()
        for attempt in (1, 2):
            sb = self._new_sandbox(task_id)
            self._sb, self._sb_task = sb, task_id
            if getattr(sb, "loaded_task", None) == task_id:
                return  # a parked sandbox of this task, already reset by the pool
            try:
                sb.put_archive(sb.workdir, self._tar)
                sb.snapshot(self._tar)
                sb.loaded_task = task_id
                return
            except SandboxError:
                # A warm container can die while parked (daemon restart): retry once with another.
                self._sb, self._sb_task = None, None
                sb.close()
                if attempt == 2:
                    raise

    # ------------------------------------------------------------------ hooks
    def _load_task(self, task_id: str) -> str:
        k = None
        for split in self.splits:
            k = self.task_ids(split).index_of(task_id)  # type: ignore[attr-defined]
            if k is not None:
                break
        assert k is not None
        self._task = make_task(task_id, k)
        self._tar = self._task.tar()
        self._gold_ran = False
        self._last_output = ""
        self.last_grade = {}
        self._prepare(task_id)
        self.instruction = self._task.instruction
        return (
            f"Task: {self.instruction}\n\n"
            "You are in a bash shell in the task's work directory. Reply with one command per turn as "
            "<action>COMMAND</action>. Finish with <action>submit</action>, or <action>submit ANSWER</action> "
            "when the task asks for an answer."
        )

    def _act(self, action: str) -> Outcome:
        assert self._task is not None and self._sb is not None
        m = _SUBMIT_RE.match(action.strip())
        if m:
            return self._grade((m.group(1) or "").strip())
        from aem_envs.sandbox.errors import SandboxError

        try:
            res = self._sb.run(action, timeout=self.command_timeout)
        except SandboxError as e:
            return self._broken(e, "the shell could not be restarted")
        self._last_output = res.output
        if action.strip() == self._task.gold:
            self._gold_ran = True
        body = res.output.rstrip("\n")
        if not body.strip():
            body = "(no output)"
        return Outcome(f"{body}\n[exit code {res.exit_code}]")

    def _grade(self, answer: str) -> Outcome:
        task, sb = self._task, self._sb
        assert task is not None
        from aem_envs.sandbox.errors import SandboxError, UnsafeArchive

        # The episode is over: kill the agent's processes (so none can change the tree while it
        # is read or the gold command runs) in a shell the agent never had (see respawn_shell).
        try:
            sb.respawn_shell()
        except SandboxError as e:
            return self._broken(e, "Submitted. The task could not be graded")
        agent_tree, unsafe = None, ""
        if task.check == "state":
            try:
                agent_tree = grading.manifest(sb.get_archive(sb.workdir))
            except UnsafeArchive as e:  # a symlink to /etc, a huge or unreadable file: the agent's doing
                unsafe = str(e)
        gdir = f"{sb.scratch}/.aem-grade-{secrets.token_hex(6)}"
        sb.put_archive(gdir, self._tar)
        start_tree = grading.manifest(sb.get_archive(gdir)) if task.check == "state" else None
        res = sb.run(f"cd {gdir} && ( {task.gold}\n)", timeout=max(60.0, self.command_timeout))
        if res.timed_out or res.shell_restarted:
            raise InfraError(f"the gold command of {task.task_id} did not finish; the grader is broken, report it")
        if task.check == "answer":
            ok, sim = grading.answer_similarity(answer, res.output, task.answer_kind)
            self.last_grade = {"check": "answer", "expected": res.output.strip(), "given": answer}
        else:
            gold_tree = grading.manifest(sb.get_archive(gdir))
            if agent_tree is None:
                ok, sim, diff = False, 0.0, [f"work tree refused: {unsafe}"]
            else:
                ok, sim, diff = grading.manifest_similarity(agent_tree, gold_tree, start_tree)
            self.last_grade = {"check": "state", "differences": diff}
        self.last_grade.update({"success": ok, "similarity": sim, "family": task.family})
        if ok:
            return Outcome("Submitted. The task is solved.", reward=self.success_reward, done=True, success=True)
        reward = self.partial_credit * sim * self.success_reward
        return Outcome("Submitted. The task is not solved.", reward=reward, done=True, success=False)

    def _broken(self, error: Exception, head: str) -> Outcome:
        """End the episode as not solved when the shell failure ``error`` is the agent's doing;
        re-raise it (infrastructure: the daemon, the container) otherwise.

        Only what the agent left running stops every new shell in a container that still runs
        (a loop that kills or stops every new process, the shell's own and the grader's). As an
        infra error the episode would be dropped instead of scored, so a policy could have any
        failing episode excluded from training and evaluation. The sandbox is closed: the next
        reset would stall on it too.
        """
        if self._sb is None or not self._sb.blocked_by_agent():
            raise error
        task = self._task
        assert task is not None
        self.last_grade = {"check": task.check, "success": False, "similarity": 0.0,
                           "family": task.family, "differences": [f"no shell: {error}"]}
        sb, self._sb, self._sb_task = self._sb, None, None
        if sb is not None:
            sb.close()
        return Outcome(
            f"{head}: a process you left running killed or stopped every new shell. "
            "The episode is over; the task counts as not solved.", reward=0.0, done=True, success=False,
        )

    def oracle_action(self) -> str:
        assert self._task is not None
        if not self._gold_ran:
            return self._task.gold
        if self._task.check == "answer":
            return f"submit {self._last_output.strip()}"
        return "submit"

    def _close(self) -> None:
        self._give_back()

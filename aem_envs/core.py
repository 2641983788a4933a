"""The contract every aem environment follows.

``TextEnv`` is a :class:`gymnasium.Env` whose observation is a string and whose action is the
agent's **whole response** (reasoning and all). The env, not the learner, decides which part of
the response is the action: that is the *action unit* AEM assigns credit to (AEM, arXiv
2605.00425). Everything an environment author writes is four small hooks; everything a learner
relies on (parsing, the invalid-action policy, turn limits, the ``info`` keys, timing, seeding)
is implemented here once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aem_envs.parsing import ActionFormat, format_action, parse_action

#: Keys present in ``info`` after every ``reset`` and ``step`` of every aem environment.
INFO_KEYS: tuple[str, ...] = (
    "action",  # the parsed action unit (str) or None when the response held none
    "action_valid",  # bool: the env accepted and executed the action
    "invalid_reason",  # str | None: why the action was rejected (shown to the agent)
    "turn",  # int: turns consumed so far in this episode
    "task_id",  # str: stable id of the current task
    "split",  # str: split the task belongs to
    "success",  # bool: the task is solved (final on the last step)
    "error_kind",  # None | "agent" | "infra": who is to blame for an error this step
    "tampered",  # bool: the env caught the agent earning reward without doing the task (reward 0)
    "invalid_policy",  # str: the declared invalid-action policy, e.g. "penalize(-0.1)"
    "timing",  # float: seconds spent inside the env for this call
)

ErrorKind = Literal["agent", "infra"] | None


class InvalidAction(Exception):
    """Raised by :meth:`TextEnv._act` when an action cannot be executed.

    The message is shown to the agent, so it should say what was wrong and what is allowed.
    """


class InfraError(Exception):
    """Raised by an env when its infrastructure (a sandbox, a server) failed.

    Such a step ends the episode with ``truncated=True`` and ``info["error_kind"] == "infra"``;
    learners drop the trajectory instead of blaming the agent.
    """


class TextSpace(spaces.Text):
    """``gymnasium.spaces.Text`` that contains any string up to ``max_length`` characters.

    Gymnasium's ``Text`` checks every character against a finite charset. Agent observations
    contain arbitrary Unicode (file names, product titles, program output), so membership is
    decided by type and length only; sampling still draws from printable ASCII.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None):
        printable = "".join(chr(c) for c in range(32, 127)) + "\n"
        super().__init__(max_length, min_length=min_length, charset=printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


_POLICY_RE = re.compile(r"^\s*(penalize|retry|terminate)\s*(?:\(\s*([-+0-9.eE]*)\s*\))?\s*$")


@dataclass(frozen=True)
class InvalidActionPolicy:
    """What happens when a response holds no valid action. Chosen at ``make`` time.

    - ``penalize(r)`` (default ``penalize(-0.1)``): reward ``r``, the agent is told why, the
      turn is consumed and the episode continues.
    - ``retry(k)``: reward 0, the agent is told why, **no turn is consumed**; at most ``k``
      such retries per episode, the next invalid response ends the episode (terminated,
      failure).
    - ``terminate``: the episode ends at once (terminated, reward 0, failure).
    """

    kind: Literal["penalize", "retry", "terminate"] = "penalize"
    penalty: float = -0.1
    max_retries: int = 0

    @classmethod
    def parse(cls, spec: str | InvalidActionPolicy) -> InvalidActionPolicy:
        if isinstance(spec, InvalidActionPolicy):
            return spec
        m = _POLICY_RE.match(str(spec))
        if not m:
            raise ValueError(
                f"invalid_action={spec!r} is not a policy; use 'penalize(-0.1)', 'retry(3)' or 'terminate'"
            )
        kind, arg = m.group(1), m.group(2)
        try:
            if kind == "penalize":
                return cls("penalize", penalty=float(arg) if arg else -0.1)
            if kind == "retry":
                k = int(arg) if arg else 1
                if k < 0:
                    raise ValueError
                return cls("retry", penalty=0.0, max_retries=k)
        except ValueError:
            raise ValueError(
                f"invalid_action={spec!r}: bad argument; use e.g. 'penalize(-0.1)' or 'retry(3)'"
            ) from None
        if arg:
            raise ValueError(f"invalid_action={spec!r}: 'terminate' takes no argument")
        return cls("terminate", penalty=0.0)

    def __str__(self) -> str:
        if self.kind == "penalize":
            return f"penalize({self.penalty:g})"
        if self.kind == "retry":
            return f"retry({self.max_retries})"
        return "terminate"


@dataclass
class Outcome:
    """What :meth:`TextEnv._act` returns for an action the env executed."""

    observation: str
    reward: float = 0.0
    done: bool = False  # the task ended (solved or irrecoverably failed)
    success: bool = False
    #: The env caught an attempt to earn reward without doing the task (a grader patched from
    #: inside, say); the reward should then be 0. Reported as ``info["tampered"]`` from this
    #: step to the end of the episode, so learners can count it.
    tampered: bool = False


class TaskIds(Sequence[str]):
    """A lazy, indexable list of ids ``f"{prefix}{i:0{width}d}"`` for i in [start, start+n).

    Lets an env with a procedural task space expose thousands of stable ids without
    materialising them, with O(1) membership.
    """

    def __init__(self, prefix: str, start: int, n: int, width: int = 6):
        self.prefix, self.start, self.n, self.width = prefix, start, n, width

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        return f"{self.prefix}{self.start + i:0{self.width}d}"

    def index_of(self, task_id: str) -> int | None:
        """Global integer behind ``task_id`` (``start + i``) or None if not in this list."""
        if not task_id.startswith(self.prefix):
            return None
        tail = task_id[len(self.prefix) :]
        if not tail.isdigit() or len(tail) != self.width:
            return None
        k = int(tail)
        return k if self.start <= k < self.start + self.n else None

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self.index_of(task_id) is not None



def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False

class TextEnv(gym.Env[str, str]):
    """A multi-turn text environment whose action is the agent's whole response.

    **Episode.** ``reset(seed=None, options=None) -> (observation, info)`` starts a task.
    ``options={"task_id": ...}`` picks one (``options={"split": ...}`` overrides the env's
    split for the draw); otherwise a task of the env's split is drawn from the env's own
    ``np_random``, so a seed alone fixes the task. ``step(response) -> (observation, reward,
    terminated, truncated, info)``; ``terminated`` means the task ended (solved or failed),
    ``truncated`` means the turn limit was hit or the infrastructure failed. Both are True when
    an env finishes the task *at* the turn limit (CodeRepair grades the work tree there): the
    final reward is in, so a learner must not bootstrap a value after it. Stepping after either
    raises ``RuntimeError``.

    **Action unit.** ``step`` receives the full response. :attr:`action_format` says how the
    action is extracted (``"tag"``: the text inside the last ``<action>...</action>``;
    ``"last_line"``: the last non-empty line). The parsed unit is reported as ``info["action"]``.

    **Invalid actions** follow :class:`InvalidActionPolicy`, chosen with
    ``make(id, invalid_action="penalize(-0.1)" | "retry(k)" | "terminate")``.

    **info** always has the keys in :data:`INFO_KEYS`; values are JSON-serialisable.

    **Randomness.** All randomness comes from ``self.np_random`` (seeded by ``reset``). The
    global ``random`` and ``np.random`` state is never touched, so envs can run in threads.

    **Subclasses implement**

    - :meth:`task_ids` — the stable ids of a split (splits never overlap);
    - :meth:`_load_task` — set up a task and return the first observation;
    - :meth:`_act` — execute one parsed action, return an :class:`Outcome` or raise
      :class:`InvalidAction` / :class:`InfraError`;
    - :meth:`oracle_action` — the expert's next action in the current state;

    and set the class attributes :attr:`version`, :attr:`description`, :attr:`system_prompt`
    and, after ``_load_task``, :attr:`instruction`. Optional: :meth:`admissible_actions`,
    :meth:`_close`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    #: Changes whenever task generation changes (tasks with the same id differ across versions).
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""
    #: How a response is parsed into an action: "tag" or "last_line".
    action_format: ClassVar[ActionFormat] = "tag"
    #: Upper bounds of the observation and action strings (the spaces' ``max_length``).
    max_observation_length: ClassVar[int] = 32_768
    max_action_length: ClassVar[int] = 16_384
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    system_prompt: str = ""

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 30,
        invalid_action: str | InvalidActionPolicy = "penalize(-0.1)",
        render_mode: str | None = None,
    ):
        if split not in self.splits:
            raise ValueError(f"split={split!r} is unknown; use one of {list(self.splits)}")
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns={max_turns!r} must be a positive integer")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is unsupported; use 'ansi' or None")
        self.split = split
        self.max_turns = max_turns
        self.invalid_policy = InvalidActionPolicy.parse(invalid_action)
        self.render_mode = render_mode
        self.observation_space = TextSpace(self.max_observation_length)
        self.action_space = TextSpace(self.max_action_length)
        self.instruction: str = ""
        self._task_id: str | None = None
        self._task_split: str = split
        self._turn = 0
        self._retries_used = 0
        self._done = True
        self._success = False
        self._tampered = False
        self._last_obs = ""
        self._record_timing = True

    # ------------------------------------------------------------------ hooks (subclasses)
    def task_ids(self, split: str) -> Sequence[str]:
        """Stable task ids of ``split``. Different splits never share an id."""
        raise NotImplementedError

    def _load_task(self, task_id: str) -> str:
        """Set up ``task_id`` (using ``self.np_random`` for any randomness), set
        ``self.instruction`` and return the first observation."""
        raise NotImplementedError

    def _act(self, action: str) -> Outcome:
        """Execute one parsed action. Raise :class:`InvalidAction` (message shown to the agent)
        for actions that cannot be executed, :class:`InfraError` for infrastructure failures."""
        raise NotImplementedError

    def oracle_action(self) -> str:
        """The expert's next action (the bare action unit, not a formatted response)."""
        raise NotImplementedError

    def admissible_actions(self) -> list[str] | None:
        """Actions valid in the current state, or None when the action set is open-ended."""
        return None

    def _close(self) -> None:
        """Release resources (containers, servers). Called once by :meth:`close`."""

    def _invalid_observation(self, reason: str) -> str:
        """What the agent sees after an invalid action (the state did not change)."""
        return f"Invalid action: {reason}\nNothing happened. Reply with one valid action."

    # ------------------------------------------------------------------ public API
    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def turn(self) -> int:
        return self._turn

    def format_action(self, action: str) -> str:
        """Wrap a bare action as a response this env parses back to ``action``."""
        return format_action(action, self.action_format)

    def oracle_response(self) -> str:
        """The expert's next action, formatted as a response (for SFT demonstrations)."""
        return self.format_action(self.oracle_action())

    def parse_action(self, response: str) -> str | None:
        """The action unit inside ``response`` (None when there is none)."""
        return parse_action(response, self.action_format)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        t0 = time.perf_counter()
        super().reset(seed=seed)
        options = dict(options or {})
        split = options.pop("split", self.split)
        task_id = options.pop("task_id", None)
        if options:
            raise ValueError(f"unknown reset option(s) {sorted(options)}; allowed: 'task_id', 'split'")
        if split not in self.splits:
            raise ValueError(f"split={split!r} is unknown; use one of {list(self.splits)}")
        if task_id is None:
            ids = self.task_ids(split)
            if len(ids) == 0:
                raise ValueError(f"split {split!r} of {type(self).__name__} has no tasks")
            task_id = ids[int(self.np_random.integers(len(ids)))]
        else:
            split = self._split_of(str(task_id))
        self._task_id, self._task_split = str(task_id), split
        self._turn, self._retries_used = 0, 0
        self._done, self._success, self._tampered = True, False, False  # until the task is loaded: a failed load is no episode
        obs = self._load_task(self._task_id)
        self._done = False
        self._last_obs = self._clip(obs)
        info = self._info(None, True, None, None, t0)
        return self._last_obs, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        t0 = time.perf_counter()
        if self._task_id is None:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if self._done:
            raise RuntimeError("step() called after the episode ended; call env.reset() first")
        if not isinstance(action, str):
            raise TypeError(f"step() takes the agent's response as str, got {type(action).__name__}")
        # Lone surrogates (from JSON or a bytes decode with surrogateescape) cannot be encoded
        # for a sandbox or an HTTP request; they become '?' here instead of crashing an env.
        response = action.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(action) else action
        parsed = self.parse_action(response)
        reward, terminated, truncated = 0.0, False, False
        consume_turn = True
        try:
            if parsed is None:
                raise InvalidAction(self._missing_action_reason())
            out = self._act(parsed)
        except InvalidAction as e:
            reason = str(e) or "the action could not be executed"
            pol = self.invalid_policy
            obs = self._invalid_observation(reason)
            if pol.kind == "penalize":
                reward = pol.penalty
            elif pol.kind == "retry":
                consume_turn = False
                if self._retries_used < pol.max_retries:
                    self._retries_used += 1
                    left = pol.max_retries - self._retries_used
                    obs += f" ({left} retr{'y' if left == 1 else 'ies'} left)"
                else:
                    terminated = True
                    obs = f"Invalid action: {reason}\nNo retries left; the episode is over."
            else:
                terminated = True
                obs = f"Invalid action: {reason}\nThe episode is over."
            valid, error_kind = False, "agent"
        except InfraError as e:
            obs = f"[infrastructure error] {e}"
            valid, error_kind, truncated, reason = False, "infra", True, None
        else:
            obs, reward, terminated = out.observation, float(out.reward), bool(out.done)
            self._success = bool(out.success)
            self._tampered = self._tampered or bool(out.tampered)
            valid, error_kind, reason = True, None, None
        if consume_turn:
            self._turn += 1
        if not terminated and not truncated and self._turn >= self.max_turns:
            truncated = True
        self._done = terminated or truncated
        self._last_obs = self._clip(obs)
        info = self._info(parsed, valid, reason, error_kind, t0)
        return self._last_obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return f"[{self._task_id} turn {self._turn}]\n{self._last_obs}"
        return None

    def close(self) -> None:
        """Release resources. Safe to call any number of times."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self._close()

    # ------------------------------------------------------------------ helpers
    @contextmanager
    def frozen_timing(self):
        """Report ``info["timing"] == 0.0`` inside the block.

        Wall-clock time is the one value in ``info`` that is nondeterministic by nature;
        checkers that compare ``info`` across seeded replays use this.
        """
        prev, self._record_timing = self._record_timing, False
        try:
            yield self
        finally:
            self._record_timing = prev

    def _split_of(self, task_id: str) -> str:
        for split in self.splits:
            if task_id in self.task_ids(split):
                return split
        raise ValueError(
            f"unknown task id {task_id!r} for {type(self).__name__} (version {self.version}); "
            f"list valid ids with env.task_ids('train') or env.task_ids('test')"
        )

    def _missing_action_reason(self) -> str:
        if self.action_format == "tag":
            return "no action found; put exactly one action inside <action>...</action>"
        return "no action found; write the action on the last line of your reply"

    def _clip(self, obs: str) -> str:
        limit = self.max_observation_length
        if len(obs) <= limit:
            return obs
        marker = "\n[... observation truncated ...]\n"
        keep = limit - len(marker)
        return obs[: keep // 2] + marker + obs[len(obs) - (keep - keep // 2) :]

    def _info(
        self,
        action: str | None,
        valid: bool,
        reason: str | None,
        error_kind: ErrorKind,
        t0: float,
    ) -> dict[str, Any]:
        return {
            "action": action,
            "action_valid": bool(valid),
            "invalid_reason": reason,
            "turn": self._turn,
            "task_id": self._task_id,
            "split": self._task_split,
            "success": bool(self._success),
            "error_kind": error_kind,
            "tampered": self._tampered,
            "invalid_policy": str(self.invalid_policy),
            "timing": (time.perf_counter() - t0) if self._record_timing else 0.0,
        }


def spawn_generators(seed: int | None, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one seed (``SeedSequence.spawn``)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]

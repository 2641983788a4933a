"""``aem/Household-v0``: an ALFWorld-style text household, generated from the task id."""

from __future__ import annotations

from collections.abc import Sequence

from aem_envs.core import InvalidAction, Outcome, TaskIds, TextEnv
from aem_envs.envs.household.generate import GENERATOR_VERSION, Layout, generate
from aem_envs.envs.household.planner import next_action
from aem_envs.envs.household.world import INSPECT_OPS, World

SUCCESS_REWARD = 10.0
_TRAIN = TaskIds("household-train-", 0, 10_000)
_TEST = TaskIds("household-test-", 0, 1_000)  # a different prefix: a different generator seed


class HouseholdEnv(TextEnv):
    """Rooms full of receptacles and objects; one of ALFWorld's six tasks to do.

    Commands (ALFWorld's): ``go to X``, ``open X``, ``close X``, ``take X from Y``,
    ``put X in/on Y``, ``clean X with Y``, ``heat X with Y``, ``cool X with Y``, ``use X``,
    ``look``, ``inventory``, ``examine X``; plus ``go to <room>`` between rooms. Closed
    receptacles hide their contents; the agent carries one object at a time. Every observation
    ends with the admissible actions; anything else is an invalid action (reason shown).
    Reward is 10 on success, else 0 (plus the invalid-action policy's penalty).

    Difficulty knobs: ``rooms`` (1-4), ``receptacles_per_room`` (3-12; rooms with fewer kinds
    available get fewer), ``distractors`` (extra objects). ``show_admissible=False`` leaves the
    admissible list out of observations (harder; :meth:`admissible_actions` still works).

    ``oracle="search"`` (default): the expert knows the layout and what the agent has seen, and
    searches plausible receptacles for what it has not seen, so its demonstrations can be
    imitated from observations alone. ``oracle="informed"``: it knows where everything is
    (ALFWorld's handcoded expert), giving the shortest plans. See ``planner.py``. At the
    defaults the search expert solves every task (about 9 turns, at most ~21 of 30); in the
    largest layouts (4 rooms x 12 receptacles) it sometimes needs more than 30 turns: raise
    ``max_turns`` or use ``oracle="informed"`` there.
    """

    version = GENERATOR_VERSION
    description = "ALFWorld-style household: find, clean/heat/cool, examine and place objects (6 task types)"
    action_format = "tag"
    oracle_min_success = 1.0
    system_prompt = (
        "You are a household robot in a text world. Each turn, reply with exactly one of the "
        "admissible actions inside <action></action>, e.g. <action>go to fridge 1</action>. "
        "Closed receptacles must be opened to see inside. You can carry only one object at a time."
    )

    def __init__(
        self,
        rooms: int = 2,
        receptacles_per_room: int = 7,
        distractors: int = 6,
        show_admissible: bool = True,
        oracle: str = "search",
        **kwargs,
    ):
        super().__init__(**kwargs)  # split, max_turns, invalid_action, render_mode
        self.layout = Layout(rooms, receptacles_per_room, distractors)
        self.show_admissible = show_admissible
        if oracle not in ("search", "informed"):
            raise ValueError(f"oracle={oracle!r} is unknown; use 'search' or 'informed'")
        self.oracle = oracle
        self.world: World | None = None

    @property
    def task_type(self) -> str:
        """ALFWorld task type of the current task, e.g. ``pick_clean_then_place_in_recep``."""
        return self._world().goal.task_type

    def task_ids(self, split: str) -> Sequence[str]:
        if split == "train":
            return _TRAIN
        if split == "test":
            return _TEST
        raise ValueError(f"split={split!r} is unknown; use 'train' or 'test'")

    def _load_task(self, task_id: str) -> str:
        self.world = generate(task_id, self.layout)
        self.instruction = self.world.goal.instruction
        return self._with_actions(f"{self.world.intro()}\n\nYour task is to: {self.instruction}")

    def _act(self, action: str) -> Outcome:
        w = self._world()
        op = w.lookup(action)
        if op is None:
            reason = w.explain(action)
            if self.show_admissible:
                reason += ". " + self._actions_line()
            raise InvalidAction(reason)
        feedback = w.execute(*op)
        if op[0] not in INSPECT_OPS and w.goal_satisfied():
            return Outcome(feedback, reward=SUCCESS_REWARD, done=True, success=True)
        return Outcome(self._with_actions(feedback))

    def oracle_action(self) -> str:
        return next_action(self._world(), informed=self.oracle == "informed")

    def admissible_actions(self) -> list[str]:
        return list(self._world().admissible())

    # ------------------------------------------------------------------ helpers
    def _world(self) -> World:
        if self.world is None:
            raise RuntimeError("no task loaded; call env.reset() first")
        return self.world

    def _actions_line(self) -> str:
        return self._world().admissible_text()

    def _with_actions(self, text: str) -> str:
        return f"{text}\n{self._actions_line()}" if self.show_admissible else text

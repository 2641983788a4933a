"""A complete new environment in ~60 lines: guess a secret number with feedback.

Copy this file to add your own env: subclass TextEnv, implement the four hooks, register it,
and run check_env. Run it:  python examples/custom_env.py

Your copy needs no packaging: name the env as MODULE:ID and the module is imported first
(Gymnasium's syntax; the current directory is searched too). Saved as my_envs.py:

    aem-envs check my_envs:aem/GuessNumber-v0
    aem-train train --model MODEL_DIR env.id=my_envs:aem/GuessNumber-v0 "env.kwargs={hi: 50}"
    aem-train train --model MODEL_DIR env.id=path/to/my_envs.py:aem/GuessNumber-v0  # from anywhere
    aem-train init-model --preset tiny runs/models/guess --envs my_envs:aem/GuessNumber-v0

(``aem-train ... --import my_envs.py env.id=aem/GuessNumber-v0`` works too.)
"""

from __future__ import annotations

import aem_envs
from aem_envs import InvalidAction, Outcome, TaskIds, TextEnv


class GuessNumberEnv(TextEnv):
    version = "1"  # bump whenever task generation changes
    description = "Guess a secret integer in [1, hi] from higher/lower hints."
    action_format = "tag"  # the agent answers <action>guess 42</action>
    system_prompt = (
        "You play a guessing game. Each turn reply with one action inside <action></action>, "
        "of the form 'guess N'."
    )

    def __init__(self, hi: int = 100, **kwargs):
        super().__init__(**kwargs)  # split, max_turns, invalid_action, render_mode
        self.hi = hi

    # Stable ids; train and test never overlap. Task k's secret is derived from k alone,
    # so an id always means the same task.
    def task_ids(self, split: str):
        return TaskIds("guess-train-", 0, 1000) if split == "train" else TaskIds("guess-test-", 1000, 200)

    def _load_task(self, task_id: str) -> str:
        k = int(task_id.rsplit("-", 1)[1])
        self.secret = 1 + (k * 7919) % self.hi
        self.lo_seen, self.hi_seen = 1, self.hi
        self.instruction = f"Find the secret number between 1 and {self.hi}."
        return f"The secret is between 1 and {self.hi}."

    def _act(self, action: str) -> Outcome:
        verb, _, arg = action.partition(" ")
        if verb != "guess" or not arg.strip().lstrip("-").isdigit():
            raise InvalidAction(f"'{action}' is not 'guess N' with N an integer")
        n = int(arg)
        if n == self.secret:
            return Outcome("Correct!", reward=10.0, done=True, success=True)
        if n < self.secret:
            self.lo_seen = max(self.lo_seen, n + 1)
            return Outcome(f"{n} is too low.")
        self.hi_seen = min(self.hi_seen, n - 1)
        return Outcome(f"{n} is too high.")

    def oracle_action(self) -> str:  # binary search solves every task in <= 7 turns
        return f"guess {(self.lo_seen + self.hi_seen) // 2}"


aem_envs.register("aem/GuessNumber-v0", GuessNumberEnv, max_turns=10)

if __name__ == "__main__":
    report = aem_envs.check_env("aem/GuessNumber-v0")
    print(report)
    raise SystemExit(0 if report.ok else 1)

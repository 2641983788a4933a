"""Reference agents for the household: the uniformly random admissible-action agent."""

from __future__ import annotations

import numpy as np

from aem_envs.core import TextEnv


def play_random(env: TextEnv, rng: np.random.Generator, seed: int | None = None, task_id: str | None = None) -> tuple[bool, int]:
    """One episode of an agent choosing uniformly among ``env.admissible_actions()``.

    Returns (success, turns). After an invalid response (none happen here) the admissible set
    is unchanged, so the agent needs no observation parsing.
    """
    env.reset(seed=seed, options={"task_id": task_id} if task_id else None)
    done, info = False, {"success": False, "turn": 0}
    while not done:
        acts = env.admissible_actions()
        action = acts[int(rng.integers(len(acts)))]
        _, _, term, trunc, info = env.step(env.format_action(action))
        done = term or trunc
    return bool(info["success"]), int(info["turn"])


def random_success_rate(env: TextEnv, episodes: int, split: str = "test", seed: int = 0) -> float:
    """Success rate of the random admissible-action agent on ``episodes`` evenly spaced tasks."""
    ids = env.task_ids(split)
    rng = np.random.default_rng(seed)
    wins = sum(play_random(env, rng, seed + k, ids[(k * len(ids)) // episodes])[0] for k in range(episodes))
    return wins / episodes

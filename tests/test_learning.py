"""The whole loop learns: collect -> base advantages -> modulation -> PPO raises a reward that a
random-init model can find, for each estimator and modulation.

The env pays 1 for a one-turn reply containing "go" (a Household token a random-init tiny model
emits in ~19% of 6-token replies). A sign error, an advantage matched to the wrong row or a loss
on the wrong tokens leaves the rate flat or lowers it; a working learner takes it to ~70% in 20
iterations of 64 replies (~5 s each run on 2 cores).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import aem_envs
from aem_envs import Outcome, TaskIds, TextEnv
from aem_train.config import from_dict
from aem_train.trainer import train

WORD = "go"


class SayWordEnv(TextEnv):
    """One turn; any reply is an action; reward 1 when it contains :data:`WORD`."""

    version = "1"
    action_format = "last_line"
    system_prompt = "Answer with one word."

    def task_ids(self, split):
        return TaskIds("say-train-", 0, 100) if split == "train" else TaskIds("say-test-", 100, 100)

    def _load_task(self, task_id):
        self.instruction = "Say something."
        return "Go on."

    def parse_action(self, response):
        return response or "(empty)"

    def _act(self, action):
        hit = WORD in action
        return Outcome("Done.", reward=float(hit), done=True, success=hit)

    def oracle_action(self):
        return WORD


aem_envs.register("aem/TestSayWord-v0", SayWordEnv, max_turns=1)


@pytest.fixture(scope="module")
def tiny_model(household_ckpt) -> str:
    return household_ckpt


def _success_curve(model: str, run_dir: Path, lr: float = 2e-3, **algo) -> np.ndarray:
    cfg = from_dict({
        "model": {"path": model},
        "env": {"id": "aem/TestSayWord-v0", "groups": 8, "group_size": 8, "window": 1},
        "rollout": {"max_new_tokens": 6, "temperature": 1.0},
        "algo": {"estimator": "grpo", "modulation": "none", **algo},
        "ppo": {"lr": lr, "epochs": 1, "minibatches": 1},
        "train": {"iterations": 20, "eval_every": 20, "eval_tasks": 2, "run_dir": str(run_dir),
                  "checkpoint_every": 20, "log_trajectories": False, "save_final_model": False},
    })
    train(cfg, resume=False, progress=False)
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return np.array([r["train/success_rate"] for r in recs if "train/success_rate" in r])


@pytest.mark.parametrize(
    "algo",
    [
        {"estimator": "grpo"},
        # range_guard=0: the random model's responses differ in entropy by ~1e-4, so the default
        # guard (0.1) would set every alpha to 1; here AEM reweights at full strength
        {"estimator": "grpo", "modulation": "aem", "range_guard": 0.0},
        {"estimator": "grpo", "modulation": "empg"},
        {"estimator": "rloo"},
        {"estimator": "gigpo"},
    ],
    ids=lambda a: "-".join(str(v) for v in a.values()),
)
def test_the_loop_raises_a_findable_reward(tiny_model, tmp_path, algo):
    s = _success_curve(tiny_model, tmp_path / "run", **algo)
    start, end = s[0], s[-4:].mean()
    assert 0.05 < start < 0.4, s  # the first batch is sampled before any update
    assert end > start + 0.25 and end > 2 * start, s


def test_without_updates_the_rate_stays_where_it_started(tiny_model, tmp_path):
    # lr=0: the same sampling noise, no learning; the gain above is the updates' doing
    s = _success_curve(tiny_model, tmp_path / "run", lr=0.0)
    assert abs(s[-4:].mean() - s[:4].mean()) < 0.1, s

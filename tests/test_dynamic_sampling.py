"""DAPO's dynamic sampling (rollout.collect_informative, algo.filter_groups): only groups whose
returns differ are trained on, extra batches fill the target, and the result is reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aem_envs
from aem_envs import Outcome, TaskIds, TextEnv
from aem_train.config import ConfigError, from_dict, load
from aem_train.policy import GenerationSettings, Policy
from aem_train.rollout import RolloutConfig, collect, collect_informative, informative_groups, merge_results
from aem_train.rows import Row
from aem_train.trainer import iteration_seed, train

torch.set_num_threads(2)


class CoinEnv(TextEnv):
    """One turn. Task k: k % 3 == 0 is always solved, 1 never, 2 when the reply has an even
    number of characters (a random-init model: about half the time). ``never=True``: no task is
    ever solved."""

    version = "1"
    action_format = "last_line"
    system_prompt = "Say anything."

    def __init__(self, never: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.never = never

    def task_ids(self, split):
        return TaskIds("coin-train-", 0, 300) if split == "train" else TaskIds("coin-test-", 300, 30)

    def _load_task(self, task_id):
        self.kind = int(task_id.rsplit("-", 1)[1]) % 3
        self.instruction = "Flip a coin."
        return "Go."

    def parse_action(self, response):
        return response or "(empty)"

    def _act(self, action):
        hit = not self.never and (self.kind == 0 or (self.kind == 2 and len(action) % 2 == 0))
        return Outcome("Done.", reward=float(hit), done=True, success=hit)

    def oracle_action(self):
        return "ok" if self.kind != 1 else "no"


aem_envs.register("aem/TestCoin-v0", CoinEnv, max_turns=1)

GEN = RolloutConfig(GenerationSettings(max_new_tokens=5, temperature=1.0), window=1)


@pytest.fixture(scope="module")
def policy(guess_ckpt) -> Policy:
    return Policy.from_pretrained(guess_ckpt, reference="none")


def _row(group: int, traj: int, ret: float, turn: int = 0) -> Row:
    z = np.zeros(1, np.float32)
    return Row([1], [2], z, z, 0.0, True, group, traj, turn, f"t{group}", traj_return=ret)


def test_informative_groups_count_trajectories_not_turns():
    rows = [
        _row(0, 0, 1.0), _row(0, 0, 1.0, turn=1), _row(0, 0, 1.0, turn=2), _row(0, 1, 1.0),  # equal returns, unequal lengths
        _row(5, 2, 0.0), _row(5, 3, 10.0), _row(5, 3, 10.0, turn=1),
        _row(2, 4, 0.0), _row(2, 5, 0.0), _row(2, 6, -0.1),  # a small return difference is a difference
        _row(7, 8, 3.0),  # one survivor: no baseline, nothing to compare
    ]
    assert informative_groups(rows) == [5, 2]


def test_only_informative_groups_are_trained_and_extra_rounds_fill_the_target(policy):
    vec = aem_envs.make_vec("aem/TestCoin-v0", 6, 4)
    try:
        merged, rows, info = collect_informative(policy, vec, GEN, seed=11, groups=6, max_rounds=8)
        # round 0 is exactly a plain collect with the same seed
        plain = collect(policy, vec, GEN, seed=11, split="train")
        again = collect_informative(policy, vec, GEN, seed=11, groups=6, max_rounds=8)[1]
    finally:
        vec.close()
    assert [r.response_ids for r in merged.rows[: len(plain.rows)]] == [r.response_ids for r in plain.rows]
    assert info.groups_trained == 6 and info.rounds > 1  # one batch of 6 tasks holds ~2 informative ones
    assert info.groups_sampled == 6 * info.rounds and 6 <= info.groups_informative <= info.groups_sampled
    groups = {}
    for r in rows:
        groups.setdefault(r.group_id, set()).add(r.traj_return)
        assert int(r.task_id.rsplit("-", 1)[1]) % 3 == 2  # only the coin-flip tasks can differ
    assert len(groups) == 6 and all(len(v) > 1 for v in groups.values())
    # ids stay unique across rounds, so group statistics never mix two rounds' tasks
    assert len({r.traj_id for r in merged.rows}) == len(merged.rows) == merged.stats.rows
    assert len({t.group_id for t in merged.trajectories}) == 6 * info.rounds
    # rates are over every episode played, not only the trained ones
    assert merged.stats.episodes == 24 * info.rounds
    assert merged.stats.success_rate == pytest.approx(np.mean([t.success for t in merged.trajectories]))
    assert [r.response_ids for r in again] == [r.response_ids for r in rows]  # same seed, same batch


def test_no_informative_group_falls_back_to_the_first_batch(policy):
    vec = aem_envs.make_vec("aem/TestCoin-v0", 3, 2, never=True)
    try:
        merged, rows, info = collect_informative(policy, vec, GEN, seed=3, groups=3, max_rounds=2)
        first = collect(policy, vec, GEN, seed=3, split="train")
    finally:
        vec.close()
    assert info.rounds == 2 and info.groups_trained == 0 and info.groups_informative == 0
    assert [r.response_ids for r in rows] == [r.response_ids for r in first.rows]
    assert merged.stats.episodes == 12 and merged.stats.success_rate == 0.0


def test_merge_results_sums_counters_and_recomputes_rates(policy):
    vec = aem_envs.make_vec("aem/TestCoin-v0", 2, 2)
    try:
        a = collect(policy, vec, GEN, seed=1, split="train")
        b = collect(policy, vec, GEN, seed=2, split="train", traj_offset=4, group_offset=2)
    finally:
        vec.close()
    m = merge_results([a, b])
    assert m.stats.episodes == 8 and m.stats.rows == len(a.rows) + len(b.rows)
    assert m.stats.success_rate == pytest.approx((a.stats.success_rate + b.stats.success_rate) / 2)
    assert m.stats.seconds == pytest.approx(a.stats.seconds + b.stats.seconds)
    assert m.stats.truncated_responses == a.stats.truncated_responses + b.stats.truncated_responses
    with pytest.raises(ValueError, match="at least one"):
        merge_results([])


def test_trainer_logs_sampling_and_resumes_bit_exact(guess_ckpt, tmp_path):
    def cfg(run, iterations):
        return from_dict({
            "model": {"path": str(guess_ckpt)},
            "env": {"id": "aem/TestCoin-v0", "groups": 3, "group_size": 4, "window": 1},
            "rollout": {"max_new_tokens": 5, "temperature": 1.0},
            "algo": {"estimator": "grpo", "modulation": "aem", "filter_groups": True, "max_sampling_rounds": 4},
            "ppo": {"lr": 1e-3},
            "train": {"iterations": iterations, "eval_every": 2, "eval_tasks": 3, "run_dir": str(run),
                      "checkpoint_every": 1, "save_final_model": False},
        })

    train(cfg(tmp_path / "full", 4), progress=False)
    half = tmp_path / "half"
    train(cfg(half, 2), progress=False)
    (half / "final.json").unlink()
    (half / "config.yaml").unlink()
    train(cfg(half, 4), progress=False)
    recs = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (half / "metrics.jsonl").read_text().splitlines()]
    def strip(rs):  # wall-clock figures differ from run to run
        return [{k: v for k, v in r.items() if not k.startswith("perf/") and k not in ("time_s", "eval/seconds")} for r in rs]

    assert strip(recs) == strip(resumed)
    for r in recs[1:]:
        assert 1 <= r["sampling/rounds"] <= 4 and r["sampling/groups_trained"] <= 3
        assert 0.0 <= r["train/uninformative_groups"] < 1.0
        assert r["train/rows"] == 4 * r["sampling/groups_trained"]
    assert any(r["sampling/rounds"] > 1 for r in recs[1:])
    # every trained row belongs to a group whose returns differ, so no GRPO advantage is 0
    traj = [json.loads(x) for x in (tmp_path / "full" / "trajectories.jsonl").read_text().splitlines()]
    trained = [t for t in traj if recs[t["iteration"]]["sampling/groups_trained"] > 0]
    assert trained and all(t["base_adv"] != 0.0 for t in trained)


def test_a_plain_run_logs_the_share_of_groups_it_cannot_learn_from(guess_ckpt, policy, tmp_path):
    cfg = from_dict({
        "model": {"path": str(guess_ckpt)},
        "env": {"id": "aem/TestCoin-v0", "groups": 6, "group_size": 4, "window": 1},
        "rollout": {"max_new_tokens": 5, "temperature": 1.0},
        "train": {"iterations": 1, "eval_every": 1, "eval_tasks": 3, "run_dir": str(tmp_path / "r"),
                  "log_trajectories": False, "save_final_model": False},
    })
    train(cfg, progress=False)
    rec = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()][1]
    # the trainer's first batch is collect(seed=iteration_seed(seed, 1)): recount its groups
    vec = aem_envs.make_vec("aem/TestCoin-v0", 6, 4)
    try:
        rows = collect(policy, vec, GEN, seed=iteration_seed(0, 1), split="train").rows
    finally:
        vec.close()
    informative = informative_groups(rows)
    assert 0 < len(informative) < 6  # the always- and never-solved tasks are in the batch
    assert rec["train/uninformative_groups"] == pytest.approx(1 - len(informative) / 6)


def test_config_checks():
    with pytest.raises(ConfigError, match="only with algo.filter_groups=true"):
        load(None, ["algo.max_sampling_rounds=3"])
    with pytest.raises(ConfigError, match="not gae; set algo.estimator=grpo, rloo or gigpo"):
        load(None, ["algo.filter_groups=true", "algo.estimator=gae"])
    cfg = load(None, ["algo.filter_groups=true", "algo.max_sampling_rounds=3"])
    assert cfg.algo.filter_groups and cfg.algo.max_sampling_rounds == 3

"""Rollout rows on whole-action units: ids as sampled, prompt/response separation, id
consistency, infra failures and env exceptions, scoring, evaluation determinism."""

from __future__ import annotations


import numpy as np
import pytest
import torch

import aem_envs
from aem_envs import InfraError, Outcome, TaskIds, TextEnv
from aem_train.evaluate import eval_task_ids, evaluate
from aem_train.policy import GenerationSettings, Policy, build_response_batch
from aem_train.rollout import RolloutConfig, collect

torch.set_num_threads(2)


class FlakyEnv(TextEnv):
    """Accepts any non-empty last line. Task k: k%3==0 runs 3 turns cleanly, k%3==1 reports an
    infra error at turn 2, k%3==2 raises a plain exception (an env bug) at turn 2."""

    version = "1"
    action_format = "last_line"
    system_prompt = "Say anything."

    def task_ids(self, split):
        return TaskIds("flaky-train-", 0, 30) if split == "train" else TaskIds("flaky-test-", 100, 30)

    def _load_task(self, task_id):
        self.kind = int(task_id.rsplit("-", 1)[1]) % 3
        self.instruction = "Talk for three turns."
        self.calls = 0
        return "Start."

    def step(self, action):
        self.steps_seen = getattr(self, "steps_seen", 0) + 1
        return super().step(action)

    def _act(self, action):
        self.calls += 1
        if self.calls == 2 and self.kind == 1:
            raise InfraError("sandbox died")
        if self.calls == 2 and self.kind == 2:
            raise ZeroDivisionError("env bug")
        return Outcome(f"Heard turn {self.calls}.", reward=1.0, done=self.calls >= 3, success=self.calls >= 3)

    def oracle_action(self):
        return "hello"


aem_envs.register("aem/TestFlaky-v0", FlakyEnv, max_turns=5)


class TamperEnv(FlakyEnv):
    """Two turns whatever the reply; the grader of task k catches tampering (reward 0) on odd k."""

    def parse_action(self, response):
        return response or "(empty)"

    def _act(self, action):
        self.calls += 1
        k = int(self._task_id.rsplit("-", 1)[1])
        caught = self.calls == 2 and k % 2 == 1
        return Outcome("Graded." if self.calls == 2 else "Go on.", reward=0.0 if caught else 1.0,
                       done=self.calls == 2, success=self.calls == 2 and not caught, tampered=caught)


aem_envs.register("aem/TestTamper-v0", TamperEnv, max_turns=5)


@pytest.fixture(scope="module")
def policy(guess_ckpt) -> Policy:
    return Policy.from_pretrained(guess_ckpt, reference="none")


class _Recorder:
    """Wraps model.generate and keeps every call's inputs and sampled continuation."""

    def __init__(self, policy: Policy):
        self.policy, self.calls = policy, []
        self._orig = policy.model.generate

    def __enter__(self):
        def gen(*args, **kwargs):
            out = self._orig(*args, **kwargs)
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            P = ids.shape[1]
            prompts = [ids[b][mask[b].bool()].tolist() for b in range(ids.shape[0])]
            self.calls.append((prompts, out[:, P:].tolist()))
            return out

        self.policy.model.generate = gen
        return self

    def __exit__(self, *exc):
        del self.policy.model.generate


CFG = RolloutConfig(generation=GenerationSettings(max_new_tokens=8), window=1)


def test_rows_hold_ids_exactly_as_sampled_and_prompts_precede_them(policy, monkeypatch):
    # Re-encoding a response is forbidden in rollouts: make it fail loudly.
    monkeypatch.setattr(policy, "encode_response", lambda *_: pytest.fail("response re-encoded"))
    with aem_envs.make_vec("aem/GuessNumber-v0", num_tasks=2, group_size=3, max_turns=4) as venv, _Recorder(policy) as rec:
        res = collect(policy, venv, CFG, seed=3)
    # Reconstruct, per generate call, which env each batch position belonged to.
    by_traj: dict[int, list] = {}
    for r in res.rows:
        by_traj.setdefault(r.traj_id, []).append(r)
    eos = policy.eos_token_id
    n_calls = max(len(v) for v in by_traj.values())
    assert len(rec.calls) == n_calls
    for t in range(n_calls):
        prompts, sampled = rec.calls[t]
        active = sorted(tid for tid, rows in by_traj.items() if len(rows) > t)
        assert len(prompts) == len(active)
        for k, tid in enumerate(active):
            row = by_traj[tid][t]
            raw = sampled[k]
            want = raw[: raw.index(eos) + 1] if eos in raw else raw
            assert row.response_ids == want  # exactly the sampled ids, cut after EOS
            assert row.prompt_ids == prompts[k]  # the prompt is what was fed before sampling
            # The prompt ends with the opened assistant turn: no response token inside it.
            assert policy.tokenizer.decode(row.prompt_ids).endswith("<|assistant|>\n")
            if t > 0:  # the previous turn's text reaches the model only through the next prompt
                prev = by_traj[tid][t - 1].extras["response_text"]
                assert prev in policy.tokenizer.decode(row.prompt_ids)
            assert row.extras["response_text"] == policy.decode_response(row.response_ids)


def test_row_ids_are_consistent_and_one_row_per_env_turn(policy):
    with aem_envs.make_vec("aem/GuessNumber-v0", num_tasks=3, group_size=2, max_turns=3) as venv:
        res = collect(policy, venv, CFG, seed=4, traj_offset=100, group_offset=10)
        env_turns = [env.turn for env in venv.envs]
    assert res.stats.episodes == 6 and res.stats.kept == 6 and res.stats.dropped_infra == 0
    assert res.stats.rows == len(res.rows) == sum(env_turns)
    for i, tr in enumerate(res.trajectories):
        rows = [r for r in res.rows if r.traj_id == tr.traj_id]
        assert tr.traj_id == 100 + i and tr.group_id == 10 + i // 2
        assert len(rows) == env_turns[i] == tr.turns
        assert [r.turn for r in rows] == list(range(len(rows)))
        assert [r.done for r in rows] == [False] * (len(rows) - 1) + [True]
        assert {r.group_id for r in rows} == {tr.group_id} and {r.task_id for r in rows} == {tr.task_id}
        assert all(r.traj_return == pytest.approx(sum(x.reward for x in rows)) for r in rows)
    for g in range(3):  # a group plays one task
        assert len({t.task_id for t in res.trajectories if t.group_id == 10 + g}) == 1
    r = res.rows[0]
    assert r.old_logprobs.shape == r.token_entropy.shape == (len(r.response_ids),)
    assert r.mean_entropy > 0 and r.surprisal > 0
    assert r.observation.startswith("The secret is between")


def test_old_logprobs_equal_the_training_forward(policy):
    with aem_envs.make_vec("aem/GuessNumber-v0", num_tasks=2, group_size=2, max_turns=3) as venv:
        res = collect(policy, venv, CFG, seed=5)
    rows = res.rows[:12]
    batch = build_response_batch([r.prompt_ids for r in rows], [r.response_ids for r in rows], policy.pad_token_id)
    policy.model.train()
    try:
        lp, ent = policy.forward_response(batch)
    finally:
        policy.model.eval()
    for b, r in enumerate(rows):
        n = len(r.response_ids)
        np.testing.assert_allclose(lp[b, :n].detach().numpy(), r.old_logprobs, atol=2e-5)
        np.testing.assert_allclose(ent[b, :n].detach().numpy(), r.token_entropy, atol=2e-5)


def test_same_seed_same_rows(policy):
    def run():
        with aem_envs.make_vec("aem/GuessNumber-v0", num_tasks=2, group_size=2, max_turns=3) as venv:
            return collect(policy, venv, CFG, seed=11).rows

    a, b = run(), run()
    assert [r.response_ids for r in a] == [r.response_ids for r in b]
    assert all(np.array_equal(x.old_logprobs, y.old_logprobs) for x, y in zip(a, b))


def test_infra_errors_drop_trajectories_and_env_exceptions_stay_local(policy):
    tasks = ["flaky-train-000000", "flaky-train-000001", "flaky-train-000002", "flaky-train-000003"]
    with aem_envs.make_vec("aem/TestFlaky-v0", num_tasks=4, group_size=2) as venv:
        res = collect(policy, venv, CFG, seed=0, task_ids=tasks)
        # The guards are removed afterwards: the env's own methods are back.
        assert all("step" not in env.__dict__ and "reset" not in env.__dict__ for env in venv.envs)
        steps_seen = [env.steps_seen for env in venv.envs]
    kinds = [int(t.task_id.rsplit("-", 1)[1]) % 3 for t in res.trajectories]
    assert kinds == [0, 0, 1, 1, 2, 2, 0, 0]
    dropped = {t.traj_id for t in res.trajectories if t.dropped}
    assert res.stats.dropped_infra == 4 and res.stats.env_exceptions == 2
    assert [t.dropped for t in res.trajectories] == [None, None, "infra", "infra", "exception", "exception", None, None]
    assert "ZeroDivisionError" in res.trajectories[4].error
    assert not any(r.traj_id in dropped for r in res.rows)
    # Healthy trajectories ran to completion; one row per env step.
    assert res.stats.kept == 4 and res.stats.rows == len(res.rows) == sum(steps_seen[i] for i in (0, 1, 6, 7))
    for t in res.trajectories:
        if not t.dropped:
            assert sum(r.traj_id == t.traj_id for r in res.rows) == t.turns


def test_tampering_the_env_caught_is_counted_in_rollouts_and_evaluations(policy):
    tasks = [f"flaky-train-{k:06d}" for k in range(4)]
    with aem_envs.make_vec("aem/TestTamper-v0", num_tasks=4, group_size=2) as venv:
        res = collect(policy, venv, CFG, seed=0, task_ids=tasks)
    assert [t.tampered for t in res.trajectories] == [False, False, True, True] * 2
    assert res.stats.tampered == 4 and res.stats.success_rate == 0.5
    caught = {t.traj_id for t in res.trajectories if t.tampered}
    assert [(r.traj_id in caught and r.turn == 1) for r in res.rows] == [r.extras["tampered"] for r in res.rows]
    ev = evaluate(policy, "aem/TestTamper-v0", split="test", n=6, max_new_tokens=4)
    ids = [int(t.rsplit("-", 1)[1]) for t in eval_task_ids("aem/TestTamper-v0", "test", 6, seed=0)]
    assert ev.tampered == sum(k % 2 for k in ids) > 0 and "caught tampering" in ev.summary()


def test_exception_in_reset_is_local(policy, monkeypatch):
    calls = {"n": 0}
    orig = FlakyEnv._load_task

    def load(self, task_id):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk gone")
        return orig(self, task_id)

    monkeypatch.setattr(FlakyEnv, "_load_task", load)
    with aem_envs.make_vec("aem/TestFlaky-v0", num_tasks=3, group_size=1) as venv:
        res = collect(policy, venv, CFG, seed=0, task_ids=["flaky-train-000000", "flaky-train-000003", "flaky-train-000006"])
    assert [t.dropped for t in res.trajectories] == [None, "exception", None]
    assert res.stats.env_exceptions == 1 and res.stats.kept == 2
    assert {r.traj_id for r in res.rows} == {0, 2}


def test_evaluate_is_deterministic_for_a_seed(policy):
    kw = dict(split="test", n=5, greedy=False, temperature=1.0, max_new_tokens=6, batch_size=3,
              env_kwargs={"max_turns": 3})
    a = evaluate(policy, "aem/GuessNumber-v0", seed=7, **kw)
    b = evaluate(policy, "aem/GuessNumber-v0", seed=7, **kw)
    da, db = a.as_dict(), b.as_dict()
    da.pop("seconds"), db.pop("seconds")
    assert da == db
    assert a.episodes == 5 and a.mean_turns > 0
    # GuessNumber pays -0.1 per invalid turn and 10 for a solve, nothing else: the aggregates
    # must account for every reward exactly (an untrained model may still emit a valid guess)
    assert 0.0 <= a.invalid_action_rate <= 1.0
    assert a.mean_reward == pytest.approx(-0.1 * a.mean_turns * a.invalid_action_rate + 10.0 * a.success_rate)


@pytest.mark.skipif("aem/Household-v0" not in aem_envs.registered_ids(), reason="Household env not registered")
def test_collect_runs_on_household(policy):
    with aem_envs.make_vec("aem/Household-v0", num_tasks=1, group_size=2, max_turns=3) as venv:
        res = collect(policy, venv, RolloutConfig(generation=GenerationSettings(max_new_tokens=4)), seed=0)
    assert res.stats.kept == 2 and len(res.rows) == 6
    assert all(not r.action_valid for r in res.rows)  # random text is no admissible action

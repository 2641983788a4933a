"""Infrastructure failures on the learner side: a failed episode is dropped (never trained on or
scored as the agent's failure), counted and named; group statistics use the survivors; an
evaluation replays and then excludes, stating its denominator; a run where every episode fails
stops with one line naming the cause and resumes from its checkpoint once the cause is gone.

Most tests use :class:`PlanEnv`, an in-process env whose failures are chosen by the test; the
last two drive the real Shell env (a Docker daemon that does not answer; a container killed
mid-episode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import aem_envs
from aem_envs import InfraError, Outcome, TaskIds, TextEnv
from aem_envs.vector import TextVecEnv
from aem_train.advantages import compute_advantages, grpo_advantages
from aem_train.config import from_dict
from aem_train.evaluate import evaluate
from aem_train.policy import GenerationSettings, Policy
from aem_train.rollout import AllEpisodesFailed, RolloutConfig, collect
from docker_support import docker_only

ROOT = Path(__file__).resolve().parents[1]


def _daemon_down() -> InfraError:
    """The sandbox layer's own error for a daemon that does not answer (its message names the fix)."""
    from aem_envs.sandbox.lifecycle import daemon_down_error

    return daemon_down_error(ConnectionRefusedError("Connection refused"))


class PlanEnv(TextEnv):
    """Three turns; every response is a valid action; the last turn pays ``reward`` and succeeds.

    Failures, as the test plans them: ``fail`` is None, ``"infra"`` (``_act`` raises
    InfraError at turn ``fail_turn``), ``"bug"`` (a plain exception there) or ``"reset"``
    (``_load_task`` raises the daemon-down error). ``fail_share`` applies ``fail`` to that share
    of episodes (drawn from the env's seeded RNG), ``fail_split`` only on that split. Class
    switches: ``engine_down`` makes every reset fail like a dead Docker daemon; ``flaky_tasks``
    fail (infra) on their first try only; ``broken_tasks`` fail on every try.
    """

    version = "1"
    action_format = "last_line"
    system_prompt = "Say anything."
    engine_down = False
    flaky_tasks: set[str] = set()
    broken_tasks: set[str] = set()
    tries: dict[str, int] = {}

    def __init__(self, fail: str | None = None, fail_turn: int = 2, fail_share: float = 1.0,
                 fail_split: str | None = None, reward: float = 1.0, **kwargs):
        kwargs.setdefault("max_turns", 5)
        super().__init__(**kwargs)
        self.fail, self.fail_turn, self.fail_share, self.fail_split = fail, fail_turn, fail_share, fail_split
        self.reward = reward
        self.closed = False

    def task_ids(self, split):
        return TaskIds("plan-train-", 0, 50) if split == "train" else TaskIds("plan-test-", 100, 50)

    def _load_task(self, task_id):
        if PlanEnv.engine_down:
            raise _daemon_down()
        tries = PlanEnv.tries[task_id] = PlanEnv.tries.get(task_id, 0) + 1
        self.failing = None
        if task_id in PlanEnv.broken_tasks or (task_id in PlanEnv.flaky_tasks and tries == 1):
            self.failing = "infra"
        elif self.fail and self.fail_split in (None, self._task_split) and self.np_random.random() < self.fail_share:
            self.failing = self.fail
        if self.failing == "reset":
            raise _daemon_down()
        self.instruction, self.calls = "Talk for three turns.", 0
        return "Start."

    def parse_action(self, response):  # every response acts, so failures land on the planned turn
        return super().parse_action(response) or "(silence)"

    def _act(self, action):
        self.calls += 1
        if self.calls == self.fail_turn and self.failing == "infra":
            raise InfraError("sandbox abc lost during exec: the container was removed")
        if self.calls == self.fail_turn and self.failing == "bug":
            raise ZeroDivisionError("env bug")
        done = self.calls >= 3
        return Outcome(f"Heard turn {self.calls}.", reward=self.reward if done else 0.0, done=done, success=done)

    def oracle_action(self):
        return "hello"

    def _close(self):
        self.closed = True


aem_envs.register("aem/TestInfraPlan-v0", PlanEnv)


@pytest.fixture(autouse=True)
def _plan_reset():
    PlanEnv.engine_down = False
    PlanEnv.flaky_tasks, PlanEnv.broken_tasks, PlanEnv.tries = set(), set(), {}
    yield
    PlanEnv.engine_down = False


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is fastest, and by far on a machine others load too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def policy(guess_ckpt) -> Policy:
    return Policy.from_pretrained(guess_ckpt, reference="none")


CFG = RolloutConfig(generation=GenerationSettings(max_new_tokens=6), window=1)


# ---------------------------------------------------------------------------- rollouts and groups
def test_a_failed_member_is_dropped_and_its_group_is_scored_over_the_survivors(policy):
    # group 0: rewards 1, 5, 9, the middle one loses its sandbox at turn 2;
    # group 1: rewards 2, 4, 6, the first cannot start (daemon down), the last hits an env bug
    plans = [dict(reward=1.0), dict(reward=5.0, fail="infra"), dict(reward=9.0),
             dict(reward=2.0, fail="reset"), dict(reward=4.0), dict(reward=6.0, fail="bug")]
    venv = TextVecEnv([lambda p=p: PlanEnv(**p) for p in plans], group_size=3)
    with venv:
        res = collect(policy, venv, CFG, seed=0, task_ids=["plan-train-000000", "plan-train-000001"])
    assert [t.dropped for t in res.trajectories] == [None, "infra", None, "infra", None, "exception"]
    assert res.stats.dropped_infra == 3 and res.stats.env_exceptions == 1 and res.stats.kept == 3
    assert "the container was removed" in res.trajectories[1].error
    assert "bash scripts/engine.sh" in res.trajectories[3].error  # DaemonDown from reset: infra, not an env bug
    assert {r.traj_id for r in res.rows} == {0, 2, 4} and len(res.rows) == 9  # 3 turns each, nothing of the dropped
    assert res.stats.success_rate == 1.0  # over the kept episodes: a dropped one is no failure

    adv = compute_advantages(res.rows, "grpo")
    by_traj = {r.traj_id: a for r, a in zip(res.rows, adv)}
    # group 0 is GRPO over the two survivors (returns 1 and 9) ...
    want = grpo_advantages([1.0, 9.0], [0, 0], [0, 2])
    assert by_traj[0] == pytest.approx(want[0]) and by_traj[2] == pytest.approx(want[1])
    # ... not over three with the dropped one counted as a 0-return failure
    wrong = grpo_advantages([1.0, 0.0, 9.0], [0, 0, 0], [0, 1, 2])
    assert by_traj[0] != pytest.approx(wrong[0])
    assert by_traj[4] == 0.0  # group 1 has one survivor: no baseline, no signal
    rloo = {r.traj_id: a for r, a in zip(res.rows, compute_advantages(res.rows, "rloo"))}
    assert (rloo[0], rloo[2], rloo[4]) == (-8.0, 8.0, 0.0)


def test_closing_a_vector_env_closes_every_env_when_one_close_fails():
    class BadClose(PlanEnv):
        def _close(self):
            raise OSError("daemon gone")

    envs_made: list[PlanEnv] = []

    def make(cls):
        env = cls()
        envs_made.append(env)
        return env

    venv = TextVecEnv([lambda: make(PlanEnv), lambda: make(BadClose), lambda: make(PlanEnv)])
    with pytest.raises(OSError, match="daemon gone"):
        venv.close()
    assert envs_made[0].closed and envs_made[2].closed  # the env after the failing one too


# ---------------------------------------------------------------------------- evaluation
EVAL = dict(split="test", n=6, max_new_tokens=4, batch_size=4)


def test_evaluation_replays_infra_failures_instead_of_scoring_them(policy):
    PlanEnv.flaky_tasks = {f"plan-test-{100 + k:06d}" for k in range(100)}  # every task fails its first try
    r = evaluate(policy, "aem/TestInfraPlan-v0", seed=3, **EVAL)
    assert (r.tasks, r.episodes, r.retried, r.dropped_infra) == (6, 6, 6, 0)
    assert r.success_rate == 1.0 and r.mean_turns == 3.0
    assert "6 episodes replayed after an infrastructure failure" in r.summary()


def test_evaluation_excludes_tasks_failing_every_try_and_states_the_denominator(policy):
    first = evaluate(policy, "aem/TestInfraPlan-v0", seed=3, **EVAL)  # no failure: learn the task ids
    assert (first.episodes, first.dropped_infra, first.retried) == (6, 0, 0)
    ids = sorted(PlanEnv.tries)
    PlanEnv.broken_tasks, PlanEnv.tries = set(ids[:2]), {}
    r = evaluate(policy, "aem/TestInfraPlan-v0", seed=3, **EVAL)
    assert (r.tasks, r.episodes, r.dropped_infra, r.retried) == (6, 4, 2, 2)
    assert all(PlanEnv.tries[t] == 2 for t in ids[:2])  # one replay each, then excluded
    assert r.success_rate == 1.0  # 4 of 4 that ran, not 4 of 6
    s = r.summary()
    assert "success 100.0% of 4 episodes" in s and "2 of 6 tasks excluded" in s and "container was removed" in s
    PlanEnv.broken_tasks = set(ids)  # nothing runs to its end: no figure at all
    with pytest.raises(AllEpisodesFailed) as e:
        evaluate(policy, "aem/TestInfraPlan-v0", seed=3, **EVAL)
    msg = str(e.value)
    assert "\n" not in msg and "has no result (2 tries per task)" in msg and "6 of 6 episodes failed" in msg


# ---------------------------------------------------------------------------- training
def _cfg(model, run_dir: Path, iterations: int = 2, eval_tasks: int = 2, **env_kwargs):
    return from_dict({
        "model": {"path": str(model)},
        "env": {"id": "aem/TestInfraPlan-v0", "groups": 2, "group_size": 2, "kwargs": env_kwargs},
        "rollout": {"max_new_tokens": 4},
        "ppo": {"epochs": 1, "minibatches": 1, "entropy_coef": 0.01, "lr": 1e-3},
        "train": {"iterations": iterations, "eval_every": iterations, "eval_tasks": eval_tasks, "run_dir": str(run_dir),
                  "checkpoint_every": 1, "save_final_model": False, "threads": 1},
    })


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _eval_tasks(cfg) -> list[str]:
    from aem_train.evaluate import eval_task_ids
    from aem_train.trainer import EVAL_SEED_OFFSET

    return eval_task_ids(cfg.env.id, "test", cfg.train.eval_tasks, cfg.train.seed + EVAL_SEED_OFFSET)


def test_training_drops_failed_trajectories_counts_and_names_them(guess_ckpt, tmp_path, capsys):
    from aem_train.trainer import train

    cfg = _cfg(guess_ckpt, tmp_path / "run", eval_tasks=10, fail="infra", fail_share=0.5, fail_split="train")
    PlanEnv.broken_tasks = {_eval_tasks(cfg)[3]}  # one eval task fails every try: 10%, still a figure
    train(cfg, progress=False)
    out = capsys.readouterr().out
    recs = _records(tmp_path / "run")
    it = [r for r in recs if r["iteration"] > 0]
    dropped = sum(r["train/dropped_infra"] for r in it)
    assert 0 < dropped < 8  # the seeded plan drops some, keeps some
    for r in it:
        assert r["train/episodes"] == 4 and r["train/env_exceptions"] == 0
        assert r["train/rows"] == 3 * (4 - r["train/dropped_infra"])  # only the survivors' turns
        assert r["train/success_rate"] == (1.0 if r["train/dropped_infra"] < 4 else 0.0)
        if r["train/dropped_infra"]:
            assert f"iteration {r['iteration']}: {r['train/dropped_infra']} of 4 episodes failed" in out
    assert "dropped, not trained on" in out and "the container was removed" in out
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    for r in it:
        assert sum(x["iteration"] == r["iteration"] for x in rows) == r["train/rows"]
    # evaluation excludes the broken task, says so, and states its denominator
    for r in (recs[0], recs[-1]):
        assert (r["eval/episodes"], r["eval/tasks"], r["eval/dropped_infra"], r["eval/retried"]) == (9, 10, 1, 1)
        assert r["eval/success_rate"] == 1.0  # 9 of 9 ran and succeeded, not 9 of 10
    assert out.count("warning: evaluation excluded 1 of 10 tasks") == 2


def test_an_evaluation_excluding_too_many_tasks_stops_the_run(guess_ckpt, tmp_path):
    from aem_train.evaluate import EvaluationIncomplete
    from aem_train.trainer import train

    cfg = _cfg(guess_ckpt, tmp_path / "run", eval_tasks=10)
    PlanEnv.broken_tasks = set(_eval_tasks(cfg)[:2])  # 20%: the figure would be over another task set
    with pytest.raises(EvaluationIncomplete) as e:
        train(cfg, progress=False)
    msg = str(e.value)
    assert msg.startswith("iteration 0: evaluation of aem/TestInfraPlan-v0 (test): 2 of 10 tasks failed every try")
    assert "container was removed" in msg and "no checkpoint yet" in msg and "\n" not in msg
    assert "(train.eval_max_excluded)" in msg  # the setting that allows more
    # a user who accepts a smaller task set says so, and the run logs the rate over the rest
    cfg = _cfg(guess_ckpt, tmp_path / "run2", eval_tasks=10)
    cfg.train.eval_max_excluded = 0.3
    train(cfg, progress=False)
    last = [r for r in _records(tmp_path / "run2") if "eval/success_rate" in r][-1]
    assert (last["eval/episodes"], last["eval/tasks"]) == (8, 10)


def test_engine_down_mid_run_stops_with_one_line_then_resume_matches_an_unbroken_run(
    guess_ckpt, tmp_path, monkeypatch, capsys
):
    from aem_train import cli, trainer

    def argv(run_dir):
        return ["train", "--model", str(guess_ckpt), "--env", "aem/TestInfraPlan-v0", "--run-dir", str(run_dir),
                "--iterations", "3", "env.groups=1", "env.group_size=2", "rollout.max_new_tokens=4",
                "ppo.epochs=1", "ppo.minibatches=1", "ppo.entropy_coef=0.01", "ppo.lr=1e-3", "train.eval_every=3",
                "train.eval_tasks=2", "train.checkpoint_every=1", "train.save_final_model=false", "train.threads=1",
                "--json"]

    assert cli.main(argv(tmp_path / "ref")) == 0
    save = trainer.save_checkpoint

    def save_then_engine_dies(run_dir, *a, **kw):  # the daemon goes away right after iteration 1's checkpoint
        save(run_dir, *a, **kw)
        PlanEnv.engine_down = True

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_engine_dies)
    capsys.readouterr()
    assert cli.main(argv(tmp_path / "run")) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("Loading weights")]
    assert len(err) == 1, err  # one line, no traceback
    assert err[0].startswith("error: iteration 2: nothing to train on: 2 of 2 episodes failed (2 infrastructure failures)")
    assert "start it: bash scripts/engine.sh" in err[0]
    assert "the checkpoint of iteration 1 is intact" in err[0] and "rerun the same command to resume" in err[0]
    assert [r["iteration"] for r in _records(tmp_path / "run")] == [0, 1]  # nothing of iteration 2
    assert trainer._resume_hint(tmp_path / "run", resume=False).endswith(
        "rerun it without --no-resume to resume from it")  # --no-resume again would discard the checkpoint

    monkeypatch.setattr(trainer, "save_checkpoint", save)
    PlanEnv.engine_down = False  # the engine is back: the same command resumes
    assert cli.main(argv(tmp_path / "run")) == 0

    def strip(recs):
        return [{k: v for k, v in r.items() if not k.startswith("perf/") and k not in ("time_s", "eval/seconds")}
                for r in recs]

    assert strip(_records(tmp_path / "run")) == strip(_records(tmp_path / "ref"))


def test_evaluation_with_no_result_stops_the_run_before_it_logs_a_figure(guess_ckpt, tmp_path):
    from aem_train.trainer import train

    PlanEnv.engine_down = True
    with pytest.raises(AllEpisodesFailed) as e:
        train(_cfg(guess_ckpt, tmp_path / "run"), progress=False)
    msg = str(e.value)
    assert msg.startswith("iteration 0: evaluation of aem/TestInfraPlan-v0 (test) has no result")
    assert "bash scripts/engine.sh" in msg and "no checkpoint yet" in msg and "\n" not in msg
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or _records(tmp_path / "run") == []


# ---------------------------------------------------------------------------- the real Shell env
def test_train_with_no_docker_daemon_is_one_error_line(guess_ckpt, tmp_path):
    """The real sandbox layer's DaemonDown reaches the user as one line with the fix (no engine needed)."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    p = subprocess.run(
        [sys.executable, "-m", "aem_train.cli", "train", "--model", str(guess_ckpt), "--env", "aem/Shell-v0",
         "--run-dir", str(tmp_path / "run"), "--iterations", "1", "env.groups=1", "env.group_size=2",
         "env.kwargs.max_turns=2", "rollout.max_new_tokens=4", "train.eval_tasks=2", "--threads", "1", "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith(("error", "Traceback"))]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert lines[0].startswith("error: iteration 0: evaluation of aem/Shell-v0 (test) has no result")
    assert "DaemonDown" in lines[0] and "bash scripts/engine.sh" in lines[0]


_KILLER = r'''
import sys, aem_envs
from aem_envs.envs.shell.env import ShellEnv
from aem_train import cli

class KilledShell(ShellEnv):
    """Every response is a command; the first env of each split to send its 2nd command has its
    container killed first (docker kill), once per split."""
    kills = {"train": 1, "test": 1}
    def parse_action(self, response):
        return super().parse_action(response) or "echo hi"
    def _act(self, action):
        if self._turn == 1 and KilledShell.kills[self._task_split]:
            KilledShell.kills[self._task_split] -= 1
            self._sb.container.kill()
        return super()._act(action)

aem_envs.register("aem/TestKilledShell-v0", KilledShell, max_turns=3)
sys.exit(cli.main(sys.argv[1:]))
'''


@pytest.mark.docker
@pytest.mark.slow
@docker_only()
def test_a_container_killed_mid_episode_is_dropped_replayed_in_eval_and_cleaned_up(guess_ckpt, tmp_path):
    from aem_envs.sandbox import lifecycle

    run = tmp_path / "run"
    p = subprocess.Popen(
        [sys.executable, "-c", _KILLER, "train", "--model", str(guess_ckpt), "--env", "aem/TestKilledShell-v0",
         "--run-dir", str(run), "--iterations", "1", "env.groups=1", "env.group_size=2", "rollout.max_new_tokens=4",
         "train.eval_tasks=2", "train.save_final_model=false", "train.threads=1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        out, err = p.communicate(timeout=240)
    finally:
        p.kill()
    assert p.returncode == 0, err[-3000:]
    recs = _records(run)
    assert (recs[0]["eval/episodes"], recs[0]["eval/retried"], recs[0]["eval/dropped_infra"]) == (2, 1, 0), out + err[-2000:]
    assert (recs[1]["train/dropped_infra"], recs[1]["train/env_exceptions"], recs[1]["train/rows"]) == (1, 0, 3)
    assert "lost during command: the container stopped" in out and "dropped, not trained on" in out
    left = [c for c in lifecycle.labelled_containers() if c.labels.get(lifecycle.L_PID) == str(p.pid)]
    for c in left:
        c.remove(force=True)
    assert left == []


@pytest.mark.docker
@docker_only()
def test_a_parked_sandbox_whose_container_died_is_replaced_not_handed_out_closed():
    """The pool's acquire() of a task whose parked container was killed, with no fresh one warm
    (low=high=0): it used to return the retired, closed sandbox (the replay then failed with
    'this sandbox is closed')."""
    from aem_envs.sandbox.pool import SandboxPool

    with SandboxPool(low=0, high=0, prestart=False) as pool:
        sb = pool.acquire("task-a")
        sb.container.kill()
        pool.release(sb, "task-a")
        again = pool.acquire("task-a")
        try:
            assert again is not sb and not again._closed
            assert again.run("echo ok").output.strip() == "ok"
        finally:
            again.close()
        assert sb._closed

"""The core API (policies, chat view, registry, vector env, checker, errors, CLI) exercised on
aem/Household-v0 and on the example env in examples/custom_env.py."""

from __future__ import annotations

import importlib.util
import io
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import aem_envs
from aem_envs import ChatView, InvalidActionPolicy, Outcome, TextVecEnv, UnknownEnvError
from aem_envs.cli import main as cli_main
from aem_envs.envs.household import HouseholdEnv

ENV_ID = "aem/Household-v0"
ROOT = Path(__file__).resolve().parents[1]
NO_ACTION = "I will think about it first."  # holds no <action> tag


def load_custom_env_module():
    spec = importlib.util.spec_from_file_location("aem_example_custom_env", ROOT / "examples" / "custom_env.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # registers aem/GuessNumber-v0
    return mod


# ---------------------------------------------------------------------------- invalid-action policies
def test_penalize_policy_default_and_custom():
    env = aem_envs.make(ENV_ID)
    assert str(env.invalid_policy) == "penalize(-0.1)"
    env.reset(seed=0)
    obs, r, te, tr, info = env.step(NO_ACTION)
    assert r == -0.1 and not te and not tr and info["turn"] == 1
    assert info["action"] is None and not info["action_valid"] and info["error_kind"] == "agent"
    assert obs.startswith("Invalid action: no action found; put exactly one action inside <action>")
    env = aem_envs.make(ENV_ID, invalid_action="penalize(-2)")
    env.reset(seed=0)
    _, r, *_, info = env.step(env.format_action("fly to the moon"))
    assert r == -2.0 and info["action"] == "fly to the moon" and info["invalid_policy"] == "penalize(-2)"
    _, r, *_ = env.step(env.oracle_response())
    assert r in (0.0, 10.0)  # valid actions are never penalised


def test_retry_policy_consumes_no_turn_and_ends_after_k():
    env = aem_envs.make(ENV_ID, invalid_action="retry(2)")
    env.reset(seed=0)
    obs, r, te, _, info = env.step(NO_ACTION)
    assert r == 0.0 and not te and info["turn"] == 0 and obs.endswith("(1 retry left)")
    _, _, te, _, info = env.step(env.oracle_response())
    assert info["action_valid"] and info["turn"] == 1
    obs, r, te, _, info = env.step(NO_ACTION)
    assert not te and info["turn"] == 1 and obs.endswith("(0 retries left)")
    obs, r, te, tr, info = env.step(NO_ACTION)
    assert te and not tr and r == 0.0 and not info["success"] and "No retries left" in obs
    env.reset(seed=0)  # retries are per episode
    _, _, te, _, _ = env.step(NO_ACTION)
    assert not te


def test_terminate_policy_ends_episode_at_once():
    env = aem_envs.make(ENV_ID, invalid_action="terminate")
    env.reset(seed=0)
    obs, r, te, tr, info = env.step(env.format_action("open the pod bay doors"))
    assert te and not tr and r == 0.0 and not info["success"] and obs.endswith("The episode is over.")
    assert InvalidActionPolicy.parse("terminate").kind == "terminate"


@pytest.mark.parametrize("env_id", ["aem/Household-v0", "aem/WebShop-v0"])
def test_lone_surrogate_in_a_response_is_an_ordinary_step(env_id):
    # A str from JSON can hold a lone surrogate, which no UTF-8 encoder accepts (WebShop's
    # HTTP request raised UnicodeEncodeError); the env replaces it and steps normally.
    env = aem_envs.make(env_id)
    try:
        env.reset(seed=0)
        action = "search[red shoe \ud800]" if "WebShop" in env_id else "go to \ud800 1"
        obs, r, te, tr, info = env.step(f"<action>{action}</action>")
        assert isinstance(obs, str) and info["error_kind"] in (None, "agent"), info
        assert "\ud800" not in info["action"]
    finally:
        env.close()


def test_tag_parsing_takes_the_last_opened_tag():
    from aem_envs.parsing import parse_action

    # Mentioning the tag while thinking must not glue the prose onto the action.
    assert parse_action("I reply with an <action> tag: <action>look</action>") == "look"
    assert parse_action("<action>x <action>go to desk 1</action>") == "go to desk 1"
    assert parse_action("<action>a</action> then <ACTION>b</Action>") == "b"
    # A final tag left open (cut off by the token limit) is no action, even after a closed one.
    assert parse_action("<action>look</action> no, better: <action>open fri") is None
    assert parse_action("<action>look</action> and a stray </action>") == "look"
    assert parse_action("<action>  </action>") is None and parse_action("no tags") is None


# ---------------------------------------------------------------------------- chat view
def test_chat_view_bounded_window_and_reset_forgets():
    env = aem_envs.make(ENV_ID)
    view = ChatView(system_prompt=env.system_prompt, window=2)
    obs, _ = env.reset(seed=1)
    view.reset(env.instruction, obs)
    responses = []
    for _ in range(5):
        resp = f"<action>look</action> #{len(responses)}"
        obs, *_ = env.step(resp)
        view.record(resp, obs)
        responses.append(resp)
    msgs = view.messages()
    assert msgs[0] == {"role": "system", "content": env.system_prompt}
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert f"Task: {env.instruction}" in msgs[1]["content"] and "[3 earlier turns omitted]" in msgs[1]["content"]
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == responses[-2:]
    assert msgs[-1]["content"] == obs
    first_len = len(json.dumps(msgs))
    for _ in range(10):  # prompt length does not grow with the episode
        obs, *_ = env.step("<action>look</action>")
        view.record("<action>look</action>", obs)
    assert abs(len(json.dumps(view.messages())) - first_len) < 200

    obs2, _ = env.reset(seed=2)
    view.reset(env.instruction, obs2)
    msgs = view.messages()
    assert len(msgs) == 2 and view.history == []
    assert not any(r in m["content"] for m in msgs for r in responses)
    assert "omitted" not in msgs[1]["content"]
    zero = ChatView(window=0)
    zero.reset("i", "o1")
    zero.record("r1", "o2")
    assert [m["content"] for m in zero.messages()] == ["Task: i\n[1 earlier turn omitted]\n\no2"]
    with pytest.raises(ValueError, match="window"):
        ChatView(window=-1)


# ---------------------------------------------------------------------------- registry
def test_registry_make_and_gymnasium_make():
    assert ENV_ID in aem_envs.registered_ids()
    env = aem_envs.make(ENV_ID, max_turns=7, rooms=1)
    assert isinstance(env, HouseholdEnv) and env.max_turns == 7 and env.layout.rooms == 1
    assert env.spec is not None and env.spec.id == ENV_ID
    assert isinstance(aem_envs.make("Household-v0"), HouseholdEnv)  # namespace is optional
    genv = gymnasium.make(ENV_ID)
    assert isinstance(genv.unwrapped, HouseholdEnv)
    obs, info = genv.reset(seed=0)
    assert isinstance(obs, str) and info["task_id"].startswith("household-")
    out = genv.step("<action>look</action>")
    assert len(out) == 5 and out[4]["action_valid"]
    genv.close()


def test_make_refuses_the_wrapper_argument_it_would_drop():
    # gymnasium.make wraps for max_episode_steps; aem_envs.make returns the bare env, so the
    # limit would silently vanish. The env's own limit is max_turns.
    with pytest.raises(ValueError, match="max_turns=2"):
        aem_envs.make(ENV_ID, max_episode_steps=2)


def test_unknown_id_suggests_close_matches():
    with pytest.raises(UnknownEnvError) as e:
        aem_envs.make("aem/Houshold-v0")
    assert "did you mean aem/Household-v0" in str(e.value)
    with pytest.raises(UnknownEnvError, match="aem-envs list"):
        aem_envs.make("aem/Zzzzzzzzz-v9")
    with pytest.raises(ValueError, match="namespace"):
        aem_envs.register("other/Foo-v0", "x:y")


# ---------------------------------------------------------------------------- vector env
def test_make_vec_groups_share_a_task_and_own_rng_streams():
    with aem_envs.make_vec(ENV_ID, num_tasks=3, group_size=4) as vec:
        obs, infos = vec.reset(seed=5)
        assert vec.num_envs == 12 and len(obs) == 12
        tasks = [info["task_id"] for info in infos]
        for g in range(3):
            group = tasks[4 * g : 4 * g + 4]
            assert len(set(group)) == 1 and vec.task_ids[4 * g] == group[0]
            assert len(set(obs[4 * g : 4 * g + 4])) == 1  # same task, same start
        assert len(set(tasks)) == 3
        draws = [env.np_random.random() for env in vec.envs]
        assert len(set(draws)) == 12  # independent streams
        vec.reset(seed=5)
        assert draws == [env.np_random.random() for env in vec.envs]  # reproducible from the seed
        vec.reset(seed=6)
        assert draws != [env.np_random.random() for env in vec.envs]
        _, infos = vec.reset(seed=0, task_ids=["household-test-000001"] * 3)
        assert {i["task_id"] for i in infos} == {"household-test-000001"} and infos[0]["split"] == "test"


def test_make_vec_reports_finished_envs_without_resetting_them():
    with aem_envs.make_vec(ENV_ID, num_tasks=2, group_size=1) as vec:
        vec.reset(seed=1)
        first_task = vec.envs[0].task_id
        steps = 0
        while not vec.done[0]:
            out = vec.step([vec.envs[0].oracle_response(), "<action>look</action>"])
            steps += 1
        assert out.terminated[0] and out.rewards[0] == 10.0 and out.infos[0]["success"]
        assert not vec.done[1] and not vec.all_done
        out = vec.step([None, "<action>look</action>"])
        assert out.observations[0] is None and out.infos[0] is None and out.rewards[0] == 0.0
        assert vec.envs[0].task_id == first_task and vec.envs[0].turn == steps  # not reset
        with pytest.raises(ValueError, match="env 0 is done"):
            vec.step(["<action>look</action>", "<action>look</action>"])
        with pytest.raises(ValueError, match="needs an action"):
            vec.step([None, None])
        with pytest.raises(ValueError, match="got 1 actions for 2 envs"):
            vec.step([None])


class DelayedHousehold(HouseholdEnv):
    """Household whose steps sleep a random time (to scramble thread completion order) and whose
    observations carry a draw from the env's own RNG (so per-env streams must stay intact)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._delay = random.Random()  # unseeded on purpose: timing only, never in the output

    def _act(self, action: str) -> Outcome:
        time.sleep(self._delay.uniform(0, 0.002))
        out = super()._act(action)
        out.observation += f"\n[noise {int(self.np_random.integers(10**6))}]"
        return out


def _vec_trajectories(mode: str, seed: int) -> list:
    vec = TextVecEnv([DelayedHousehold] * 8, group_size=2, mode=mode)
    try:
        rngs = [np.random.default_rng([seed, i]) for i in range(vec.num_envs)]
        obs, infos = vec.reset(seed=seed)
        traj = [(obs, [i["task_id"] for i in infos])]
        for _ in range(12):
            if vec.all_done:
                break
            actions = []
            for i, env in enumerate(vec.envs):
                if vec.done[i]:
                    actions.append(None)
                elif rngs[i].random() < 0.15:
                    actions.append("no tag here")  # invalid responses take the same path in both modes
                else:
                    acts = env.admissible_actions()
                    actions.append(env.format_action(acts[int(rngs[i].integers(len(acts)))]))
            out = vec.step(actions)
            infos = [None if i is None else {k: v for k, v in i.items() if k != "timing"} for i in out.infos]
            traj.append((out.observations, out.rewards.tolist(), out.terminated.tolist(), out.truncated.tolist(), infos))
        return traj
    finally:
        vec.close()


def test_threads_mode_gives_exactly_the_sync_trajectories():
    for seed in (0, 1):
        sync = _vec_trajectories("sync", seed)
        threads = _vec_trajectories("threads", seed)
        assert sync == threads
        assert any("[noise" in o for step in sync[1:] for o in step[0] if o)


def test_vec_env_closes_what_it_built_when_a_constructor_fails():
    # With Docker or server envs the first envs hold containers or ports: a failing later
    # constructor must not leak them.
    closed = []

    class Tracked(HouseholdEnv):
        def _close(self) -> None:
            closed.append(self)

    def broken():
        raise ValueError("no such option")

    with pytest.raises(ValueError, match="no such option"):
        TextVecEnv([Tracked, Tracked, broken, Tracked])
    assert len(closed) == 2


# ---------------------------------------------------------------------------- checker
def test_check_env_passes_for_household():
    report = aem_envs.check_env(ENV_ID, oracle_episodes=10)
    assert report.ok, str(report)
    assert report.oracle_success_rate == 1.0
    assert {r.name for r in report.results} >= {"gymnasium_env_checker", "seed_determinism", "oracle_solves_tasks"}


def test_check_env_passes_for_the_custom_env_example():
    mod = load_custom_env_module()
    report = aem_envs.check_env("aem/GuessNumber-v0")
    assert report.ok, str(report)
    report = aem_envs.check_env(mod.GuessNumberEnv(hi=50))  # an instance works too
    assert report.ok, str(report)


def test_check_env_closes_every_env_it_makes_even_when_a_check_fails():
    made, closed = [], []

    class Lax(HouseholdEnv):  # breaks the contract: steps after the end without complaint
        def __init__(self, **kw):
            super().__init__(**kw)
            made.append(self)

        def step(self, action):
            if self._done and self._task_id is not None:
                return self._last_obs, 0.0, True, False, self._info(None, False, None, None, 0.0)
            return super().step(action)

        def _close(self) -> None:
            closed.append(self)

    report = aem_envs.check_env(Lax(), oracle_episodes=1)
    assert not report.ok and "did not raise" in str(report)
    assert len(closed) == len(made) - 1  # all but the instance the caller passed in


# ---------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors():
    with pytest.raises(UnknownEnvError, match="unknown environment"):
        aem_envs.make("aem/Nope-v0")
    with pytest.raises(ValueError, match="invalid_action='explode' is not a policy"):
        aem_envs.make(ENV_ID, invalid_action="explode")
    with pytest.raises(ValueError, match="bad argument"):
        aem_envs.make(ENV_ID, invalid_action="retry(-1)")
    with pytest.raises(ValueError, match="split='dev' is unknown"):
        aem_envs.make(ENV_ID, split="dev")
    with pytest.raises(ValueError, match="max_turns"):
        aem_envs.make(ENV_ID, max_turns=0)
    env = aem_envs.make(ENV_ID)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step("<action>look</action>")
    with pytest.raises(ValueError, match="unknown task id 'household-train-999999'"):
        env.reset(options={"task_id": "household-train-999999"})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"level": 3})
    env.reset(seed=0)
    with pytest.raises(TypeError, match="as str"):
        env.step(42)  # type: ignore[arg-type]
    _, r, te, _, info = env.step("<action>look")  # unclosed tag: no action, never half a command
    assert not info["action_valid"] and r == -0.1 and not te
    env = aem_envs.make(ENV_ID, max_turns=1)
    env.reset(seed=0)
    env.step("<action>look</action>")
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("<action>look</action>")


def test_failed_reset_leaves_no_episode_to_step():
    # A reset whose task set-up failed (a sandbox that did not start) must not leave the env
    # steppable on the half-loaded task: step says "reset first", as before any reset.
    from aem_envs.core import InfraError

    class FlakyHousehold(HouseholdEnv):
        fail = False

        def _load_task(self, task_id: str) -> str:
            if self.fail:
                raise InfraError("sandbox did not start")
            return super()._load_task(task_id)

    env = FlakyHousehold()
    env.reset(seed=0)
    env.step("<action>look</action>")
    env.fail = True
    with pytest.raises(InfraError):
        env.reset(seed=1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<action>look</action>")
    env.fail = False
    _, info = env.reset(seed=1)
    assert info["turn"] == 0 and env.step("<action>look</action>")[4]["action_valid"]


def test_tampered_is_reported_from_the_catching_step_to_the_end_of_the_episode():
    class Grader(HouseholdEnv):
        flag = "inventory"  # stands for the hack a grader catches; None: it flags every action

        def _act(self, action):
            out = super()._act(action)
            out.tampered = self.flag is None or action == self.flag
            return out

    class FlagsEverything(Grader):
        flag = None

    env = Grader()
    env.reset(seed=0)
    seen = [env.step(f"<action>{a}</action>")[4]["tampered"] for a in ("look", "inventory", "look")]
    assert seen == [False, True, True]
    assert env.reset(seed=0)[1]["tampered"] is False
    assert aem_envs.make(ENV_ID).reset(seed=0)[1]["tampered"] is False  # a key of every info
    # A grader that flags the oracle has false positives: the conformance check says so.
    report = aem_envs.check_env(FlagsEverything(), oracle_episodes=3)
    failed = [r for r in report.results if not r.passed]
    assert [r.name for r in failed] == ["oracle_solves_tasks"], str(report)
    assert "flagged its own oracle as tampering on 3/3 test tasks" in failed[0].detail


# ---------------------------------------------------------------------------- CLI
def _json_last_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_cli_list_info_check_oracle(capsys):
    assert cli_main(["list", "--json"]) == 0
    ids = [row["id"] for row in _json_last_line(capsys.readouterr().out)["envs"]]
    assert ENV_ID in ids
    assert cli_main(["info", ENV_ID, "--json", "-e", "rooms=3"]) == 0
    info = _json_last_line(capsys.readouterr().out)
    assert info["splits"] == {"train": 10_000, "test": 1_000} and info["max_turns"] == 30
    assert cli_main(["check", ENV_ID, "--episodes", "5", "--json"]) == 0
    assert _json_last_line(capsys.readouterr().out)["ok"] is True
    assert cli_main(["oracle", ENV_ID, "--episodes", "30", "--split", "test", "--json"]) == 0
    f = _json_last_line(capsys.readouterr().out)
    assert f["episodes"] == 30 and f["success_rate"] == 1.0 and f["split"] == "test"
    assert cli_main(["info", "aem/Houshold-v0"]) == 2
    assert "did you mean aem/Household-v0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["info", ENV_ID, "-e", "colour=red"], "does not accept"),  # unknown constructor argument
        (["oracle", ENV_ID, "--episodes", "1", "-e", "rooms=abc"], "-e"),  # wrong type
        (["info", ENV_ID, "-e", "max_turns=[1"], "max_turns"),  # not YAML: kept as a string
        (["check", "aem/Nope-v0"], "unknown environment"),  # one line, not ten failed checks
        (["check", ENV_ID, "--episodes", "-1"], "--episodes"),
    ],
)
def test_cli_bad_arguments_give_one_line_errors(capsys, argv, needle):
    try:
        code = cli_main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    captured = capsys.readouterr()
    assert code == 2, captured
    err = captured.err.strip()
    assert "Traceback" not in err and needle in err.splitlines()[-1], err  # argparse prints usage first


def test_cli_infrastructure_errors_are_one_line(capsys, monkeypatch):
    # No Docker daemon (or an image not built) is the commonest first-run failure: its message
    # names the fix and must not be buried under a traceback.
    from aem_envs.sandbox import lifecycle

    monkeypatch.setattr(lifecycle, "_client", None)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert cli_main(["oracle", "aem/Shell-v0", "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "start the engine" in err or "start it" in err, err


def test_cli_play_driven_by_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("look\nnot a command\n" + ":oracle\n" * 40))
    assert cli_main(["play", ENV_ID, "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "Your task is to: " in out and "(oracle) " in out
    assert "Invalid action: 'not a command' is not a command" in out
    assert out.rstrip().endswith("SUCCESS")
    monkeypatch.setattr(sys, "stdin", io.StringIO("look\n:quit\n"))
    assert cli_main(["play", ENV_ID, "--task-id", "household-test-000007"]) == 0
    assert "[household-test-000007]" in capsys.readouterr().out


def test_console_script_runs():
    exe = Path(sys.executable).with_name("aem-envs")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "aem_envs.cli"]
    res = subprocess.run(cmd + ["list"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and ENV_ID in res.stdout

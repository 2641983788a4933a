"""Conformance checker: Gymnasium's own checks, then what a text agent env must also honour.

``check_env(env_or_id)`` returns a :class:`CheckReport`; ``report.ok`` is True only when every
check passed. The last check runs the env's oracle on a sample of test tasks, so a passing
report also means the sampled tasks are solvable and that the env's tamper detection
(``info["tampered"]``) did not flag the oracle.
"""

from __future__ import annotations

import json
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aem_envs.core import INFO_KEYS, TextEnv
from aem_envs.registration import make

NO_ACTION_RESPONSE = "I am not sure what to do."  # holds no <action> tag


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    env_id: str
    results: list[CheckResult] = field(default_factory=list)
    oracle_success_rate: float | None = None

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "ok": self.ok,
            "oracle_success_rate": self.oracle_success_rate,
            "checks": [r.__dict__ for r in self.results],
        }

    def __str__(self) -> str:
        lines = [f"check_env({self.env_id}): {'PASS' if self.ok else 'FAIL'}"]
        for r in self.results:
            lines.append(f"  [{'ok' if r.passed else 'FAIL'}] {r.name}" + (f": {r.detail}" if r.detail else ""))
        return "\n".join(lines)


def _invalid_response(env: TextEnv) -> str:
    # With "tag" any text lacking the tag is invalid; with "last_line" an empty reply is.
    return NO_ACTION_RESPONSE if env.action_format == "tag" else "   "


def _play_oracle(env: TextEnv, seed: int, task_id: str | None = None) -> tuple[list[tuple], dict[str, Any]]:
    """Play one oracle episode: (trajectory, the last step's info)."""
    opts = {"task_id": task_id} if task_id else None
    obs, info = env.reset(seed=seed, options=opts)
    traj: list[tuple] = [(obs, info["task_id"])]
    done = False
    while not done:
        resp = env.oracle_response()
        obs, r, term, trunc, info = env.step(resp)
        traj.append((resp, obs, r, term, trunc))
        done = term or trunc
    return traj, info


def check_env(
    env_or_id: TextEnv | str,
    oracle_episodes: int = 10,
    oracle_min_success: float | None = None,
    seed: int = 0,
    **make_kwargs: Any,
) -> CheckReport:
    """Run every conformance check; see the module docstring."""
    if isinstance(env_or_id, str):
        env_id = env_or_id
        factory: Callable[..., TextEnv] = lambda **kw: make(env_id, **{**make_kwargs, **kw})
    else:
        base = env_or_id.unwrapped
        if not isinstance(base, TextEnv):
            raise TypeError(f"check_env needs an aem TextEnv, got {type(base).__name__}")
        env_id = base.spec.id if base.spec is not None else type(base).__name__
        if base.spec is not None:
            factory = lambda **kw: make(base.spec.id, **{**base.spec.kwargs, **kw})
        else:
            factory = lambda **kw: type(base)(**kw)
    report = CheckReport(env_id)
    floor = oracle_min_success

    def run(name: str, fn: Callable[[], str | None]) -> None:
        try:
            detail = fn() or ""
            report.results.append(CheckResult(name, True, detail))
        except Exception as e:  # a check's failure is data for the report, not a crash
            msg = f"{type(e).__name__}: {e}".strip()
            if not isinstance(e, AssertionError):
                msg += " | " + traceback.format_exc(limit=-2).strip().splitlines()[-3].strip()
            report.results.append(CheckResult(name, False, msg))

    def gymnasium_checker() -> str:
        from gymnasium.utils.env_checker import check_env as gym_check

        env = factory()
        try:
            with env.frozen_timing(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                gym_check(env, skip_close_check=False)
            bad = [str(w.message) for w in caught if "precision" not in str(w.message)]
            return f"{len(bad)} warning(s): {bad[:2]}" if bad else ""
        finally:
            env.close()

    def five_tuple() -> str:
        env = factory()
        try:
            out = env.reset(seed=seed)
            assert isinstance(out, tuple) and len(out) == 2, "reset must return (obs, info)"
            obs, info = out
            assert isinstance(obs, str) and isinstance(info, dict), "reset must return (str, dict)"
            assert obs in env.observation_space, "reset observation outside observation_space"
            res = env.step(env.oracle_response())
            assert isinstance(res, tuple) and len(res) == 5, "step must return a 5-tuple"
            o, r, te, tr, inf = res
            assert isinstance(o, str) and o in env.observation_space
            assert isinstance(r, float), f"reward must be float, got {type(r).__name__}"
            assert type(te) is bool and type(tr) is bool, "terminated/truncated must be bool"
            assert isinstance(inf, dict)
            return ""
        finally:
            env.close()

    def info_keys() -> str:
        env = factory()
        try:
            _, info = env.reset(seed=seed)
            missing = [k for k in INFO_KEYS if k not in info]
            assert not missing, f"reset info lacks {missing}"
            *_, info = env.step(_invalid_response(env))
            missing = [k for k in INFO_KEYS if k not in info]
            assert not missing, f"step info lacks {missing}"
            assert info["action_valid"] is False and info["error_kind"] == "agent"
            return ""
        finally:
            env.close()

    def seed_determinism() -> str:
        a, b = factory(), factory()
        try:
            with a.frozen_timing(), b.frozen_timing():
                ta, _ = _play_oracle(a, seed)
                tb, _ = _play_oracle(b, seed)
                assert ta == tb, "same seed and same actions gave different trajectories"
                tasks = {a.reset(seed=s)[1]["task_id"] for s in range(seed, seed + 8)}
                assert len(tasks) > 1, "8 different seeds all drew the same task"
            return f"{len(ta) - 1} steps replayed identically"
        finally:
            a.close(), b.close()

    def no_leak_across_reset() -> str:
        used, fresh = factory(), factory()
        try:
            with used.frozen_timing(), fresh.frozen_timing():
                _play_oracle(used, seed + 1)
                _play_oracle(used, seed + 2)
                t_used, _ = _play_oracle(used, seed)
                t_fresh, _ = _play_oracle(fresh, seed)
            assert t_used == t_fresh, "an env reused after other episodes behaves differently from a fresh one"
            return ""
        finally:
            used.close(), fresh.close()

    def invalid_policy() -> str:
        checked = []
        for spec in ("penalize(-0.5)", "retry(2)", "terminate"):
            env = factory(invalid_action=spec)
            try:
                env.reset(seed=seed)
                bad = _invalid_response(env)
                o, r, te, tr, info = env.step(bad)
                assert info["invalid_policy"] == spec, f"info['invalid_policy'] = {info['invalid_policy']!r}"
                assert info["action_valid"] is False and info["invalid_reason"], "invalid action not reported"
                if spec.startswith("penalize"):
                    assert r == -0.5 and not te and info["turn"] == 1, f"penalize: r={r} term={te}"
                elif spec.startswith("retry"):
                    assert r == 0.0 and not te and info["turn"] == 0, "retry must not consume a turn"
                    env.step(bad)
                    *_, te3, _, info3 = env.step(bad)
                    assert te3 and info3["turn"] == 0, "retry(2): third invalid reply must end the episode"
                else:
                    assert te and not info["success"], "terminate must end the episode"
                checked.append(spec)
            finally:
                env.close()
        return ", ".join(checked)

    def bad_input() -> str:
        env = factory()
        try:
            try:
                env.reset(seed=seed, options={"task_id": "no-such-task-id"})
                raise AssertionError("reset accepted an unknown task id")
            except ValueError:
                pass
            env.reset(seed=seed)
            try:
                env.step(123)  # type: ignore[arg-type]
                raise AssertionError("step accepted a non-str action")
            except TypeError:
                pass
            env2 = factory(invalid_action="terminate")
            try:
                env2.reset(seed=seed)
                env2.step(_invalid_response(env2))
                try:
                    env2.step(env2.format_action("look"))
                    raise AssertionError("step after the episode ended did not raise")
                except RuntimeError:
                    pass
            finally:
                env2.close()
            return ""
        finally:
            env.close()

    def json_serialisable() -> str:
        env = factory()
        try:
            obs, info = env.reset(seed=seed)
            json.dumps([obs, info])
            done = False
            while not done:
                obs, r, te, tr, info = env.step(env.oracle_response())
                json.dumps([obs, r, te, tr, info])
                done = te or tr
            return ""
        finally:
            env.close()

    def close_idempotent() -> str:
        env = factory()
        env.reset(seed=seed)
        env.close()
        env.close()
        return ""

    def oracle_solves() -> str:
        nonlocal floor
        env = factory()
        try:
            if floor is None:
                floor = getattr(env, "oracle_min_success", 1.0)
            ids = env.task_ids("test")
            n = min(oracle_episodes, len(ids))
            step = max(1, len(ids) // max(n, 1))
            wins, flagged = 0, []
            for k in range(n):
                _, info = _play_oracle(env, seed + k, ids[k * step])
                wins += bool(info["success"])
                if info.get("tampered"):
                    flagged.append(info["task_id"])
            rate = wins / max(n, 1)
            report.oracle_success_rate = rate
            assert not flagged, (f"the env flagged its own oracle as tampering on {len(flagged)}/{n} test tasks "
                                 f"(first: {flagged[0]}): its tamper detection has false positives")
            assert rate >= floor, f"oracle solved {wins}/{n} test tasks, below {floor:.0%}"
            return f"oracle solved {wins}/{n} test tasks"
        finally:
            env.close()

    run("gymnasium_env_checker", gymnasium_checker)
    run("five_tuple_contract", five_tuple)
    run("info_keys", info_keys)
    run("seed_determinism", seed_determinism)
    run("no_history_leak_across_reset", no_leak_across_reset)
    run("invalid_action_policy", invalid_policy)
    run("bad_input_errors", bad_input)
    run("json_serialisable", json_serialisable)
    run("close_idempotent", close_idempotent)
    run("oracle_solves_tasks", oracle_solves)
    return report

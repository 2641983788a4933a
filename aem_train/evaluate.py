"""Evaluation: success rate, mean episode reward, mean turns and invalid-action rate of a policy
on one split of an env, deterministic for a fixed seed (tasks, env RNG and torch sampling are
all derived from it).

Infrastructure failures are not task failures: counting them as failures would bias the success
rate down by however often the sandbox broke. An episode dropped by the rollout (an infra error
or an env exception, see :mod:`aem_train.rollout`) is played again, on the same task, up to
``infra_retries`` times; an episode still failing after that is excluded and reported. The rates
are over ``EvalResult.episodes`` (the episodes that ran to their end) and the summary states that
denominator next to the ``tasks`` asked for. When no episode runs to its end there is no figure
at all: :class:`~aem_train.rollout.AllEpisodesFailed` is raised with the first failure's message.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import aem_envs
from aem_train.policy import GenerationSettings, Policy
from aem_train.rollout import AllEpisodesFailed, RolloutConfig, TrajectoryInfo, collect, failure_summary, first_error


class EvaluationIncomplete(RuntimeError):
    """More tasks were excluded (infrastructure failure on every try) than ``max_excluded``
    allows: the figure would be over a different task set than other evaluations'."""


@dataclass
class EvalResult:
    env_id: str
    split: str
    episodes: int  # episodes that ran to their end: the denominator of every rate below
    success_rate: float
    mean_reward: float  # mean episode return
    mean_turns: float
    invalid_action_rate: float  # invalid turns / all turns
    dropped_infra: int  # tasks excluded: their episode failed on infrastructure (or an env exception) every try
    greedy: bool
    temperature: float
    seed: int
    seconds: float
    truncated_prompts: int = 0  # prompts fitted to the prompt limit (rollout.py)
    tasks: int = 0  # tasks asked for (= episodes + dropped_infra)
    env_exceptions: int = 0  # of dropped_infra, how many were env bugs rather than infrastructure
    retried: int = 0  # episodes played again after an infrastructure failure (all tries)
    first_error: str | None = None  # "TASK_ID: message" of the first excluded task (rollout.first_error)
    tampered: int = 0  # episodes the env caught earning reward without doing the task (info["tampered"])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        mode = "greedy" if self.greedy else f"T={self.temperature:g}"
        excluded = ""
        if self.dropped_infra:
            excluded = (f", {self.dropped_infra} of {self.tasks} tasks excluded: their episode failed on "
                        f"infrastructure every try ({self.retried} replay{'' if self.retried == 1 else 's'}); "
                        f"first: {self.first_error}")
        elif self.retried:
            excluded = f", {self.retried} episodes replayed after an infrastructure failure"
        return (
            f"{self.env_id} [{self.split}, {self.episodes} episodes, {mode}]: "
            f"success {self.success_rate:.1%} of {self.episodes} episodes, reward {self.mean_reward:.3f}, "
            f"turns {self.mean_turns:.2f}, invalid {self.invalid_action_rate:.1%}"
            + (f", {self.truncated_prompts} prompts truncated" if self.truncated_prompts else "")
            + (f", {self.tampered} caught tampering" if self.tampered else "")
            + f" ({self.seconds:.1f} s)" + excluded
        )


EVAL_BATCH = 64  # episodes played side by side (one batched generate per turn)


def eval_task_ids(env_id: str, split: str, n: int, seed: int, **env_kwargs: Any) -> list[str]:
    """``n`` task ids of ``split`` drawn without replacement by ``seed`` (cycled if n > len)."""
    env = aem_envs.make(env_id, split=split, **env_kwargs)
    try:
        ids = env.task_ids(split)
        order = np.random.default_rng(seed).permutation(len(ids))
        return [ids[int(order[k % len(ids)])] for k in range(n)]
    finally:
        env.close()


def evaluate(
    policy: Policy,
    env_id: str,
    *,
    split: str = "test",
    n: int = 100,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 24,
    window: int = 1,
    max_prompt_tokens: int = 0,
    prompt_overflow: str = "truncate",
    seed: int = 0,
    batch_size: int = EVAL_BATCH,
    env_kwargs: dict[str, Any] | None = None,
    infra_retries: int = 1,
    max_excluded: float = 1.0,
) -> EvalResult:
    """Play ``n`` episodes of ``split`` (one per task) and aggregate them.

    An episode dropped by an infrastructure failure is replayed on its task up to
    ``infra_retries`` times, then excluded (module docstring); raises
    :class:`~aem_train.rollout.AllEpisodesFailed` when no episode ran to its end and
    :class:`EvaluationIncomplete` when more than ``max_excluded`` of the tasks were excluded.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    if infra_retries < 0:
        raise ValueError(f"infra_retries={infra_retries} must be >= 0")
    env_kwargs = dict(env_kwargs or {})
    t0 = time.perf_counter()
    tasks = eval_task_ids(env_id, split, n, seed, **env_kwargs)
    cfg = RolloutConfig(
        generation=GenerationSettings(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, greedy=greedy
        ),
        window=window,
        score=False,
        max_prompt_tokens=max_prompt_tokens,
        prompt_overflow=prompt_overflow,
    )
    succ, rets, turns, invalid, cut, retried, tampered = [], [], [], 0, 0, 0, 0
    failed: list[TrajectoryInfo] = []  # the last try of each task still failing
    todo = tasks
    for attempt in range(infra_retries + 1):
        failed = []
        for b, start in enumerate(range(0, len(todo), batch_size)):
            chunk = todo[start : start + batch_size]
            # the first try keeps its historical seeds; a replay gets fresh, still seed-determined ones
            run_seed = seed * 1_000_003 + b if attempt == 0 else int(
                np.random.SeedSequence([seed, attempt, b]).generate_state(1)[0])
            with aem_envs.make_vec(env_id, num_tasks=len(chunk), group_size=1, split=split, **env_kwargs) as venv:
                res = collect(policy, venv, cfg, seed=run_seed, task_ids=chunk)
            cut += res.stats.truncated_prompts
            for t in res.trajectories:
                if t.dropped is not None:
                    failed.append(t)
                    continue
                succ.append(t.success)
                rets.append(t.ret)
                turns.append(t.turns)
                invalid += t.invalid_actions
                tampered += t.tampered
        if not failed or attempt == infra_retries:
            break
        todo = [t.task_id for t in failed]
        retried += len(todo)
    if not succ:
        raise AllEpisodesFailed(
            f"evaluation of {env_id} ({split}) has no result ({1 + infra_retries} tries per task): "
            f"{failure_summary(failed)}"
        )
    if len(failed) > max_excluded * n:
        raise EvaluationIncomplete(
            f"evaluation of {env_id} ({split}): {len(failed)} of {n} tasks failed every try ({1 + infra_retries} "
            f"tries), more than the {max_excluded:.0%} a figure comparable with other evaluations allows "
            f"(train.eval_max_excluded); "
            f"first: {first_error(failed)}"
        )
    kept = len(succ)
    return EvalResult(
        env_id=env_id,
        split=split,
        episodes=kept,
        success_rate=float(np.sum(succ) / kept),
        mean_reward=float(np.sum(rets) / kept),
        mean_turns=float(np.sum(turns) / kept),
        invalid_action_rate=float(invalid / max(np.sum(turns), 1)),
        dropped_infra=len(failed),
        greedy=greedy,
        temperature=temperature,
        seed=seed,
        seconds=time.perf_counter() - t0,
        truncated_prompts=cut,
        tasks=n,
        env_exceptions=sum(t.dropped == "exception" for t in failed),
        retried=retried,
        tampered=tampered,
        first_error=first_error(failed),
    )


def _cmd_eval(args: argparse.Namespace) -> int:
    from aem_train.cli import env_kwargs

    policy = Policy.from_pretrained(args.checkpoint, device=args.device, reference="none")
    res = evaluate(
        policy, args.env, split=args.split, n=args.episodes, greedy=args.temperature == 0,
        temperature=args.temperature or 1.0, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        window=args.window, seed=args.seed, env_kwargs=env_kwargs(args.env_arg),
    )
    print(res.summary())
    if args.json:
        print(json.dumps(res.as_dict()))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aem_train.cli import add_common_options, add_env_arg_option

    sp = sub.add_parser("eval", help="evaluate a checkpoint on an env split")
    sp.add_argument("checkpoint", help="HF checkpoint directory (or hub id)")
    sp.add_argument("--env", required=True, help="environment id, e.g. aem/Household-v0")
    sp.add_argument("--split", default="test")
    sp.add_argument("--episodes", type=int, default=100)
    sp.add_argument("--temperature", type=float, default=0.0, help="0 = greedy decoding")
    sp.add_argument("--top-p", type=float, default=1.0)
    sp.add_argument("--max-new-tokens", type=int, default=24)
    sp.add_argument("--window", type=int, default=1, help="past turns kept in the prompt")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--device", default="auto")
    add_env_arg_option(sp)
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_eval)


__all__ = ["EvalResult", "EvaluationIncomplete", "eval_task_ids", "evaluate"]

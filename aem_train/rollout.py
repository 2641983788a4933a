"""Multi-turn rollouts on whole-action units: one :class:`~aem_train.rows.Row` per env turn.

``collect(policy, vec_env)`` plays one episode in every env of a ``make_vec`` vector env. Each
turn it builds every active env's prompt from its chat view (system prompt + instruction +
last ``window`` turns + current observation), samples all responses in one batched
``generate`` call, and steps the envs. The response ids are kept exactly as sampled (never
decoded and re-encoded); the text the env receives is their decoding. Observation text only
ever reaches the model through the next turn's *prompt*, so it can never carry loss (the
verl-agent layout; AEM, arXiv 2605.00425, assigns credit to these per-turn responses).

Old-policy log-probs and full-vocabulary entropies come from one scoring forward pass
(:meth:`Policy.score`, at the sampling temperature) after the episodes end — the same function
the trainer differentiates — not from the sampler's processed scores.

Prompt length: a prompt longer than ``max_prompt_tokens`` (default: the model's positions
minus ``max_new_tokens``) either raises :class:`PromptTooLong` (``prompt_overflow="error"``) or
is fitted (``"truncate"``, the default): the oldest history turns in the window go first, one at
a time, and if the system prompt + instruction + current observation alone are still too long
the middle of the token ids is cut (the head holds the system prompt and task, the tail the
latest observation and the opened assistant turn). Fitted prompts are counted in
``RolloutStats.truncated_prompts`` and logged, so a run that crops its prompts says so.

Failures: a step whose ``info["error_kind"] == "infra"`` drops its whole trajectory from the
rows (counted in :class:`RolloutStats`): it is never trained on as a 0-reward failure. An
exception raised inside one env's ``reset`` or ``step`` is turned into such a failure for that
env alone, so it never kills the collection: an :class:`~aem_envs.core.InfraError` (a
``DaemonDown`` from ``reset``, say) counts as ``dropped="infra"``, any other exception (an env
bug) as ``dropped="exception"``. The rest of a group stays: group statistics (GRPO, RLOO,
GiGPO) are computed over the surviving trajectories only, so a missing trajectory is not
counted as a failure, and a group left with one survivor gets advantage 0 (no baseline).
When every trajectory is dropped there is nothing to learn from or to measure: callers raise
:class:`AllEpisodesFailed`, whose one-line message names the first failure (and so its fix).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from aem_envs.chat import ChatView, chat_messages
from aem_envs.core import InfraError
from aem_envs.vector import TextVecEnv
from aem_train.policy import GenerationSettings, Policy
from aem_train.rows import Row


@dataclass
class RolloutConfig:
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    window: int = 1  # past turns kept in the prompt; prefill dominates CPU time, keep it short
    score: bool = True  # compute old log-probs/entropies (evaluation skips it: arrays are NaN)
    score_max_tokens: int = 16384  # padded tokens per scoring chunk (bounds memory)
    max_turn_loops: int = 10_000  # safety stop for envs whose episodes never end
    max_prompt_tokens: int = 0  # 0 = the model's positions - max_new_tokens (no limit if it has none)
    prompt_overflow: str = "truncate"  # truncate | error (module docstring)

    def __post_init__(self) -> None:
        if self.prompt_overflow not in ("truncate", "error"):
            raise ValueError(f"prompt_overflow={self.prompt_overflow!r} must be 'truncate' or 'error'")
        if self.max_prompt_tokens < 0:
            raise ValueError(f"max_prompt_tokens={self.max_prompt_tokens} must be >= 0 (0 = the model's limit)")


class PromptTooLong(ValueError):
    """A prompt exceeds ``max_prompt_tokens`` under ``prompt_overflow="error"``."""


class AllEpisodesFailed(RuntimeError):
    """Every episode of a collection was dropped (infrastructure failures or env exceptions).

    A ``RuntimeError`` so that the ``aem-train`` CLI prints it as one ``error:`` line and the
    bench records it as one failed cell. Build the message with :func:`failure_summary`.
    """


def prompt_limit(policy: Policy, cfg: RolloutConfig) -> int | None:
    """The longest prompt (tokens) a rollout may feed the model, or None when unbounded."""
    positions = getattr(getattr(policy.model, "config", None), "max_position_embeddings", None)
    room = None if positions is None else positions - cfg.generation.max_new_tokens
    if room is not None and room < 1:
        raise ValueError(
            f"max_new_tokens={cfg.generation.max_new_tokens} leaves no room for a prompt in the model's "
            f"{positions} positions; lower rollout.max_new_tokens"
        )
    if cfg.max_prompt_tokens:
        if room is not None and cfg.max_prompt_tokens > room:
            raise ValueError(
                f"max_prompt_tokens={cfg.max_prompt_tokens} + max_new_tokens={cfg.generation.max_new_tokens} "
                f"exceeds the model's {positions} positions; lower rollout.max_prompt_tokens to <= {room}"
            )
        return cfg.max_prompt_tokens
    return room


def fit_prompt(policy: Policy, view: ChatView, limit: int | None, overflow: str = "truncate") -> tuple[list[int], bool]:
    """``view``'s prompt ids within ``limit`` tokens, and whether anything had to be cut."""
    ids = policy.encode_prompt(view.messages())
    if limit is None or len(ids) <= limit:
        return ids, False
    if overflow == "error":
        raise PromptTooLong(
            f"a prompt of {len(ids)} tokens exceeds rollout.max_prompt_tokens={limit}; raise it (within the "
            f"model's positions), lower env.window, or set rollout.prompt_overflow=truncate"
        )
    kept = min(view.window, len(view.history))
    for w in range(kept - 1, -1, -1):  # drop the oldest turns of the window first
        ids = policy.encode_prompt(chat_messages(view.system_prompt, view.instruction, view.history, view.observation, w))
        if len(ids) <= limit:
            return ids, True
    head = limit // 2
    return ids[:head] + ids[len(ids) - (limit - head):], True


@dataclass
class TrajectoryInfo:
    traj_id: int
    group_id: int
    task_id: str
    env_index: int
    turns: int = 0
    ret: float = 0.0
    success: bool = False
    invalid_actions: int = 0
    tampered: bool = False  # the env caught it earning reward without doing the task (info["tampered"])
    dropped: str | None = None  # None, "infra" or "exception"
    error: str | None = None  # the infra message or exception text


@dataclass
class RolloutStats:
    episodes: int = 0
    kept: int = 0
    dropped_infra: int = 0  # trajectories dropped: an infra error or an exception inside an env
    env_exceptions: int = 0  # of those, how many were env bugs (exceptions other than InfraError)
    rows: int = 0
    success_rate: float = 0.0  # over kept trajectories
    mean_return: float = 0.0
    mean_turns: float = 0.0
    invalid_action_rate: float = 0.0  # invalid turns / turns, kept trajectories
    tampered: int = 0  # kept trajectories the env caught tampering (trained on, with the env's reward)
    truncated_responses: int = 0  # responses that hit max_new_tokens without EOS
    truncated_prompts: int = 0  # prompts fitted to max_prompt_tokens (module docstring)
    prompt_tokens: int = 0
    response_tokens: int = 0
    mean_prompt_tokens: float = 0.0
    generate_seconds: float = 0.0
    score_seconds: float = 0.0
    env_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RolloutResult:
    rows: list[Row]  # kept trajectories only, ordered by (traj_id, turn)
    trajectories: list[TrajectoryInfo]  # every episode, dropped ones included
    stats: RolloutStats


# ---------------------------------------------------------------------- env guards
def _exception_info(env: Any, exc: BaseException) -> dict[str, Any]:
    return {
        "action": None,
        "action_valid": False,
        "invalid_reason": None,
        "turn": getattr(env, "turn", 0),
        "task_id": getattr(env, "task_id", None),
        "split": getattr(env, "split", None),
        "success": False,
        "error_kind": "infra",
        "invalid_policy": str(getattr(env, "invalid_policy", "")),
        "timing": 0.0,
        "exception": f"{type(exc).__name__}: {exc}",
        "env_bug": not isinstance(exc, InfraError),  # an InfraError raised outside _act is still infra
        "traceback": traceback.format_exc(limit=5),
    }


def _dropped_kind(info: dict[str, Any]) -> str:
    return "exception" if info.get("env_bug") else "infra"


def first_error(trajs: Sequence[TrajectoryInfo]) -> str | None:
    """``"TASK_ID: message"`` of the first dropped trajectory, on one line (None when none was
    dropped). Env and sandbox messages name their fix (e.g. ``start it: bash scripts/engine.sh``
    for a daemon that does not answer), so this line is what a user needs to act."""
    dropped = [t for t in trajs if t.dropped is not None]
    if not dropped:
        return None
    first = next((t for t in dropped if t.error), dropped[0])
    err = " ".join((first.error or "no message").split())  # one line whatever the env wrote
    if len(err) > 400:
        err = err[:400] + " ..."
    return f"{first.task_id}: {err}"


def failure_summary(trajs: Sequence[TrajectoryInfo]) -> str:
    """One line: how many of ``trajs`` were dropped, of which kind, and the first error."""
    dropped = [t for t in trajs if t.dropped is not None]
    if not dropped:
        return f"none of {len(trajs)} episodes failed"
    bugs = sum(t.dropped == "exception" for t in dropped)
    infra = len(dropped) - bugs
    kinds = ", ".join(
        [f"{infra} infrastructure failure{'' if infra == 1 else 's'}"] * bool(infra)
        + [f"{bugs} env exception{'' if bugs == 1 else 's'}"] * bool(bugs)
    )
    return f"{len(dropped)} of {len(trajs)} episodes failed ({kinds}); first: {first_error(dropped)}"


@contextmanager
def guarded_envs(vec_env: TextVecEnv) -> Iterator[None]:
    """Make an exception inside one env's ``reset``/``step`` an infra failure of that env only.

    Installs per-instance wrappers (so ``TextVecEnv``'s own bookkeeping and thread pool are
    used unchanged) and removes them on exit.
    """
    installed = []
    for env in vec_env.envs:
        orig_step, orig_reset = env.step, env.reset

        def step(action, _env=env, _orig=orig_step):
            try:
                return _orig(action)
            except Exception as e:  # noqa: BLE001 - any env bug must stay local to that env
                return f"[env exception] {type(e).__name__}: {e}", 0.0, False, True, _exception_info(_env, e)

        def reset(*, seed=None, options=None, _env=env, _orig=orig_reset):
            try:
                return _orig(seed=seed, options=options)
            except Exception as e:  # noqa: BLE001
                info = _exception_info(_env, e)
                info["reset_failed"] = True
                if options and "task_id" in options:
                    info["task_id"] = options["task_id"]
                return "", info

        env.step, env.reset = step, reset  # instance attributes shadow the class methods
        installed.append(env)
    try:
        yield
    finally:
        for env in installed:
            for name in ("step", "reset"):
                env.__dict__.pop(name, None)


# ---------------------------------------------------------------------- collection
def collect(
    policy: Policy,
    vec_env: TextVecEnv,
    config: RolloutConfig | None = None,
    *,
    seed: int | None = None,
    task_ids: Sequence[str] | None = None,
    split: str | None = None,
    traj_offset: int = 0,
    group_offset: int = 0,
) -> RolloutResult:
    """Play one episode in every env of ``vec_env`` and return one row per turn.

    ``seed`` fixes the envs' tasks/RNG (through ``vec_env.reset``) *and* the sampler (torch
    RNG, forked so the caller's global RNG is untouched): same seed, same rows.
    ``task_ids`` gives one task per group. Trajectory ``i`` is env ``i`` (+ ``traj_offset``);
    its group is ``vec_env.group_ids[i]`` (+ ``group_offset``).
    """
    cfg = config or RolloutConfig()
    t_start = time.perf_counter()
    devices = [policy.device] if policy.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), guarded_envs(vec_env):
        if seed is not None:
            torch.manual_seed(seed)
        result = _collect(policy, vec_env, cfg, seed, task_ids, split, traj_offset, group_offset)
    result.stats.seconds = time.perf_counter() - t_start
    return result


def _collect(
    policy: Policy,
    vec_env: TextVecEnv,
    cfg: RolloutConfig,
    seed: int | None,
    task_ids: Sequence[str] | None,
    split: str | None,
    traj_offset: int,
    group_offset: int,
) -> RolloutResult:
    n = vec_env.num_envs
    stats = RolloutStats(episodes=n)
    t0 = time.perf_counter()
    observations, infos = vec_env.reset(seed=seed, task_ids=task_ids, split=split)
    stats.env_seconds += time.perf_counter() - t0

    trajs = [
        TrajectoryInfo(
            traj_id=traj_offset + i,
            group_id=group_offset + int(vec_env.group_ids[i]),
            task_id=str(vec_env.task_ids[i]),
            env_index=i,
        )
        for i in range(n)
    ]
    views: list[ChatView] = []
    for i, env in enumerate(vec_env.envs):
        view = ChatView(system_prompt=env.system_prompt, window=cfg.window)
        views.append(view)
        if infos[i].get("error_kind") == "infra":  # reset itself failed
            trajs[i].dropped, trajs[i].error = _dropped_kind(infos[i]), infos[i].get("exception")
            vec_env.done[i] = True
        else:
            view.reset(env.instruction, observations[i])
    pending: list[list[Row]] = [[] for _ in range(n)]
    limit = prompt_limit(policy, cfg)

    loops = 0
    while not vec_env.all_done:
        loops += 1
        if loops > cfg.max_turn_loops:
            raise RuntimeError(
                f"episodes still running after {cfg.max_turn_loops} turns; give the env a max_turns"
            )
        active = [i for i in range(n) if not vec_env.done[i]]
        prompts = []
        for i in active:
            ids, cut = fit_prompt(policy, views[i], limit, cfg.prompt_overflow)
            prompts.append(ids)
            stats.truncated_prompts += int(cut)
        t0 = time.perf_counter()
        responses = policy.generate(prompts, cfg.generation)
        stats.generate_seconds += time.perf_counter() - t0
        texts = [policy.decode_response(r) for r in responses]
        actions: list[str | None] = [None] * n
        for k, i in enumerate(active):
            actions[i] = texts[k]
        t0 = time.perf_counter()
        step = vec_env.step(actions)
        stats.env_seconds += time.perf_counter() - t0

        for k, i in enumerate(active):
            info = step.infos[i] or {}
            tr = trajs[i]
            term, trunc = bool(step.terminated[i]), bool(step.truncated[i])
            reward = float(step.rewards[i])
            resp = responses[k]
            has_eos = bool(resp) and resp[-1] in policy.stop_token_ids
            stats.truncated_responses += int(not has_eos)
            row = Row(
                prompt_ids=prompts[k],
                response_ids=resp,
                old_logprobs=np.full(len(resp), np.nan, dtype=np.float32),
                token_entropy=np.full(len(resp), np.nan, dtype=np.float32),
                reward=reward,
                done=term or trunc,
                group_id=tr.group_id,
                traj_id=tr.traj_id,
                turn=len(pending[i]),
                task_id=tr.task_id,
                observation=views[i].observation,
                action=info.get("action"),
                action_valid=bool(info.get("action_valid", False)),
                extras={
                    "terminated": term,
                    "truncated": trunc,
                    "eos": has_eos,
                    "response_text": texts[k],
                    "tampered": bool(info.get("tampered", False)),
                },
            )
            pending[i].append(row)
            tr.turns += 1
            tr.ret += reward
            tr.invalid_actions += int(not row.action_valid)
            tr.tampered = tr.tampered or row.extras["tampered"]
            if info.get("error_kind") == "infra":
                tr.dropped = _dropped_kind(info)
                tr.error = info.get("exception") or step.observations[i]
            if term or trunc:
                tr.success = bool(info.get("success", False))
            else:
                views[i].record(texts[k], step.observations[i] or "")

    rows: list[Row] = []
    for i, tr in enumerate(trajs):
        if tr.dropped is not None:
            continue
        for row in pending[i]:
            row.traj_return, row.traj_success = tr.ret, tr.success
            rows.append(row)

    if cfg.score and rows:
        t0 = time.perf_counter()
        scored = policy.score(
            [r.prompt_ids for r in rows], [r.response_ids for r in rows], max_tokens=cfg.score_max_tokens,
            temperature=cfg.generation.scoring_temperature,
        )
        for r, lp, ent in zip(rows, scored.logprobs, scored.entropies):
            r.old_logprobs, r.token_entropy = lp, ent
        stats.score_seconds += time.perf_counter() - t0

    _summarise(stats, trajs, rows)
    return RolloutResult(rows, trajs, stats)


def _summarise(stats: RolloutStats, trajs: Sequence[TrajectoryInfo], rows: Sequence[Row]) -> None:
    """Fill the figures of ``stats`` that follow from the trajectories and kept rows."""
    kept = [t for t in trajs if t.dropped is None]
    stats.episodes = len(trajs)
    stats.kept = len(kept)
    stats.dropped_infra = len(trajs) - len(kept)
    stats.env_exceptions = sum(t.dropped == "exception" for t in trajs)
    stats.rows = len(rows)
    if kept:
        turns = sum(t.turns for t in kept)
        stats.success_rate = float(np.mean([t.success for t in kept]))
        stats.mean_return = float(np.mean([t.ret for t in kept]))
        stats.mean_turns = turns / len(kept)
        stats.invalid_action_rate = sum(t.invalid_actions for t in kept) / max(turns, 1)
        stats.tampered = sum(t.tampered for t in kept)
    stats.prompt_tokens = sum(len(r.prompt_ids) for r in rows)
    stats.response_tokens = sum(len(r.response_ids) for r in rows)
    stats.mean_prompt_tokens = stats.prompt_tokens / max(len(rows), 1)


def merge_results(results: Sequence[RolloutResult]) -> RolloutResult:
    """One result of several :func:`collect` calls (made with distinct ``traj_offset`` and
    ``group_offset``): rows and trajectories concatenated, rates over all of them, counters and
    times summed."""
    if not results:
        raise ValueError("merge_results needs at least one RolloutResult")
    rows = [r for res in results for r in res.rows]
    trajs = [t for res in results for t in res.trajectories]
    stats = RolloutStats()
    for name in ("truncated_responses", "truncated_prompts", "generate_seconds", "score_seconds", "env_seconds", "seconds"):
        setattr(stats, name, sum(getattr(res.stats, name) for res in results))
    _summarise(stats, trajs, rows)
    return RolloutResult(rows, trajs, stats)


# ---------------------------------------------------------------------- dynamic sampling
def informative_groups(rows: Sequence[Row]) -> list[int]:
    """Group ids, in order of first appearance, whose kept trajectories' returns are not all
    equal: the groups an outcome-based group advantage (GRPO, RLOO) gives any signal."""
    returns: dict[int, dict[int, float]] = {}
    for r in rows:
        returns.setdefault(r.group_id, {})[r.traj_id] = r.traj_return
    return [g for g, by_traj in returns.items() if len(set(by_traj.values())) > 1]


@dataclass
class SamplingInfo:
    rounds: int  # collect calls made
    groups_sampled: int  # groups over all rounds
    groups_informative: int  # of those, groups whose returns differ
    groups_trained: int  # informative groups kept for the update (at most the target)


def collect_informative(
    policy: Policy,
    vec_env: TextVecEnv,
    config: RolloutConfig,
    *,
    seed: int,
    groups: int,
    max_rounds: int,
    split: str | None = "train",
) -> tuple[RolloutResult, list[Row], SamplingInfo]:
    """DAPO's dynamic sampling (Yu et al., arXiv 2503.14476): collect batches until ``groups``
    informative groups (:func:`informative_groups`) are in hand or ``max_rounds`` batches were
    played, and train on the first ``groups`` of them.

    Groups whose trajectories all scored the same carry no outcome advantage; kept, they only
    dilute a token-mean loss. Round ``k`` plays fresh tasks (seed derived from ``seed`` and
    ``k``; round 0 is exactly ``collect(seed=seed)``). Returns ``(every round merged, the rows
    to train on, info)``; when no group was informative the first round's rows come back
    unfiltered (their outcome advantages are 0, so only step advantages, KL and entropy terms
    act) and ``info.groups_trained`` is 0.
    """
    if groups < 1 or max_rounds < 1:
        raise ValueError(f"groups={groups} and max_rounds={max_rounds} must be >= 1")
    n_envs, n_groups = vec_env.num_envs, len(set(int(g) for g in vec_env.group_ids))
    results: list[RolloutResult] = []
    chosen: list[int] = []
    n_informative = 0
    for k in range(max_rounds):
        round_seed = seed if k == 0 else int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        res = collect(policy, vec_env, config, seed=round_seed, split=split,
                      traj_offset=k * n_envs, group_offset=k * n_groups)
        results.append(res)
        found = informative_groups(res.rows)
        n_informative += len(found)
        chosen += found[: groups - len(chosen)]
        if len(chosen) >= groups:
            break
    merged = merge_results(results)
    info = SamplingInfo(len(results), len(results) * n_groups, n_informative, len(chosen))
    if not chosen:
        return merged, list(results[0].rows), info
    keep = set(chosen)
    return merged, [r for r in merged.rows if r.group_id in keep], info


__all__ = ["AllEpisodesFailed", "PromptTooLong", "failure_summary", "first_error", "RolloutConfig", "fit_prompt", "prompt_limit", "RolloutResult", "RolloutStats", "TrajectoryInfo", "collect", "collect_informative", "guarded_envs", "informative_groups", "merge_results"]

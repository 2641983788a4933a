"""SFT warm start: behaviour cloning on oracle demonstrations from the **train** split.

Demonstrations are rows of the same shape the RL rollout produces — the prompt is the chat view
(system prompt, instruction, last ``window`` turns, current observation) encoded exactly as
:func:`aem_train.rollout.collect` encodes it, the response is ``<action>...</action>`` + EOS —
and the loss is the negative log-likelihood of the response tokens only.

**Noise (epsilon).** With probability ``epsilon`` a step executes a random admissible action
instead of the oracle's, so the demonstrations visit off-optimal states (the prompt's history
then holds the noisy action). What the model learns from those states is chosen by ``label``:

- ``"oracle"`` (default): every visited state is labelled with the oracle's action *there*, so
  the model learns to recover (DAgger-style state coverage) and never imitates noise;
- ``"executed"``: the executed action is the label, noise included — a deliberately
  imperfect teacher.

**Invalid actions (invalid_prob).** With probability ``invalid_prob`` a step executes an
invalid action instead: one that was admissible earlier in the episode and is not now (the
commonest agent error — "go to desk 1" once already there, taking what was already taken). The
env answers with its invalid-action message and the state stays; the next demonstration,
labelled with the oracle's action, shows how to go on from there. Without such states a cloned
policy has never seen an invalid-action message, and greedy decoding on the one-room Household
often repeated one invalid action until the turn limit. In one measurement (quick preset,
invalid_prob 0.1 in pretraining and SFT) it lowered the greedy invalid-action rate from 34% to
21% but did not raise success, so it is off by default.

How imperfect the warm-started policy is (the RL stage needs room to improve) is set mainly by
the training budget: ``steps`` / ``max_seconds`` and the number of demonstration episodes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import aem_envs
from aem_envs.chat import ChatView
from aem_train.policy import Policy, build_response_batch


@dataclass
class SFTConfig:
    env_id: str
    episodes: int = 400  # demonstration episodes on the train split
    epsilon: float = 0.2  # probability of executing a random admissible action
    invalid_prob: float = 0.0  # probability of executing a stale, now-invalid action
    label: Literal["oracle", "executed"] = "oracle"
    window: int = 1  # chat-view window; must match the rollout's
    steps: int = 300  # optimiser steps (upper bound when max_seconds is set)
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_seconds: float | None = None  # stop training after this much wall time
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    #: "response": SFT proper, loss on the response tokens only. "all": next-token loss on every
    #: token, prompt included: LM pretraining on the env's text (:mod:`aem_train.pretrain`).
    loss_on: Literal["response", "all"] = "response"

    def __post_init__(self) -> None:
        if self.loss_on not in ("response", "all"):
            raise ValueError(f"loss_on={self.loss_on!r} is unknown; use 'response' or 'all'")
        if self.label not in ("oracle", "executed"):
            raise ValueError(f"label={self.label!r} is unknown; use 'oracle' or 'executed'")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon={self.epsilon} must be in [0, 1]")
        if not 0.0 <= self.invalid_prob <= 1.0:
            raise ValueError(f"invalid_prob={self.invalid_prob} must be in [0, 1]")
        if self.steps < 1 or self.batch_size < 1 or self.episodes < 1:
            raise ValueError("steps, batch_size and episodes must be >= 1")


@dataclass
class Demo:
    prompt_ids: list[int]
    response_ids: list[int]
    task_id: str


@dataclass
class DemoStats:
    episodes: int = 0
    examples: int = 0
    noisy_steps: int = 0
    invalid_steps: int = 0  # stale actions executed (invalid_prob)
    oracle_success_rate: float = 0.0  # success of the (noisy) demonstrator itself
    mean_prompt_tokens: float = 0.0
    mean_response_tokens: float = 0.0
    seconds: float = 0.0


@dataclass
class SFTResult:
    losses: list[float]
    steps: int
    seconds: float
    demo_stats: DemoStats
    cpu_seconds: float = 0.0  # process CPU time of training (wall time inflates on a shared CPU)
    out_dir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["first_loss"] = self.losses[0] if self.losses else None
        d["final_loss"] = float(np.mean(self.losses[-10:])) if self.losses else None
        del d["losses"]
        return d


def demonstrations(policy: Policy, cfg: SFTConfig) -> tuple[list[Demo], DemoStats]:
    """Play ``cfg.episodes`` noisy-oracle episodes on train tasks; one demo per visited state."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    env = aem_envs.make(cfg.env_id, split="train", **cfg.env_kwargs)
    demos: list[Demo] = []
    st = DemoStats()
    successes = 0
    try:
        ids = env.task_ids("train")
        view = ChatView(system_prompt=env.system_prompt, window=cfg.window)
        for _ in range(cfg.episodes):
            task = ids[int(rng.integers(len(ids)))]
            obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"task_id": task})
            view.reset(env.instruction, obs, system_prompt=env.system_prompt)
            done = False
            info: dict[str, Any] = {}
            seen: set[str] = set()  # every action admissible so far in this episode
            while not done:
                prompt = policy.encode_prompt(view.messages())
                oracle = env.oracle_action()
                action = oracle
                adm = env.admissible_actions() or []  # None: the env publishes no list
                stale: list[str] = []
                if cfg.invalid_prob > 0:
                    seen.update(adm)
                    stale = sorted(seen.difference(adm))
                if stale and rng.random() < cfg.invalid_prob:
                    action = stale[int(rng.integers(len(stale)))]
                    st.invalid_steps += 1
                elif cfg.epsilon > 0 and adm and rng.random() < cfg.epsilon:
                    action = adm[int(rng.integers(len(adm)))]
                    st.noisy_steps += int(action != oracle)
                label = oracle if cfg.label == "oracle" else action
                demos.append(Demo(prompt, policy.encode_response(env.format_action(label)), task))
                response = env.format_action(action)
                obs, _, term, trunc, info = env.step(response)
                done = term or trunc
                if not done:
                    view.record(response, obs)
            successes += int(bool(info.get("success")))
            st.episodes += 1
    finally:
        env.close()
    st.examples = len(demos)
    st.oracle_success_rate = successes / max(st.episodes, 1)
    st.mean_prompt_tokens = float(np.mean([len(d.prompt_ids) for d in demos])) if demos else 0.0
    st.mean_response_tokens = float(np.mean([len(d.response_ids) for d in demos])) if demos else 0.0
    st.seconds = time.perf_counter() - t0
    return demos, st


def _lr_at(step: int, cfg: SFTConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
    cos = 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos)


def sft_loss(policy: Policy, batch_demos: list[Demo]) -> torch.Tensor:
    """Mean negative log-likelihood over the response tokens (prompt tokens carry no loss)."""
    batch = build_response_batch(
        [d.prompt_ids for d in batch_demos], [d.response_ids for d in batch_demos],
        policy.pad_token_id, policy.device,
    )
    logp, _ = policy.forward_response(batch)
    return -(logp.sum() / batch.response_mask.sum())


def sequence_loss(policy: Policy, batch_demos: list[Demo]) -> torch.Tensor:
    """Mean next-token negative log-likelihood over every real token after the first (prompt
    and response alike): plain causal-LM pretraining on the demonstrations' text."""
    batch = build_response_batch(
        [d.prompt_ids for d in batch_demos], [d.response_ids for d in batch_demos],
        policy.pad_token_id, policy.device,
    )
    logits = policy.model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask,
        position_ids=batch.position_ids, use_cache=False,
    ).logits[:, :-1]
    target = batch.input_ids[:, 1:]
    # A target counts when it and the token predicting it are both real (not padding).
    mask = (batch.attention_mask[:, 1:] * batch.attention_mask[:, :-1]).float()
    nll = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
    )
    return (nll * mask.reshape(-1)).sum() / mask.sum()


def train_sft(
    policy: Policy,
    cfg: SFTConfig,
    *,
    demos: list[Demo] | None = None,
    demo_stats: DemoStats | None = None,
    progress: bool = True,
) -> SFTResult:
    """Behaviour-clone the demonstrations into ``policy`` (in place)."""
    if demos is None:
        demos, demo_stats = demonstrations(policy, cfg)
    if not demos:
        raise ValueError(f"no demonstrations from {cfg.env_id}; check that its oracle acts on train tasks")
    loss_fn = sft_loss if cfg.loss_on == "response" else sequence_loss
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    policy.model.train()
    losses: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    order = rng.permutation(len(demos))
    pos = 0
    bar = _Progress(cfg.steps, enabled=progress, label="sft" if cfg.loss_on == "response" else "pretrain")
    step = 0
    try:
        for step in range(cfg.steps):
            if pos + cfg.batch_size > len(order):
                order, pos = rng.permutation(len(demos)), 0
            idx = order[pos : pos + cfg.batch_size]
            pos += cfg.batch_size
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, cfg, cfg.steps)
            loss = loss_fn(policy, [demos[i] for i in idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(step + 1, losses[-1])
            if cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds:
                break
    finally:
        bar.close()
        policy.model.eval()
    return SFTResult(
        losses, len(losses), time.perf_counter() - t0, demo_stats or DemoStats(),
        cpu_seconds=time.process_time() - c0,
    )


class _Progress:
    """A rich progress bar showing the running loss (silent when disabled)."""

    def __init__(self, total: int, enabled: bool = True, label: str = "sft"):
        self._p = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(
                TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
            )
            self._p.start()
            self._task = self._p.add_task("sft", total=total, loss="-")

    def update(self, done: int, loss: float) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, loss=f"{loss:.4f}")

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# ---------------------------------------------------------------------- CLI
def _cmd_sft(args: argparse.Namespace) -> int:
    from aem_train.cli import env_kwargs
    from aem_train.evaluate import evaluate

    t_all, c_all = time.perf_counter(), time.process_time()
    policy = Policy.from_pretrained(args.checkpoint, device=args.device, reference="none")
    cfg = SFTConfig(
        env_id=args.env, episodes=args.episodes, epsilon=args.epsilon, invalid_prob=args.invalid_prob,
        label=args.label,
        window=args.window, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        max_seconds=args.max_minutes * 60 if args.max_minutes else None, seed=args.seed,
        env_kwargs=env_kwargs(args.env_arg),
    )
    demos, dstats = demonstrations(policy, cfg)
    print(
        f"{dstats.examples} demonstrations from {dstats.episodes} episodes "
        f"(demonstrator success {dstats.oracle_success_rate:.1%}, {dstats.noisy_steps} noisy steps, "
        f"{dstats.invalid_steps} invalid steps, "
        f"prompt {dstats.mean_prompt_tokens:.0f} / response {dstats.mean_response_tokens:.1f} tokens, "
        f"{dstats.seconds:.1f} s)"
    )
    res = train_sft(policy, cfg, demos=demos, demo_stats=dstats, progress=not args.no_progress)
    figures: dict[str, Any] = {"config": asdict(cfg), **res.as_dict()}
    print(
        f"trained {res.steps} steps in {res.seconds:.1f} s ({res.cpu_seconds:.1f} CPU s): "
        f"loss {figures['first_loss']:.3f} -> {figures['final_loss']:.3f}"
    )
    if args.eval_episodes > 0:
        ev = evaluate(policy, args.env, split="test", n=args.eval_episodes, greedy=True,
                      window=args.window, seed=args.seed, env_kwargs=cfg.env_kwargs)
        print(ev.summary())
        figures["eval"] = ev.as_dict()
    figures["total_seconds"] = time.perf_counter() - t_all
    figures["total_cpu_seconds"] = time.process_time() - c_all
    policy.save(args.out_dir, metadata={"sft": figures})
    figures["out_dir"] = str(Path(args.out_dir))
    print(
        f"saved {args.out_dir} (total {figures['total_seconds']:.1f} s wall, "
        f"{figures['total_cpu_seconds']:.1f} s CPU over {torch.get_num_threads()} threads)"
    )
    if args.json:
        print(json.dumps(figures, default=str))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aem_train.cli import add_common_options, add_env_arg_option

    sp = sub.add_parser("sft", help="behaviour-clone (noisy) oracle demonstrations into a checkpoint")
    sp.add_argument("checkpoint", help="starting checkpoint directory (e.g. from init-model)")
    sp.add_argument("out_dir", help="where to save the warm-started checkpoint")
    sp.add_argument("--env", required=True, help="environment id, e.g. aem/Household-v0")
    sp.add_argument("--episodes", type=int, default=400, help="demonstration episodes (train split)")
    sp.add_argument("--epsilon", type=float, default=0.2, help="probability of a random admissible action")
    sp.add_argument("--invalid-prob", type=float, default=0.0,
                    help="probability of a stale, now-invalid action (teaches recovery from invalid-action messages)")
    sp.add_argument("--label", choices=["oracle", "executed"], default="oracle",
                    help="train on the oracle's action at every state (default) or on the executed one")
    sp.add_argument("--window", type=int, default=1, help="past turns kept in the prompt")
    sp.add_argument("--steps", type=int, default=300)
    sp.add_argument("--batch-size", type=int, default=32)
    sp.add_argument("--lr", type=float, default=2e-3)
    sp.add_argument("--max-minutes", type=float, default=None, help="stop training after this many minutes")
    sp.add_argument("--eval-episodes", type=int, default=100, help="greedy test episodes after training (0: skip)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--device", default="auto")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_env_arg_option(sp)
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_sft)


__all__ = ["Demo", "DemoStats", "SFTConfig", "SFTResult", "demonstrations", "sequence_loss", "sft_loss", "train_sft"]

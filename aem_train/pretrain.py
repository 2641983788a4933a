"""LM pretraining of a tiny model on the envs' own transcripts: the CPU path's stand-in for the
pretrained base model every real LLM agent starts from.

**Why this stage exists.** SFT puts its loss on the response only: ~5 tokens (``<action>``,
one to seven action tokens, ``</action>``, EOS) after a ~130-token Household prompt. A randomly
initialised 1 M-parameter decoder trained that way learns the action *marginal* and never learns
to read its prompt: measured on the quick preset's Household (Nov 2026), after 750 SFT steps the
next-token distribution after ``<action>`` was the same to two decimals for every prompt
("go to countertop 1" first), invalid actions 80-88 %, test success 0 %. Next-token loss on
*every* token of the same text gives ~30x more signal per step and teaches the model the skills
a pretrained LM brings: reading an observation, copying an object or receptacle name from it,
closing tags. After this stage SFT needs far fewer steps (see README "Training").

**Documents.** Every turn's chat view, encoded exactly as the rollout encodes prompts (system
prompt, instruction, last ``window`` turns, current observation), followed by the response the
demonstrator *executed*. The demonstrator is the env's oracle with probability
``1 - random_action_prob`` and a uniformly random admissible action otherwise (and, with
probability ``invalid_prob``, a stale action that is no longer admissible), so the corpus covers
detours, failures and invalid-action messages too: the model learns the envs' language, and
the expert's policy is left to SFT. Only **train**-split tasks are used.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aem_train.policy import Policy
from aem_train.sft import Demo, DemoStats, SFTConfig, SFTResult, demonstrations, train_sft


@dataclass
class PretrainConfig:
    env_ids: list[str]
    #: Constructor arguments per env id (envs not named get none).
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    episodes: int = 300  # transcript episodes per env (train split)
    random_action_prob: float = 0.3  # the demonstrator's random admissible actions
    invalid_prob: float = 0.0  # ... and its stale, now-invalid ones (SFTConfig.invalid_prob)
    #: Chat-view window, one for every env or per env id; use the rollout's.
    window: int | dict[str, int] = 1
    steps: int = 600
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.env_ids:
            raise ValueError("no envs given; pass --env aem/Household-v0 (the model pretrains on their text)")
        unknown = sorted(set(self.env_kwargs) - set(self.env_ids))
        if unknown:
            raise ValueError(f"env arguments given for {unknown}, which are not among the envs {self.env_ids}")
        if isinstance(self.window, dict) and set(self.window) != set(self.env_ids):
            raise ValueError(f"window given per env for {sorted(self.window)} but the envs are {sorted(self.env_ids)}; "
                             "give one window for every env id, or a single number")

    def window_of(self, env_id: str) -> int:
        return self.window[env_id] if isinstance(self.window, dict) else self.window


def transcripts(policy: Policy, cfg: PretrainConfig) -> tuple[list[Demo], dict[str, DemoStats]]:
    """The pretraining documents of every env (see the module docstring), with per-env stats."""
    docs: list[Demo] = []
    stats: dict[str, DemoStats] = {}
    for k, env_id in enumerate(cfg.env_ids):
        d, st = demonstrations(policy, _sft_config(cfg, env_id, seed=cfg.seed + 1000 * k))
        docs += d
        stats[env_id] = st
    return docs, stats


def _sft_config(cfg: PretrainConfig, env_id: str, seed: int) -> SFTConfig:
    return SFTConfig(
        env_id=env_id, episodes=cfg.episodes, epsilon=cfg.random_action_prob,
        invalid_prob=cfg.invalid_prob, label="executed",
        window=cfg.window_of(env_id), steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
        min_lr_ratio=cfg.min_lr_ratio, warmup_steps=cfg.warmup_steps, seed=seed,
        env_kwargs=dict(cfg.env_kwargs.get(env_id, {})), loss_on="all",
    )


def pretrain(policy: Policy, cfg: PretrainConfig, *, progress: bool = True) -> tuple[SFTResult, dict[str, DemoStats]]:
    """Next-token pretraining of ``policy`` (in place) on the envs' transcripts, mixed."""
    docs, stats = transcripts(policy, cfg)
    run_cfg = _sft_config(cfg, ",".join(cfg.env_ids), seed=cfg.seed)
    res = train_sft(policy, run_cfg, demos=docs, progress=progress)
    return res, stats


# ---------------------------------------------------------------------- CLI
def parse_env_args(pairs: list[str], env_ids: list[str]) -> dict[str, dict[str, Any]]:
    """``[ENV_ID:]KEY=VALUE`` strings to per-env kwargs; without ``ENV_ID:`` the argument goes
    to the only env, and naming the env is required when there are several."""
    from aem_train.cli import env_kwargs

    out: dict[str, dict[str, Any]] = {}
    for p in pairs:
        head, eq, _ = p.partition("=")
        env_id, colon, _ = head.rpartition(":")
        if not eq:
            raise ValueError(f"env argument {p!r} must look like [ENV_ID:]key=value, e.g. aem/Household-v0:rooms=1")
        if not colon:
            if len(env_ids) != 1:
                raise ValueError(f"env argument {p!r} is ambiguous with {len(env_ids)} envs; write ENV_ID:{p}")
            env_id = env_ids[0]
        out.setdefault(env_id, {}).update(env_kwargs([p[len(env_id) + 1 :] if colon else p]))
    return out


def _cmd_pretrain(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    policy = Policy.from_pretrained(args.checkpoint, device=args.device, reference="none")
    cfg = PretrainConfig(
        env_ids=list(args.env), env_kwargs=parse_env_args(args.env_arg, list(args.env)),
        episodes=args.episodes, random_action_prob=args.random_action_prob,
        invalid_prob=args.invalid_prob, window=args.window,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
    )
    res, stats = pretrain(policy, cfg, progress=not args.no_progress)
    d = res.as_dict()
    figures = {
        "config": asdict(cfg), "steps": res.steps, "seconds": res.seconds, "cpu_seconds": res.cpu_seconds,
        "first_loss": d["first_loss"], "final_loss": d["final_loss"],
        "documents": {k: asdict(v) for k, v in stats.items()},
    }
    n_docs = sum(s.examples for s in stats.values())
    print(f"{n_docs} documents from {len(stats)} env(s); trained {res.steps} steps in {res.seconds:.1f} s: "
          f"loss {d['first_loss']:.3f} -> {d['final_loss']:.3f}")
    policy.save(args.out_dir, metadata={"pretrain": figures})
    print(f"saved {args.out_dir} ({time.perf_counter() - t0:.1f} s in all)")
    if args.json:
        print(json.dumps(figures, default=str))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aem_train.cli import add_common_options

    sp = sub.add_parser("pretrain", help="next-token pretraining of a (tiny) model on the envs' transcripts")
    sp.add_argument("checkpoint", help="starting checkpoint directory (e.g. from init-model)")
    sp.add_argument("out_dir", help="where to save the pretrained checkpoint")
    sp.add_argument("--env", action="append", required=True, metavar="ID",
                    help="environment id whose train-split text to use (repeatable)")
    sp.add_argument("--env-arg", "-e", action="append", default=[], metavar="[ENV_ID:]KEY=VALUE",
                    help="env constructor argument, e.g. -e aem/Household-v0:rooms=1 (repeatable)")
    sp.add_argument("--episodes", type=int, default=300, help="transcript episodes per env")
    sp.add_argument("--random-action-prob", type=float, default=0.3,
                    help="probability that the demonstrator takes a random admissible action")
    sp.add_argument("--invalid-prob", type=float, default=0.0,
                    help="probability that the demonstrator repeats a stale, now-invalid action")
    sp.add_argument("--window", type=int, default=1, help="past turns kept in each prompt (use the rollout's)")
    sp.add_argument("--steps", type=int, default=600)
    sp.add_argument("--batch-size", type=int, default=16)
    sp.add_argument("--lr", type=float, default=2e-3)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--device", default="auto")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_pretrain)


__all__ = ["PretrainConfig", "parse_env_args", "pretrain", "transcripts"]

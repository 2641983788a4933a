"""The training loop, in the order data flows (AEM, arXiv 2605.00425):

    rows  = collect(policy, envs)                      # one row per turn: the whole-action unit
    A     = base advantage per row                     # GRPO / RLOO / GiGPO / GAE (advantages.py)
    A, a  = modulation(A, mean token entropy per row)  # AEM alpha per response (modulation.py)
    loss  = PPO clipped surrogate on response tokens   # alpha broadcast to the row's tokens (ppo.py)

A run lives in one directory: ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per
iteration; iteration 0 is the evaluation before any update), ``trajectories.jsonl`` (one line per
turn row), TensorBoard events in ``tb/``, ``checkpoints/latest`` and, written last, ``final.json``.
``train(cfg, resume=True)`` continues a run from its checkpoint; on CPU, N iterations equal N/2 +
resume + N/2 bit for bit, because every random draw of iteration ``k`` is seeded from
``(seed, k)`` and the weights and optimizer state are restored exactly.

Infrastructure failures (a sandbox killed, the Docker daemon gone; see :mod:`aem_train.rollout`):
a trajectory that hits one is dropped, never trained on as a failure; its group's statistics are
taken over the survivors. Each iteration logs ``train/dropped_infra`` (of ``train/episodes``) and
``train/env_exceptions`` and prints one line naming the first failure. Evaluations replay a
failed episode once and log their denominator (``eval/episodes`` of ``eval/tasks``, and
``eval/dropped_infra``). When every episode of an iteration or of an evaluation fails, or an
evaluation excludes more than ``train.eval_max_excluded`` (10%) of its tasks, the run stops with one
line (:class:`~aem_train.rollout.AllEpisodesFailed`, :class:`~aem_train.evaluate.EvaluationIncomplete`)
naming the cause (its fix included) before anything of that iteration is logged or checkpointed,
so rerunning the same command once the cause is fixed resumes from the last checkpoint as if
nothing had happened.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import aem_envs
from aem_train.advantages import compute_advantages, compute_gae
from aem_train.config import Config, same_config
from aem_train.evaluate import EVAL_BATCH, EvaluationIncomplete, evaluate
from aem_train.modulation import apply_modulation
from aem_train.policy import (
    GenerationSettings, LoraSettings, Policy, _decoder_and_head, activation_checkpointing, build_response_batch,
    length_chunks,
)
from aem_train.ppo import PPOLossConfig, ppo_loss, value_loss
from aem_train.preflight import preflight
from aem_train.rollout import (
    AllEpisodesFailed,
    RolloutConfig,
    collect,
    collect_informative,
    failure_summary,
    informative_groups,
    prompt_limit,
)
from aem_train.rows import Row

EVAL_SEED_OFFSET = 10_007  # eval tasks come from their own seed so they never move during a run


def iteration_seed(seed: int, iteration: int) -> int:
    """Seed of everything random in one iteration (envs, sampling, minibatch order)."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


# ---------------------------------------------------------------------------- critic
class ValueHead(torch.nn.Module):
    """V(s) of a turn: a linear map of the last hidden state of the turn's prompt.

    Used only by the GAE estimator. It reads the policy's backbone (shared weights), the
    prompt being the observation before the response.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, policy: Policy, prompts: list[list[int]]) -> torch.Tensor:
        P = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), P), policy.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, p in enumerate(prompts):
            ids[b, P - len(p) :] = torch.as_tensor(p)
            mask[b, P - len(p) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs = dict(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device),
                      position_ids=pos.to(policy.device), use_cache=False)
        split = _decoder_and_head(policy.model)
        with activation_checkpointing(policy.model):
            if split is not None:  # the decoder alone: no logits, no stack of every layer's states
                hidden = split[0](**kwargs).last_hidden_state
            else:
                hidden = policy.model(
                    **kwargs, output_hidden_states=True,
                    **({"logits_to_keep": 1} if policy._logits_to_keep_ok else {}),  # the head's logits are unused
                ).hidden_states[-1]
        h = hidden[:, -1].float()  # left padding: the last column is the last prompt token
        return self.linear(h).squeeze(-1)

    @torch.no_grad()
    def values(self, policy: Policy, prompts: list[list[int]], max_tokens: int) -> np.ndarray:
        """One value per prompt, in chunks of at most ``max_tokens`` padded tokens."""
        out = np.zeros(len(prompts), np.float32)
        for idx in length_chunks(prompts, [[] for _ in prompts], max_tokens):
            out[idx] = self(policy, [prompts[i] for i in idx]).float().cpu().numpy()
        return out


def _hidden_size(policy: Policy) -> int:
    cfg = policy.model.config
    return int(getattr(cfg, "hidden_size", None) or cfg.get_text_config().hidden_size)


# ---------------------------------------------------------------------------- PPO update
def _microbatches(rows: list[Row], idx: list[int], token_budget: int) -> list[list[int]]:
    """Split ``idx`` into micro-batches whose padded size fits ``token_budget``."""
    chunks = length_chunks([rows[i].prompt_ids for i in idx], [rows[i].response_ids for i in idx], token_budget)
    return [[idx[j] for j in chunk] for chunk in chunks]


def _pad(arrays: list[np.ndarray], width: int) -> torch.Tensor:
    out = np.zeros((len(arrays), width), np.float32)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
    return torch.from_numpy(out)


def ppo_update(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rows: list[Row],
    adv: np.ndarray,
    cfg: Config,
    rng: np.random.Generator,
    value_head: ValueHead | None = None,
    returns: np.ndarray | None = None,
) -> dict[str, float]:
    """``ppo.epochs`` passes over ``rows`` in ``ppo.minibatches`` optimizer steps each.

    A minibatch larger than the token budget is split into micro-batches whose losses are
    weighted so that the accumulated gradient equals the gradient of the whole minibatch's
    loss under the chosen aggregation (tokens for ``token-mean``, responses for
    ``response-mean``, row weights 1 / rows of the trajectory for ``trajectory-mean``).
    """
    p = cfg.ppo
    loss_cfg = PPOLossConfig(
        clip_low=p.clip_low,
        clip_high=p.clip_high,
        dual_clip=p.dual_clip or None,
        loss_agg_mode=p.loss_agg,
        ratio_level=p.ratio_level,
        kl_coef=p.kl_coef,
        entropy_coef=p.entropy_coef,
        vf_coef=p.vf_coef,
        value_clip=p.vf_clip or None,
    )
    temp = cfg.rollout.temperature  # the behaviour policy's (policy module docstring)
    ref_lp = None
    if p.kl_coef > 0:
        ref_lp = policy.score(
            [r.prompt_ids for r in rows], [r.response_ids for r in rows], reference=True, temperature=temp
        ).logprobs
    params = [q for q in policy.model.parameters() if q.requires_grad]
    if value_head is not None:
        params += list(value_head.parameters())
    old_values = np.array([r.extras.get("value", 0.0) for r in rows], np.float32)
    # trajectory-mean: a row weighs 1 / (rows of its trajectory), so each trajectory sums to 1
    _, traj_index, traj_rows = np.unique([r.traj_id for r in rows], return_inverse=True, return_counts=True)
    traj_w = 1.0 / traj_rows[traj_index]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    tokens, t0, stopped_early = 0, time.perf_counter(), False

    def log(k: str, v: float, weight: float = 1.0) -> None:
        # Per-token metrics are weighted by their micro-batch's tokens, so a small last
        # micro-batch counts as little in the log as it does in the loss.
        if isinstance(v, (int, float)) and math.isfinite(v):
            sums[k] = sums.get(k, 0.0) + float(v) * weight
            counts[k] = counts.get(k, 0) + weight

    n = len(rows)
    epochs_run = 0
    for epoch in range(p.epochs):
        epochs_run = epoch + 1
        perm = rng.permutation(n).tolist()
        for mb in np.array_split(np.array(perm), p.minibatches):
            mb = mb.tolist()
            if not mb:
                continue
            mb_tokens = sum(rows[i].num_tokens for i in mb)
            optimizer.zero_grad(set_to_none=True)
            kls = []
            for micro in _microbatches(rows, mb, p.token_budget):
                batch = build_response_batch(
                    [rows[i].prompt_ids for i in micro], [rows[i].response_ids for i in micro],
                    policy.pad_token_id, policy.device,
                )
                R = batch.response_ids.shape[1]
                logp, ent = policy.forward_response(batch, temperature=temp)
                old = _pad([rows[i].old_logprobs for i in micro], R).to(policy.device)
                a = torch.as_tensor(adv[micro], dtype=torch.float32, device=policy.device)
                ref = _pad([ref_lp[i] for i in micro], R).to(policy.device) if ref_lp is not None else None
                rw = None
                if p.loss_agg == "trajectory-mean":
                    rw = torch.as_tensor(traj_w[micro], dtype=torch.float32, device=policy.device)
                loss, m = ppo_loss(logp, old, a, batch.response_mask, loss_cfg, ref_logp=ref, entropy=ent, row_weights=rw)
                micro_tokens = sum(rows[i].num_tokens for i in micro)
                # each micro-batch's share of its minibatch's denominator; every row has >= 1
                # response token (build_response_batch refuses empty ones)
                if p.loss_agg == "token-mean":
                    w = micro_tokens / mb_tokens
                elif p.loss_agg == "response-mean":
                    w = len(micro) / len(mb)
                else:
                    w = float(traj_w[micro].sum() / traj_w[mb].sum())
                total = loss * w
                if value_head is not None and returns is not None:
                    v = value_head(policy, [rows[i].prompt_ids for i in micro])
                    vl, vm = value_loss(
                        v,
                        torch.as_tensor(old_values[micro], device=v.device),
                        torch.as_tensor(returns[micro], dtype=torch.float32, device=v.device),
                        clip=p.vf_clip or None,  # 0 = unclipped (a 0-wide clip would freeze the critic)
                    )
                    total = total + p.vf_coef * vl * (len(micro) / len(mb))  # one value per row
                    for k, val in vm.items():
                        log(f"ppo/{k}", val)
                total.backward()
                tokens += int(batch.attention_mask.sum())
                kls.append((m["approx_kl"], micro_tokens))
                for k in ("pg_loss", "approx_kl", "clip_frac", "clip_frac_low", "clip_frac_high", "dual_clip_frac", "kl_ref", "loss"):
                    if k in m:
                        log(f"ppo/{k}", m[k], micro_tokens)
            gn = torch.nn.utils.clip_grad_norm_(params, p.max_grad_norm)
            log("ppo/grad_norm", float(gn))
            optimizer.step()
            scheduler.step()
            mb_kl = sum(k * t for k, t in kls) / max(1, sum(t for _, t in kls))
            if p.target_kl > 0 and mb_kl > p.target_kl:
                stopped_early = True
                break
        if stopped_early:
            break
    secs = time.perf_counter() - t0
    out = {k: sums[k] / counts[k] for k in sums}
    out["ppo/epochs_run"] = float(epochs_run)  # a count, not a per-epoch average
    out["ppo/early_stop"] = float(stopped_early)
    out["ppo/lr"] = float(scheduler.get_last_lr()[0])
    out["perf/update_seconds"] = secs
    out["perf/update_tokens_per_s"] = tokens / max(secs, 1e-9)
    return out


# ---------------------------------------------------------------------------- checkpoints
def _trainable_state(policy: Policy) -> dict[str, torch.Tensor]:
    return {n: q.detach().cpu().clone().contiguous() for n, q in policy.model.named_parameters() if q.requires_grad}


def _recover_checkpoint(root: Path) -> None:
    """Finish a swap that a kill interrupted: ``old`` is the last good checkpoint when ``latest`` is gone."""
    latest, old = root / "latest", root / "old"
    if old.exists():
        if latest.exists():
            shutil.rmtree(old)
        else:
            old.rename(latest)


def save_checkpoint(run_dir: Path, policy: Policy, optimizer, scheduler, value_head, state: dict[str, Any]) -> None:
    """Write ``checkpoints/latest`` atomically (a crash mid-write leaves the previous one)."""
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    _recover_checkpoint(root)
    tmp = root / "tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(_trainable_state(policy), str(tmp / "trainable.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "value_head": value_head.state_dict() if value_head is not None else None,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
        },
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    latest = root / "latest"
    old = root / "old"
    if latest.exists():
        latest.rename(old)
    tmp.rename(latest)
    if old.exists():
        shutil.rmtree(old)


def load_checkpoint(run_dir: Path, policy: Policy, optimizer, scheduler, value_head) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    _recover_checkpoint(run_dir / "checkpoints")
    ck = run_dir / "checkpoints" / "latest"
    if not (ck / "state.json").is_file():
        return None
    weights = load_file(str(ck / "trainable.safetensors"))
    named = dict(policy.model.named_parameters())
    missing = [k for k in weights if k not in named]
    if missing:
        raise RuntimeError(f"checkpoint {ck} does not match the model ({missing[0]} unknown); start a new run_dir")
    with torch.no_grad():
        for k, v in weights.items():
            named[k].copy_(v)
    extra = torch.load(ck / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    if value_head is not None and extra["value_head"] is not None:
        value_head.load_state_dict(extra["value_head"])
    torch.set_rng_state(extra["torch_rng"])
    np.random.set_state(extra["numpy_rng"])
    return json.loads((ck / "state.json").read_text())


def _resume_hint(run_dir: Path, resume: bool) -> str:
    """What a user does after a stop: the tail of an :class:`AllEpisodesFailed` line."""
    try:
        it = int(json.loads((run_dir / "checkpoints" / "latest" / "state.json").read_text())["iteration"])
    except (OSError, ValueError, KeyError):
        return "; no checkpoint yet: fix the cause, then rerun the same command"
    how = "rerun the same command" if resume else "rerun it without --no-resume"  # that would discard it
    return f"; the checkpoint of iteration {it} is intact: fix the cause, then {how} to resume from it"


def _eval_or_stop(policy: Policy, cfg: Config, iteration: int, run_dir: Path, resume: bool) -> dict[str, float]:
    """:func:`run_eval`; its stop (:class:`AllEpisodesFailed`, :class:`EvaluationIncomplete`) names the
    iteration and how to resume."""
    try:
        return run_eval(policy, cfg)
    except (AllEpisodesFailed, EvaluationIncomplete) as e:
        raise type(e)(f"iteration {iteration}: {e}{_resume_hint(run_dir, resume)}") from None


def _truncate_jsonl(path: Path, last_iteration: int) -> None:
    """Drop lines logged after the checkpoint so a resumed run's logs are what an unbroken run writes."""
    if not path.exists():
        return
    keep = []
    for ln in path.read_text().splitlines():
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError:  # a line cut by the kill: written after the checkpoint, so dropped
            continue
        if rec["iteration"] <= last_iteration:
            keep.append(ln)
    path.write_text("".join(ln + "\n" for ln in keep))


# ---------------------------------------------------------------------------- metrics
def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _batch_metrics(rows: list[Row], stats, base: np.ndarray, alpha: np.ndarray, adv: np.ndarray) -> dict[str, float]:
    hbar = np.array([r.mean_entropy for r in rows])
    tok_ent = np.concatenate([r.token_entropy for r in rows]) if rows else np.zeros(1)
    # repetition: a response identical to the same trajectory's previous response (collapse
    # can hide behind a stable entropy, RAGEN's "template collapse")
    prev: dict[int, tuple] = {}
    repeats = 0
    for r in sorted(rows, key=lambda r: (r.traj_id, r.turn)):
        key = tuple(r.response_ids)
        repeats += prev.get(r.traj_id) == key
        prev[r.traj_id] = key
    nz = base != 0
    corr = float(np.corrcoef(alpha[nz], np.abs(base[nz]))[0, 1]) if nz.sum() > 2 and alpha[nz].std() > 0 and np.abs(base[nz]).std() > 0 else 0.0
    return {
        "train/success_rate": stats.success_rate,
        "train/return_mean": stats.mean_return,
        "train/turns_mean": stats.mean_turns,
        "train/invalid_rate": stats.invalid_action_rate,
        "train/tampered": stats.tampered,  # episodes the env caught earning reward without doing the task
        "train/episodes": stats.episodes,
        "train/dropped_infra": stats.dropped_infra,  # not trained on; train/* rates are over the rest
        "train/env_exceptions": stats.env_exceptions,  # of those, env bugs rather than infrastructure
        "train/rows": len(rows),
        "train/repetition_rate": repeats / max(1, len(rows)),
        "train/truncated_responses": stats.truncated_responses,
        "train/truncated_prompts": stats.truncated_prompts,
        "entropy/token_mean": float(tok_ent.mean()),
        "entropy/response_mean": float(hbar.mean()) if len(hbar) else 0.0,
        "entropy/response_std": float(hbar.std()) if len(hbar) else 0.0,
        "adv/base_mean": float(base.mean()) if len(base) else 0.0,
        "adv/base_abs_mean": float(np.abs(base).mean()) if len(base) else 0.0,
        "adv/final_abs_mean": float(np.abs(adv).mean()) if len(adv) else 0.0,
        "adv/negative_share": float((base < 0).mean()) if len(base) else 0.0,
        "alpha/min": float(alpha.min()) if len(alpha) else 1.0,
        "alpha/mean": float(alpha.mean()) if len(alpha) else 1.0,
        "alpha/max": float(alpha.max()) if len(alpha) else 1.0,
        "alpha/std": float(alpha.std()) if len(alpha) else 0.0,
        "alpha/corr_abs_adv": corr,
        # responses whose advantage modulation left as it was: AEM's range guard (or a
        # one-response scope); 1.0 under modulation none. Near 1 under AEM means it is mostly off.
        "alpha/unchanged_share": float((alpha == 1.0).mean()) if len(alpha) else 1.0,
        "perf/rollout_seconds": stats.seconds,
        "perf/generate_seconds": stats.generate_seconds,
        "perf/env_seconds": stats.env_seconds,
        "perf/mean_prompt_tokens": stats.mean_prompt_tokens,
    }


@dataclass
class _Logger:
    run_dir: Path
    writer: Any

    def metrics(self, rec: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.writer is not None:
            for k, v in rec.items():
                if k != "iteration" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(k, v, rec["iteration"])
            self.writer.flush()

    def trajectories(self, lines: list[dict[str, Any]]) -> None:
        with open(self.run_dir / "trajectories.jsonl", "a") as f:
            for ln in lines:
                f.write(json.dumps(ln) + "\n")


def _tensorboard(run_dir: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a core dependency
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)


# ---------------------------------------------------------------------------- the loop
def load_policy(cfg: Config) -> Policy:
    m = cfg.model
    lora = LoraSettings(r=m.lora_r, alpha=m.lora_alpha, dropout=m.lora_dropout) if m.lora else None
    if not m.lora and m.dtype in ("bfloat16", "bf16"):
        print("warning: model.dtype=bfloat16 with full fine-tuning: AdamW updates smaller than the weights' "
              "bfloat16 resolution are lost; model.dtype=float32 or model.lora=true avoid it")
    return Policy.from_pretrained(
        m.path, lora=lora, device=cfg.train.device, dtype=m.dtype,
        gradient_checkpointing=m.gradient_checkpointing or None,
        reference="auto" if cfg.ppo.kl_coef > 0 else "none",
    )


def run_eval(policy: Policy, cfg: Config) -> dict[str, float]:
    r = evaluate(
        policy, cfg.env.id, split="test", n=cfg.train.eval_tasks,
        greedy=cfg.train.eval_temperature == 0, temperature=cfg.train.eval_temperature or 1.0,
        max_new_tokens=cfg.rollout.max_new_tokens, window=cfg.env.window,
        max_prompt_tokens=cfg.rollout.max_prompt_tokens, prompt_overflow=cfg.rollout.prompt_overflow,
        seed=cfg.train.seed + EVAL_SEED_OFFSET, env_kwargs=cfg.env.kwargs, max_excluded=cfg.train.eval_max_excluded,
    )
    if r.dropped_infra:
        print(f"warning: evaluation excluded {r.dropped_infra} of {r.tasks} tasks (infrastructure failure on every "
              f"try); eval/success_rate is over the other {r.episodes}; first: {r.first_error}")
    return {
        "eval/success_rate": r.success_rate,
        "eval/episodes": r.episodes,  # the denominator of the eval/* rates
        "eval/tasks": r.tasks,
        "eval/dropped_infra": r.dropped_infra,
        "eval/retried": r.retried,
        "eval/return_mean": r.mean_reward,
        "eval/turns_mean": r.mean_turns,
        "eval/invalid_rate": r.invalid_action_rate,
        "eval/tampered": r.tampered,
        "eval/seconds": r.seconds,
        "eval/truncated_prompts": r.truncated_prompts,
    }


def run_preflight(
    policy: Policy, cfg: Config, rollout_cfg: RolloutConfig, optimizer: torch.optim.Optimizer,
    value_head: ValueHead | None,
) -> dict[str, float]:
    """:func:`aem_train.preflight.preflight` at this config's worst case; its metrics (logged
    with iteration 0), or ``{}`` when no prompt limit bounds the rows."""
    limit = prompt_limit(policy, rollout_cfg)
    if limit is None:
        print("preflight skipped: the model declares no max_position_embeddings; set rollout.max_prompt_tokens")
        return {}
    res = preflight(
        policy, prompt_tokens=limit, response_tokens=cfg.rollout.max_new_tokens,
        # evaluation generates for up to EVAL_BATCH episodes at once, which can exceed the rollout's rows
        rollout_rows=max(cfg.env.groups * cfg.env.group_size, min(cfg.train.eval_tasks, EVAL_BATCH)),
        score_max_tokens=rollout_cfg.score_max_tokens,
        token_budget=cfg.ppo.token_budget, temperature=cfg.rollout.temperature,
        optimizer=optimizer, value_head=value_head,
    )
    print(res.summary())
    return res.metrics()


def train(cfg: Config, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) one training run in ``cfg.train.run_dir``; returns the final figures."""
    t = cfg.train
    run_dir = Path(t.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if resume:
        _recover_checkpoint(run_dir / "checkpoints")
        finished = (run_dir / "final.json").exists()
        # a finished run's figures are only "the result" of the config that produced them
        if saved.exists() and (finished or (run_dir / "checkpoints" / "latest").exists()):
            # the directory is the run: how its path is written (relative, absolute) does not matter
            if not same_config(yaml.safe_load(saved.read_text()) or {}, cfg, ignore=("train.run_dir",)):
                raise ValueError(f"{run_dir} holds a run with a different config; use a new train.run_dir or delete it")
        if finished:
            return json.loads((run_dir / "final.json").read_text())
    torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    # cuBLAS is only deterministic with a fixed workspace, which it reads when CUDA starts in
    # this process (a user's own setting wins); CPU runs are bit-exact regardless (tests).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)

    aem_envs.make(cfg.env.id, **cfg.env.kwargs).close()  # a bad env id or argument fails now, not after a model load
    policy = load_policy(cfg)
    policy.model.eval()  # no dropout: the update's forward must equal the scoring forward
    value_head = ValueHead(_hidden_size(policy)).to(policy.device) if cfg.model.value_head else None
    params = [q for q in policy.model.parameters() if q.requires_grad]
    if value_head is not None:
        params += list(value_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.ppo.lr, weight_decay=cfg.ppo.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    rollout_cfg = RolloutConfig(
        generation=GenerationSettings(
            max_new_tokens=cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p
        ),
        window=cfg.env.window,
        max_prompt_tokens=cfg.rollout.max_prompt_tokens,
        prompt_overflow=cfg.rollout.prompt_overflow,
    )
    # 0. the longest possible row through every pass, so an OOM comes now, not at iteration 87
    wanted = t.preflight == "always" or (t.preflight == "auto" and policy.device.type == "cuda")
    checked = run_preflight(policy, cfg, rollout_cfg, optimizer, value_head) if wanted else {}

    start, wall_before = 0, 0.0
    state = load_checkpoint(run_dir, policy, optimizer, scheduler, value_head) if resume else None
    if state is not None:
        start, wall_before = state["iteration"], state["wall_s"]
        for name in ("metrics.jsonl", "trajectories.jsonl"):
            _truncate_jsonl(run_dir / name, start)
    else:
        for name in ("metrics.jsonl", "trajectories.jsonl", "final.json"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
        # (--no-resume) the old run's checkpoint would otherwise be resumed under this run's config.yaml
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    cfg.save(saved)
    log = _Logger(run_dir, _tensorboard(run_dir, purge_step=start + 1 if start else None))
    t_run = time.perf_counter() - wall_before

    if start == 0:
        log.metrics({"iteration": 0, "time_s": 0.0, **checked, **_eval_or_stop(policy, cfg, 0, run_dir, resume)})

    vec = aem_envs.make_vec(cfg.env.id, cfg.env.groups, cfg.env.group_size, mode=cfg.env.mode, **cfg.env.kwargs)
    bar = _progress(progress, t.iterations, start)
    last: dict[str, Any] = {}
    try:
        for it in range(start + 1, t.iterations + 1):
            seed_it = iteration_seed(t.seed, it)
            rng = np.random.default_rng(seed_it)
            # 1. rollouts: one row per turn (with algo.filter_groups, only groups whose returns differ)
            sampling: dict[str, float] = {}
            if cfg.algo.filter_groups:
                res, rows, info = collect_informative(
                    policy, vec, rollout_cfg, seed=seed_it, groups=cfg.env.groups, max_rounds=cfg.algo.max_sampling_rounds,
                )
                sampling = {"sampling/rounds": info.rounds, "sampling/groups_trained": info.groups_trained}
            else:
                res = collect(policy, vec, rollout_cfg, seed=seed_it, split="train")
                rows = res.rows
            if not rows:  # nothing to learn from: stop before this iteration is logged or checkpointed
                raise AllEpisodesFailed(f"iteration {it}: nothing to train on: {failure_summary(res.trajectories)}"
                                        + _resume_hint(run_dir, resume))
            if res.stats.dropped_infra:
                print(f"iteration {it}: {failure_summary(res.trajectories)}; dropped, not trained on")
            # 2. base advantages (group statistics count each trajectory once)
            returns = None
            if cfg.algo.estimator == "gae":
                vals = value_head.values(policy, [r.prompt_ids for r in rows], rollout_cfg.score_max_tokens)
                for r, v in zip(rows, vals):
                    r.extras["value"] = float(v)
                base, returns = compute_gae(rows, gamma=cfg.algo.gamma, lam=cfg.algo.gae_lambda)
            elif cfg.algo.estimator == "gigpo":
                base = compute_advantages(
                    rows, "gigpo", gamma=cfg.algo.gamma, step_weight=cfg.algo.gigpo_weight,
                    std_normalize=cfg.algo.std_normalize,
                )
            elif cfg.algo.estimator == "grpo":
                base = compute_advantages(rows, "grpo", std_normalize=cfg.algo.std_normalize)
            else:
                base = compute_advantages(rows, cfg.algo.estimator)
            # 3. modulation: AEM rescales each response's advantage by its confidence
            t_mod = time.perf_counter()
            adv, alpha = apply_modulation(
                rows, base, cfg.algo.modulation,
                scope=cfg.algo.scope if cfg.algo.modulation == "aem" else None,
                lam=cfg.algo.lam, range_guard=cfg.algo.range_guard, direction=cfg.algo.direction,
                shuffle=cfg.algo.shuffle, rng=rng, mean_over=cfg.algo.mean_over,
                clip=cfg.algo.alpha_clip,
                renormalize=cfg.algo.renormalize,
                empg_k=cfg.algo.empg_k, empg_k2=cfg.algo.empg_k2, empg_zeta=cfg.algo.empg_zeta,
            )
            mod_s = time.perf_counter() - t_mod
            # 4. PPO epochs on response tokens
            upd = ppo_update(policy, optimizer, scheduler, rows, np.asarray(adv, np.float64), cfg, rng, value_head, returns)
            rec: dict[str, Any] = {"iteration": it}
            rec.update(_batch_metrics(rows, res.stats, np.asarray(base), np.asarray(alpha), np.asarray(adv)))
            rec.update(sampling)
            # groups whose returns were all equal: an outcome-based group advantage (GRPO, RLOO)
            # learns nothing from them; a share near 1 is why a run does not move (algo.filter_groups)
            rec["train/uninformative_groups"] = 1.0 - len(informative_groups(res.rows)) / max(
                1, len({tr.group_id for tr in res.trajectories}))
            rec.update(upd)
            rec["perf/modulation_seconds"] = mod_s
            rec["perf/modulation_share"] = mod_s / max(1e-9, res.stats.seconds + upd["perf/update_seconds"] + mod_s)
            rec["perf/peak_memory_mb"] = _peak_memory_mb(policy.device)
            if it % t.eval_every == 0 or it == t.iterations:
                rec.update(_eval_or_stop(policy, cfg, it, run_dir, resume))
            rec["time_s"] = time.perf_counter() - t_run
            if t.log_trajectories:
                log.trajectories([
                    {
                        "iteration": it, "env": cfg.env.id, "task_id": r.task_id, "traj_id": r.traj_id,
                        "group_id": r.group_id, "turn": r.turn, "response": policy.decode_response(r.response_ids),
                        "action": r.action, "valid": r.action_valid, "reward": r.reward,
                        "base_adv": float(b), "alpha": float(a), "adv": float(x),
                        "mean_entropy": r.mean_entropy, "surprisal": r.surprisal,
                        "tampered": r.extras.get("tampered", False),
                    }
                    for r, b, a, x in zip(rows, np.asarray(base), np.asarray(alpha), np.asarray(adv))
                ])
            log.metrics(rec)
            last = rec
            if it % t.checkpoint_every == 0 or it == t.iterations:
                save_checkpoint(run_dir, policy, optimizer, scheduler, value_head,
                                {"iteration": it, "wall_s": rec["time_s"], "seed": t.seed})
            _advance(bar, rec)
    finally:
        try:
            vec.close()
        except Exception as e:  # noqa: BLE001 - must not hide the error that ended the loop
            print(f"warning: closing the envs failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        if bar is not None:
            bar.stop()
        if log.writer is not None:
            log.writer.close()
    if start >= t.iterations:
        last = {}
    final = {
        "eval/success_rate": _last_eval(run_dir),
        "iterations": t.iterations,
        "wall_s": time.perf_counter() - t_run,
        "train/success_rate": last.get("train/success_rate"),
        "env": cfg.env.id,
        "estimator": cfg.algo.estimator,
        "modulation": cfg.algo.modulation,
        "loss_agg": cfg.ppo.loss_agg,  # the spec asks to record which aggregation ran
        "ratio_level": cfg.ppo.ratio_level,
        "seed": t.seed,
    }
    if t.save_final_model:
        policy.save(run_dir / "final_model", metadata={"config": cfg.to_dict()})
    tmp = run_dir / "final.json.tmp"
    tmp.write_text(json.dumps(final, indent=2))
    os.replace(tmp, run_dir / "final.json")
    return final


def _last_eval(run_dir: Path) -> float | None:
    val = None
    for ln in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(ln)
        if "eval/success_rate" in rec:
            val = rec["eval/success_rate"]
    return val


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("iter {task.completed}/{task.total}"), BarColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"), transient=False,
    )
    bar.start()
    bar.add_task("train", total=total, completed=done, status="")
    return bar


def _advance(bar, rec: dict[str, Any]) -> None:
    if bar is None:
        return
    status = (
        f"success {rec['train/success_rate']:.2f} reward {rec['train/return_mean']:+.2f} "
        f"H {rec['entropy/response_mean']:.3f} tok/s {rec['perf/update_tokens_per_s']:.0f}"
    )
    if "eval/success_rate" in rec:
        status += f" | eval {rec['eval/success_rate']:.2f}"
    bar.update(bar.task_ids[0], advance=1, status=status)


# ---------------------------------------------------------------------------- CLI
_SHORTCUTS = {
    "env": "env.id", "model": "model.path", "estimator": "algo.estimator", "modulation": "algo.modulation",
    "iterations": "train.iterations", "seed": "train.seed", "run_dir": "train.run_dir",
}


def _cmd_train(args) -> int:
    from aem_train.cli import import_env_module
    from aem_train.config import load

    for mod in args.import_module:
        import_env_module(mod)
    overrides = list(args.overrides)
    for flag, key in _SHORTCUTS.items():
        val = getattr(args, flag)
        if val is not None:
            overrides.append(f"{key}={val}")
    if args.threads is not None:  # only an explicit --threads overrides the config file
        overrides.append(f"train.threads={args.threads}")
    cfg = load(args.config, overrides)
    final = train(cfg, resume=not args.no_resume, progress=not args.json)
    print(f"run {cfg.train.run_dir}: final test success {final['eval/success_rate']}")
    if args.json:
        print(json.dumps(final))
    return 0


def add_commands(sub) -> None:
    from aem_train.cli import add_common_options

    sp = sub.add_parser("train", help="PPO training (GRPO/RLOO/GiGPO/GAE advantages, optional AEM/EMPG modulation)")
    sp.add_argument("--config", default=None, help="YAML config file (sections model, env, rollout, algo, ppo, train)")
    sp.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE", help="config overrides, e.g. algo.lam=0.5")
    for flag, key in _SHORTCUTS.items():
        sp.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None, help=f"shortcut for {key}=...")
    sp.add_argument("--no-resume", action="store_true", help="start over even if run_dir holds a checkpoint")
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_train, threads=None)  # None: train.threads of the config applies

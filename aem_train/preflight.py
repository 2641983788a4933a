"""Start-up memory check: every pass of an iteration at its worst case, before iteration 1.

Out-of-memory errors in RL fine-tuning tend to strike late, at the iteration where the longest
sample first appears (50-120 iterations in, in several trackers' reports), after hours of work.
The learner knows its worst case up front: a row is at most ``max_prompt_tokens +
max_new_tokens`` tokens (the rollout fits prompts to the limit, responses stop at
``max_new_tokens``), and each pass packs rows by a known budget. :func:`preflight` runs each
pass once at that size:

1. ``generate`` — the whole rollout batch (``env.groups * env.group_size`` rows) at full length
   with the KV cache: one forward that fills every row's cache (at least what ``generate`` holds
   at its last step);
2. ``score`` — one no-grad chunk of ``score_max_tokens`` padded tokens (old log-probs; the
   reference pass of the KL term has the same shape; GAE's value pass over prompts too);
3. ``update`` — one micro-batch of ``ppo.token_budget`` tokens forward and backward (the value
   head's forward with it, as in the update), while the optimizer's state (AdamW: two tensors
   per trainable parameter) is held next to the gradients, as at ``optimizer.step()``.

Nothing is learned and no random number is drawn: no sampling, no optimizer step, gradients
dropped afterwards. A run with the preflight is the same run without it (test). An
out-of-memory error becomes one line naming the pass and the settings that size it.
"""

from __future__ import annotations

import gc
import resource
import time
from dataclasses import asdict, dataclass
import torch

from aem_train.policy import Policy, build_response_batch


class PreflightError(RuntimeError):
    """The worst-case row does not fit in memory (the message names the settings to change)."""


@dataclass
class PreflightResult:
    row_tokens: int  # the longest possible row: prompt limit + max_new_tokens
    prompt_tokens: int
    response_tokens: int
    generate_rows: int
    score_rows: int
    update_rows: int
    peak_memory_mb: float  # CUDA: max_memory_allocated over the three passes; CPU: peak RSS so far
    device_memory_mb: float  # CUDA: the device's total; CPU: 0
    seconds: float

    def metrics(self) -> dict[str, float]:
        """Shapes under ``preflight/``; what varies from run to run (time, memory) under ``perf/``."""
        varying = ("peak_memory_mb", "device_memory_mb", "seconds")
        return {
            (f"perf/preflight_{k}" if k in varying else f"preflight/{k}"): float(v) for k, v in asdict(self).items()
        }

    def summary(self) -> str:
        cap = f" of {self.device_memory_mb / 1024:.1f} GiB" if self.device_memory_mb else ""
        return (
            f"preflight: rows of {self.row_tokens} tokens ({self.prompt_tokens} prompt + "
            f"{self.response_tokens} response) fit: generate x{self.generate_rows}, score x{self.score_rows}, "
            f"update x{self.update_rows}; peak {self.peak_memory_mb / 1024:.2f} GiB{cap}, {self.seconds:.1f} s"
        )


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def _rows(n: int, length: int, vocab: int, offset: int) -> list[list[int]]:
    # Deterministic ids spread over the vocabulary: memory depends on shapes only.
    return [[(offset + 7919 * (r * length + k)) % vocab for k in range(length)] for r in range(n)]


def preflight(
    policy: Policy,
    *,
    prompt_tokens: int,
    response_tokens: int,
    rollout_rows: int,
    score_max_tokens: int,
    token_budget: int,
    temperature: float,
    optimizer: torch.optim.Optimizer,
    value_head: torch.nn.Module | None = None,
) -> PreflightResult:
    """Run generate / score / update once with rows of ``prompt_tokens + response_tokens``.

    Raises :class:`PreflightError` when a pass runs out of memory.
    """
    L = prompt_tokens + response_tokens
    vocab = policy.model.get_input_embeddings().weight.shape[0]
    dev = policy.device
    n_score = max(1, score_max_tokens // L)
    n_update = max(1, token_budget // L)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    stage = "generate"
    settings = {
        "generate": f"env.groups x env.group_size ({rollout_rows} rows) or rollout.max_prompt_tokens",
        "score": "rollout.max_prompt_tokens or rollout.max_new_tokens",
        "update": f"ppo.token_budget (now {token_budget}), or turn on model.gradient_checkpointing / model.lora",
    }
    was_training = policy.model.training
    policy.model.eval()
    try:
        with torch.no_grad():
            ids = torch.tensor(_rows(rollout_rows, L, vocab, 1), device=dev)
            kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            try:  # generate keeps only the last column's logits
                out = policy.model(**kwargs, logits_to_keep=1)
            except TypeError:  # a model without logits_to_keep
                out = policy.model(**kwargs)
            del out, ids, kwargs
        stage = "score"
        prompts = _rows(n_score, prompt_tokens, vocab, 2)
        responses = _rows(n_score, response_tokens, vocab, 3)
        policy.score(prompts, responses, max_tokens=n_score * L, temperature=temperature)
        if value_head is not None:  # GAE's value pass packs prompts alone by the same budget
            value_head.values(policy, _rows(max(1, score_max_tokens // prompt_tokens), prompt_tokens, vocab, 6),
                              score_max_tokens)
        stage = "update"
        prompts = _rows(n_update, prompt_tokens, vocab, 4)
        batch = build_response_batch(prompts, _rows(n_update, response_tokens, vocab, 5), policy.pad_token_id, dev)
        logp, ent = policy.forward_response(batch, temperature=temperature)
        loss = logp.float().mean() + ent.float().mean()
        if value_head is not None:
            loss = loss + value_head(policy, prompts).float().mean()
        loss.backward()
        del logp, ent, loss, batch
        params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        # AdamW allocates exp_avg and exp_avg_sq at its first step, while the gradients are alive.
        state = [] if optimizer.state else [torch.zeros_like(p) for p in params for _ in range(2)]
        del state
    except Exception as e:  # noqa: BLE001 - only out-of-memory is translated; the rest re-raises
        if not _is_oom(e):
            raise
        raise PreflightError(
            f"out of memory in the preflight's {stage} pass with rows of {L} tokens "
            f"({prompt_tokens} prompt + {response_tokens} response); lower {settings[stage]}, "
            f"or set train.preflight=never to skip this check"
        ) from None
    finally:
        for g in optimizer.param_groups:
            for p in g["params"]:
                p.grad = None
        if value_head is not None:
            value_head.zero_grad(set_to_none=True)
        policy.model.train(was_training)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        total = torch.cuda.get_device_properties(dev).total_memory / 2**20
        torch.cuda.reset_peak_memory_stats(dev)  # the iterations' peak-memory metric starts afresh
    else:
        peak, total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0.0
    return PreflightResult(
        row_tokens=L, prompt_tokens=prompt_tokens, response_tokens=response_tokens,
        generate_rows=rollout_rows, score_rows=n_score, update_rows=n_update,
        peak_memory_mb=peak, device_memory_mb=total, seconds=time.perf_counter() - t0,
    )


__all__ = ["PreflightError", "PreflightResult", "preflight"]

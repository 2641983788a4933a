"""The policy: any ``transformers`` causal LM plus its tokenizer, with the three operations a
multi-turn PPO learner needs — encode a chat prompt, sample responses, and score responses.

**One scoring function.** :meth:`Policy.forward_response` is the only code that turns
(prompt ids, response ids) into per-token log-probs and full-vocabulary entropies. The rollout
computes the old-policy log-probs with it (without gradient, :meth:`Policy.score`) and the
trainer calls it with gradient, so ``ratio = exp(logp - logp_old)`` is exactly 1 before the
first update. Sampler scores (after temperature / top-p) are *not* the policy's distribution
and are never used.

**Temperature.** Sampling at temperature ``T`` draws from ``softmax(logits / T)``, so that is
the behaviour policy: every scoring pass of a run (old log-probs, the training forward, the
reference) takes the same ``temperature`` and divides the logits by it, as verl does. The
importance ratio and AEM's entropies are then those of the distribution that produced the
samples; scored at ``T = 1`` instead, samples drawn at 0.7 would be off-policy and the
gradient biased. (``top_p < 1`` truncation is not modelled; keep it at 1 for RL.)

**Layout.** A batch is laid out as ``[pad .. prompt | response .. pad]``: prompts are left-padded
to a common length so every response starts in the same column, and position ids count only
real tokens, so each row is computed exactly as if it were alone. The model is asked for logits
only over the response columns (``logits_to_keep``), which keeps memory at
``batch x response_len x vocab`` instead of ``batch x total_len x vocab``.

**Reference policy** (for the KL term): with LoRA it is the same weights with the adapter
disabled (no extra memory); with full fine-tuning it is a frozen copy, optionally on CPU.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint


@dataclass
class LoraSettings:
    """LoRA through ``peft``. ``target_modules="all-linear"`` adapts every linear layer but the head."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0  # >0 would make the training forward differ from the scoring forward
    target_modules: str | list[str] = "all-linear"


@dataclass
class ResponseBatch:
    """Padded tensors for a list of (prompt, response) pairs; see the module docstring."""

    input_ids: torch.Tensor  # [B, P + R]
    attention_mask: torch.Tensor  # [B, P + R]
    position_ids: torch.Tensor  # [B, P + R]
    response_ids: torch.Tensor  # [B, R] (pad positions hold 0)
    response_mask: torch.Tensor  # [B, R] float, 1 on real response tokens
    prompt_len: int  # P, the common (left-padded) prompt length


@dataclass
class ScoreOutput:
    """Per-row numpy arrays (float32), each as long as that row's response."""

    logprobs: list[np.ndarray]
    entropies: list[np.ndarray]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 24
    temperature: float = 1.0
    top_p: float = 1.0
    greedy: bool = False  # argmax decoding; temperature/top_p are ignored

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")
        if not self.greedy and self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0; use greedy=True for argmax")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")

    @property
    def scoring_temperature(self) -> float:
        """The temperature whose distribution produced the samples (1 for greedy decoding)."""
        return 1.0 if self.greedy else self.temperature


#: ``model.dtype`` names (the usual short names too) and their torch dtypes.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def resolve_dtype(dtype: str, device: torch.device, lora: bool = False) -> torch.dtype:
    """``"auto"`` is bfloat16 for a LoRA model on GPU (frozen base; the adapters stay float32) and
    float32 otherwise: AdamW steps on 16-bit weights mostly round away (measured on the quick
    preset's tiny model over 3 steps at lr 1e-5: 5.7% of bfloat16 weights changed vs 100% in
    float32, 0.7% vs 100% at lr 1e-6; float16 gave NaNs after one step), and every full-weight
    trainer (RL, SFT, pretraining) loads through here. Anything
    else must be a name in :data:`DTYPES`."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and lora else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r} is not one of auto, float32, bfloat16, float16 (or fp32, bf16, fp16)")
    return DTYPES[dtype]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_response_batch(
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    pad_id: int,
    device: torch.device | str = "cpu",
) -> ResponseBatch:
    """Left-pad prompts and right-pad responses into one batch (see module docstring)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if not prompts:
        raise ValueError("cannot build an empty batch")
    for p, r in zip(prompts, responses):
        if len(p) == 0:
            raise ValueError("a prompt is empty; every response must be conditioned on >= 1 token")
        if len(r) == 0:
            raise ValueError("a response is empty; rows need at least one response token")
    B = len(prompts)
    P = max(len(p) for p in prompts)
    R = max(len(r) for r in responses)
    ids = torch.full((B, P + R), pad_id, dtype=torch.long)
    mask = torch.zeros((B, P + R), dtype=torch.long)
    resp = torch.zeros((B, R), dtype=torch.long)
    rmask = torch.zeros((B, R), dtype=torch.float32)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        ids[b, P - len(p) : P] = torch.as_tensor(list(p), dtype=torch.long)
        ids[b, P : P + len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[b, P - len(p) : P + len(r)] = 1
        resp[b, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        rmask[b, : len(r)] = 1.0
    # Real tokens get positions 0, 1, ... exactly as in an unpadded forward pass.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    dev = torch.device(device)
    return ResponseBatch(
        ids.to(dev), mask.to(dev), pos.to(dev), resp.to(dev), rmask.to(dev), prompt_len=P
    )


#: Logit elements (positions x vocabulary) per piece in :func:`token_logprobs_and_entropy`
#: and :func:`head_logprobs_and_entropy`: 256 MB per float32 copy. Qwen2.5's 151,936-token
#: vocabulary gets ~440 positions per piece; a tiny CPU model's whole batch is one piece.
LOGIT_CHUNK_ELEMENTS = 2**26


def _logprob_entropy_piece(logits: torch.Tensor, targets: torch.Tensor, temperature: float):
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    logp = F.log_softmax(z, dim=-1)
    tok_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return tok_logp, entropy


def _head_piece(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Linear, temperature: float):
    # contiguous: the slice is strided, and CPU bf16 matmuls crawl on strided input
    return _logprob_entropy_piece(head(hidden.contiguous()), targets, temperature)


def _in_pieces(fn, x: torch.Tensor, targets: torch.Tensor, *args, vocab: int, chunk_elements: int | None):
    """``fn(x_rows, targets_rows, *args)`` over a few rows at a time, checkpointed under autograd."""
    B, R = targets.shape
    rows = max(1, (chunk_elements or LOGIT_CHUNK_ELEMENTS) // max(R * vocab, 1))
    if B <= rows:
        return fn(x, targets, *args)
    lps, ents = [], []
    for s in range(0, B, rows):
        piece = (x[s : s + rows], targets[s : s + rows], *args)
        if torch.is_grad_enabled() and x.requires_grad:
            lp, ent = torch.utils.checkpoint.checkpoint(fn, *piece, use_reentrant=False)
        else:
            lp, ent = fn(*piece)
        lps.append(lp)
        ents.append(ent)
    return torch.cat(lps), torch.cat(ents)


def token_logprobs_and_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(target) and full-vocabulary entropy per position of ``softmax(logits / T)``,
    computed in float32. ``logits`` is ``[B, R, V]``, ``targets`` ``[B, R]``.

    Rows are processed a few at a time (about ``chunk_elements`` logits), and with autograd
    on each piece is checkpointed: its float32 intermediates (the upcast, log-softmax, exp,
    product) are freed at once and recomputed in backward. Values and gradients are the same
    either way (tested).
    """
    return _in_pieces(
        _logprob_entropy_piece, logits, targets, temperature, vocab=logits.shape[-1], chunk_elements=chunk_elements
    )


def head_logprobs_and_entropy(
    hidden: torch.Tensor,
    head: torch.nn.Linear,
    targets: torch.Tensor,
    temperature: float = 1.0,
    chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`token_logprobs_and_entropy` of ``head(hidden)`` without ever holding all the
    logits: each piece of rows goes through the LM head, and under autograd only the hidden
    states are kept (the piece's logits are recomputed in backward). With Qwen2.5's
    151,936-token vocabulary one float32 copy of the logits of 4,096 response positions is
    2.5 GB, and the whole-batch computation held several such copies plus their gradients;
    here one piece's worth exists at a time.
    """
    return _in_pieces(
        _head_piece, hidden, targets, head, temperature, vocab=head.out_features, chunk_elements=chunk_elements
    )


class Policy:
    """A causal LM, its tokenizer, and the reference policy.

    Build it with :meth:`from_pretrained` (a local checkpoint directory, e.g. from
    ``aem-train init-model``, or a hub id for users who have one cached) or wrap objects you
    already hold with the constructor.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        ref_model: torch.nn.Module | None = None,
        lora: bool = False,
        device: torch.device | str | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.ref_model = ref_model
        self.lora = lora
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        if tokenizer.eos_token_id is None:
            raise ValueError(
                "the tokenizer has no eos_token (the token that ends a response); set tokenizer.eos_token "
                "and save it with tokenizer.save_pretrained(model_dir)"
            )
        emb = _unwrapped(model).get_input_embeddings()
        self._num_embeddings = int(emb.num_embeddings) if emb is not None else 2**62
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id >= self._num_embeddings:
            # Many chat checkpoints ship without a pad token; pads are always masked out here, so
            # EOS serves. A pad past the embedding comes from transformers itself: a tokenizer
            # saved next to a Qwen2 config is loaded as Qwen2Tokenizer, which adds its default
            # "<|endoftext|>" pad as a new id the model has no row for ("index out of range").
            tokenizer.pad_token = tokenizer.eos_token
        self._logits_to_keep_ok: bool | None = None
        self._system_in_user = self._check_chat_template(tokenizer)
        turn_end = _template_turn_end(tokenizer)
        self.stop_token_ids = self._stop_ids(model, int(tokenizer.eos_token_id), turn_end)
        #: The token that closes a demonstration: the chat template's turn end, else EOS.
        self.turn_end_id = int(turn_end) if turn_end is not None else int(tokenizer.eos_token_id)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        lora: LoraSettings | None = None,
        device: str = "auto",
        dtype: str = "auto",
        gradient_checkpointing: bool | None = None,
        reference: str = "auto",
    ) -> Policy:
        """Load a checkpoint directory or hub id.

        ``dtype="auto"``: see :func:`resolve_dtype` (bfloat16 only for LoRA on GPU). ``gradient_checkpointing``
        defaults to on for GPU. ``reference``: ``"auto"`` (adapter-disabled for LoRA, a frozen
        copy on the policy's device otherwise), ``"cpu"`` (frozen copy on CPU), ``"none"``.
        """
        from transformers import AutoModelForCausalLM

        dev = pick_device(device)
        torch_dtype = resolve_dtype(dtype, dev, lora=lora is not None)
        path, hub_kwargs = resolve_checkpoint(name_or_path)
        try:
            tokenizer = _load_tokenizer(path, hub_kwargs)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(
                f"{path!r}: no tokenizer could be loaded ({_first_line(e)}); save the model's tokenizer "
                f"next to it with tokenizer.save_pretrained({path!r})"
            ) from None
        cls._check_chat_template(tokenizer)  # before the (possibly large) model is loaded
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **hub_kwargs).to(dev)
        if gradient_checkpointing is None:
            gradient_checkpointing = dev.type == "cuda"
        ref_model = None
        if lora is not None:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ImportError("LoRA needs peft; install it with `pip install 'aem[lora]'`") from e
            cfg = LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            )
            with warnings.catch_warnings():
                # peft reads transformers' deprecated `is_gradient_checkpointing` (one FutureWarning
                # per model); nothing for a user to act on.
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
                model = get_peft_model(model, cfg)
            if reference not in ("auto", "none"):
                raise ValueError(f"reference={reference!r} with LoRA; the reference is the adapter-disabled model, use 'auto'")
        elif reference in ("auto", "cpu"):
            ref_model = copy.deepcopy(model).to("cpu" if reference == "cpu" else dev)
            ref_model.requires_grad_(False).eval()
        elif reference != "none":
            raise ValueError(f"reference={reference!r} is unknown; use 'auto', 'cpu' or 'none'")
        if gradient_checkpointing:
            # transformers 5 renamed the switch (the old name warns); 4.x has only the old one.
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if lora is not None:
                model.enable_input_require_grads()
        if dev.type == "cpu" and torch_dtype in (torch.bfloat16, torch.float16):
            for m in {model, ref_model} - {None}:
                _contiguous_lm_head_input(m)
        model.eval()
        return cls(model, tokenizer, ref_model=ref_model, lora=lora is not None, device=dev)

    @staticmethod
    def _stop_ids(model: torch.nn.Module, eos: int, turn_end: int | None = None) -> tuple[int, ...]:
        """The tokenizer's EOS, then any other end-of-turn ids the checkpoint's generation config
        names (Llama-3 stops at ``<|eot_id|>`` and ``<|end_of_text|>``), then the special token
        the chat template closes an assistant turn with. A base model's tokenizer EOS and
        generation config may both lack the last (Qwen2.5 base: EOS ``<|endoftext|>``, turns end
        with ``<|im_end|>``); without it, every response ran on to ``max_new_tokens`` after its
        turn had ended, and that tail took loss. Sampling ignores the rest of the generation
        config, so these are read once here."""
        hf = _unwrapped(model)
        extra = getattr(getattr(hf, "generation_config", None), "eos_token_id", None)
        extra = [extra] if isinstance(extra, int) else list(extra or [])
        ids = [eos, *(int(t) for t in extra)] + ([turn_end] if turn_end is not None else [])
        return tuple(dict.fromkeys(ids))

    # ------------------------------------------------------------------ text <-> ids
    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @staticmethod
    def _check_chat_template(tokenizer: Any) -> bool:
        """Fail at load time, not at the first prompt, on a tokenizer without a usable chat
        template. Returns whether the template refuses a system message (Gemma's raise "System
        role not supported"): the system prompt is then put at the top of the first user
        message, the usual fallback for such models."""
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the tokenizer has no chat template, and every prompt is built from chat messages; set "
                "tokenizer.chat_template (an instruct sibling's, or e.g. \"{% for m in messages %}<|{{ m['role'] }}|>"
                "\\n{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>\\n"
                "{% endif %}\") and save it with tokenizer.save_pretrained(model_dir)"
            )
        user = [{"role": "user", "content": "u"}]

        def fails(messages: list[dict[str, str]]) -> Exception | None:
            try:
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception as e:  # noqa: BLE001 - jinja's TemplateError or the template's own raise
                return e
            return None

        if fails([{"role": "system", "content": "s"}, *user]) is None:
            return False
        err = fails(user)
        if err is not None:
            raise ValueError(f"the tokenizer's chat template fails on a one-message conversation ({_first_line(err)}); fix tokenizer.chat_template")
        return True

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        if self._system_in_user and messages and messages[0]["role"] == "system":
            system, rest = messages[0]["content"], list(messages[1:])
            k = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
            if k is None:
                rest.insert(0, {"role": "user", "content": system})
            else:
                rest[k] = {**rest[k], "content": f"{system}\n\n{rest[k]['content']}"}
            messages = rest
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the chat view with the assistant turn opened (generation prompt)."""
        text = self.prompt_text(messages)
        return self._in_vocab(list(self.tokenizer(text, add_special_tokens=False)["input_ids"]))

    def encode_response(self, text: str) -> list[int]:
        """Ids of a *demonstration* response (SFT only): the text followed by the token the chat
        template closes an assistant turn with (EOS when it writes none), so a demonstration
        ends as every assistant turn in the prompts' history does. A base model whose EOS is not
        its turn end (Qwen2.5: ``<|endoftext|>`` vs ``<|im_end|>``) was taught to end replies
        with a token its chat history never shows.

        Sampled responses are never re-encoded; rollouts keep the ids the sampler drew.
        """
        return self._in_vocab(list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.turn_end_id])

    def _in_vocab(self, ids: list[int]) -> list[int]:
        """``ids`` when the model has an embedding row for each; a tokenizer with tokens added
        after the model was saved would otherwise fail deep in the forward with "index out of
        range in self". Checked per prompt, not at load: some checkpoints list tokenizer ids past
        the embedding that no text ever produces."""
        if ids and max(ids) >= self._num_embeddings:
            raise ValueError(
                f"the tokenizer produced id {max(ids)} ({self.tokenizer.convert_ids_to_tokens(max(ids))!r}) but the "
                f"model has {self._num_embeddings} embedding rows: tokens were added to the tokenizer without "
                "model.resize_token_embeddings(len(tokenizer)); resize, then save both again"
            )
        return ids

    def decode_response(self, ids: Sequence[int]) -> str:
        """The text the env receives: the response as sampled without its closing stop token.

        Other special tokens stay in the text. With ``skip_special_tokens=True`` a tokenizer
        whose ``<action>`` tags were added as special tokens (``add_special_tokens``) gave the
        env "go to fridge 1" for "<action>go to fridge 1</action>": every action invalid, no
        error anywhere. A special token the model emits mid-response is part of what it said.
        """
        ids = list(ids)
        if ids and ids[-1] in self.stop_token_ids:  # responses are cut right after their first stop token
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    # ------------------------------------------------------------------ scoring
    def forward_response(
        self,
        batch: ResponseBatch,
        *,
        model: torch.nn.Module | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs and entropies ``[B, R]`` of the batch's responses (pads hold 0)
        under ``softmax(logits / temperature)`` (the module docstring says why).

        Gradient flows when called outside ``torch.no_grad``; this is the training forward.
        """
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0 (greedy rollouts are scored at 1.0)")
        model = self.model if model is None else model
        with activation_checkpointing(model):
            return self._forward_response(batch, model, temperature)

    def _forward_response(
        self, batch: ResponseBatch, model: torch.nn.Module, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        R = batch.response_ids.shape[1]
        kwargs = dict(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
        split = _decoder_and_head(model)
        if split is not None:
            # Hidden state at column P-1+j predicts response token j; the head runs in pieces.
            decoder, head = split
            P = batch.prompt_len
            hidden = decoder(**kwargs).last_hidden_state[:, P - 1 : P - 1 + R]
            logp, ent = head_logprobs_and_entropy(hidden, head, batch.response_ids, temperature)
            m = batch.response_mask
            return logp * m, ent * m
        # Logit at column P-1+j predicts response token j; keep only those R (+ the last) columns.
        if self._logits_to_keep_ok is not False:
            try:
                logits = model(**kwargs, logits_to_keep=R + 1).logits[:, :-1]
                self._logits_to_keep_ok = True
            except TypeError:
                self._logits_to_keep_ok = False
        if self._logits_to_keep_ok is False:
            P = batch.prompt_len
            logits = model(**kwargs).logits[:, P - 1 : P - 1 + R]
        logp, ent = token_logprobs_and_entropy(logits, batch.response_ids, temperature)
        m = batch.response_mask
        return logp * m, ent * m

    @torch.no_grad()
    def score(
        self,
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        *,
        max_tokens: int = 16384,
        reference: bool = False,
        temperature: float = 1.0,
    ) -> ScoreOutput:
        """Log-probs and full-vocabulary entropies of each response token, without gradient.

        Rows are processed in chunks of at most ``max_tokens`` padded tokens (rows sorted by
        length so padding stays small) so memory is bounded. ``reference=True`` scores under
        the reference policy; ``temperature`` is the sampling temperature (see forward_response).
        """
        n = len(prompts)
        if n != len(responses):
            raise ValueError(f"{n} prompts but {len(responses)} responses")
        out_lp: list[np.ndarray | None] = [None] * n
        out_ent: list[np.ndarray | None] = [None] * n
        for idx in length_chunks(prompts, responses, max_tokens):
            with self._reference_ctx(reference) as model:
                dev = next(model.parameters()).device
                batch = build_response_batch(
                    [prompts[i] for i in idx], [responses[i] for i in idx], self.pad_token_id, dev
                )
                was_training = model.training
                model.eval()
                try:
                    lp, ent = self.forward_response(batch, model=model, temperature=temperature)
                finally:
                    model.train(was_training)
            lp, ent = lp.float().cpu().numpy(), ent.float().cpu().numpy()
            for k, i in enumerate(idx):
                L = len(responses[i])
                out_lp[i] = lp[k, :L].astype(np.float32)
                out_ent[i] = ent[k, :L].astype(np.float32)
        return ScoreOutput(out_lp, out_ent)  # type: ignore[arg-type]

    @contextmanager
    def _reference_ctx(self, reference: bool):
        if not reference:
            yield self.model
        elif self.lora:
            with self.model.disable_adapter():
                yield self.model
        elif self.ref_model is not None:
            yield self.ref_model
        else:
            raise RuntimeError("this policy has no reference model; load it with reference='auto' or 'cpu'")

    def reference_context(self, reference: bool = True):
        """Context yielding the module that computes the reference policy (see class docstring)."""
        return self._reference_ctx(reference) if reference else nullcontext(self.model)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        settings: GenerationSettings,
        *,
        max_batch: int = 256,
    ) -> list[list[int]]:
        """Sample one response per prompt in batched ``generate`` calls (left padding, KV cache).

        Each response is the sampled ids up to and including the first EOS (or
        ``max_new_tokens`` ids when no EOS came), exactly as drawn. Seed with
        ``torch.manual_seed`` for reproducible sampling.
        """
        out: list[list[int]] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for s in range(0, len(prompts), max_batch):
                out.extend(self._generate_chunk(prompts[s : s + max_batch], settings))
        finally:
            self.model.train(was_training)
        return out

    def _generate_chunk(self, prompts: Sequence[Sequence[int]], st: GenerationSettings) -> list[list[int]]:
        P = max(len(p) for p in prompts)
        limit = self._max_positions()
        if limit is not None and P + st.max_new_tokens > limit:
            raise ValueError(
                f"prompt of {P} tokens + {st.max_new_tokens} new tokens exceeds the model's "
                f"{limit} positions; shorten the chat window (window=1) or max_new_tokens"
            )
        pad = self.pad_token_id
        ids = torch.full((len(prompts), P), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, p in enumerate(prompts):
            ids[b, P - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            mask[b, P - len(p) :] = 1
        from transformers import GenerationConfig

        # An explicit config: a checkpoint's own generation defaults (top_k=50, repetition
        # penalties, ...) would otherwise silently change the sampling distribution. transformers
        # fills every field left unset here from model.generation_config, so that is swapped for a
        # blank one while sampling (see _blank_generation_defaults).
        if st.greedy:
            cfg = GenerationConfig(do_sample=False, max_new_tokens=st.max_new_tokens)
        else:
            cfg = GenerationConfig(
                do_sample=True,
                temperature=st.temperature,
                top_p=st.top_p,
                top_k=0,
                max_new_tokens=st.max_new_tokens,
            )
        cfg.eos_token_id, cfg.pad_token_id, cfg.use_cache = list(self.stop_token_ids), pad, True
        with _blank_generation_defaults(self.model):
            seqs = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), generation_config=cfg
            )
        new = seqs[:, P:].cpu().tolist()
        stops = set(self.stop_token_ids)
        responses = []
        for row in new:
            # Cut after the first stop token: what follows is padding generate appended, not samples.
            cut = next((j + 1 for j, t in enumerate(row) if t in stops), len(row))
            responses.append(row[:cut])
        return responses

    def _max_positions(self) -> int | None:
        cfg = getattr(self.model, "config", None)
        return getattr(cfg, "max_position_embeddings", None)

    # ------------------------------------------------------------------ persistence
    def save(self, out_dir: str | os.PathLike, *, merge_lora: bool = True, metadata: dict | None = None) -> Path:
        """Write an ordinary HF checkpoint directory (safetensors + tokenizer + chat template).

        LoRA weights are merged into a copy of the base model by default so the directory
        loads with plain ``AutoModelForCausalLM.from_pretrained``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        model = self.model
        if self.lora and merge_lora:
            model = copy.deepcopy(self.model).merge_and_unload()
        model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        if metadata:
            (out / "aem_train.json").write_text(json.dumps(metadata, indent=2, default=str))
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


#: Files of which a local checkpoint directory needs at least one, per part.
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def resolve_checkpoint(name_or_path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """Check ``model.path`` before anything is loaded; returns the path and the keyword
    arguments for ``from_pretrained``.

    A local directory must hold a Hugging Face checkpoint (``config.json``, weights, tokenizer
    files). Anything else that reads as a hub id (``name`` or ``org/name``) is loaded from its
    snapshot directory in the Hugging Face cache when it is there (no network round trip); when it
    is not, one quick request tells whether the hub is reachable at all, because without a
    network ``from_pretrained`` retries for ~50 s and then prints a 30-line traceback. Every
    failure is one line that names the fix.
    """
    path = str(name_or_path)
    p = Path(path).expanduser()
    if p.exists():
        return str(p), {"local_files_only": True} | _check_checkpoint_dir(p)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(path)
        hub_like = not path.startswith((".", "~")) and path.count("/") <= 1
    except HFValidationError:
        hub_like = False
    if not hub_like:
        raise FileNotFoundError(
            f"no checkpoint at {path!r}; create one with `aem-train init-model --preset tiny {path} --envs ...` "
            "or point model.path at a Hugging Face checkpoint directory"
        )
    from huggingface_hub import model_info, snapshot_download, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        # The snapshot's directory, not the id: given the id, transformers still asks the hub
        # for an adapter_config.json even with local_files_only (~25 s of retries offline).
        snapshot = Path(snapshot_download(path, local_files_only=True))
        return str(snapshot), {"local_files_only": True} | _check_checkpoint_dir(snapshot)
    not_here = f"{path!r} is neither a local directory nor a model in the Hugging Face cache"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise FileNotFoundError(f"{not_here}, and HF_HUB_OFFLINE is set; download it first or set model.path to a local directory")
    try:
        model_info(path, timeout=10)
    except Exception as e:  # noqa: BLE001 - the hub client's error types vary across versions
        name = type(e).__name__
        if "NotFound" in name or "Gated" in name:
            why = f"the hub has no public model {path!r} ({name}); check the id, or log in for a gated model"
        else:
            why = f"the hub cannot be reached ({_first_line(e)})"
        raise FileNotFoundError(
            f"{not_here}, and {why}. Download it where there is a network "
            f"(`hf download {path} --local-dir DIR`) and set model.path=DIR"
        ) from None
    return path, {}


#: What ``save_pretrained`` writes for a tokenizer that is its ``tokenizer.json`` and nothing else
#: (transformers 5 and 4 respectively).
_GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _load_tokenizer(path: str, hub_kwargs: dict[str, Any]):
    """``AutoTokenizer``, except that a tokenizer saved as the generic class is loaded as exactly
    that. transformers 5 loads such a tokenizer next to a Qwen2 config as ``Qwen2Tokenizer``,
    which rebuilds the pipeline from the vocabulary: a tokenizer the user trained encoded 354
    tokens where its own ``tokenizer.json`` gives 338 (measured), and gained a pad token past
    the model's embedding. An official checkpoint declares its own class and is not affected."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(path, **hub_kwargs)
    if type(tok).__name__ in _GENERIC_TOKENIZER_CLASSES:
        return tok
    try:
        from transformers.models.auto.tokenization_auto import get_tokenizer_config

        declared = get_tokenizer_config(path, **hub_kwargs).get("tokenizer_class")
    except Exception:  # noqa: BLE001 - an internal helper; without it AutoTokenizer's choice stands
        return tok
    return PreTrainedTokenizerFast.from_pretrained(path, **hub_kwargs) if declared in _GENERIC_TOKENIZER_CLASSES else tok


def _check_checkpoint_dir(p: Path) -> dict[str, Any]:
    if not p.is_dir():
        raise FileNotFoundError(f"model.path {str(p)!r} is a file; point it at the checkpoint directory ({str(p.parent)!r}?)")
    if not (p / "config.json").is_file():
        if (p / "adapter_config.json").is_file():
            raise FileNotFoundError(
                f"{str(p)!r} holds a PEFT adapter, not a whole model; merge it into its base "
                "(PeftModel.from_pretrained(base, dir).merge_and_unload().save_pretrained(out)) and use out"
            )
        inner = [d for d in ("final_model", "checkpoint") if (p / d / "config.json").is_file()]
        hint = f" (the model of this run is in {str(p / inner[0])!r})" if inner else ""
        raise FileNotFoundError(
            f"{str(p)!r} has no config.json, so it is not a Hugging Face checkpoint directory{hint}; "
            "write one with model.save_pretrained(dir) and tokenizer.save_pretrained(dir)"
        )
    if not any((p / f).is_file() for f in _WEIGHT_FILES):
        raise FileNotFoundError(
            f"{str(p)!r} has a config.json but no weights ({' / '.join(_WEIGHT_FILES[:3])}); "
            "write them with model.save_pretrained(dir)"
        )
    if not any((p / f).is_file() for f in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{str(p)!r} has no tokenizer files; save the model's tokenizer there with tokenizer.save_pretrained(dir)"
        )
    return {}


def _template_turn_end(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant message's content
    (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama-3), or None when it writes none."""
    marker = "\u2063aem\u2063"  # text no template adds or changes
    msgs = [{"role": "user", "content": "u"}, {"role": "assistant", "content": marker}]
    try:
        text = tokenizer.apply_chat_template(msgs, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that needs other turns: no extra stop token
        return None
    if marker not in text:
        return None
    after = text.split(marker, 1)[1].lstrip()  # Llama-2 writes " </s>"
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    if not ids:
        return None
    special = {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
    special |= set(getattr(tokenizer, "all_special_ids", []))
    return int(ids[0]) if ids[0] in special else None


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (the model itself when not wrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def _blank_generation_defaults(model: torch.nn.Module):
    """Hide the checkpoint's ``generation_config`` (e.g. repetition_penalty=1.05) during ``generate``.

    ``generate`` fills each field its config leaves unset (None) from the model's own
    generation config; with a blank one only transformers' neutral global defaults remain.
    """
    from transformers import GenerationConfig

    hf = _unwrapped(model)
    saved = getattr(hf, "generation_config", None)
    hf.generation_config = GenerationConfig()
    try:
        yield
    finally:
        hf.generation_config = saved


#: Architectures whose logits are exactly ``lm_head(last_hidden_state)`` (no softcapping or
#: logit scaling after the head, checked in transformers' modeling code). Others take the
#: plain forward, whose logits are materialised whole.
_PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """The decoder stack and the LM head of a plain-head causal LM (LoRA-wrapped or not)."""
    hf = _unwrapped(model)
    if getattr(getattr(hf, "config", None), "model_type", None) not in _PLAIN_HEAD_MODEL_TYPES:
        return None
    head = hf.get_output_embeddings()
    decoder = getattr(hf, "model", None)
    if type(head) is not torch.nn.Linear or decoder is None:  # a LoRA-wrapped head, say
        return None
    return decoder, head


def _contiguous_lm_head_input(model: torch.nn.Module) -> None:
    """Copy the LM head's input to contiguous memory (CPU, 16-bit weights only).

    ``logits_to_keep`` hands the head a strided slice of the hidden states, and PyTorch's CPU
    bfloat16 matmul takes a slow path for strided inputs: measured on this project's 2-core
    machine, 16 rows x 25 positions against a 151,936 x 1,536 head took 52 s strided and
    0.65 s contiguous. The copy is ``rows x response_len x hidden``, negligible.
    """
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda _m, args: (args[0].contiguous(), *args[1:]))


@contextmanager
def activation_checkpointing(model: torch.nn.Module):
    """Let checkpointed layers of an eval-mode model checkpoint while gradients are on.

    The learner runs the model in eval mode so the training forward equals the scoring
    forward (no dropout), but transformers checkpoints a layer only when that layer's own
    ``training`` flag is set; without this, ``gradient_checkpointing`` saved no memory. Only the
    layer objects' flags flip (not their children's), so attention/MLP dropout stays off.
    """
    flipped = []
    if torch.is_grad_enabled():
        from transformers.modeling_layers import GradientCheckpointingLayer

        for mod in model.modules():
            if isinstance(mod, GradientCheckpointingLayer) and mod.gradient_checkpointing and not mod.training:
                mod.training = True
                flipped.append(mod)
    try:
        yield
    finally:
        for mod in flipped:
            mod.training = False


def length_chunks(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], max_tokens: int
) -> list[list[int]]:
    """Index chunks whose padded size (rows x (max prompt + max response)) fits ``max_tokens``."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]) + len(responses[i]), i))
    chunks: list[list[int]] = []
    cur: list[int] = []
    P = R = 0
    for i in order:
        p2, r2 = max(P, len(prompts[i])), max(R, len(responses[i]))
        if cur and (len(cur) + 1) * (p2 + r2) > max_tokens:
            chunks.append(cur)
            cur, p2, r2 = [], len(prompts[i]), len(responses[i])
        cur.append(i)
        P, R = p2, r2
    if cur:
        chunks.append(cur)
    return chunks


__all__ = [
    "resolve_checkpoint",
    "GenerationSettings",
    "LoraSettings",
    "Policy",
    "ResponseBatch",
    "activation_checkpointing",
    "ScoreOutput",
    "build_response_batch",
    "length_chunks",
    "pick_device",
    "head_logprobs_and_entropy",
    "token_logprobs_and_entropy",
]

"""Tiny models for CPU: a randomly initialised standard decoder and a BPE tokenizer trained on
the text the chosen environments produce.

``aem-train init-model --preset tiny OUT_DIR --envs aem/Household-v0`` writes an ordinary
Hugging Face checkpoint directory (``config.json``, ``model.safetensors``, ``tokenizer.json``,
``chat_template.jinja``) that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load with no aem code.

A random-init model knows no language: ``aem-train pretrain`` (:mod:`aem_train.pretrain`)
gives it one before SFT, by next-token training on the envs' transcripts.

Why a locally trained tokenizer: with a vocabulary learnt from the envs' own text (instructions,
observations, oracle and random admissible actions), a 1024-token vocabulary turns a
household observation into a few dozen tokens, and prompt prefill is what dominates CPU
rollout time (notes/cpu_models.md).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: Special tokens, in id order. ``<|end|>`` closes every chat turn and is the EOS token.
PAD, EOS, SYSTEM, USER, ASSISTANT = "<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = [PAD, EOS, SYSTEM, USER, ASSISTANT]
#: Pre-tokenizer boundaries: punctuation/newlines (with the spaces after them) split pieces.
PIECE_SEPARATORS = r"""[,.:;!?'"()\[\]{}=\n]+ *"""
#: Ordinary (decoded, non-special) tokens added whole.
ACTION_TAGS = ["<action>", "</action>"]

#: Every message is ``<|role|>\n{content}<|end|>\n``; the generation prompt opens the assistant
#: turn, so a sampled response is e.g. ``<action>go to fridge 1</action><|end|>``.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class Preset:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int = 1024
    max_positions: int = 1024


#: Sizes as in notes/cpu_models.md (tiny ~1.3 M parameters, small ~4.7 M) with a 2048 vocabulary.
PRESETS: dict[str, Preset] = {
    "test": Preset(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, vocab_size=512),
    "tiny": Preset(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512, vocab_size=2048),
    "small": Preset(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024, vocab_size=2048),
}


# ---------------------------------------------------------------------- corpus
def env_corpus(
    env_ids: Sequence[str],
    *,
    episodes: int = 200,
    random_action_prob: float = 0.3,
    seed: int = 0,
) -> Iterator[str]:
    """Text the envs produce on their **train** split: system prompts, instructions,
    observations, admissible actions and responses of the oracle mixed with random admissible
    actions (so failure and invalid-action observations are in the corpus too)."""
    import aem_envs

    rng = np.random.default_rng(seed)
    for env_id in env_ids:
        env = aem_envs.make(env_id, split="train")
        try:
            ids = env.task_ids("train")
            for ep in range(episodes):
                task = ids[int(rng.integers(len(ids)))]
                obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"task_id": task})
                # Once per episode, as often as it appears in prompts: so BPE compresses it.
                yield env.system_prompt
                yield f"Task: {env.instruction}"
                yield obs
                done = False
                while not done:
                    adm = env.admissible_actions()
                    if adm:
                        yield "\n".join(adm)
                    u = rng.random()
                    if adm and u < random_action_prob:
                        action = adm[int(rng.integers(len(adm)))]
                    elif u < random_action_prob + 0.03:
                        action = "look around"  # an action most envs reject: invalid-action text
                    else:
                        action = env.oracle_action()
                    response = env.format_action(action)
                    yield response
                    obs, _, term, trunc, _ = env.step(response)
                    yield obs
                    done = term or trunc
        finally:
            env.close()


# ---------------------------------------------------------------------- tokenizer
def train_tokenizer(texts: Iterator[str] | Sequence[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer (any byte sequence stays encodable) with the chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Pieces run between punctuation, not between words: BPE then merges whole phrases
    # ("go to fridge 1") into single tokens. Prompts get ~2x shorter than with word pieces, and
    # choosing an admissible action is often copying one token of the prompt. The separator
    # swallows the following spaces so the phrase in "Admissible actions: go to fridge 1, ..."
    # and in "<action>go to fridge 1</action>" is the same token. Which merges BPE picks depends
    # on the corpus, and it matters to a tiny model: trained on Household text alone, BPE made
    # tokens such as "take alarmclock" + " 1 from dresser 1" that occur in no observation
    # (measured: 2-12% test success after the quick preset's pretraining + SFT, against 29% with
    # a tokenizer trained on Household + WebShop text). An entity-piece variant ("alarmclock 1"
    # always one piece) did no better (8.5%). See bench setup ``tokenizer_envs``.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PIECE_SEPARATORS), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    # The action tags open and close every response: one token each keeps responses short.
    tok.add_tokens([AddedToken(t, normalized=False) for t in ACTION_TAGS])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, chat_template=CHAT_TEMPLATE
    )
    hf.model_max_length = 1024
    return hf


# ---------------------------------------------------------------------- model
def build_model(preset: Preset, tokenizer, seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` sized by ``preset`` (a standard architecture)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_heads,
        max_position_embeddings=preset.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model


def init_model(
    out_dir: str | Path,
    env_ids: Sequence[str],
    *,
    preset: str | Preset = "tiny",
    episodes: int = 200,
    seed: int = 0,
    vocab_size: int | None = None,
) -> dict:
    """Build tokenizer + model and save them to ``out_dir``; returns a summary dict."""
    t0 = time.perf_counter()
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"preset={preset!r} is unknown; use one of {sorted(PRESETS)}")
        preset_name, p = preset, PRESETS[preset]
    else:
        preset_name, p = "custom", preset
    if not env_ids:
        raise ValueError("no envs given; pass --envs aem/Household-v0 (the tokenizer is trained on their text)")
    texts = list(env_corpus(env_ids, episodes=episodes, seed=seed))
    tokenizer = train_tokenizer(texts, vocab_size or p.vocab_size)
    model = build_model(p, tokenizer, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    sample = texts[1:4]
    n_chars = sum(len(t) for t in texts)
    n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    summary = {
        "out_dir": str(out),
        "preset": preset_name,
        "config": asdict(p),
        "envs": list(env_ids),
        "vocab_size": len(tokenizer),
        "parameters": sum(x.numel() for x in model.parameters()),
        "corpus_texts": len(texts),
        "chars_per_token": round(n_chars / max(n_tokens, 1), 2),
        "seconds": round(time.perf_counter() - t0, 2),
        "sample": sample,
    }
    (out / "aem_train.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "sample"}, indent=2))
    return summary


# ---------------------------------------------------------------------- CLI
def _cmd_init_model(args: argparse.Namespace) -> int:
    s = init_model(
        args.out_dir, args.envs, preset=args.preset, episodes=args.episodes, seed=args.seed,
        vocab_size=args.vocab_size,
    )
    print(
        f"wrote {s['out_dir']}: preset {s['preset']}, {s['parameters']:,} parameters, "
        f"vocab {s['vocab_size']}, {s['chars_per_token']} chars/token, {s['seconds']} s"
    )
    if args.json:
        print(json.dumps({k: v for k, v in s.items() if k != "sample"}))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aem_train.cli import add_common_options

    sp = sub.add_parser("init-model", help="build a tiny random-init model + env-trained BPE tokenizer")
    sp.add_argument("out_dir", help="checkpoint directory to write")
    sp.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    sp.add_argument("--envs", nargs="+", required=True, metavar="ID", help="envs whose text trains the tokenizer")
    sp.add_argument("--episodes", type=int, default=200, help="train-split episodes per env for the corpus")
    sp.add_argument("--vocab-size", type=int, default=None, help="override the preset's vocabulary size")
    sp.add_argument("--seed", type=int, default=0)
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_init_model)


"""The "bring your own model / bring your own env" journey, as a user walks it: a Hugging Face
checkpoint directory built outside aem (transformers config + a tokenizer trained with
``tokenizers``), and an env registered by a module that lives outside the package, trained
with the ``aem-train`` console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import aem_envs
from aem_envs.registration import UnknownEnvError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: A user's env module: examples/custom_env.py under another name, in a directory of its own.
USER_ENV = (ROOT / "examples" / "custom_env.py").read_text().replace("GuessNumber", "UserGuess")
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Gemma-style: the template itself refuses a system message.
NO_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def user_checkpoint(
    out: Path,
    *,
    arch: str = "llama",
    chat_template: str | None = CHATML,
    pad: bool = True,
    tied: bool = True,
    max_positions: int = 2048,
) -> Path:
    """A checkpoint directory made the way a user makes one, with no aem code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM,
    )

    env = aem_envs.make("aem/Household-v0")
    obs, _ = env.reset(seed=0)
    corpus = [env.system_prompt, env.instruction, obs, "<action>look</action>"] * 3
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "</s>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    ))
    kw = {"tokenizer_object": tok, "eos_token": "</s>"}
    if pad:
        kw["pad_token"] = "<pad>"
    if chat_template is not None:
        kw["chat_template"] = chat_template
    tokenizer = PreTrainedTokenizerFast(**kw)
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
        "gemma2": (Gemma2Config, Gemma2ForCausalLM),  # logit softcapping: the plain-forward scoring path
    }[arch]
    extra = {"head_dim": 8} if arch == "gemma2" else {}
    cfg = config_cls(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max_positions,
        tie_word_embeddings=tied, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, **extra,
    )
    model_cls(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def user_model(tmp_path_factory) -> Path:
    return user_checkpoint(tmp_path_factory.mktemp("user_model"))


@pytest.fixture
def user_env_dir(tmp_path, monkeypatch) -> Path:
    """A directory holding ``user_envs_<n>.py`` (a fresh module name per test) as the cwd."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the module search may append the cwd
    d = tmp_path / "project"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def _write_module(d: Path, name: str) -> Path:
    p = d / f"{name}.py"
    p.write_text(USER_ENV.replace("aem/UserGuess-v0", f"aem/{name.title().replace('_', '')}-v0"))
    return p


def _run(argv: list[str], cwd: Path, timeout: int = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": "", **(env or {})}  # the user's module must be found without help
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------- bring your own env
def test_module_colon_id_imports_the_users_module(user_env_dir):
    _write_module(user_env_dir, "user_envs_a")
    env = aem_envs.make("user_envs_a:UserEnvsA-v0", hi=20)  # the aem/ namespace is implied
    assert type(env).__module__ == "user_envs_a" and env.spec.id == "aem/UserEnvsA-v0" and env.hi == 20
    assert aem_envs.check_env("user_envs_a:aem/UserEnvsA-v0").ok
    vec = aem_envs.make_vec("user_envs_a:aem/UserEnvsA-v0", num_tasks=2, group_size=2, mode="threads")
    vec.close()


def test_module_colon_id_accepts_a_file_path_and_runs_it_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    f = _write_module(tmp_path, "user_envs_b")
    runs = tmp_path / "runs.txt"
    f.write_text(f.read_text() + f"\nwith open({str(runs)!r}, 'a') as _f:\n    _f.write('run\\n')\n")
    for _ in range(2):
        env = aem_envs.make(f"{f}:aem/UserEnvsB-v0")
    from aem_train.cli import import_env_module

    import_env_module(str(f))  # --import of the same file: not executed again
    assert runs.read_text() == "run\n" and env.spec.id == "aem/UserEnvsB-v0"


def test_module_errors_are_one_line_and_name_the_fix(user_env_dir):
    with pytest.raises(UnknownEnvError, match="PYTHONPATH"):
        aem_envs.make("no_such_module_xyz:aem/Foo-v0")
    _write_module(user_env_dir, "user_envs_c")
    with pytest.raises(UnknownEnvError, match="importing 'user_envs_c' did not register it"):
        aem_envs.make("user_envs_c:aem/Other-v0")
    with pytest.raises(UnknownEnvError, match="MODULE:ID"):
        aem_envs.make("aem/UnregisteredAnywhere-v0")
    with pytest.raises(UnknownEnvError, match="MODULE:ID"):
        aem_envs.make("user_envs_c:")


def test_unknown_constructor_argument_is_one_line():
    # `env.kwargs={rooms:1}` (no space) is YAML for the key 'rooms:1'
    with pytest.raises(ValueError, match=r"does not accept the argument 'rooms:1' \(in YAML write a space") as e:
        aem_envs.make("aem/Household-v0", **{"rooms:1": None})
    assert "receptacles_per_room" in str(e.value)  # the accepted arguments are listed
    with pytest.raises(ValueError, match="'colour'"):
        aem_envs.make("aem/Household-v0", colour="red")


def test_aem_train_trains_an_env_from_the_users_own_module(user_env_dir, user_model, tmp_path):
    """The whole journey through the console script: no packaging, no PYTHONPATH."""
    _write_module(user_env_dir, "user_envs_d")
    run_dir = tmp_path / "run"
    r = _run([str(BIN / "aem-train"), "train", "--model", str(user_model), "--run-dir", str(run_dir), "--json",
              "env.id=user_envs_d:aem/UserEnvsD-v0", "env.kwargs={hi: 8, max_turns: 2}",
              "train.iterations=1", "env.groups=1", "env.group_size=2", "train.eval_tasks=2",
              "rollout.max_new_tokens=4", "train.save_final_model=false"], cwd=user_env_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    final = json.loads(r.stdout.strip().splitlines()[-1])
    assert final["env"] == "user_envs_d:aem/UserEnvsD-v0" and final["iterations"] == 1
    turns = [json.loads(ln) for ln in (run_dir / "trajectories.jsonl").read_text().splitlines()]
    assert turns and all(t["task_id"].startswith("guess-train-") for t in turns)
    r = _run([str(BIN / "aem-envs"), "check", "user_envs_d:aem/UserEnvsD-v0", "--json"], cwd=user_env_dir)
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])["ok"] is True, r.stderr[-2000:]


# ---------------------------------------------------------------------------- bring your own model
def _load(path, **kw):
    from aem_train.policy import Policy

    return Policy.from_pretrained(path, device="cpu", reference="none", **kw)


def _hub_free(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))  # nothing cached
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


@pytest.mark.parametrize("case, needle", [
    ("missing", "no checkpoint at"),
    ("file", "is a file; point it at the checkpoint directory"),
    ("empty", "has no config.json"),
    ("config_only", "has a config.json but no weights"),
    ("no_tokenizer", "has no tokenizer files"),
    ("adapter", "holds a PEFT adapter"),
    ("run_dir", "the model of this run is in"),
])
def test_bad_local_model_path_is_one_line_naming_the_fix(tmp_path, user_model, case, needle):
    import shutil

    d = tmp_path / case
    if case == "file":
        d = user_model / "config.json"
    elif case != "missing":
        d.mkdir()
    if case == "config_only":
        shutil.copy(user_model / "config.json", d)
    if case == "no_tokenizer":
        for f in ("config.json", "model.safetensors"):
            shutil.copy(user_model / f, d)
    if case == "adapter":
        (d / "adapter_config.json").write_text("{}")
    if case == "run_dir":
        (d / "config.yaml").write_text("model: {}\n")
        shutil.copytree(user_model, d / "final_model")
    with pytest.raises(FileNotFoundError, match=needle) as e:
        _load(d)
    assert "\n" not in str(e.value)


def test_hub_id_that_is_not_cached_fails_fast_in_one_line(tmp_path, monkeypatch):
    """Without a network, transformers retried for ~50 s and then printed a 30-line traceback."""
    import time

    _hub_free(monkeypatch, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set"):
        _load("some-org/some-model")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="neither a local directory nor a model in the Hugging Face cache") as e:
        _load("aem-no-such-org-4f2c/no-such-model")  # no network: unreachable; online: no such model
    assert time.perf_counter() - t0 < 20 and "\n" not in str(e.value) and "--local-dir" in str(e.value)


def test_cli_reports_an_unavailable_hub_id_in_one_line(tmp_path):
    r = _run([str(BIN / "aem-train"), "train", "--model", "aem-no-such-org-4f2c/no-such-model",
              "--run-dir", str(tmp_path / "run"), "train.iterations=1"],
             cwd=tmp_path, env={"HF_HUB_CACHE": str(tmp_path / "hub-cache")}, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: 'aem-no-such-org-4f2c/no-such-model' is neither")


def test_tokenizer_without_chat_template_fails_at_load_naming_the_fix(tmp_path):
    d = user_checkpoint(tmp_path / "m", chat_template=None)
    with pytest.raises(ValueError, match="no chat template.*tokenizer.chat_template"):
        _load(d)


def test_template_that_refuses_a_system_message_gets_it_in_the_first_user_turn(tmp_path):
    """Gemma's templates raise "System role not supported"; every aem prompt has a system message."""
    pol = _load(user_checkpoint(tmp_path / "m", chat_template=NO_SYSTEM_TEMPLATE))
    msgs = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "OBS"},
            {"role": "assistant", "content": "A"}, {"role": "user", "content": "OBS2"}]
    assert pol.prompt_text(msgs) == (
        "<start_of_turn>user\nSYS\n\nOBS<end_of_turn>\n<start_of_turn>assistant\nA<end_of_turn>\n"
        "<start_of_turn>user\nOBS2<end_of_turn>\n<start_of_turn>model\n"
    )
    plain = _load(user_checkpoint(tmp_path / "m2"))  # a template that takes system messages keeps them
    assert plain.prompt_text(msgs).startswith("<|im_start|>system\nSYS<|im_end|>")


def test_generation_stops_at_the_chat_templates_turn_end(user_model):
    """EOS '</s>' but ChatML turns end with '<|im_end|>' (a base model's layout): sampling stops there."""
    from aem_train.policy import GenerationSettings

    pol = _load(user_model)
    im_end = pol.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert pol.eos_token_id != im_end and pol.stop_token_ids == (pol.eos_token_id, im_end)

    def favour_im_end(_module, _inputs, logits):
        bonus = logits.new_zeros(logits.shape[-1])
        bonus[im_end] = 100.0
        return logits + bonus

    pol.model.get_output_embeddings().register_forward_hook(favour_im_end)
    prompt = pol.encode_prompt([{"role": "user", "content": "look"}])
    assert pol.generate([prompt], GenerationSettings(max_new_tokens=5, greedy=True)) == [[im_end]]


def test_tokens_added_without_resizing_the_embeddings_name_the_fix(tmp_path):
    """Adding <action> tags to a tokenizer and forgetting resize_token_embeddings used to end in
    "IndexError: index out of range in self" from inside the model's forward."""
    from transformers import AutoTokenizer

    d = user_checkpoint(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(d)
    tok.add_tokens(["<action>", "</action>"])
    tok.save_pretrained(d)
    pol = _load(d)
    assert pol.encode_prompt([{"role": "user", "content": "look"}])  # ids inside the embedding: fine
    with pytest.raises(ValueError, match=r"model.resize_token_embeddings\(len\(tokenizer\)\)"):
        pol.encode_prompt([{"role": "user", "content": "reply <action>look</action>"}])
    with pytest.raises(ValueError, match="embedding rows"):
        pol.encode_response("<action>look</action>")


@pytest.mark.parametrize("name, expected", [("bf16", "bfloat16"), ("fp32", "float32"), ("float32", "float32")])
def test_model_dtype_takes_the_usual_short_names(user_model, name, expected):
    import torch

    pol = _load(user_model, dtype=name)
    assert next(pol.model.parameters()).dtype == getattr(torch, expected)


@pytest.mark.parametrize("name", ["int8", "bfloat", "float64x"])
def test_unknown_model_dtype_is_one_line(user_model, name):
    with pytest.raises(ValueError, match="is not one of auto, float32, bfloat16, float16"):
        _load(user_model, dtype=name)


@pytest.mark.parametrize("arch, ckpt_kw, overrides", [
    ("qwen2", {"tied": False, "pad": False}, ["model.lora=true"]),
    ("llama", {}, ["algo.estimator=gae"]),
    ("gemma2", {"chat_template": NO_SYSTEM_TEMPLATE}, ["model.dtype=bf16", "model.lora=true"]),
    ("llama", {}, ["ppo.kl_coef=0.05", "algo.modulation=aem"]),
], ids=["qwen2-untied-nopad-lora", "llama-gae", "gemma2-nosystem-bf16-lora", "llama-kl-aem"])
def test_user_checkpoints_train(tmp_path, arch, ckpt_kw, overrides):
    """Two iterations on Household from a user's checkpoint; the first update's ratio is exactly 1
    (the rollout's scoring and the training forward agree for every one of these layouts)."""
    from aem_train.config import load
    from aem_train.trainer import train

    d = user_checkpoint(tmp_path / "m", arch=arch, **ckpt_kw)
    cfg = load(None, [
        f"model.path={d}", f"train.run_dir={tmp_path / 'run'}", "train.iterations=2", "train.eval_tasks=2",
        "train.eval_every=2", "env.groups=2", "env.group_size=2", "rollout.max_new_tokens=6",
        "env.kwargs={rooms: 1, max_turns: 2}", "train.save_final_model=false", "train.threads=1", *overrides,
    ])
    final = train(cfg, resume=False, progress=False)
    assert final["iterations"] == 2 and final["eval/success_rate"] is not None
    recs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in recs if r["iteration"] == 1)
    assert abs(first["ppo/approx_kl"]) < 1e-5 and first["ppo/clip_frac"] == 0.0, first
    assert all(np.isfinite(r["ppo/loss"]) for r in recs if "ppo/loss" in r)


def test_a_users_tokenizer_encodes_as_saved_whatever_the_architecture(tmp_path):
    """transformers 5 loads a generic tokenizer saved next to a Qwen2 config as Qwen2Tokenizer,
    which re-tokenizes differently from the tokenizer.json the user trained and saved."""
    from tokenizers import Tokenizer

    d = user_checkpoint(tmp_path / "m", arch="qwen2", pad=False)
    pol = _load(d)
    text = "You are in the middle of a room. <action>go to fridge 1</action>  x\n\n  y"
    assert pol.tokenizer(text, add_special_tokens=False)["input_ids"] == Tokenizer.from_file(str(d / "tokenizer.json")).encode(
        text, add_special_tokens=False).ids
    assert len(pol.tokenizer) == pol.model.get_input_embeddings().num_embeddings  # no token added on load


def test_a_cached_hub_id_loads_without_a_network(tmp_path, user_model):
    """A hub id already in the Hugging Face cache (the paper preset's Qwen2.5, say) loads at once."""
    import shutil

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--aem-user--tiny-model"
    shutil.copytree(user_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = ("from aem_train.policy import Policy; p = Policy.from_pretrained('aem-user/tiny-model', device='cpu', "
            "reference='none'); print('vocab', len(p.tokenizer))")
    # Any request goes to a closed local port: it fails, retried for ~25 s, and says so on stderr.
    r = _run([sys.executable, "-c", code], cwd=tmp_path, timeout=90,
             env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert r.returncode == 0 and "vocab" in r.stdout, r.stderr[-2000:]
    assert "while requesting" not in r.stderr and "Retrying" not in r.stderr, r.stderr[-2000:]


def test_action_tags_added_as_special_tokens_reach_the_env(tmp_path):
    """decode_response skipped special tokens, so tags added with add_special_tokens vanished and
    the env saw 'look' for '<action>look</action>': every action invalid, silently."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = user_checkpoint(tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(d)
    tok.add_special_tokens({"additional_special_tokens": ["<action>", "</action>"]})
    model = AutoModelForCausalLM.from_pretrained(d)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    pol = _load(d)
    im_end = pol.tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = pol.tokenizer("<action>look</action>", add_special_tokens=False)["input_ids"]
    assert pol.decode_response(ids + [pol.eos_token_id]) == "<action>look</action>"
    assert pol.decode_response(ids + [im_end]) == "<action>look</action>"  # the template's turn end
    assert pol.decode_response(ids) == "<action>look</action>"  # cut by max_new_tokens: nothing to drop
    env = aem_envs.make("aem/Household-v0")
    env.reset(seed=0)
    assert env.step(pol.decode_response(ids + [pol.eos_token_id]))[4]["action_valid"]


def test_top_level_help_says_how_to_bring_a_model_and_an_env():
    from aem_train.cli import build_parser

    text = build_parser().format_help()
    assert "--model DIR" in text and "save_pretrained" in text and "env.id=MODULE:ID" in text and "--import" in text


def test_a_demonstration_ends_the_way_the_chat_template_ends_a_turn(user_model):
    """EOS '</s>', ChatML turns end with '<|im_end|>': SFT targets end with '<|im_end|>', exactly the
    tokens the template writes for that assistant turn (they ended with '</s>')."""
    pol = _load(user_model)
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "look around"}]
    text = "<action>look</action>"
    rendered = pol.tokenizer.apply_chat_template([*msgs, {"role": "assistant", "content": text}], tokenize=False)
    full = pol.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    demo = pol.encode_prompt(msgs) + pol.encode_response(text)
    assert full[: len(demo)] == demo and pol.turn_end_id == pol.tokenizer.convert_tokens_to_ids("<|im_end|>")

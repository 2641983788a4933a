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
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[arch]
    cfg = config_cls(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max_positions,
        tie_word_embeddings=tied, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
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


def _run(argv: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ""}  # the user's module must be found without help
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
    f.write_text(f.read_text() + "\nimport builtins\nbuiltins.user_envs_b_runs = getattr(builtins, 'user_envs_b_runs', 0) + 1\n")
    import builtins

    for _ in range(2):
        env = aem_envs.make(f"{f}:aem/UserEnvsB-v0")
    from aem_train.cli import import_env_module

    import_env_module(str(f))  # --import of the same file: not executed again
    assert builtins.user_envs_b_runs == 1 and env.spec.id == "aem/UserEnvsB-v0"


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

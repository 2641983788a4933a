"""Worst-case rows: the prompt limit the rollout enforces and the start-up preflight it sizes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aem_envs
from aem_envs.chat import ChatView, chat_messages
from aem_train.config import ConfigError, from_dict
from aem_train.policy import GenerationSettings, Policy
from aem_train.preflight import PreflightResult, preflight
from aem_train.rollout import PromptTooLong, RolloutConfig, collect, fit_prompt, prompt_limit
from aem_train.trainer import ValueHead, _hidden_size, train


@pytest.fixture(scope="module")
def model_dir(household_ckpt) -> str:
    return household_ckpt


@pytest.fixture(scope="module")
def policy(model_dir) -> Policy:
    torch.set_num_threads(2)
    return Policy.from_pretrained(model_dir, device="cpu", reference="none")


def _view(turns: int, obs_words: int = 5) -> ChatView:
    v = ChatView(system_prompt="You act in a house.", window=3)
    v.reset("put a mug in the sink", "You are in the kitchen. " + "a shelf " * obs_words)
    for t in range(turns):
        v.record(f"<action>look {t}</action>", f"Turn {t}: you see " + "a cup " * obs_words)
    return v


# ---------------------------------------------------------------------- prompt limit
def test_prompt_limit_defaults_to_the_models_positions_and_checks_explicit_limits(policy):
    positions = policy.model.config.max_position_embeddings
    cfg = RolloutConfig(GenerationSettings(max_new_tokens=24))
    assert prompt_limit(policy, cfg) == positions - 24
    assert prompt_limit(policy, RolloutConfig(GenerationSettings(max_new_tokens=24), max_prompt_tokens=300)) == 300
    with pytest.raises(ValueError, match="lower rollout.max_prompt_tokens to <= 1000"):
        prompt_limit(policy, RolloutConfig(GenerationSettings(max_new_tokens=24), max_prompt_tokens=positions))
    with pytest.raises(ValueError, match="lower rollout.max_new_tokens"):
        prompt_limit(policy, RolloutConfig(GenerationSettings(max_new_tokens=positions)))
    with pytest.raises(ValueError, match="prompt_overflow"):
        RolloutConfig(prompt_overflow="left")


def test_fit_prompt_drops_the_oldest_turns_first_then_cuts_the_middle(policy):
    v = _view(turns=3)
    full = policy.encode_prompt(v.messages())
    assert fit_prompt(policy, v, len(full))[0] == full and not fit_prompt(policy, v, len(full))[1]
    # just too long for the whole window: the oldest of the 3 kept turns goes, nothing else
    two = policy.encode_prompt(chat_messages(v.system_prompt, v.instruction, v.history, v.observation, 2))
    ids, cut = fit_prompt(policy, v, len(full) - 1)
    assert cut and ids == two and len(two) < len(full)
    # shorter than the prompt without any history: head and tail kept, the middle cut
    bare = policy.encode_prompt(chat_messages(v.system_prompt, v.instruction, v.history, v.observation, 0))
    limit = len(bare) - 10
    ids, cut = fit_prompt(policy, v, limit)
    assert cut and len(ids) == limit
    assert ids[: limit // 2] == bare[: limit // 2] and ids[limit // 2 :] == bare[-(limit - limit // 2) :]
    # the opened assistant turn survives, so the model still answers as the assistant
    opener = policy.tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]
    assert ids[-len(opener) :] == opener
    with pytest.raises(PromptTooLong, match=r"max_prompt_tokens=20; raise it .*env.window.*prompt_overflow=truncate"):
        fit_prompt(policy, v, 20, "error")


def test_collect_fits_prompts_to_the_limit_and_counts_them(policy):
    kw = {"max_turns": 4}
    gen = GenerationSettings(max_new_tokens=6, temperature=1.0)
    with aem_envs.make_vec("aem/Household-v0", 2, 2, **kw) as venv:
        free = collect(policy, venv, RolloutConfig(gen, window=2), seed=3)
    longest = max(len(r.prompt_ids) for r in free.rows)
    limit = longest - 30
    with aem_envs.make_vec("aem/Household-v0", 2, 2, **kw) as venv:
        res = collect(policy, venv, RolloutConfig(gen, window=2, max_prompt_tokens=limit), seed=3)
    assert max(len(r.prompt_ids) for r in res.rows) <= limit
    assert res.stats.truncated_prompts == sum(len(r.prompt_ids) > limit for r in free.rows) > 0
    with aem_envs.make_vec("aem/Household-v0", 2, 2, **kw) as venv:
        with pytest.raises(PromptTooLong):
            collect(policy, venv, RolloutConfig(gen, window=2, max_prompt_tokens=limit, prompt_overflow="error"), seed=3)


def test_config_validates_the_new_keys():
    with pytest.raises(ConfigError, match="prompt_overflow"):
        from_dict({"rollout": {"prompt_overflow": "left"}})
    with pytest.raises(ConfigError, match="train.preflight"):
        from_dict({"train": {"preflight": "yes"}})
    with pytest.raises(ConfigError, match="max_prompt_tokens must be >= 0"):
        from_dict({"rollout": {"max_prompt_tokens": -1}})


# ---------------------------------------------------------------------- preflight
def test_preflight_runs_every_pass_at_the_worst_case_and_changes_nothing(policy):
    head = ValueHead(_hidden_size(policy))
    params = [p for p in policy.model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params)
    before = [p.detach().clone() for p in params]
    rng = torch.get_rng_state()
    res = preflight(policy, prompt_tokens=200, response_tokens=8, rollout_rows=4, score_max_tokens=2048,
                    token_budget=1024, temperature=0.7, optimizer=opt, value_head=head)
    assert isinstance(res, PreflightResult)
    assert (res.row_tokens, res.generate_rows, res.score_rows, res.update_rows) == (208, 4, 2048 // 208, 1024 // 208)
    assert res.peak_memory_mb > 0 and res.seconds > 0
    assert all(torch.equal(a, p) for a, p in zip(before, params))
    assert all(p.grad is None for p in params) and not opt.state
    assert torch.equal(rng, torch.get_rng_state())  # no random number drawn
    m = res.metrics()
    assert m["preflight/row_tokens"] == 208 and "perf/preflight_seconds" in m
    # a row longer than the budget is packed alone, as the update does
    assert preflight(policy, prompt_tokens=300, response_tokens=8, rollout_rows=1, score_max_tokens=100,
                     token_budget=100, temperature=1.0, optimizer=opt).update_rows == 1


def test_out_of_memory_becomes_one_line_naming_the_settings(model_dir):
    # A real allocation failure: the address space is capped just above what the loaded model uses.
    code = textwrap.dedent(f"""
        import resource, torch
        from aem_train.policy import Policy
        from aem_train.preflight import preflight, PreflightError
        pol = Policy.from_pretrained({model_dir!r}, device="cpu", reference="none")
        opt = torch.optim.AdamW([p for p in pol.model.parameters() if p.requires_grad])
        vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 300 * 2**20, resource.RLIM_INFINITY))
        try:
            preflight(pol, prompt_tokens=1000, response_tokens=24, rollout_rows=2, score_max_tokens=2048,
                      token_budget=200_000, temperature=1.0, optimizer=opt)
        except PreflightError as e:
            print("ERROR:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("ERROR:")]
    assert line, out.stdout + out.stderr
    msg = line[0]
    assert "update pass" in msg and "1024 tokens" in msg and "ppo.token_budget (now 200000)" in msg
    assert "train.preflight=never" in msg and "\n" not in msg


def _cfg(model: str, run_dir: Path, preflight_mode: str):
    return from_dict({
        "model": {"path": model},
        "env": {"id": "aem/Household-v0", "groups": 2, "group_size": 2, "window": 1, "kwargs": {"max_turns": 3}},
        "rollout": {"max_new_tokens": 6, "max_prompt_tokens": 160},
        "ppo": {"lr": 1e-3, "entropy_coef": 0.01},
        "train": {"iterations": 2, "eval_every": 2, "eval_tasks": 2, "run_dir": str(run_dir),
                  "preflight": preflight_mode, "save_final_model": False},
    })


def test_a_run_with_the_preflight_is_the_same_run(model_dir, tmp_path):
    train(_cfg(model_dir, tmp_path / "on", "always"), progress=False)
    train(_cfg(model_dir, tmp_path / "off", "never"), progress=False)

    def recs(d):
        return [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]

    on, off = recs(tmp_path / "on"), recs(tmp_path / "off")
    assert on[0]["preflight/row_tokens"] == 166 and on[0]["preflight/generate_rows"] == 4 and on[0]["preflight/update_rows"] == 8192 // 166
    assert "preflight/row_tokens" not in off[0]

    def same(r):
        return {k: v for k, v in r.items() if not k.startswith(("perf/", "preflight/")) and k not in ("time_s", "eval/seconds")}

    assert [same(r) for r in on] == [same(r) for r in off]
    a = load_file(str(tmp_path / "on" / "checkpoints" / "latest" / "trainable.safetensors"))
    b = load_file(str(tmp_path / "off" / "checkpoints" / "latest" / "trainable.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.isfinite(on[-1]["train/truncated_prompts"])


def test_value_pass_packs_prompts_by_tokens_and_runs_the_decoder_alone(policy, monkeypatch):
    import aem_train.trainer as trainer_mod

    head = ValueHead(_hidden_size(policy))
    torch.nn.init.normal_(head.linear.weight, std=0.5)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 500, size=int(n)).tolist() for n in rng.integers(5, 60, size=9)]
    whole = head.values(policy, prompts, max_tokens=10_000)
    chunked = head.values(policy, prompts, max_tokens=120)  # ~2 prompts per chunk
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
    assert whole.std() > 0
    # the decoder-only path gives the values of the full model's last hidden state
    monkeypatch.setattr(trainer_mod, "_decoder_and_head", lambda model: None)
    np.testing.assert_allclose(head.values(policy, prompts, max_tokens=10_000), whole, rtol=1e-5, atol=1e-6)

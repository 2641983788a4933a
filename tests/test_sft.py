"""SFT warm start: demonstrations, response-only loss, loss decrease, checkpoint round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aem_train.cli import main as cli_main
from aem_train.policy import LoraSettings, Policy
from aem_train.sft import Demo, SFTConfig, demonstrations, sft_loss, train_sft

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
GUESS = str(ROOT / "examples" / "custom_env.py")


@pytest.fixture(scope="module")
def ckpt(guess_ckpt) -> Path:
    return guess_ckpt


def test_demonstrations_are_oracle_labelled_chat_rows(ckpt):
    pol = Policy.from_pretrained(ckpt, reference="none")
    demos, st = demonstrations(pol, SFTConfig("aem/GuessNumber-v0", episodes=6, window=1))
    assert st.episodes == 6 and st.examples == len(demos) > 6 and st.oracle_success_rate == 1.0
    for d in demos:
        assert d.response_ids[-1] == pol.eos_token_id
        text = pol.decode_response(d.response_ids)
        assert text.startswith("<action>guess ") and text.endswith("</action>")
        assert pol.tokenizer.decode(d.prompt_ids).endswith("<|assistant|>\n")
    # The first demo of an episode is the binary search's first guess.
    assert pol.decode_response(demos[0].response_ids) == "<action>guess 50</action>"


def test_loss_counts_response_tokens_only(ckpt):
    pol = Policy.from_pretrained(ckpt, reference="none")
    d1 = Demo([5, 6, 7], [8, 9, pol.eos_token_id], "t")
    d2 = Demo([5, 6, 7, 10, 11, 12, 13], [8, 9, pol.eos_token_id], "t")
    # Changing only the prompt changes the loss through conditioning, never through a prompt
    # token's own likelihood: the loss equals the hand-computed response NLL.
    for d in (d1, d2):
        want = -pol.score([d.prompt_ids], [d.response_ids]).logprobs[0].mean()
        assert float(sft_loss(pol, [d]).detach()) == pytest.approx(float(want), abs=1e-5)


def test_sft_loss_decreases_and_checkpoint_reloads(ckpt, tmp_path):
    from transformers import AutoModelForCausalLM

    pol = Policy.from_pretrained(ckpt, reference="none")
    cfg = SFTConfig("aem/GuessNumber-v0", episodes=20, steps=25, batch_size=16, lr=3e-3, warmup_steps=3)
    res = train_sft(pol, cfg, progress=False)
    assert res.steps == 25 and res.cpu_seconds > 0
    first, last = np.mean(res.losses[:3]), np.mean(res.losses[-3:])
    assert last < 0.6 * first, (first, last)
    out = pol.save(tmp_path / "sft", metadata={"sft": res.as_dict()})
    reloaded = Policy.from_pretrained(out, reference="none")
    assert isinstance(reloaded.model, type(AutoModelForCausalLM.from_pretrained(out)))
    demos, _ = demonstrations(pol, SFTConfig("aem/GuessNumber-v0", episodes=2))
    p, r = [d.prompt_ids for d in demos], [d.response_ids for d in demos]
    for a, b in zip(pol.score(p, r).logprobs, reloaded.score(p, r).logprobs):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert json.loads((out / "aem_train.json").read_text())["sft"]["steps"] == 25


def test_sft_with_lora_moves_policy_not_reference(ckpt):
    pytest.importorskip("peft")
    pol = Policy.from_pretrained(ckpt, lora=LoraSettings(r=4, alpha=8))
    demos, st = demonstrations(pol, SFTConfig("aem/GuessNumber-v0", episodes=4))
    p, r = [d.prompt_ids for d in demos[:6]], [d.response_ids for d in demos[:6]]
    before = pol.score(p, r).logprobs
    train_sft(pol, SFTConfig("aem/GuessNumber-v0", steps=5, batch_size=8, lr=1e-2, warmup_steps=1),
              demos=demos, demo_stats=st, progress=False)
    after, ref = pol.score(p, r).logprobs, pol.score(p, r, reference=True).logprobs
    assert np.mean([a.mean() for a in after]) > np.mean([b.mean() for b in before])
    for b, x in zip(before, ref):
        np.testing.assert_allclose(x, b, atol=1e-5)


def test_executed_labels_include_noise(ckpt):
    pol = Policy.from_pretrained(ckpt, reference="none")
    # GuessNumber has no admissible list, so epsilon cannot act: labels equal the oracle's.
    d_or, _ = demonstrations(pol, SFTConfig("aem/GuessNumber-v0", episodes=3, epsilon=1.0, label="oracle"))
    d_ex, st = demonstrations(pol, SFTConfig("aem/GuessNumber-v0", episodes=3, epsilon=1.0, label="executed"))
    assert st.noisy_steps == 0 and [d.response_ids for d in d_or] == [d.response_ids for d in d_ex]
    with pytest.raises(ValueError, match="label"):
        SFTConfig("aem/GuessNumber-v0", label="random")  # type: ignore[arg-type]


def test_cli_init_model_sft_eval(tmp_path, capsys):
    base, out = tmp_path / "base", tmp_path / "sft"
    assert cli_main(["init-model", str(base), "--preset", "test", "--envs", "aem/GuessNumber-v0",
                     "--episodes", "20", "--import", GUESS, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["preset"] == "test"
    assert cli_main(["sft", str(base), str(out), "--env", "aem/GuessNumber-v0", "--episodes", "5",
                     "--steps", "3", "--batch-size", "8", "--eval-episodes", "2", "--no-progress", "-e", "max_turns=2",
                     "--import", GUESS, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["steps"] == 3 and figures["eval"]["episodes"] == 2
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    assert cli_main(["eval", str(out), "--env", "aem/GuessNumber-v0", "--episodes", "2", "-e", "max_turns=2",
                     "--import", GUESS, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["episodes"] == 2 and ev["split"] == "test" and ev["mean_turns"] <= 2


def test_invalid_noise_teaches_recovery_from_invalid_action_messages(ckpt):
    pol = Policy.from_pretrained(ckpt, reference="none")  # byte-level BPE: Household text encodes
    hh = dict(rooms=1, receptacles_per_room=6, distractors=3, max_turns=12)
    base = SFTConfig("aem/Household-v0", episodes=6, epsilon=0.0, window=1, env_kwargs=hh)
    clean, st0 = demonstrations(pol, base)
    assert st0.invalid_steps == 0 and st0.oracle_success_rate == 1.0
    assert not any("Invalid action" in pol.tokenizer.decode(d.prompt_ids) for d in clean)
    noisy, st = demonstrations(pol, SFTConfig(**{**base.__dict__, "invalid_prob": 0.3}))
    assert st.invalid_steps > 3 and st.noisy_steps == 0
    after = [d for d in noisy if "Invalid action" in pol.tokenizer.decode(d.prompt_ids)]
    assert len(after) >= st.invalid_steps - 1  # the state after each one is demonstrated (bar a last turn)
    # Labels stay the oracle's. An invalid action leaves the state as it was, so the expert's
    # answer after it is the one it gave just before: the demo teaches to go on with the plan.
    for i, d in enumerate(noisy):
        if "Invalid action" in pol.tokenizer.decode(d.prompt_ids).rsplit("<|user|>", 1)[-1]:
            assert d.response_ids == noisy[i - 1].response_ids
    with pytest.raises(ValueError, match="invalid_prob"):
        SFTConfig("aem/Household-v0", invalid_prob=1.5)

"""LM pretraining on env transcripts: the all-token loss, the documents, the CLI, the bench stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aem_train.cli import main as cli_main
from aem_train.policy import Policy
from aem_train.pretrain import PretrainConfig, parse_env_args, pretrain, transcripts
from aem_train.sft import Demo, sequence_loss

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]
GUESS = str(ROOT / "examples" / "custom_env.py")


def test_sequence_loss_is_the_causal_lm_loss_of_every_token(guess_ckpt):
    pol = Policy.from_pretrained(guess_ckpt, reference="none")
    eos = pol.eos_token_id
    short, long = Demo([5, 6, 7], [8, 9, eos], "t"), Demo([5, 6, 7, 10, 11, 12, 13], [8, 9, 14, eos], "t")
    with torch.no_grad():
        per_doc = []
        for d in (short, long):
            ids = torch.tensor([d.prompt_ids + d.response_ids])
            # transformers' own shifted cross-entropy over the unpadded sequence.
            want = pol.model(input_ids=ids, labels=ids).loss
            assert float(sequence_loss(pol, [d])) == pytest.approx(float(want), abs=1e-5)
            per_doc.append((float(want), ids.shape[1] - 1))
        # In a padded batch every real target counts once: the token-weighted mean of both.
        batch = float(sequence_loss(pol, [short, long]))
    want = sum(l * n for l, n in per_doc) / sum(n for _, n in per_doc)
    assert batch == pytest.approx(want, abs=1e-5)


def test_transcripts_are_executed_actions_on_train_tasks(guess_ckpt):
    import aem_envs

    pol = Policy.from_pretrained(guess_ckpt, reference="none")  # byte-level BPE: any text encodes
    hh = "aem/Household-v0"
    cfg = PretrainConfig([hh], env_kwargs={hh: {"max_turns": 6}}, episodes=5, random_action_prob=1.0, steps=1)
    docs, stats = transcripts(pol, cfg)
    st = stats[hh]
    assert st.episodes == 5 and st.examples == len(docs) == 30  # random play never finishes in 6 turns
    assert st.noisy_steps > 20 and st.oracle_success_rate == 0.0
    with aem_envs.make(hh) as env:
        assert {d.task_id for d in docs} <= set(env.task_ids("train"))
    texts = [pol.decode_response(d.response_ids) for d in docs]
    assert all(t.startswith("<action>") and t.endswith("</action>") for t in texts)
    assert len(set(texts)) > 10  # random admissible actions, not the expert's plan
    # Each prompt is the rollout's chat view: the executed action shows up in the next prompt.
    assert "<|assistant|>\n" + texts[0] in pol.tokenizer.decode(docs[1].prompt_ids)


def test_pretraining_lowers_the_loss_on_unseen_transcripts(guess_ckpt):
    pol = Policy.from_pretrained(guess_ckpt, reference="none")
    held = PretrainConfig(["aem/GuessNumber-v0"], episodes=6, seed=99, steps=1)
    held_docs, _ = transcripts(pol, held)
    with torch.no_grad():
        before = float(sequence_loss(pol, held_docs[:32]))
    cfg = PretrainConfig(["aem/GuessNumber-v0"], episodes=30, steps=30, batch_size=16, lr=3e-3, warmup_steps=3)
    res, stats = pretrain(pol, cfg, progress=False)
    assert res.steps == 30 and stats["aem/GuessNumber-v0"].examples > 30
    with torch.no_grad():
        after = float(sequence_loss(pol, held_docs[:32]))
    assert after < 0.5 * before, (before, after)
    assert np.mean(res.losses[-3:]) < 0.5 * np.mean(res.losses[:3])


def test_env_args_route_to_their_env():
    assert parse_env_args(["max_turns=5"], ["a/X-v0"]) == {"a/X-v0": {"max_turns": 5}}
    got = parse_env_args(["aem/Household-v0:rooms=1", "aem/WebShop-v0:max_turns=8", "aem/Household-v0:x=a:b"],
                         ["aem/Household-v0", "aem/WebShop-v0"])
    assert got == {"aem/Household-v0": {"rooms": 1, "x": "a:b"}, "aem/WebShop-v0": {"max_turns": 8}}
    with pytest.raises(ValueError, match="ambiguous"):
        parse_env_args(["rooms=1"], ["aem/Household-v0", "aem/WebShop-v0"])
    with pytest.raises(ValueError, match="key=value"):
        parse_env_args(["rooms"], ["aem/Household-v0"])
    with pytest.raises(ValueError, match="not among the envs"):
        PretrainConfig(["aem/Household-v0"], env_kwargs={"aem/WebShop-v0": {"max_turns": 8}})
    with pytest.raises(ValueError, match="no envs"):
        PretrainConfig([])


def test_cli_writes_a_checkpoint_with_its_figures(guess_ckpt, tmp_path, capsys):
    out = tmp_path / "pre"
    rc = cli_main(["pretrain", str(guess_ckpt), str(out), "--env", "aem/GuessNumber-v0", "-e", "max_turns=9",
                   "--episodes", "4", "--steps", "3", "--batch-size", "4", "--no-progress", "--json", "--import", GUESS])
    assert rc == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["steps"] == 3 and figures["config"]["env_kwargs"] == {"aem/GuessNumber-v0": {"max_turns": 9}}
    meta = json.loads((out / "aem_train.json").read_text())
    assert meta["pretrain"]["steps"] == 3
    Policy.from_pretrained(out, reference="none")  # an ordinary checkpoint
    rc = cli_main(["pretrain", str(guess_ckpt), str(out), "--env", "aem/GuessNumbr-v0", "--steps", "1"])
    assert rc == 2 and "GuessNumber" in capsys.readouterr().err

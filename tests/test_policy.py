"""Policy: init-model checkpoints, score() against a hand-done forward pass, generation, LoRA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aem_envs.chat import ChatView
from aem_train.policy import GenerationSettings, LoraSettings, Policy, build_response_batch
from aem_train.tiny import PRESETS

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def ckpt(guess_ckpt) -> Path:
    return guess_ckpt


@pytest.fixture(scope="module")
def policy(ckpt) -> Policy:
    return Policy.from_pretrained(ckpt, reference="none")


def _rows(policy: Policy, n: int = 5, seed: int = 0):
    """Prompts and responses of different lengths drawn from the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    V = len(policy.tokenizer)
    prompts = [torch.randint(5, V, (int(k),), generator=g).tolist() for k in torch.randint(3, 30, (n,), generator=g)]
    responses = [torch.randint(5, V, (int(k),), generator=g).tolist() for k in torch.randint(1, 9, (n,), generator=g)]
    return prompts, responses


def _hand_scores(model, prompt, response):
    """One unpadded full forward pass: log-softmax gather and full-vocabulary entropy."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    P, R = len(prompt), len(response)
    logp = F.log_softmax(logits[P - 1 : P - 1 + R], -1)
    tok = logp[torch.arange(R), torch.tensor(response)]
    ent = -(logp.exp() * logp).sum(-1)
    return tok.numpy(), ent.numpy()


def test_init_model_loads_with_plain_transformers(ckpt):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert (ckpt / "model.safetensors").is_file()
    assert model.config.hidden_size == PRESETS["test"].hidden_size
    assert model.config.num_hidden_layers == PRESETS["test"].num_layers
    assert len(tok) <= PRESETS["test"].vocab_size + 2
    view = ChatView(system_prompt="Play.", window=1)
    view.reset("Find the number.", "The secret is between 1 and 100.")
    view.record("<action>guess 50</action>", "50 is too high.")
    text = tok.apply_chat_template(view.messages(), tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|system|>\nPlay.<|end|>\n<|user|>\nTask: Find the number.")
    assert "<|assistant|>\n<action>guess 50</action><|end|>\n<|user|>\n50 is too high.<|end|>\n" in text
    assert text.endswith("<|assistant|>\n")
    # Env text is compact under the env-trained vocabulary, and the action tags are single tokens.
    ids = tok("<action>guess 50</action>", add_special_tokens=False)["input_ids"]
    assert len(ids) <= 5 and tok.decode(ids) == "<action>guess 50</action>"


def test_score_matches_hand_forward_on_padded_batch(policy):
    prompts, responses = _rows(policy, n=6)
    assert len({len(p) for p in prompts}) > 1 and len({len(r) for r in responses}) > 1
    out = policy.score(prompts, responses)
    for p, r, lp, ent in zip(prompts, responses, out.logprobs, out.entropies):
        want_lp, want_ent = _hand_scores(policy.model, p, r)
        assert lp.shape == (len(r),) and lp.dtype == np.float32
        np.testing.assert_allclose(lp, want_lp, atol=2e-5, rtol=0)
        np.testing.assert_allclose(ent, want_ent, atol=2e-5, rtol=0)
        assert np.all(ent > 0) and np.all(ent <= np.log(len(policy.tokenizer)) + 1e-4)


def test_score_at_a_temperature_is_the_tempered_softmax(policy):
    """Samples drawn at temperature T come from softmax(logits / T): scoring divides by T too."""
    prompts, responses = _rows(policy, n=4, seed=6)
    T = 0.7
    out = policy.score(prompts, responses, temperature=T)
    for p, r, lp, ent in zip(prompts, responses, out.logprobs, out.entropies):
        with torch.no_grad():
            logits = policy.model(input_ids=torch.tensor([p + r])).logits[0].float()
        logq = F.log_softmax(logits[len(p) - 1 : len(p) - 1 + len(r)] / T, -1)
        np.testing.assert_allclose(lp, logq[torch.arange(len(r)), torch.tensor(r)].numpy(), atol=2e-5, rtol=0)
        np.testing.assert_allclose(ent, -(logq.exp() * logq).sum(-1).numpy(), atol=2e-5, rtol=0)
    assert not np.allclose(np.concatenate(out.logprobs), np.concatenate(policy.score(prompts, responses).logprobs))
    with pytest.raises(ValueError, match="must be > 0"):
        policy.score(prompts, responses, temperature=0.0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_logprob_entropy_equals_whole_batch_values_and_gradients(temperature):
    """The memory-bounded pieces (checkpointed under autograd) change neither values nor grads."""
    from aem_train.policy import token_logprobs_and_entropy

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, 50, generator=g, dtype=torch.float64).float()
    targets = torch.randint(0, 50, (7, 5), generator=g)
    w1, w2 = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    out = []
    for chunk in (10**6, 500, 1):  # one piece; 2 rows of 5 x 50 per piece (a short last one); 1 row
        z = logits.clone().requires_grad_(True)
        lp, ent = token_logprobs_and_entropy(z, targets, temperature, chunk_elements=chunk)
        ((lp * w1).sum() + (ent * w2).sum()).backward()
        out.append((lp.detach(), ent.detach(), z.grad))
    for lp, ent, grad in out[1:]:
        torch.testing.assert_close(lp, out[0][0], atol=1e-6, rtol=0)
        torch.testing.assert_close(ent, out[0][1], atol=1e-6, rtol=0)
        torch.testing.assert_close(grad, out[0][2], atol=1e-6, rtol=0)


def test_head_in_pieces_equals_the_plain_forward_values_and_gradients(ckpt, monkeypatch):
    """Llama/Qwen models skip whole logits (decoder, then the head a few rows at a time,
    checkpointed); log-probs, entropies and every parameter's gradient match the plain forward."""
    import aem_train.policy as P

    pol = Policy.from_pretrained(ckpt, reference="none")
    assert P._decoder_and_head(pol.model) is not None  # the tiny model is a Llama: fast path
    prompts, responses = _rows(pol, n=6, seed=9)
    batch = build_response_batch(prompts, responses, pol.pad_token_id, "cpu")
    monkeypatch.setattr(P, "LOGIT_CHUNK_ELEMENTS", 1)  # one row per piece
    results = []
    for split in (True, False):
        if not split:
            monkeypatch.setattr(P, "_decoder_and_head", lambda model: None)
        pol.model.zero_grad(set_to_none=True)
        lp, ent = pol.forward_response(batch, temperature=0.8)
        (lp.sum() * 0.3 + ent.sum()).backward()
        grads = {n: q.grad.clone() for n, q in pol.model.named_parameters() if q.grad is not None}
        results.append((lp.detach(), ent.detach(), grads))
    (lp1, ent1, g1), (lp2, ent2, g2) = results
    torch.testing.assert_close(lp1, lp2, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent1, ent2, atol=1e-5, rtol=0)
    assert g1.keys() == g2.keys() and len(g1) == sum(1 for _ in pol.model.parameters())
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], atol=1e-5, rtol=1e-4)


def test_score_chunking_gives_same_results(policy):
    prompts, responses = _rows(policy, n=7, seed=1)
    whole = policy.score(prompts, responses, max_tokens=10**6)
    one_by_one = policy.score(prompts, responses, max_tokens=1)  # every row its own chunk
    mid = policy.score(prompts, responses, max_tokens=80)
    for other in (one_by_one, mid):
        for a, b in zip(whole.logprobs, other.logprobs):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
        for a, b in zip(whole.entropies, other.entropies):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_training_forward_equals_score_and_has_gradient(policy):
    prompts, responses = _rows(policy, n=4, seed=2)
    ref = policy.score(prompts, responses)
    batch = build_response_batch(prompts, responses, policy.pad_token_id)
    policy.model.train()
    try:
        lp, ent = policy.forward_response(batch)
    finally:
        policy.model.eval()
    assert lp.requires_grad
    for b, r in enumerate(responses):
        np.testing.assert_allclose(lp[b, : len(r)].detach().numpy(), ref.logprobs[b], atol=2e-5)
        assert torch.all(lp[b, len(r) :] == 0)  # pads carry nothing


def test_generate_stops_at_eos_and_greedy_is_deterministic(policy):
    prompts, _ = _rows(policy, n=5, seed=3)
    st = GenerationSettings(max_new_tokens=6, greedy=True)
    a, b = policy.generate(prompts, st), policy.generate(prompts, st)
    assert a == b
    for r in a:
        assert 1 <= len(r) <= 6
        assert policy.eos_token_id not in r[:-1]
    torch.manual_seed(0)
    s1 = policy.generate(prompts, GenerationSettings(max_new_tokens=6))
    torch.manual_seed(0)
    s2 = policy.generate(prompts, GenerationSettings(max_new_tokens=6))
    assert s1 == s2


@pytest.mark.parametrize("use_lora", [False, True])
def test_checkpoint_generation_defaults_never_change_sampling(ckpt, use_lora):
    """A checkpoint's generation_config (Qwen2.5-Instruct ships repetition_penalty=1.05, top_k=20,
    ...) must not leak into sampling: rollouts must sample the policy that scoring computes."""
    from transformers import GenerationConfig

    pol = Policy.from_pretrained(ckpt, reference="none", lora=LoraSettings(r=4) if use_lora else None)
    prompts, _ = _rows(pol, n=4, seed=8)
    greedy = GenerationSettings(max_new_tokens=6, greedy=True)
    clean_greedy = pol.generate(prompts, greedy)
    torch.manual_seed(1)
    clean_sampled = pol.generate(prompts, GenerationSettings(max_new_tokens=6))
    hf = pol.model.get_base_model() if use_lora else pol.model
    hf.generation_config = GenerationConfig(
        repetition_penalty=50.0, no_repeat_ngram_size=1, min_new_tokens=6, typical_p=0.2, min_p=0.5,
        suppress_tokens=[int(t) for t in clean_greedy[0]],
    )
    assert pol.generate(prompts, greedy) == clean_greedy
    torch.manual_seed(1)
    assert pol.generate(prompts, GenerationSettings(max_new_tokens=6)) == clean_sampled
    assert hf.generation_config.repetition_penalty == 50.0  # the checkpoint's own config is left as it was


def test_generation_stops_at_every_end_of_turn_id_of_the_checkpoint(ckpt):
    """A checkpoint whose generation config lists extra end-of-turn ids (Llama-3: <|eot_id|>)
    stops there too, and the response keeps that token as its last one."""
    pol = Policy.from_pretrained(ckpt, reference="none")
    prompts, _ = _rows(pol, n=6, seed=8)
    st = GenerationSettings(max_new_tokens=8)
    torch.manual_seed(3)
    clean = pol.generate(prompts, st)
    # A token some response samples later but not first: that response must end right after it.
    long = next(r for r in clean if len(r) >= 3 and r[1] != r[0] and pol.eos_token_id not in r[:2])
    stop = long[1]
    pol.model.generation_config.eos_token_id = [pol.eos_token_id, stop]
    pol2 = Policy(pol.model, pol.tokenizer)
    assert pol2.stop_token_ids == (pol.eos_token_id, stop)
    torch.manual_seed(3)
    after = pol2.generate(prompts, st)
    for b, a in zip(clean, after):
        cut = next((j + 1 for j, t in enumerate(b) if t in (stop, pol.eos_token_id)), len(b))
        assert a == b[:cut]
    assert after[clean.index(long)] == long[:2]


def test_generate_left_padding_equals_unbatched_greedy(policy):
    prompts, _ = _rows(policy, n=4, seed=4)
    st = GenerationSettings(max_new_tokens=5, greedy=True)
    batched = policy.generate(prompts, st)
    alone = [policy.generate([p], st)[0] for p in prompts]
    assert batched == alone


def test_generation_settings_reject_bad_values():
    for bad in ({"max_new_tokens": 0}, {"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ValueError, match="must be"):
            GenerationSettings(**bad)
    assert GenerationSettings(temperature=0.0, greedy=True).scoring_temperature == 1.0
    assert GenerationSettings(temperature=0.7).scoring_temperature == 0.7


def test_prompt_too_long_is_a_clear_error(policy):
    too_long = [[7] * policy.model.config.max_position_embeddings]
    with pytest.raises(ValueError, match="window"):
        policy.generate(too_long, GenerationSettings(max_new_tokens=4))


def test_lora_reference_is_adapter_disabled(ckpt, tmp_path):
    pytest.importorskip("peft")
    base = Policy.from_pretrained(ckpt, reference="none")
    lora = Policy.from_pretrained(ckpt, lora=LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    prompts, responses = _rows(base, n=3, seed=5)
    want = base.score(prompts, responses).logprobs
    # One optimiser step moves the adapter (lora_B starts at 0, so first LoRA == base).
    opt = torch.optim.SGD([p for p in lora.model.parameters() if p.requires_grad], lr=0.5)
    lp, _ = lora.forward_response(build_response_batch(prompts, responses, lora.pad_token_id))
    (-lp.sum()).backward()
    opt.step()
    moved = lora.score(prompts, responses).logprobs
    ref = lora.score(prompts, responses, reference=True).logprobs
    for w, m, r in zip(want, moved, ref):
        np.testing.assert_allclose(r, w, atol=1e-5)
        assert np.abs(m - w).max() > 1e-4
    # save() merges the adapter: the directory loads with plain transformers and scores the same.
    lora.save(tmp_path / "merged")
    reloaded = Policy.from_pretrained(tmp_path / "merged", reference="none")
    for m, r in zip(moved, reloaded.score(prompts, responses).logprobs):
        np.testing.assert_allclose(r, m, atol=1e-4)


def test_full_finetune_reference_is_a_frozen_copy(ckpt):
    pol = Policy.from_pretrained(ckpt, reference="cpu")
    assert pol.ref_model is not None and not any(p.requires_grad for p in pol.ref_model.parameters())
    prompts, responses = _rows(pol, n=3, seed=6)
    before = pol.score(prompts, responses).logprobs
    with torch.no_grad():
        for p in pol.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = pol.score(prompts, responses).logprobs
    ref = pol.score(prompts, responses, reference=True).logprobs
    for b, a, r in zip(before, after, ref):
        np.testing.assert_allclose(r, b, atol=1e-6)
        assert np.abs(a - b).max() > 1e-4


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="init-model"):
        Policy.from_pretrained(tmp_path / "nope")


def test_gradient_checkpointing_is_active_in_the_eval_mode_training_forward(ckpt):
    """The trainer keeps the model in eval mode (no dropout); checkpointing must still run.

    transformers only checkpoints a layer whose ``training`` flag is set, so without care
    ``gradient_checkpointing=True`` silently saved no memory at all.
    """
    plain = Policy.from_pretrained(ckpt, reference="none", gradient_checkpointing=False)
    pol = Policy.from_pretrained(ckpt, reference="none", gradient_checkpointing=True)
    pol.model.eval()  # as the trainer runs it
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in pol.model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert layers and all(m.gradient_checkpointing for m in layers)
    calls = {"n": 0}
    for layer in layers:
        inner = layer._gradient_checkpointing_func

        def counted(*a, _inner=inner, **k):
            calls["n"] += 1
            return _inner(*a, **k)

        layer._gradient_checkpointing_func = counted
    prompts, responses = _rows(pol, n=3, seed=7)
    batch = build_response_batch(prompts, responses, pol.pad_token_id)
    lp, ent = pol.forward_response(batch)
    assert calls["n"] == len(layers)
    assert not any(m.training for m in pol.model.modules())  # eval mode restored afterwards
    (lp.sum() + ent.sum()).backward()
    lp0, ent0 = plain.forward_response(batch)
    (lp0.sum() + ent0.sum()).backward()
    torch.testing.assert_close(lp, lp0, atol=1e-6, rtol=0)
    for (name, q), q0 in zip(pol.model.named_parameters(), plain.model.parameters()):
        torch.testing.assert_close(q.grad, q0.grad, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():  # scoring never checkpoints (nothing to replay)
        pol.forward_response(batch)
    assert calls["n"] == len(layers)

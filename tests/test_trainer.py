"""The PPO loop: determinism, exact resume, micro-batch equivalence, every estimator/modulation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from aem_train.config import ConfigError, from_dict, load
from aem_train.policy import Policy
from aem_train.trainer import ppo_update, train
from aem_train.rollout import RolloutConfig, collect
from aem_train.policy import GenerationSettings
import aem_envs


@pytest.fixture(scope="module")
def tiny_model(household_ckpt) -> str:
    return household_ckpt


def _cfg(model: str, run_dir: Path, **over):
    base = {
        "model": {"path": model},
        "env": {"id": "aem/Household-v0", "groups": 2, "group_size": 2, "window": 1, "kwargs": {"max_turns": 3}},
        "rollout": {"max_new_tokens": 6},
        # the entropy bonus gives a gradient even when every return in a group ties (a random
        # model fails every task), so the weights really move in these short runs
        "ppo": {"lr": 1e-3, "epochs": 2, "minibatches": 2, "entropy_coef": 0.01},
        "train": {"iterations": 4, "eval_every": 2, "eval_tasks": 2, "run_dir": str(run_dir), "checkpoint_every": 1},
    }
    cfg = from_dict(base)
    return _apply(cfg, over)


def _apply(cfg, over):
    from aem_train.config import replace

    return replace(cfg, **over) if over else cfg


def _metrics(run_dir: Path) -> list[dict]:
    out = []
    for ln in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(ln)
        out.append({k: v for k, v in rec.items() if not k.startswith("perf/") and k not in ("time_s", "eval/seconds")})
    return out


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "latest" / "trainable.safetensors"))


@pytest.fixture(scope="module")
def reference_run(tiny_model, tmp_path_factory) -> Path:
    """One uninterrupted 4-iteration run the other tests compare against."""
    d = tmp_path_factory.mktemp("ref") / "run"
    train(_cfg(tiny_model, d), progress=False)
    return d


def test_same_seed_same_run(tiny_model, reference_run, tmp_path):
    b = train(_cfg(tiny_model, tmp_path / "b"), progress=False)
    assert _metrics(reference_run) == _metrics(tmp_path / "b")
    wa, wb = _weights(reference_run), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((reference_run / "final.json").read_text())["eval/success_rate"] == b["eval/success_rate"]
    # the run directory holds everything a report needs
    d = reference_run
    for name in ("config.yaml", "metrics.jsonl", "trajectories.jsonl", "final.json", "final_model/config.json"):
        assert (d / name).exists(), name
    recs = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in recs] == [0, 1, 2, 3, 4]
    assert "eval/success_rate" in recs[0] and "eval/success_rate" in recs[2] and "eval/success_rate" in recs[4]
    assert all(r["alpha/mean"] == 1.0 and r["alpha/unchanged_share"] == 1.0 for r in recs[1:])  # modulation none
    assert all(0.0 <= r["train/uninformative_groups"] <= 1.0 and "sampling/rounds" not in r for r in recs[1:])
    traj = [json.loads(x) for x in (d / "trajectories.jsonl").read_text().splitlines()]
    assert {"iteration", "response", "base_adv", "alpha", "adv", "mean_entropy", "surprisal"} <= set(traj[0])
    assert not any(t["tampered"] for t in traj) and all(r["train/tampered"] == 0 for r in recs[1:])
    # the weights changed
    init = load_file(str(Path(tiny_model) / "model.safetensors"))
    assert any(not torch.equal(init[k], wa[k]) for k in wa if k in init)


def test_resume_is_bit_exact(tiny_model, reference_run, tmp_path):
    full = reference_run
    half = tmp_path / "half"
    train(_cfg(tiny_model, half, **{"train.iterations": 2}), progress=False)
    # continue the same run: same config except the iteration budget
    (half / "final.json").unlink()
    cfg = _cfg(tiny_model, half)
    (half / "config.yaml").unlink()
    cfg.save(half / "config.yaml")
    train(cfg, progress=False)
    assert _metrics(full) == _metrics(half)
    wf, wh = _weights(full), _weights(half)
    assert all(torch.equal(wf[k], wh[k]) for k in wf)


def test_resume_after_crash_truncates_logs(tiny_model, reference_run, tmp_path, monkeypatch):
    run = tmp_path / "crash"
    import aem_train.trainer as T

    calls = {"n": 0}
    real = T.ppo_update

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*a, **k)

    monkeypatch.setattr(T, "ppo_update", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_model, run), progress=False)
    monkeypatch.setattr(T, "ppo_update", real)
    assert not (run / "final.json").exists()
    train(_cfg(tiny_model, run), progress=False)
    assert _metrics(run) == _metrics(reference_run)
    assert all(torch.equal(a, b) for a, b in zip(_weights(run).values(), _weights(reference_run).values()))


@pytest.mark.parametrize(
    "over",
    [
        {"algo.modulation": "aem"},
        {"algo.modulation": "aem", "algo.range_guard": 0.0},
        {"algo.modulation": "aem", "algo.range_guard": 100.0},
        {"algo.modulation": "aem", "algo.scope": "trajectory", "algo.direction": "reversed", "algo.shuffle": True},
        {"algo.modulation": "empg"},
        {"algo.estimator": "rloo"},
        {"algo.estimator": "gigpo", "algo.modulation": "aem"},
        {"algo.estimator": "gae", "ppo.loss_agg": "trajectory-mean"},
        {"ppo.kl_coef": 0.05, "ppo.entropy_coef": 0.01, "ppo.dual_clip": 3.0, "ppo.loss_agg": "response-mean"},
        {"model.lora": True, "model.lora_r": 4, "ppo.kl_coef": 0.05},
        # GSPO: one ratio per response, response-mean, the paper's clip ranges
        {"ppo.ratio_level": "sequence", "ppo.loss_agg": "response-mean", "ppo.clip_low": 3e-4, "ppo.clip_high": 4e-4},
    ],
)
def test_estimators_and_modulations_run(tiny_model, tmp_path, over):
    cfg = _cfg(tiny_model, tmp_path / "r", **{"train.iterations": 1, "train.eval_every": 1, **over})
    final = train(cfg, progress=False)
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    r1 = recs[1]
    assert np.isfinite(r1["ppo/pg_loss"]) and r1["ppo/grad_norm"] >= 0
    if over.get("algo.modulation") == "aem" and not over.get("algo.shuffle"):
        assert r1["alpha/min"] <= 1.0 <= r1["alpha/max"]
    if "algo.range_guard" in over:
        # range_guard=0 guards no scope (alpha = 1 then only by coincidence); a guard wider than
        # any entropy span guards every scope and leaves every advantage unchanged
        assert (r1["alpha/unchanged_share"] < 0.5) == (over["algo.range_guard"] == 0.0)
        assert (r1["alpha/unchanged_share"] == 1.0) == (over["algo.range_guard"] > 0.0)
    if over.get("algo.estimator") == "gae":
        assert "ppo/vf_loss" in r1
    if over.get("ppo.kl_coef"):
        assert r1["ppo/kl_ref"] >= 0
    assert final["iterations"] == 1
    assert final["loss_agg"] == over.get("ppo.loss_agg", "token-mean")  # which aggregation ran is recorded
    assert final["ratio_level"] == over.get("ppo.ratio_level", "token")


@pytest.mark.parametrize("agg", ["token-mean", "response-mean", "trajectory-mean"])
def test_microbatching_matches_one_batch(tiny_model, agg):
    """Gradient accumulation over token-budget micro-batches equals one big batch."""
    torch.manual_seed(0)
    cfg = _cfg(tiny_model, Path("/tmp/unused"), **{"ppo.loss_agg": agg, "ppo.epochs": 1, "ppo.minibatches": 1})
    vec = aem_envs.make_vec("aem/Household-v0", 2, 2, max_turns=3)
    pol = Policy.from_pretrained(tiny_model, reference="none")
    res = collect(pol, vec, RolloutConfig(GenerationSettings(max_new_tokens=6), window=1), seed=3)
    vec.close()
    rows = res.rows
    if agg == "trajectory-mean":  # trajectories of 1, 2 and the rest rows: unequal row weights
        for i, r in enumerate(rows):
            r.traj_id = 0 if i == 0 else 1 if i < 3 else 2
    adv = np.linspace(-1, 1, len(rows))
    grads = []
    for budget in (10**6, 40):
        p = Policy.from_pretrained(tiny_model, reference="none")
        opt = torch.optim.SGD(p.model.parameters(), lr=0.0)
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        c = _apply(cfg, {"ppo.token_budget": budget, "ppo.max_grad_norm": 1e9})
        # capture the accumulated gradient before the (zero-lr) step
        ppo_update(p, opt, sch, rows, adv, c, np.random.default_rng(0))
        grads.append(torch.cat([q.grad.flatten() for q in p.model.parameters() if q.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_old_logprobs_are_the_sampling_temperatures_and_the_first_ratio_is_one(tiny_model):
    """Rows sampled at T=0.5 carry log-probs of softmax(logits/0.5), and the PPO forward scores
    at the same T: before any update the ratio is exactly 1 (approx KL 0, nothing clipped)."""
    vec = aem_envs.make_vec("aem/Household-v0", 2, 2, max_turns=2)
    pol = Policy.from_pretrained(tiny_model, reference="none")
    torch.manual_seed(0)
    rows = collect(pol, vec, RolloutConfig(GenerationSettings(max_new_tokens=5, temperature=0.5), window=1), seed=4).rows
    vec.close()
    again = pol.score([r.prompt_ids for r in rows], [r.response_ids for r in rows], temperature=0.5)
    for r, lp in zip(rows, again.logprobs):
        np.testing.assert_allclose(r.old_logprobs, lp, atol=1e-5)
    cfg = _cfg(tiny_model, Path("/tmp/unused"), **{
        "rollout.temperature": 0.5, "ppo.epochs": 1, "ppo.minibatches": 1, "ppo.kl_coef": 0.0,
    })
    opt = torch.optim.SGD([q for q in pol.model.parameters() if q.requires_grad], lr=0.0)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    out = ppo_update(pol, opt, sch, rows, np.linspace(-1, 1, len(rows)), cfg, np.random.default_rng(0))
    assert abs(out["ppo/approx_kl"]) < 1e-6 and out["ppo/clip_frac"] == 0.0


def test_config_errors():
    with pytest.raises(ConfigError, match="did you mean modulation"):
        load(None, ["algo.modulaton=aem"])
    with pytest.raises(ConfigError, match="set algo.modulation=aem"):
        load(None, ["algo.direction=reversed"])
    with pytest.raises(ConfigError, match="group_size >= 2"):
        load(None, ["env.group_size=1"])
    with pytest.raises(ConfigError, match="ppo.ratio_level='seq' is not one of token, sequence"):
        load(None, ["ppo.ratio_level=seq"])
    with pytest.raises(ConfigError, match="not found"):
        load("/no/such.yaml")


def test_aem_open_choices_are_config_options_and_old_configs_still_match():
    from aem_train.config import same_config

    cfg = load(None, ["algo.modulation=aem", "algo.mean_over=tokens", "algo.alpha_min=0.5",
                      "algo.alpha_max=1.5", "algo.renormalize=scale"])
    assert (cfg.algo.mean_over, cfg.algo.alpha_min, cfg.algo.alpha_max, cfg.algo.renormalize) == ("tokens", 0.5, 1.5, "scale")
    with pytest.raises(ConfigError, match="AEM options"):
        load(None, ["algo.alpha_max=1.5"])  # modulation none
    with pytest.raises(ConfigError, match="renormalize"):
        load(None, ["algo.renormalize=scale"])
    with pytest.raises(ConfigError, match="alpha_min <= alpha_max"):
        load(None, ["algo.modulation=aem", "algo.alpha_min=2", "algo.alpha_max=1"])
    with pytest.raises(ConfigError, match="not one of"):
        load(None, ["algo.modulation=aem", "algo.mean_over=words"])
    # A run's config.yaml written before a key existed is the same config (the key at its default).
    base = load(None, ["algo.modulation=aem"])
    saved = base.to_dict()
    del saved["algo"]["renormalize"], saved["algo"]["alpha_max"]
    assert same_config(saved, base)
    assert not same_config(saved, load(None, ["algo.modulation=aem", "algo.lam=2"]))
    assert same_config(saved, load(None, ["algo.modulation=aem", "train.run_dir=elsewhere"]), ignore=("train.run_dir",))
    saved["algo"]["no_such_key"] = 1
    assert not same_config(saved, base)


def test_aem_options_reach_the_modulation_in_a_run(tiny_model, tmp_path, monkeypatch):
    import aem_train.trainer as T

    seen = []
    real = T.apply_modulation

    def spy(*a, **k):
        adv, alpha = real(*a, **k)
        seen.append((k, np.asarray(alpha)))
        return adv, alpha

    monkeypatch.setattr(T, "apply_modulation", spy)
    over = {"train.iterations": 1, "train.eval_every": 1, "train.save_final_model": False, "algo.modulation": "aem",
            "algo.range_guard": 0.0, "algo.alpha_min": 0.9, "algo.alpha_max": 1.1, "algo.mean_over": "tokens",
            "algo.renormalize": "standardize"}
    train(_cfg(tiny_model, tmp_path / "r", **over), progress=False)
    (kw, alpha), = seen
    assert kw["clip"] == (0.9, 1.1) and kw["mean_over"] == "tokens" and kw["renormalize"] == "standardize"
    assert alpha.min() >= 0.9 - 1e-12 and alpha.max() <= 1.1 + 1e-12 and alpha.std() > 0


def test_missing_model_is_one_line_error(tmp_path):
    cfg = _cfg(str(tmp_path / "nope" / "model"), tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="init-model"):
        train(cfg, progress=False)


def test_resume_refuses_a_different_config(tiny_model, tmp_path, monkeypatch):
    import aem_train.trainer as T

    run = tmp_path / "r"
    real = T.ppo_update
    calls = {"n": 0}

    def stop_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(*a, **k)

    monkeypatch.setattr(T, "ppo_update", stop_second)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_model, run, **{"train.eval_every": 4}), progress=False)
    monkeypatch.setattr(T, "ppo_update", real)
    with pytest.raises(ValueError, match="different config"):
        train(_cfg(tiny_model, run, **{"train.eval_every": 4, "ppo.lr": 5e-4}), progress=False)
    # the same run with its paths written another way (relative run dir, model path with "/.") resumes
    monkeypatch.chdir(tmp_path)
    train(_cfg(tiny_model + "/.", Path("r"), **{"train.eval_every": 4}), progress=False)
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in recs] == [0, 1, 2, 3, 4]


def test_epochs_run_counts_epochs_and_target_kl_stops_early(tiny_model):
    """``ppo/epochs_run`` is the number of epochs that ran (was averaged over 1..E: (E+1)/2)."""
    vec = aem_envs.make_vec("aem/Household-v0", 2, 2, max_turns=2)
    pol = Policy.from_pretrained(tiny_model, reference="none")
    rows = collect(pol, vec, RolloutConfig(GenerationSettings(max_new_tokens=4), window=1), seed=5).rows
    vec.close()
    adv = np.linspace(-1, 1, len(rows))
    base = _cfg(tiny_model, Path("/tmp/unused"), **{"ppo.epochs": 3, "ppo.minibatches": 2, "ppo.entropy_coef": 0.0})
    for over, epochs, stopped in (({}, 3, 0.0), ({"ppo.target_kl": 1e-12}, 1, 1.0)):
        p = Policy.from_pretrained(tiny_model, reference="none")
        opt = torch.optim.AdamW([q for q in p.model.parameters() if q.requires_grad], lr=1e-2)
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        out = ppo_update(p, opt, sch, rows, adv, _apply(base, over), np.random.default_rng(0))
        assert out["ppo/epochs_run"] == epochs and out["ppo/early_stop"] == stopped


def test_checkpoint_survives_a_crash_between_its_renames(tiny_model, tmp_path):
    """save_checkpoint swaps latest -> old -> (tmp -> latest); a kill anywhere must leave one loadable."""
    import shutil

    from aem_train.trainer import load_checkpoint, save_checkpoint

    pol = Policy.from_pretrained(tiny_model, reference="none")
    opt = torch.optim.AdamW(pol.model.parameters(), lr=1e-3)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    run = tmp_path / "r"
    save_checkpoint(run, pol, opt, sch, None, {"iteration": 1, "wall_s": 1.0, "seed": 0})
    ck = run / "checkpoints"
    # killed after latest -> old, before tmp -> latest: only "old" holds a checkpoint
    (ck / "latest").rename(ck / "old")
    assert load_checkpoint(run, pol, opt, sch, None)["iteration"] == 1
    # killed after tmp -> latest, before old was removed: the next save must not fail
    shutil.copytree(ck / "latest", ck / "old")
    save_checkpoint(run, pol, opt, sch, None, {"iteration": 2, "wall_s": 2.0, "seed": 0})
    assert load_checkpoint(run, pol, opt, sch, None)["iteration"] == 2
    assert not (ck / "old").exists()


def test_truncate_jsonl_drops_a_line_cut_by_a_kill(tmp_path):
    from aem_train.trainer import _truncate_jsonl

    path = tmp_path / "trajectories.jsonl"
    path.write_text('{"iteration": 1, "a": 1}\n{"iteration": 2, "a": 2}\n{"iteration": 3, "a": "ha')
    _truncate_jsonl(path, 2)
    assert [json.loads(x)["iteration"] for x in path.read_text().splitlines()] == [1, 2]


def test_finished_run_is_not_returned_for_a_different_config(tiny_model, tmp_path):
    """A finished run_dir answers only its own config (it silently returned the old figures)."""
    over = {"train.iterations": 1, "train.eval_every": 1, "train.save_final_model": False}
    first = train(_cfg(tiny_model, tmp_path / "r", **over), progress=False)
    assert train(_cfg(tiny_model, tmp_path / "r", **over), progress=False) == first
    with pytest.raises(ValueError, match="different config"):
        train(_cfg(tiny_model, tmp_path / "r", **{**over, "train.iterations": 2}), progress=False)


def test_config_rejects_settings_that_would_be_ignored_or_break_training():
    bad = {
        "ppo.epochs=0": "ppo.epochs",  # no update at all, silently
        "ppo.minibatches=0": "ppo.minibatches",
        "ppo.token_budget=0": "ppo.token_budget",
        "train.eval_every=0": "train.eval_every",  # ZeroDivisionError after the first iteration
        "train.checkpoint_every=0": "train.checkpoint_every",
        "ppo.kl_coef=-0.1": "ppo.kl_coef",
        "ppo.vf_clip=-1": "ppo.vf_clip",
        "algo.gamma=1.5": "algo.gamma",
        "model.lora_dropout=0.1": "lora_dropout",  # the learner runs in eval mode: dropout never applies
    }
    for over, name in bad.items():
        with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
            load(None, [over])
    for est in ("rloo", "gae"):  # std division exists only for grpo and gigpo
        with pytest.raises(ConfigError, match="std_normalize"):
            load(None, [f"algo.estimator={est}", "algo.std_normalize=false"])
    load(None, ["algo.estimator=gigpo", "algo.std_normalize=false"])


def test_gigpo_honours_std_normalize(tiny_model, tmp_path, monkeypatch):
    """algo.std_normalize=false reached GRPO only; GiGPO silently kept dividing by the std."""
    import aem_train.trainer as T

    seen = {}

    def spy(rows, estimator, **opts):
        seen.update(opts, estimator=estimator)
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "compute_advantages", spy)
    cfg = _cfg(tiny_model, tmp_path / "r", **{"algo.estimator": "gigpo", "algo.std_normalize": False,
                                              "train.eval_tasks": 1})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    assert seen["estimator"] == "gigpo" and seen["std_normalize"] is False


def test_cli_threads_default_does_not_override_the_yaml(tmp_path, monkeypatch):
    """``aem-train train --config x.yaml`` appended train.threads=2 (the flag's default) over the file's value."""
    import aem_train.trainer as T
    from aem_train.cli import main

    seen = []
    monkeypatch.setattr(T, "train", lambda cfg, **k: seen.append(cfg) or {"eval/success_rate": None})
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  threads: 1\n  run_dir: " + str(tmp_path / "r") + "\n")
    assert main(["train", "--config", str(path)]) == 0
    assert main(["train", "--config", str(path), "--threads", "3"]) == 0
    assert [c.train.threads for c in seen] == [1, 3]


def test_cli_overrides_may_follow_options(tmp_path, monkeypatch, capsys):
    """argparse gave the overrides positional only the words before the first option, so
    ``--model M env.id=X --iterations 1 train.eval_tasks=4`` failed with 'unrecognized arguments'."""
    import aem_train.trainer as T
    from aem_train.cli import main

    seen = []
    monkeypatch.setattr(T, "train", lambda cfg, **k: seen.append(cfg) or {"eval/success_rate": None})
    rc = main(["train", "--run-dir", str(tmp_path / "r"), "env.id=aem/WebShop-v0", "--iterations", "1",
               "train.eval_tasks=4", "--threads", "1", "algo.lam=0.5"])
    assert rc == 0
    c = seen[0]
    assert (c.env.id, c.train.iterations, c.train.eval_tasks, c.train.threads, c.algo.lam) == ("aem/WebShop-v0", 1, 4, 1, 0.5)
    with pytest.raises(SystemExit):  # anything that is not an override is still refused
        main(["train", "--iterations", "1", "train.eval_tasks=4", "--threads", "1", "stray"])
    assert "unrecognized arguments: stray" in capsys.readouterr().err


def test_cli_reports_an_infrastructure_error_in_one_line(monkeypatch, capsys, tmp_path):
    """An InfraError escaping an env constructor (no Docker daemon) printed a traceback."""
    import aem_train.trainer as T
    from aem_envs.core import InfraError
    from aem_train.cli import main

    def no_daemon(cfg, **k):
        raise InfraError("no Docker engine answers; start one with: bash scripts/engine.sh")

    monkeypatch.setattr(T, "train", no_daemon)
    assert main(["train", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: no Docker engine answers; start one with: bash scripts/engine.sh"


def test_no_resume_discards_the_old_checkpoint(tiny_model, tmp_path, monkeypatch):
    """A --no-resume restart must not leave the previous run's checkpoint for its own resume to load."""
    import aem_train.trainer as T

    over = {"train.iterations": 1, "train.eval_every": 1, "train.save_final_model": False}
    train(_cfg(tiny_model, tmp_path / "r", **over), progress=False)
    assert (tmp_path / "r" / "checkpoints" / "latest").exists()

    def killed(*a, **k):
        raise KeyboardInterrupt("simulated kill before the first checkpoint")

    monkeypatch.setattr(T, "ppo_update", killed)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_model, tmp_path / "r", **{**over, "ppo.lr": 5e-4}), resume=False, progress=False)
    # resuming the new config would otherwise start from the old run's weights at its iteration
    assert not (tmp_path / "r" / "checkpoints" / "latest").exists()


def test_dotted_overrides_set_one_entry_of_a_dict_field():
    cfg = load(overrides=["env.kwargs.rooms=1", "env.kwargs.invalid_action=penalize(0)", "env.kwargs.max_turns=3"])
    assert cfg.env.kwargs == {"rooms": 1, "invalid_action": "penalize(0)", "max_turns": 3}
    with pytest.raises(ConfigError, match="only dict keys"):
        load(overrides=["ppo.lr.x=1"])


def test_full_fine_tuning_trains_in_float32_unless_told_otherwise():
    from aem_train.policy import resolve_dtype

    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_dtype("auto", gpu, lora=False) == torch.float32  # full fine-tuning (RL, SFT, pretraining)
    assert resolve_dtype("auto", gpu, lora=True) == torch.bfloat16  # frozen base of a LoRA model
    assert resolve_dtype("auto", cpu, lora=True) == torch.float32
    assert resolve_dtype("bfloat16", gpu, lora=False) == torch.bfloat16  # explicit wins
    with pytest.raises(ConfigError, match="float16 cannot hold full fine-tuning"):
        from_dict({"model": {"lora": False, "dtype": "float16"}})


def test_a_bad_env_fails_before_the_model_loads(tmp_path, monkeypatch):
    import aem_train.trainer as T

    def no_load(cfg):
        raise AssertionError("the model was loaded before the env was checked")

    monkeypatch.setattr(T, "load_policy", no_load)
    cfg = from_dict({"env": {"kwargs": {"no_such_argument": 1}}, "train": {"run_dir": str(tmp_path / "r")}})
    with pytest.raises(Exception) as e:
        train(cfg, progress=False)
    assert "no_such_argument" in str(e.value) and not isinstance(e.value, AssertionError)

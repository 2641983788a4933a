"""What a bench preset costs on this machine: unit costs measured, the whole grid extrapolated.

``aem-train bench --preset standard`` runs hours of work; this script measures the pieces in a
few minutes and multiplies them out, without running the preset:

- **setup** (cached once per bench, :func:`aem_train.bench.run_setup`): per env, the tokenizer
  corpus (``setup.init_episodes``), the pretraining transcripts (``setup.pretrain.episodes``)
  and the SFT demonstrations (``setup.sft.episodes``), each timed as ``startup + n x episode``
  from two short plays (1 and 1 + k episodes); SFT steps on the env's demonstrations; shared:
  tokenizer training (scaled by corpus size) and pretraining steps on every env's transcripts,
  at the preset's model size and batch size (:mod:`aem_train.tiny`, :mod:`aem_train.pretrain`,
  :mod:`aem_train.sft`);
- **training** (every cell, :func:`aem_train.trainer.train`): per env, one real iteration of the
  env's first cell config (``train.iterations=1``) from the random-init model, which times the
  rollout and the update and, from its two evaluations (before and after the iteration, of
  ``--eval-tasks`` tasks), the greedy evaluation cost per task. Its episodes are cut at
  ``--turns`` turns and the costs scaled to the env's ``max_turns`` (with the chat window
  bounding every prompt, a turn costs about the same early or late). A cell costs ``iterations
  x iteration + evaluations x eval_tasks x per task + per-cell overhead`` (loading, env start,
  checkpoints), the evaluations being iteration 0, every ``eval_every`` and the last.

**Estimate and upper bound.** A random-init model's actions are (almost) all invalid, so its
episodes run to the env's ``max_turns`` (an upper bound on episode length; a weak warm-started policy
comes close: the quick preset's Household policy averaged 11.5 of 12 turns), and it never ends a
response early: it writes ``max_new_tokens`` of noise where a trained policy writes a short
action and EOS (measured on the standard preset's Household: an iteration 1.9x and an
evaluation 2.7x dearer). The estimate therefore
runs the iteration with responses capped at the env's demonstration length (mean response
tokens of the noisy-oracle transcripts, EOS included); ``--bound`` also runs the cell config as
is, the upper bound. ``--sft-model`` checks both against one iteration of a
warm-started checkpoint. Not covered: a trained policy's prompts can be longer than a random
model's (real observations instead of invalid-action messages; both means are printed), and its
valid actions make Docker envs run commands. Evaluation cost per task is measured on
``--eval-tasks`` tasks played side by side; larger evaluations batch more and cost less per
task, so that part leans high.

    python benchmarks/bench_cost.py --preset standard [--json] [--bound] [--sft-model DIR]
    python benchmarks/bench_cost.py --preset path/to/bench.yaml

Docker envs (Shell, CodeRepair) need an engine (``pgrep dockerd || bash scripts/engine.sh``);
without one their cells are left out of the totals with a message, as the bench does. How busy
the machine was is printed (load average, other processes' CPU share, a fixed matmul's speed
before and after): on a shared machine every wall-clock figure is inflated by the others' share
of the CPU, and a second total is printed from this process's CPU seconds (:func:`dedicated`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aem_train import bench

#: The machine counts as shared (busy with other work) when other processes used more than
#: BUSY_SHARE of the CPUs in the second before or after the measurement, or when an in-process
#: env's iteration got less than STARVED_SHARE of its cores.
BUSY_SHARE = 0.25
STARVED_SHARE = 0.8


@dataclass
class Knobs:
    """How much to measure (more = steadier figures, longer run)."""

    corpus_episodes: int = 6  # tokenizer-corpus episodes per env, after one warm-up episode
    demo_episodes: int = 3  # pretraining / SFT demonstration episodes per env, after one warm-up
    steps: int = 10  # pretraining and SFT steps timed, after one warm-up step
    eval_tasks: int = 8  # tasks of each evaluation in the one-iteration runs (<= the preset's)
    turns: int = 6  # turn limit of the measured episodes (scaled to the env's max_turns)
    bound: bool = False  # also time the upper bound (responses of max_new_tokens)


@dataclass
class EpisodeCost:
    """``startup_s + n * episode_s`` for a play of ``n`` episodes (env creation included)."""

    startup_s: float
    episode_s: float
    cpu_ratio: float = 1.0  # this process's CPU seconds / wall seconds while playing (one thread)

    def total(self, n: int) -> float:
        return self.startup_s + n * self.episode_s


@dataclass
class IterationCost:
    """One real training iteration of a cell config (timings from the trainer's metrics), the
    per-iteration and per-task figures scaled to full-length episodes (:func:`measure_iteration`)."""

    model: str
    max_new_tokens: int
    played_turns: int  # turn limit of the measured episodes
    max_turns: int  # the env's turn limit in the cell config
    scale: float  # max_turns / played_turns, applied to rollout, update, modulation and evaluation
    rollout_s: float
    update_s: float
    other_s: float  # AEM / baseline modulation of the advantages
    eval_task_s: float  # greedy evaluation seconds per task
    overhead_s: float  # per cell: model load, env start, checkpoint, final files
    turns_mean: float  # of the measured episodes
    prompt_tokens: float
    rows: int
    eval_turns_mean: float
    env_s: float  # of rollout_s, stepping the envs (Docker envs: mostly waiting for containers)
    wall_s: float  # the measurement itself
    cpu_s: float  # ... and this process's CPU seconds (~1.9 x wall_s with both cores to itself)
    threads: int

    @property
    def cpu_share(self) -> float:
        """Share of its ``threads`` cores this process had while measuring (<= 1)."""
        return min(1.0, self.cpu_s / max(self.wall_s * self.threads, 1e-9))

    @property
    def iteration_s(self) -> float:
        return self.rollout_s + self.update_s + self.other_s


@dataclass
class EnvCost:
    name: str
    id: str
    cells: int
    iterations: int
    evals_per_cell: int
    eval_tasks: int
    corpus: EpisodeCost
    transcripts: EpisodeCost  # pretraining documents
    demos: EpisodeCost  # SFT demonstrations
    sft_step_s: float
    sft_step_cpu_s: float
    sft_steps: int
    init_episodes: int
    pretrain_episodes: int
    sft_episodes: int
    demo_prompt_tokens: float  # mean prompt tokens of the noisy-oracle transcripts
    demo_response_tokens: float  # ... and of their responses (EOS included)
    it: IterationCost  # the estimate: responses as long as the transcripts' (see module docstring)
    bound: IterationCost | None  # the cell config as is: every response max_new_tokens long
    # derived by extrapolate()
    setup_s: float = 0.0
    eval_s: float = 0.0
    cell_s: float = 0.0
    train_s: float = 0.0
    total_s: float = 0.0
    bound_train_s: float | None = None
    bound_total_s: float | None = None
    dedicated_total_s: float = 0.0  # the same from CPU seconds (see dedicated())

    def cell_seconds(self, it: IterationCost) -> float:
        """One cell: its iterations, its evaluations and the per-cell overhead."""
        return self.iterations * it.iteration_s + self.evals_per_cell * self.eval_tasks * it.eval_task_s + it.overhead_s


@dataclass
class CostReport:
    preset: str
    hardware: str
    machine: dict[str, float]  # load average, others' CPU share, reference matmul speed
    envs: list[EnvCost]
    skipped: dict[str, str]
    tokenizer_s: float  # shared: corpus of tokenizer-only envs + BPE training
    pretrain_step_s: float
    pretrain_step_cpu_s: float
    pretrain_steps: int
    threads: int
    parameters: int
    chars_per_token: float
    measure_wall_s: float = 0.0
    measure_cpu_s: float = 0.0
    sft_comparison: dict[str, Any] | None = None
    shared_setup_s: float = 0.0
    setup_s: float = 0.0
    train_s: float = 0.0
    total_s: float = 0.0
    bound_total_s: float | None = None
    dedicated_setup_s: float = 0.0
    dedicated_total_s: float = 0.0

    @property
    def shared_machine(self) -> bool:
        """Other processes used the CPUs before or after the measurement, or took a share from
        the iterations of in-process envs (which keep ~95% of 2 cores busy on their own). The load
        average alone would also count this script's own recent work, which it lags behind."""
        m = self.machine
        starved = [e.it.cpu_share for e in self.envs if not bench.needs_docker(e.id)]
        return (max(m["others_cpu_share"], m.get("others_cpu_share_after", 0.0)) > BUSY_SHARE
                or (bool(starved) and min(starved) < STARVED_SHARE))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_h"] = self.total_s / 3600
        d["bound_total_h"] = self.bound_total_s / 3600 if self.bound_total_s is not None else None
        d["shared_machine"] = self.shared_machine
        d["dedicated_total_h"] = self.dedicated_total_s / 3600
        for e, de in zip(self.envs, d["envs"]):
            de["iteration_s"] = e.it.iteration_s
            de["bound_iteration_s"] = e.bound.iteration_s if e.bound else None
            de["total_h"] = e.total_s / 3600
        return d


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # progress on stderr: stdout holds the figures


def _cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_busy_share(seconds: float = 1.0) -> float:
    """Share of all CPUs busy during ``seconds`` while this process sleeps: other work's load."""
    def read() -> tuple[int, int]:
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return sum(v[:8]) - idle, sum(v[:8])
    try:
        b0, t0 = read()
        time.sleep(seconds)
        b1, t1 = read()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return (b1 - b0) / max(t1 - t0, 1)


def _matmul_gflops(threads: int) -> float:
    """A fixed piece of work (float32 512x512 matmuls on ``threads`` threads), best of 5: the
    machine's speed at that moment, so two runs of this script can be compared."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            a @ b
        best = min(best, time.perf_counter() - t0)
    return 20 * 2 * 512**3 / best / 1e9


def _two_plays(play, k: int) -> tuple[EpisodeCost, Any]:
    """Time ``play(1)`` and ``play(1 + k)``; the difference is k episodes, the rest startup.
    Returns the cost model and the second play's result."""
    t0, c0 = time.perf_counter(), _cpu_s()
    play(1)
    t1 = time.perf_counter()
    out = play(1 + k)
    t2 = time.perf_counter()
    per = max((t2 - t1) - (t1 - t0), 0.0) / k  # (startup + (1+k) e) - (startup + e)
    return EpisodeCost(max((t1 - t0) - per, 0.0), per, (_cpu_s() - c0) / max(t2 - t0, 1e-9)), out


def evals_per_cell(iterations: int, eval_every: int) -> int:
    """The trainer's evaluations: iteration 0, every ``eval_every``-th and the last."""
    return 1 + sum(1 for it in range(1, iterations + 1) if it % eval_every == 0 or it == iterations)


# ---------------------------------------------------------------------------- measurement
def measure_iteration(cfg, model: str, run_dir: Path, eval_tasks: int, turns: int,
                      max_new_tokens: int | None = None) -> IterationCost:
    """One real iteration of ``cfg`` from ``model``, its evaluations shrunk to ``eval_tasks``,
    its episodes to ``turns`` turns and its responses to ``max_new_tokens`` when given.

    Rollout, update and evaluation are scaled from ``turns`` to the env's ``max_turns``: with the
    chat window bounding every prompt, each turn costs about the same, and a random-init model
    plays every episode to the limit. Per-cell overhead is not scaled."""
    import aem_envs
    from aem_train.trainer import train

    env = aem_envs.make(cfg.env.id, **cfg.env.kwargs)
    max_turns = int(getattr(env, "max_turns", turns))
    env.close()
    played = min(turns, max_turns)
    cfg.env.kwargs = {**cfg.env.kwargs, "max_turns": played}
    scale = max_turns / played
    cfg.model.path = str(model)
    if max_new_tokens is not None:
        cfg.rollout.max_new_tokens = max_new_tokens
    cfg.train.run_dir = str(run_dir)
    cfg.train.iterations = 1
    cfg.train.eval_tasks = min(eval_tasks, cfg.train.eval_tasks)
    t0, c0 = time.perf_counter(), _cpu_s()
    train(cfg, resume=False, progress=False)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    r0, r1 = recs[0], recs[-1]
    evals = [r["eval/seconds"] for r in (r0, r1) if "eval/seconds" in r]
    upd, roll, other = r1["perf/update_seconds"], r1["perf/rollout_seconds"], r1.get("perf/modulation_seconds", 0.0)
    # the rest happens once per cell: model load, env start, checkpoint and final files (and the
    # small per-iteration bookkeeping: advantages, logs)
    overhead = max(wall - sum(evals) - roll - upd - other, 0.0)
    return IterationCost(
        model=str(model), max_new_tokens=cfg.rollout.max_new_tokens, played_turns=played, max_turns=max_turns,
        scale=scale, rollout_s=roll * scale, update_s=upd * scale, other_s=other * scale,
        eval_task_s=sum(evals) / len(evals) / cfg.train.eval_tasks * scale, overhead_s=overhead,
        turns_mean=r1["train/turns_mean"], prompt_tokens=r1["perf/mean_prompt_tokens"],
        rows=int(r1["train/rows"]), eval_turns_mean=r1.get("eval/turns_mean", float("nan")),
        env_s=r1.get("perf/env_seconds", 0.0) * scale, wall_s=wall, cpu_s=cpu, threads=cfg.train.threads,
    )


def measure(spec: bench.BenchSpec, workdir: Path, knobs: Knobs, sft_model: str | None = None,
            sft_env: str | None = None) -> CostReport:
    """Measure every unit cost of ``spec`` and extrapolate (see the module docstring)."""
    from aem_train.policy import Policy
    from aem_train.pretrain import PretrainConfig, transcripts
    from aem_train.sft import SFTConfig, demonstrations, train_sft
    from aem_train.tiny import PRESETS, build_model, env_corpus, train_tokenizer

    machine = {"load_before": os.getloadavg()[0], "others_cpu_share": _cpu_busy_share()}
    t_start, cpu_start = time.perf_counter(), _cpu_s()
    cells = bench.plan(spec, workdir / "cells")
    skipped: dict[str, str] = {}
    if any(bench.needs_docker(e.id) for e in spec.envs):
        ok, reason = bench.docker_available()
        if not ok:
            for e in spec.envs:
                if bench.needs_docker(e.id):
                    skipped[e.name] = f"no Docker engine answers ({reason}); start one with: bash scripts/engine.sh"
                    _log(f"skipping {e.name}: {skipped[e.name]}")
    envs = [e for e in spec.envs if e.name not in skipped]
    if not envs:
        raise RuntimeError("every env of the spec was skipped; start a Docker engine: bash scripts/engine.sh")
    bad = [e.name for e in envs if e.setup["kind"] != "tiny" or not e.setup.get("shared", True)]
    if bad:
        raise ValueError(f"envs {bad}: bench_cost measures shared tiny setups (setup.kind: tiny, shared: true) "
                         "such as the quick and standard presets")
    first_cell = {e.name: next(c for c in cells if c.env.name == e.name) for e in envs}
    cfgs = {e.name: bench.cell_config(spec, first_cell[e.name], "model") for e in envs}
    setup = envs[0].setup
    threads = cfgs[envs[0].name].train.threads
    machine["matmul_gflops_before"] = _matmul_gflops(threads)  # also sets the thread count

    # --- tokenizer corpus, per env and for tokenizer-only envs
    tok_only = sorted(set(setup.get("tokenizer_envs") or []) - {e.id for e in envs})
    corpus: dict[str, EpisodeCost] = {}
    chars_per_episode: dict[str, float] = {}
    texts: list[str] = []
    for env_id in [e.id for e in envs] + tok_only:
        _log(f"corpus {env_id}: 1 + {knobs.corpus_episodes} episodes")
        cost, got = _two_plays(lambda n, i=env_id: list(env_corpus([i], episodes=n, seed=0)), knobs.corpus_episodes)
        corpus[env_id] = cost
        chars_per_episode[env_id] = sum(map(len, got)) / (1 + knobs.corpus_episodes)
        texts += got
    preset = PRESETS[setup["model_preset"]]
    t0 = time.perf_counter()
    tokenizer = train_tokenizer(texts, preset.vocab_size)
    n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)  # init_model does this too
    tok_train_s = time.perf_counter() - t0
    measured_chars = sum(map(len, texts))
    full_chars = sum(int(setup["init_episodes"]) * c for c in chars_per_episode.values())
    tokenizer_s = tok_train_s * full_chars / max(measured_chars, 1) + sum(
        corpus[i].total(int(setup["init_episodes"])) for i in tok_only)
    base = workdir / "base"
    model = build_model(preset, tokenizer, seed=0)
    model.save_pretrained(base, safe_serialization=True)
    tokenizer.save_pretrained(base)
    parameters = sum(p.numel() for p in model.parameters())
    del model

    # --- pretraining: transcripts per env, then steps on all of them mixed (as pretrain() does)
    pre = dict(setup.get("pretrain") or {})
    # resolved as the bench's setup resolves them (window, env kwargs per env)
    pre_all = bench.pretrain_settings(envs, [cfgs[e.name] for e in envs], {**setup, "pretrain": pre})
    policy = Policy.from_pretrained(base, device="auto", reference="none")
    docs = []
    trans: dict[str, EpisodeCost] = {}
    doc_stats = {}
    pc_all = PretrainConfig(**pre_all)
    kw = {k: v for k, v in pre_all.items() if k not in ("episodes", "steps", "env_ids", "env_kwargs", "window")}
    for e in envs:

        def play(n: int, e=e):  # one env's transcripts, with that env's window and kwargs
            pc = PretrainConfig(env_ids=[e.id], env_kwargs={e.id: pc_all.env_kwargs[e.id]} if e.id in pc_all.env_kwargs else {},
                                window=pc_all.window_of(e.id), episodes=n, steps=1, **kw)
            return transcripts(policy, pc)

        _log(f"pretraining transcripts {e.name}: 1 + {knobs.demo_episodes} episodes")
        trans[e.name], (d, st) = _two_plays(play, knobs.demo_episodes)
        docs += d
        doc_stats[e.name] = st[e.id]
    pretrain_step_s = pretrain_step_cpu_s = 0.0
    if setup.get("pretrain") is not None:
        # aem_train.pretrain.pretrain() is transcripts() + train_sft(loss_on="all") on the mix; the
        # transcripts are played above, so only the training steps are timed here
        sft_like = SFTConfig(env_id="mix", loss_on="all", steps=1,
                             **{k: v for k, v in pre.items() if k in ("batch_size", "lr", "seed")})
        train_sft(policy, sft_like, demos=docs, progress=False)  # warm-up step
        sft_like.steps = knobs.steps
        _log(f"pretraining: {knobs.steps} steps of {sft_like.batch_size}")
        res = train_sft(policy, sft_like, demos=docs, progress=False)
        pretrain_step_s, pretrain_step_cpu_s = res.seconds / res.steps, res.cpu_seconds / res.steps
        pretrain_steps = int(pre.get("steps", PretrainConfig.__dataclass_fields__["steps"].default))
    else:
        pretrain_steps = 0

    # --- per env: SFT, then one training iteration
    out: list[EnvCost] = []
    for e in envs:
        c = cfgs[e.name]
        sft = bench.sft_settings(e, c)
        if e.setup.get("sft") is not None:
            _log(f"SFT {e.name}: 1 + {knobs.demo_episodes} episodes, {knobs.steps} steps")
            demos_cost, (demos, _) = _two_plays(
                lambda n, e=e, sft=sft: demonstrations(policy, SFTConfig(env_id=e.id, **{**sft, "episodes": n})),
                knobs.demo_episodes)
            scfg = SFTConfig(env_id=e.id, **{**sft, "steps": 1})
            train_sft(policy, scfg, demos=demos, progress=False)  # warm-up step
            scfg.steps = knobs.steps
            r = train_sft(policy, scfg, demos=demos, progress=False)
            sft_step_s, sft_step_cpu_s = r.seconds / r.steps, r.cpu_seconds / r.steps
            sft_steps = int(sft.get("steps", SFTConfig.__dataclass_fields__["steps"].default))
            sft_eps = int(sft.get("episodes", SFTConfig.__dataclass_fields__["episodes"].default))
        else:
            demos_cost, sft_step_s, sft_step_cpu_s, sft_steps, sft_eps = EpisodeCost(0.0, 0.0), 0.0, 0.0, 0, 0

        ds = doc_stats[e.name]
        # A trained policy writes an action and EOS; the random-init model writes max_new_tokens of
        # noise. Capping its responses at the demonstrations' length times the rest at that length.
        short = min(c.rollout.max_new_tokens, max(1, math.ceil(ds.mean_response_tokens)))
        key = first_cell[e.name].key
        _log(f"train {e.name}: one iteration of {key} from the random-init model, responses <= {short} tokens")
        it = measure_iteration(bench.cell_config(spec, first_cell[e.name], str(base)), str(base),
                               workdir / "iter" / e.name, knobs.eval_tasks, knobs.turns, max_new_tokens=short)
        bound = None
        if knobs.bound and short < c.rollout.max_new_tokens:
            _log(f"train {e.name}: one iteration of {key} from the random-init model, responses "
                 f"{c.rollout.max_new_tokens} tokens (the bound)")
            bound = measure_iteration(bench.cell_config(spec, first_cell[e.name], str(base)), str(base),
                                      workdir / "bound" / e.name, knobs.eval_tasks, knobs.turns)
        elif knobs.bound:
            bound = it
        full = c.train
        out.append(EnvCost(
            name=e.name, id=e.id, cells=sum(1 for x in cells if x.env.name == e.name),
            iterations=full.iterations, evals_per_cell=evals_per_cell(full.iterations, full.eval_every),
            eval_tasks=full.eval_tasks, corpus=corpus[e.id], transcripts=trans[e.name], demos=demos_cost,
            sft_step_s=sft_step_s, sft_step_cpu_s=sft_step_cpu_s, sft_steps=sft_steps, init_episodes=int(setup["init_episodes"]),
            pretrain_episodes=int(pre.get("episodes", PretrainConfig.__dataclass_fields__["episodes"].default))
            if setup.get("pretrain") is not None else 0,
            sft_episodes=sft_eps, demo_prompt_tokens=ds.mean_prompt_tokens,
            demo_response_tokens=ds.mean_response_tokens, it=it, bound=bound,
        ))

    comparison = None
    if sft_model:
        name = sft_env or envs[0].name
        e = next((x for x in out if x.name == name), None)
        if e is None:
            raise ValueError(f"--sft-env {name!r} is not a measured env; use one of {[x.name for x in out]}")
        _log(f"train {name}: one iteration of the cell config from {sft_model}")
        it2 = measure_iteration(bench.cell_config(spec, first_cell[name], sft_model), sft_model,
                                workdir / "iter-sft" / name, knobs.eval_tasks, knobs.turns)
        comparison = {"env": name, "model": sft_model, "sft": asdict(it2), "cell_s": e.cell_seconds(it2)}

    machine["load_after"] = os.getloadavg()[0]
    machine["others_cpu_share_after"] = _cpu_busy_share()
    machine["matmul_gflops_after"] = _matmul_gflops(threads)
    rep = CostReport(
        preset=spec.name, hardware=bench.hardware(), machine=machine,
        envs=out, skipped=skipped, tokenizer_s=tokenizer_s, pretrain_step_s=pretrain_step_s,
        pretrain_step_cpu_s=pretrain_step_cpu_s, pretrain_steps=pretrain_steps, threads=threads, parameters=parameters,
        chars_per_token=measured_chars / max(n_tokens, 1), sft_comparison=comparison,
    )
    rep.measure_wall_s = time.perf_counter() - t_start
    rep.measure_cpu_s = _cpu_s() - cpu_start
    return extrapolate(rep)


# ---------------------------------------------------------------------------- extrapolation
def extrapolate(rep: CostReport) -> CostReport:
    """Fill in the derived figures: per env setup / cell / training, and the totals
    (every total is the sum of its parts)."""
    for e in rep.envs:
        e.setup_s = (e.corpus.total(e.init_episodes)
                     + (e.transcripts.total(e.pretrain_episodes) if e.pretrain_episodes else 0.0)
                     + (e.demos.total(e.sft_episodes) if e.sft_episodes else 0.0) + e.sft_step_s * e.sft_steps)
        e.eval_s = e.it.eval_task_s * e.eval_tasks
        e.cell_s = e.cell_seconds(e.it)
        e.train_s = e.cells * e.cell_s
        e.total_s = e.setup_s + e.train_s
        if e.bound is not None:
            e.bound_train_s = e.cells * e.cell_seconds(e.bound)
            e.bound_total_s = e.setup_s + e.bound_train_s
        e.dedicated_total_s = dedicated(e, rep.threads)
    rep.shared_setup_s = rep.tokenizer_s + rep.pretrain_step_s * rep.pretrain_steps
    rep.dedicated_setup_s = rep.tokenizer_s + min(rep.pretrain_step_s, rep.pretrain_step_cpu_s / rep.threads) * rep.pretrain_steps
    rep.dedicated_total_s = rep.dedicated_setup_s + sum(e.dedicated_total_s for e in rep.envs)
    rep.setup_s = rep.shared_setup_s + sum(e.setup_s for e in rep.envs)
    rep.train_s = sum(e.train_s for e in rep.envs)
    rep.total_s = rep.setup_s + rep.train_s
    if all(e.bound_total_s is not None for e in rep.envs):
        rep.bound_total_s = rep.shared_setup_s + sum(e.bound_total_s for e in rep.envs)
    return rep


def dedicated(e: EnvCost, threads: int) -> float:
    """``e.total_s`` as if this process had had its cores to itself: each measured piece's wall
    time scaled by the share of the cores it got (CPU seconds / (wall x cores)), which removes
    other processes' share on a busy machine. Time spent waiting for Docker containers is not
    in this process's CPU seconds, so a Docker env's plays and iterations stay as measured (only
    its SFT steps are scaled). On a quiet machine the torch work here keeps ~95% of 2
    cores busy, so this is at most a few percent below a quiet run."""
    docker = bench.needs_docker(e.id)

    def play(c: EpisodeCost, n: int) -> float:
        return c.total(n) * (1.0 if docker else min(1.0, c.cpu_ratio)) if n else 0.0

    setup = (play(e.corpus, e.init_episodes) + play(e.transcripts, e.pretrain_episodes) + play(e.demos, e.sft_episodes)
             + min(e.sft_step_s, e.sft_step_cpu_s / threads) * e.sft_steps)
    f = 1.0 if docker else e.it.cpu_share
    return setup + e.cells * f * e.cell_seconds(e.it)


def table(rep: CostReport) -> str:
    """The per-env table and the totals, as printed."""
    lines = [
        f"bench preset {rep.preset}: {rep.hardware}",
        f"model {rep.parameters:,} parameters, tokenizer {rep.chars_per_token:.2f} chars/token on the measured corpus",
        "",
        f"{'env':<11} {'setup s':>7} {'s/iter':>7} {'rollout':>7} {'update':>7} {'s/eval':>7} {'turns':>7} "
        f"{'resp':>5} {'prompt':>9} {'cells':>5} {'total h':>8} {'bound h':>8}",
    ]
    for e in rep.envs:
        turns = f"{e.it.turns_mean:.0f}->{e.it.max_turns}"
        bound = f"{e.bound_total_s / 3600:>8.2f}" if e.bound_total_s is not None else f"{'-':>8}"
        lines.append(
            f"{e.name:<11} {e.setup_s:>7.0f} {e.it.iteration_s:>7.1f} {e.it.rollout_s:>7.1f} {e.it.update_s:>7.1f} "
            f"{e.eval_s:>7.1f} {turns:>7} {e.it.max_new_tokens:>5} {e.it.prompt_tokens:>4.0f}/{e.demo_prompt_tokens:<4.0f} "
            f"{e.cells:>5} {e.total_s / 3600:>8.2f} {bound}")
    lines.append(f"{'shared':<11} {rep.shared_setup_s:>7.0f}   tokenizer {rep.tokenizer_s:.0f} s + pretraining "
                 f"{rep.pretrain_steps} steps x {rep.pretrain_step_s:.3f} s")
    n_cells = sum(e.cells for e in rep.envs)
    lines += [
        "",
        f"estimate: {rep.total_s / 3600:.2f} h = setup {rep.setup_s / 3600:.2f} h + training "
        f"{rep.train_s / 3600:.2f} h ({n_cells} cells)"
        + (f"; upper bound {rep.bound_total_s / 3600:.2f} h" if rep.bound_total_s is not None else ""),
        f"the same from CPU seconds, as on a machine to itself: {rep.dedicated_total_s / 3600:.2f} h "
        f"(" + ", ".join(f"{e.name} {e.dedicated_total_s / 3600:.2f}" for e in rep.envs)
        + f", shared setup {rep.dedicated_setup_s / 3600:.2f}; CPU share of the iterations: "
        + ", ".join(f"{e.it.cpu_share:.0%}" for e in rep.envs) + ")",
        "s/iter = rollout + update (+ modulation); s/eval: one evaluation of the preset's eval_tasks; turns: the "
        "random-init model's mean episode length as measured -> the env's max_turns it is scaled to (every "
        "episode runs to the limit: an upper bound on length); resp: response tokens (the demonstrations' "
        "length; 'bound h': the preset's max_new_tokens, all used); prompt: mean prompt tokens, rollout / "
        "demonstrations",
    ]
    for name, why in rep.skipped.items():
        lines.append(f"not included: {name} ({why})")
    c = rep.sft_comparison
    if c:
        e = next(x for x in rep.envs if x.name == c["env"])
        sft = c["sft"]
        lines.append(
            f"check, {c['env']} with a warm-started model ({c['model']}), the cell config as is: "
            f"{sft['rollout_s'] + sft['update_s'] + sft['other_s']:.1f} s/iter ({sft['turns_mean']:.1f} of "
            f"{sft['played_turns']} turns, scaled to {sft['max_turns']}), "
            f"eval {sft['eval_task_s'] * e.eval_tasks:.1f} s, cell {c['cell_s'] / 60:.1f} min, CPU share "
            f"{min(1.0, sft['cpu_s'] / max(sft['wall_s'] * sft['threads'], 1e-9)):.0%}; estimate above "
            f"{e.it.iteration_s:.1f} s/iter, cell {e.cell_s / 60:.1f} min, CPU share {e.it.cpu_share:.0%}"
            + (f"; bound {e.bound.iteration_s:.1f} s/iter, cell {e.cell_seconds(e.bound) / 60:.1f} min" if e.bound else ""))
    m = rep.machine
    state = "on a shared machine" if rep.shared_machine else "on a quiet machine"
    lines.append(
        f"measured in {rep.measure_wall_s:.0f} s ({rep.measure_cpu_s:.0f} CPU s) {state}: other processes used "
        f"{m['others_cpu_share']:.0%} / {m['others_cpu_share_after']:.0%} of the CPUs before / after, load average "
        f"{m['load_before']:.2f} / {m['load_after']:.2f}, matmul {m['matmul_gflops_before']:.0f} / "
        f"{m['matmul_gflops_after']:.0f} GFLOP/s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="standard", help="a packaged preset name (quick, standard) or a bench YAML path")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures last")
    ap.add_argument("--corpus-episodes", type=int, default=Knobs.corpus_episodes)
    ap.add_argument("--demo-episodes", type=int, default=Knobs.demo_episodes)
    ap.add_argument("--steps", type=int, default=Knobs.steps, help="pretraining / SFT steps timed")
    ap.add_argument("--eval-tasks", type=int, default=Knobs.eval_tasks, help="tasks per timed evaluation")
    ap.add_argument("--turns", type=int, default=Knobs.turns,
                    help="turn limit of the measured episodes (costs are scaled to the env's max_turns)")
    ap.add_argument("--bound", action="store_true",
                    help="also time the upper bound: the cell config's max_new_tokens, all used (about doubles the run)")
    ap.add_argument("--sft-model", default=None,
                    help="also time one iteration of the cell config with this warm-started checkpoint (a check)")
    ap.add_argument("--sft-env", default=None, help="env name for --sft-model (default: the first env)")
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    knobs = Knobs(args.corpus_episodes, args.demo_episodes, args.steps, args.eval_tasks, args.turns, bound=args.bound)
    if min(args.corpus_episodes, args.demo_episodes, args.steps, args.eval_tasks, args.turns) < 1:
        raise SystemExit("--corpus-episodes, --demo-episodes, --steps, --eval-tasks and --turns must be >= 1")
    p = Path(args.preset)
    path = p if p.suffix in (".yaml", ".yml") or p.is_file() else bench.preset_path(args.preset)
    spec = bench.load_spec(path)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars between the progress lines
    if args.workdir:
        rep = measure(spec, Path(args.workdir), knobs, args.sft_model, args.sft_env)
    else:
        with tempfile.TemporaryDirectory(prefix="aem-bench-cost-") as tmp:
            rep = measure(spec, Path(tmp), knobs, args.sft_model, args.sft_env)
    print(table(rep))
    if args.json:
        print(json.dumps(rep.as_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark grid: baseline vs AEM (arXiv 2605.00425) across environments, one run per cell.

``aem-train bench --preset quick`` (or ``--config BENCH.yaml``) expands a bench spec into cells
``env x estimator x method x seed``; each cell is an ordinary training run directory
``OUT/<env-name>/<estimator>-<method>/seed<k>/`` written by :func:`aem_train.trainer.train`.

A bench YAML (see ``aem_train/presets/*.yaml``)::

    name: quick
    description: one paragraph that goes into the report
    out: runs/bench/quick             # default --out
    common: {train: {iterations: 6}}  # config overrides for every cell (nested or dotted keys)
    setup:                            # how each env's starting checkpoint is made
      kind: tiny                      # tiny: build model + tokenizer, then SFT | none: use model.path as is
      model_preset: tiny              # aem_train.tiny.PRESETS
      shared: true                    # one model/tokenizer for all envs (SFT is always per env)
      init_episodes: 200              # corpus episodes per env for the tokenizer
      tokenizer_envs: [aem/WebShop-v0] # extra envs whose text also trains the tokenizer (optional)
      pretrain: {steps: 600}          # aem_train.pretrain.PretrainConfig fields; null = none
      sft: {episodes: 200, steps: 150}   # aem_train.sft.SFTConfig fields; null = no SFT
    envs:
      household: {id: aem/Household-v0, overrides: {...}, setup: {sft: {steps: 100}}}
    grid: {estimators: [grpo], methods: [none, aem], seeds: [0, 1]}

The grid is resumable and runs one cell at a time: a cell with ``final.json`` is skipped, any
other cell is (re)started with ``resume=True`` so the trainer continues from its checkpoint; a
cell that raises is recorded and the grid goes on (a rerun retries it). The setup is cached in
``OUT/setup/`` and skipped when its ``setup.json`` (written last) matches the recipe. Cells of
Docker envs are skipped with one line when no Docker engine answers. At the end the results
table is printed and :func:`aem_train.report.write_report` writes ``OUT/report.md``.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import hashlib
import inspect
import json
import os
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aem_train import config as config_mod
from aem_train.config import Config, ConfigError, same_config
from aem_train.report import ESTIMATORS, METHODS, discover, results_table, diff_table, run_name, summarize, write_report

#: Env ids whose episodes run in Docker sandboxes.
DOCKER_ENV_IDS = frozenset({"aem/Shell-v0", "aem/CodeRepair-v0"})


def needs_docker(env_id: str) -> bool:
    """Whether ``env_id`` (also in the ``MODULE:ID`` form) is one of :data:`DOCKER_ENV_IDS`."""
    return env_id.rpartition(":")[2] in DOCKER_ENV_IDS
PRESET_NAMES = ("quick", "standard", "paper")
#: Config keys each cell gets from the grid, and where a spec sets them instead.
GRID_OWNED = {"env.id": "envs.<name>.id", "algo.estimator": "grid.estimators", "algo.modulation": "grid.methods",
              "train.seed": "grid.seeds", "train.run_dir": "--out (or the spec's 'out')"}
SETUP_KEYS = {"kind", "model_preset", "shared", "init_episodes", "tokenizer_envs", "pretrain", "sft", "model"}
TrainFn = Callable[..., dict]


# ------------------------------------------------------------------------------------- spec
@dataclass
class EnvEntry:
    name: str  # directory name under OUT
    id: str
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config overrides
    setup: dict[str, Any] = field(default_factory=dict)  # resolved recipe (defaults <- env's)


@dataclass
class BenchSpec:
    name: str
    description: str
    common: dict[str, Any]  # dotted config overrides
    envs: list[EnvEntry]
    estimators: list[str]
    methods: list[str]
    seeds: list[int]
    out: str
    n_boot: int = 10_000
    source: str = ""  # the YAML it came from


@dataclass
class CellPlan:
    env: EnvEntry
    estimator: str
    method: str
    seed: int
    run_dir: Path

    @property
    def key(self) -> str:
        return f"{self.env.name}/{run_name(self.estimator, self.method)}/seed{self.seed}"

    @property
    def finished(self) -> bool:
        return (self.run_dir / "final.json").is_file()


def _flatten(overrides: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """``{"train": {"iterations": 6}, "algo.lam": 1}`` -> ``{"train.iterations": 6, "algo.lam": 1}``."""
    out: dict[str, Any] = {}
    for k, v in (overrides or {}).items():
        if "." in k:
            out[k] = v
        elif isinstance(v, dict):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = vv
        else:
            raise ConfigError(f"{where}: '{k}' must be a section mapping or a dotted key like train.iterations")
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (extra or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


DEFAULT_SETUP: dict[str, Any] = {
    "kind": "tiny", "model_preset": "tiny", "shared": True, "init_episodes": 200, "tokenizer_envs": [],
    "pretrain": None, "sft": {}, "model": None,
}


def preset_path(name: str) -> Path:
    """The packaged bench preset ``aem_train/presets/<name>.yaml``."""
    p = resources.files("aem_train") / "presets" / f"{name}.yaml"
    if not p.is_file():
        raise ValueError(f"unknown bench preset {name!r}; use one of {', '.join(PRESET_NAMES)} or --config FILE.yaml")
    return Path(str(p))


def load_spec(path: str | Path, common_overrides: dict[str, Any] | None = None) -> BenchSpec:
    """Parse and check a bench YAML; every cell's config is validated here, before anything runs."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"bench config {str(p)!r} not found; pass --preset quick or an existing YAML file")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: top level must be a mapping (name, common, setup, envs, grid)")
    unknown = set(data) - {"name", "description", "out", "common", "setup", "envs", "grid", "n_boot"}
    if unknown:
        raise ValueError(f"{p}: unknown keys {sorted(unknown)}; allowed: name, description, out, common, setup, envs, grid, n_boot")
    name = str(data.get("name") or p.stem)
    common = _flatten(data.get("common"), f"{p}: common")
    common.update(common_overrides or {})
    setup_default = _merge(DEFAULT_SETUP, data.get("setup") or {})
    envs: list[EnvEntry] = []
    for env_name, e in (data.get("envs") or {}).items():
        if not isinstance(e, dict) or "id" not in e:
            raise ValueError(f"{p}: envs.{env_name} needs an 'id', e.g. id: aem/Household-v0")
        setup = _merge(setup_default, e.get("setup") or {})
        bad = set(setup) - SETUP_KEYS
        if bad:
            raise ValueError(f"{p}: envs.{env_name}.setup has unknown keys {sorted(bad)}; allowed: {sorted(SETUP_KEYS)}")
        envs.append(EnvEntry(str(env_name), str(e["id"]), _flatten(e.get("overrides"), f"{p}: envs.{env_name}.overrides"), setup))
    if not envs:
        raise ValueError(f"{p}: 'envs' is empty; add e.g. household: {{id: aem/Household-v0}}")
    grid = data.get("grid") or {}
    estimators = [str(x) for x in grid.get("estimators", ["grpo"])]
    methods = [str(x) for x in grid.get("methods", ["none", "aem"])]
    seeds = [int(x) for x in grid.get("seeds", [0])]
    for key, vals in (("estimators", estimators), ("methods", methods), ("seeds", seeds)):
        dup = sorted({str(v) for v in vals if vals.count(v) > 1})
        if dup:  # the same cell twice: run twice, counted twice
            raise ValueError(f"{p}: grid.{key} lists {', '.join(dup)} more than once")
    if not seeds:
        raise ValueError(f"{p}: grid.seeds is empty; e.g. seeds: [0, 1]")
    for est in estimators:
        if est not in ESTIMATORS:
            raise ValueError(f"{p}: grid estimator {est!r} is not one of {', '.join(ESTIMATORS)}")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"{p}: grid method {m!r} is not one of {', '.join(METHODS)}")
    for e in envs:
        if e.setup["kind"] not in ("tiny", "none"):
            raise ValueError(f"{p}: envs.{e.name}.setup.kind must be 'tiny' or 'none'")
    for where, overrides in [("common (or --set)", common)] + [(f"envs.{e.name}.overrides", e.overrides) for e in envs]:
        owned = sorted(set(overrides) & set(GRID_OWNED))
        if owned:  # the cell would silently get the grid's value instead
            raise ValueError(f"{p}: {where} sets {', '.join(owned)}, which the grid sets per cell; use "
                             + "; ".join(f"{GRID_OWNED[k]} for {k}" for k in owned))
    spec = BenchSpec(name, str(data.get("description") or ""), common, envs, estimators, methods, seeds,
                     str(data.get("out") or f"runs/bench/{name}"), int(data.get("n_boot", 10_000)), str(p))
    for e in envs:  # fail now, not after an hour of training, on a bad override
        for est in estimators:
            for m in methods:
                cell_config(spec, CellPlan(e, est, m, seeds[0], Path("runs/x")), "model")
    return spec


def plan(spec: BenchSpec, out: str | Path, only: Sequence[str] = ()) -> list[CellPlan]:
    """All cells in run order (seed-major, so a partial grid already pairs methods by seed)."""
    cells = [
        CellPlan(e, est, m, s, Path(out) / e.name / run_name(est, m) / f"seed{s}")
        for s in spec.seeds for e in spec.envs for est in spec.estimators for m in spec.methods
    ]
    return [c for c in cells if _selected(c, only)]


def _selected(c: CellPlan, only: Sequence[str]) -> bool:
    """``--only ENV/METHOD/SEED`` patterns (fnmatch); ENV matches the name or id, METHOD the method
    or ``estimator-method``, SEED ``3`` or ``seed3``; missing parts match everything. An env id
    holds slashes of its own (``aem/Household-v0``, ``my_envs:acme/Maze-v0``,
    ``envs/maze.py:acme/Maze-v0``), so every split of the pattern into ENV and the rest is tried."""
    if not only:
        return True
    for pat in only:
        parts = pat.split("/")
        for k in range(max(1, len(parts) - 2), len(parts) + 1):
            env_p = "/".join(parts[:k])
            meth_p, seed_p = (parts[k:] + ["*", "*"])[:2]
            if not (fnmatch.fnmatch(c.env.name, env_p) or fnmatch.fnmatch(c.env.id, env_p)):
                continue
            if not (fnmatch.fnmatch(c.method, meth_p) or fnmatch.fnmatch(run_name(c.estimator, c.method), meth_p)):
                continue
            if not (fnmatch.fnmatch(str(c.seed), seed_p) or fnmatch.fnmatch(f"seed{c.seed}", seed_p)):
                continue
            return True
    return False


def cell_config(spec: BenchSpec, cell: CellPlan, model_path: str | None) -> Config:
    """common <- env overrides <- (env id, estimator, method, seed, run dir, model path)."""
    upd: dict[str, Any] = dict(spec.common)
    upd.update(cell.env.overrides)
    upd["env.id"] = cell.env.id
    upd["algo.estimator"] = cell.estimator
    upd.update(METHODS[cell.method])
    upd["train.seed"] = cell.seed
    upd["train.run_dir"] = str(cell.run_dir)
    if model_path is not None:
        upd["model.path"] = str(model_path)
    elif cell.env.setup.get("model") and "model.path" not in upd:  # --set model.path=... wins
        upd["model.path"] = str(cell.env.setup["model"])
    return config_mod.from_dict(_nest(upd))


def _nest(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for k, v in dotted.items():
        sec, key = k.split(".", 1)
        out.setdefault(sec, {})[key] = v
    return out


# ------------------------------------------------------------------------------------- setup
def _recipe_hash(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached(out_dir: Path, recipe: dict[str, Any]) -> bool:
    marker = out_dir / "setup.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("recipe_hash") == _recipe_hash(recipe)
    except json.JSONDecodeError:
        return False


def _finish_setup(out_dir: Path, recipe: dict[str, Any], figures: dict[str, Any]) -> None:
    tmp = out_dir / "setup.json.tmp"
    tmp.write_text(json.dumps({"recipe": recipe, "recipe_hash": _recipe_hash(recipe), **figures}, indent=2, default=str))
    os.replace(tmp, out_dir / "setup.json")  # written last: its presence means "complete"


def build_base_model(out_dir: Path, env_ids: Sequence[str], setup: dict[str, Any], log: Callable[[str], None]) -> Path:
    """Tiny model + env-trained tokenizer (:func:`aem_train.tiny.init_model`), cached. The
    tokenizer also learns from ``setup.tokenizer_envs`` (envs with no cells of their own)."""
    env_ids = sorted(set(env_ids) | set(setup.get("tokenizer_envs") or []))
    recipe = {"step": "init-model", "preset": setup["model_preset"], "envs": sorted(env_ids),
              "episodes": int(setup["init_episodes"])}
    if _cached(out_dir, recipe):
        log(f"setup: {out_dir} cached")
        return out_dir
    from aem_train.tiny import init_model

    shutil.rmtree(out_dir, ignore_errors=True)
    s = init_model(out_dir, sorted(env_ids), preset=setup["model_preset"], episodes=int(setup["init_episodes"]))
    log(f"setup: built {out_dir}: {s['parameters']:,} parameters, vocab {s['vocab_size']}, {s['seconds']} s")
    _finish_setup(out_dir, recipe, {"seconds": s["seconds"], "parameters": s["parameters"]})
    return out_dir


def _trained_step(
    base: Path, out_dir: Path, recipe: dict[str, Any], log: Callable[[str], None],
    train: Callable[[Any], tuple[dict[str, Any], str]],
) -> Path:
    """A cached setup step that trains the ``base`` checkpoint into ``out_dir``: skipped when
    ``out_dir`` already holds this recipe; ``train(policy)`` returns (figures, log line)."""
    if _cached(out_dir, recipe):
        log(f"setup: {out_dir} cached")
        return out_dir
    from aem_train.policy import Policy

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    policy = Policy.from_pretrained(base, device="auto", reference="none")
    figures, line = train(policy)
    figures["seconds"] = time.perf_counter() - t0
    policy.save(out_dir, metadata=figures)
    log(f"{line}, {figures['seconds']:.0f} s")
    _finish_setup(out_dir, recipe, figures)
    return out_dir


def _base_hash(base: Path) -> str:
    """The recipe hash of a setup-built ``base`` (its path for a checkpoint made elsewhere)."""
    marker = base / "setup.json"
    return json.loads(marker.read_text())["recipe_hash"] if marker.is_file() else str(base)


def pretrain_settings(envs: Sequence[EnvEntry], cfgs: Sequence[Config], setup: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~aem_train.pretrain.PretrainConfig` arguments of the setup's pretraining: the
    recipe's ``pretrain`` keys, and unless it sets them, each env's chat window and constructor
    arguments from its cells (so transcripts look like the RL rollout's prompts)."""
    kwargs = dict(setup["pretrain"])
    windows = {e.id: c.env.window for e, c in zip(envs, cfgs)}
    # one number when the envs agree keeps the recipe (and its cache hash) as simple as the config
    kwargs.setdefault("window", windows if len(set(windows.values())) > 1 else cfgs[0].env.window)
    kwargs["env_ids"] = [e.id for e in envs]
    kwargs.setdefault("env_kwargs", {e.id: dict(c.env.kwargs) for e, c in zip(envs, cfgs) if c.env.kwargs})
    return kwargs


def sft_settings(env: EnvEntry, cell_cfg: Config) -> dict[str, Any]:
    """The :class:`~aem_train.sft.SFTConfig` arguments (all but ``env_id``) of the env's SFT warm
    start: the recipe's ``sft`` keys, and unless it sets them, the cells' chat window and env
    constructor arguments (so SFT prompts look like the RL rollout's prompts)."""
    kwargs = dict(env.setup.get("sft") or {})
    kwargs.setdefault("window", cell_cfg.env.window)
    if cell_cfg.env.kwargs:
        kwargs.setdefault("env_kwargs", dict(cell_cfg.env.kwargs))
    return kwargs


def pretrain_base(
    base: Path, out_dir: Path, envs: Sequence[EnvEntry], cfgs: Sequence[Config], setup: dict[str, Any],
    log: Callable[[str], None],
) -> Path:
    """Next-token pretraining of the base model on the envs' transcripts (:mod:`aem_train.pretrain`),
    cached, with :func:`pretrain_settings`."""
    kwargs = pretrain_settings(envs, cfgs, setup)

    def train(policy) -> tuple[dict[str, Any], str]:
        from aem_train.pretrain import PretrainConfig, pretrain

        res, stats = pretrain(policy, PretrainConfig(**kwargs), progress=False)
        d = res.as_dict()
        figures = {"pretrain": d, "documents": {k: v.examples for k, v in stats.items()}}
        return figures, (f"setup: pretrained {out_dir.name} on {sum(figures['documents'].values())} transcript "
                         f"turns, {res.steps} steps, loss {d['first_loss']:.3f} -> {d['final_loss']:.3f}")

    recipe = {"step": "pretrain", "base": _base_hash(base), "pretrain": kwargs}
    return _trained_step(base, out_dir, recipe, log, train)


def sft_warm_start(
    base: Path, out_dir: Path, env: EnvEntry, cell_cfg: Config, log: Callable[[str], None]
) -> Path:
    """SFT on the env's (noisy) oracle demonstrations (:mod:`aem_train.sft`), cached, with
    :func:`sft_settings`."""
    sft_kwargs = sft_settings(env, cell_cfg)

    def train(policy) -> tuple[dict[str, Any], str]:
        from aem_train.sft import SFTConfig, demonstrations, train_sft

        cfg = SFTConfig(env_id=env.id, **sft_kwargs)
        demos, dstats = demonstrations(policy, cfg)
        res = train_sft(policy, cfg, demos=demos, demo_stats=dstats, progress=False)
        d = res.as_dict()
        return {"sft": d}, (f"setup: SFT {env.name}: {dstats.examples} demos, {res.steps} steps, loss "
                            f"{d['first_loss']:.3f} -> {d['final_loss']:.3f}")

    recipe = {"step": "sft", "env": env.id, "base": _base_hash(base), "sft": sft_kwargs}
    return _trained_step(base, out_dir, recipe, log, train)


def run_setup(
    spec: BenchSpec,
    out: Path,
    envs: Sequence[EnvEntry],
    log: Callable[[str], None],
    unavailable: Sequence[str] = (),
) -> dict[str, str | None]:
    """Starting checkpoint per env name in ``envs`` (None: the config's model.path is used as is).

    A shared tokenizer/model is trained on the text of every shared tiny env of the *spec*
    (not only those still to run), so a partially finished grid never mixes tokenizers;
    ``unavailable`` env ids (Docker envs without an engine) are left out of it.
    """
    def setup_config(x: EnvEntry) -> Config:  # the env's cell settings (window, env kwargs)
        return cell_config(spec, CellPlan(x, spec.estimators[0], spec.methods[0], 0, Path("x")), "m")

    paths: dict[str, str | None] = {}
    shared_ids = sorted({x.id for x in spec.envs if x.setup["kind"] == "tiny" and x.setup.get("shared", True)
                         and x.id not in unavailable})
    for e in envs:
        if e.setup["kind"] == "none":
            paths[e.name] = e.setup.get("model")
            continue
        cfg = setup_config(e)
        if e.setup.get("shared", True):
            base = build_base_model(out / "setup" / "model-shared", shared_ids, e.setup, log)
            if e.setup.get("pretrain") is not None:
                group = [x for x in spec.envs if x.id in shared_ids and x.setup.get("shared", True)]
                base = pretrain_base(base, out / "setup" / "pretrained-shared", group,
                                     [setup_config(x) for x in group], e.setup, log)
        else:
            base = build_base_model(out / "setup" / f"model-{e.name}", [e.id], e.setup, log)
            if e.setup.get("pretrain") is not None:
                base = pretrain_base(base, out / "setup" / f"pretrained-{e.name}", [e], [cfg], e.setup, log)
        if e.setup.get("sft") is None:
            paths[e.name] = str(base)
            continue
        paths[e.name] = str(sft_warm_start(base, out / "setup" / f"sft-{e.name}", e, cfg, log))
    return paths


# ------------------------------------------------------------------------------------- docker
def docker_available() -> tuple[bool, str]:
    """(True, "") when a Docker engine answers a ping, else (False, one-line reason)."""
    try:
        from aem_envs.images import docker_client

        docker_client(timeout=5)
        return True, ""
    except Exception as e:  # DockerUnavailable or the SDK missing: same outcome for the grid
        return False, str(e).splitlines()[0] if str(e) else type(e).__name__


# ------------------------------------------------------------------------------------- hardware
def hardware() -> str:
    """One line: CPU model, cores, RAM, accelerator, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    acc = "no GPU"
    torch_v = ""
    try:
        import torch

        torch_v = f", torch {torch.__version__}"
        if torch.cuda.is_available():
            acc = f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {n} CPUs{mem}, {acc}{torch_v}"


# ------------------------------------------------------------------------------------- runner
@dataclass
class GridResult:
    ran: list[str] = field(default_factory=list)
    skipped_done: list[str] = field(default_factory=list)
    skipped_docker: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    report: Path | None = None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (user + system): next to wall time
    it shows how much a loaded machine slowed a run down (2 busy threads: CPU ~ 2 x wall)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _config_changed(spec: BenchSpec, cell: CellPlan) -> bool:
    """Whether a finished cell's saved config.yaml differs from what the spec gives it now. The
    model path is left out (it depends on where the setup was cached) and so is the run dir: the
    saved file lives in it, and ``--out`` spelled another way (absolute, from another directory)
    names the same cell."""
    saved = cell.run_dir / "config.yaml"
    if not saved.is_file():
        return False
    try:
        old = yaml.safe_load(saved.read_text()) or {}
        new = cell_config(spec, cell, None)
    except Exception:  # noqa: BLE001 - an unreadable config is "changed"
        return True
    return not same_config(old, new, ignore=("model.path", "train.run_dir"))


def _term_as_interrupt():
    """SIGTERM (a killed job, a closed session) unwinds like Ctrl-C so bench.json records the
    session; returns the previous handler, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, _raise)


def _print(msg: str) -> None:
    print(msg, flush=True)  # progress lines must show up promptly when stdout is a pipe or a log file


def _quiet_hf_progress() -> None:
    """No per-checkpoint "Loading weights" bars from transformers between the grid's own lines."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


def _call_train(train_fn: TrainFn, cfg: Config) -> dict:
    kwargs: dict[str, Any] = {"resume": True}
    try:
        params = inspect.signature(train_fn).parameters
        if "progress" in params:
            kwargs["progress"] = sys.stdout.isatty()
    except (TypeError, ValueError):
        pass
    return train_fn(cfg, **kwargs)


def _skip_record(c: CellPlan, reason: str) -> dict[str, Any]:
    """bench.json's entry for a cell that was not run (the report lists it with its reason)."""
    return {"env": c.env.name, "run": run_name(c.estimator, c.method), "seed": c.seed, "reason": reason}


def run_grid(
    spec: BenchSpec,
    out: str | Path | None = None,
    *,
    train_fn: TrainFn | None = None,
    setup: bool = True,
    only: Sequence[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    report: bool = True,
    log: Callable[[str], None] | None = None,
) -> GridResult:
    """Run every unfinished cell of ``spec`` one at a time; see the module docstring.

    ``train_fn(cfg, resume=True)`` defaults to :func:`aem_train.trainer.train`; it must leave
    ``final.json`` in ``cfg.train.run_dir`` when the run completed. ``setup=False`` skips
    building models (each cell uses its config's ``model.path``), which tests use.
    """
    log = log or _print
    out = Path(out or spec.out)
    cells = plan(spec, out, only)
    if not cells:
        raise ValueError(f"--only {' '.join(only)} selects no cell; run with --dry-run to list them")
    res = GridResult()
    if dry_run:
        for c in cells:
            docker = " (Docker env)" if needs_docker(c.env.id) else ""
            failed = (c.run_dir / "bench_error.txt").is_file()
            state = ("finished" if c.finished else "failed (see bench_error.txt)" if failed
                     else "partial" if c.run_dir.exists() else "pending")
            log(f"{c.key:<40} {state}{docker}")
        log(f"{len(cells)} cells, {sum(c.finished for c in cells)} finished; output {out}")
        return res

    t0, cpu0 = time.perf_counter(), _cpu_s()
    _quiet_hf_progress()
    out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cells if not c.finished]
    res.skipped_done = [c.key for c in cells if c.finished]
    skipped: list[dict[str, Any]] = []
    drop_docker: list[CellPlan] = []
    if any(needs_docker(c.env.id) for c in todo):
        ok, reason = docker_available()
        if not ok:
            drop = drop_docker = [c for c in todo if needs_docker(c.env.id)]
            ids = sorted({c.env.id for c in drop})
            log(f"skipping {len(drop)} cells of {', '.join(ids)}: no Docker engine answers ({reason})")
            res.skipped_docker = [c.key for c in drop]
            skipped = [_skip_record(c, "no Docker engine") for c in drop]
            todo = [c for c in todo if not needs_docker(c.env.id)]

    bench_path = out / "bench.json"
    meta = json.loads(bench_path.read_text()) if bench_path.is_file() else {}
    meta.update({
        "preset": spec.name, "description": spec.description, "config_path": spec.source,
        "envs": [e.name for e in spec.envs], "env_ids": {e.name: e.id for e in spec.envs},
        "env_overrides": {e.name: e.overrides for e in spec.envs}, "common": spec.common,
        "estimators": spec.estimators, "methods": spec.methods, "seeds": spec.seeds,
        "hardware": hardware(), "skipped": skipped,
    })
    sessions = meta.setdefault("sessions", [])
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "hardware": meta["hardware"], "wall_s": 0.0,
               "setup_s": 0.0, "cells_run": []}  # a grid resumed elsewhere ran on more than one machine
    sessions.append(session)

    def save_meta() -> None:
        session["wall_s"] = time.perf_counter() - t0
        session["cpu_s"] = _cpu_s() - cpu0
        meta["wall_s"] = sum(s["wall_s"] for s in sessions)
        meta["setup_s"] = sum(s.get("setup_s", 0.0) for s in sessions)
        meta["cpu_s"] = sum(s.get("cpu_s", 0.0) for s in sessions)
        _write_json(bench_path, meta)

    save_meta()
    log(f"bench {spec.name}: {len(cells)} cells, {len(res.skipped_done)} already finished, "
        f"{len(todo)} to run, output {out}")

    stale = [c.key for c in cells if c.finished and _config_changed(spec, c)]
    if stale:
        log(f"note: {len(stale)} finished cells ran with a different config than the spec now gives "
            f"(e.g. {stale[0]}); they are kept as they are; delete their directories to rerun them")

    prev_term = _term_as_interrupt()  # before the setup: it can take minutes, and its time counts too
    try:
        model_paths: dict[str, str | None] = {}
        if todo and setup:
            t_setup = time.perf_counter()
            need = list({c.env.name: c.env for c in todo}.values())
            try:
                model_paths = run_setup(spec, out, need, log, unavailable=sorted({c.env.id for c in drop_docker}))
            finally:
                session["setup_s"] = time.perf_counter() - t_setup
            log(f"setup: {session['setup_s']:.0f} s")
            save_meta()

        if train_fn is None:
            from aem_train.trainer import train as train_fn  # heavy import: only when cells run

        engine_gone = False  # a Docker cell failed and the engine no longer answers
        for i, c in enumerate(todo, 1):
            if engine_gone and needs_docker(c.env.id):
                res.skipped_docker.append(c.key)
                skipped.append(_skip_record(c, "the Docker engine stopped answering"))  # bench.json's list
                continue
            cfg = cell_config(spec, c, model_paths.get(c.env.name))
            state = "resuming" if c.run_dir.exists() else "starting"
            log(f"[{i}/{len(todo)}] {c.key}: {state}")
            t_cell, cpu_cell = time.perf_counter(), _cpu_s()
            c.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                final = _call_train(train_fn, cfg)
                if not c.finished:
                    raise RuntimeError(f"train function returned without writing {c.run_dir / 'final.json'}")
            except Exception as e:  # one broken cell must not lose the others; a rerun retries it
                msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                (c.run_dir / "bench_error.txt").write_text(traceback.format_exc())
                res.failed[c.key] = msg
                log(f"[{i}/{len(todo)}] {c.key}: FAILED after {time.perf_counter() - t_cell:.0f} s: {msg} "
                    f"(traceback in {c.run_dir / 'bench_error.txt'}; rerun the bench to retry)")
                if fail_fast:
                    raise
                if needs_docker(c.env.id):
                    ok, reason = docker_available()
                    if not ok:  # every later Docker cell would load its model and fail the same way
                        engine_gone = True
                        rest = [d for d in todo[i:] if needs_docker(d.env.id)]
                        log(f"the Docker engine stopped answering ({reason}): skipping the {len(rest)} "
                            "remaining Docker cells; start it (bash scripts/engine.sh) and rerun the bench")
                continue
            (c.run_dir / "bench_error.txt").unlink(missing_ok=True)
            res.ran.append(c.key)
            session["cells_run"].append(c.key)
            sr = final.get("eval/success_rate") if isinstance(final, dict) else None
            log(f"[{i}/{len(todo)}] {c.key}: done in {time.perf_counter() - t_cell:.0f} s "
                f"(CPU {_cpu_s() - cpu_cell:.0f} s)"
                + (f", eval success {sr:.3f}" if isinstance(sr, (int, float)) else ""))
            save_meta()
    finally:
        save_meta()
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)

    res.wall_s = time.perf_counter() - t0
    if report and any(c.finished for c in cells):
        res.report = write_report(out, n_boot=spec.n_boot)
        summary = summarize(discover(out), n_boot=spec.n_boot, env_order=[e.name for e in spec.envs])
        log("")
        log(results_table(summary))
        if summary.diffs:
            log("")
            log(diff_table(summary))
        log("")
    log(f"bench {spec.name}: ran {len(res.ran)}, already finished {len(res.skipped_done)}, "
        f"failed {len(res.failed)}, skipped (no Docker) {len(res.skipped_docker)}; "
        f"{res.wall_s:.0f} s this session" + (f"; report {res.report}" if res.report else ""))
    return res


# ------------------------------------------------------------------------------------- CLI
def _cmd_bench(args: argparse.Namespace) -> int:
    if bool(args.config) == bool(args.preset):
        raise ValueError("pass exactly one of --preset quick|standard|paper or --config BENCH.yaml")
    path = preset_path(args.preset) if args.preset else Path(args.config)
    sets = list(args.set)
    if args.threads is not None:  # the cells' train.threads (the trainer sets torch's from it)
        sets.append(f"train.threads={args.threads}")
    spec = load_spec(path, config_mod.parse_overrides(sets) if sets else None)
    res = run_grid(spec, args.out, only=args.only, dry_run=args.dry_run, fail_fast=args.fail_fast)
    if args.json and not args.dry_run:
        print(json.dumps({"ran": res.ran, "already_finished": res.skipped_done, "failed": res.failed,
                          "skipped_docker": res.skipped_docker, "wall_s": res.wall_s,
                          "report": str(res.report) if res.report else None}))
    return 1 if res.failed else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from aem_train.cli import add_common_options

    sp = sub.add_parser("bench", help="run the baseline-vs-AEM grid (resumable) and write its report")
    src = sp.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=PRESET_NAMES, help="a packaged bench preset")
    src.add_argument("--config", help="a bench YAML file (see aem_train/presets/quick.yaml)")
    sp.add_argument("--out", default=None, help="output directory (default: the preset's 'out', runs/bench/NAME)")
    sp.add_argument("--only", action="append", default=[], metavar="ENV/METHOD/SEED",
                    help="run only matching cells (fnmatch patterns, e.g. household/aem/0 or 'webshop/*'); repeatable")
    sp.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="config override for every cell, e.g. train.iterations=3; repeatable")
    sp.add_argument("--dry-run", action="store_true", help="list the cells and their state; run nothing")
    sp.add_argument("--fail-fast", action="store_true", help="stop at the first failing cell")
    add_common_options(sp)
    sp.set_defaults(fn=_cmd_bench, threads=None)  # None: each cell's train.threads applies

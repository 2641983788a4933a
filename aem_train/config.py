"""Run configuration: dataclasses, YAML files and ``section.key=value`` overrides.

Unknown keys and incompatible options are errors (with the close matches named), and the
resolved config is saved in the run directory so every run can be reproduced from its folder.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml


@dataclass
class ModelConfig:
    path: str = "runs/models/household-sft"  # HF checkpoint directory or hub id
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # must stay 0: the learner runs in eval mode (update forward == scoring forward)
    dtype: str = "auto"  # auto = bf16 on GPU with LoRA (adapters stay fp32), else fp32 (policy.resolve_dtype)
    gradient_checkpointing: bool = False
    value_head: bool = False  # set automatically for estimator=gae


@dataclass
class EnvConfig:
    id: str = "aem/Household-v0"
    kwargs: dict = field(default_factory=dict)
    groups: int = 8  # tasks per iteration
    group_size: int = 4  # rollouts per task (the paper: 8)
    window: int = 2  # chat-view history turns
    mode: str = "sync"  # sync | threads


@dataclass
class RolloutConfig:
    temperature: float = 1.0  # also the temperature of every scoring pass (the behaviour policy)
    top_p: float = 1.0  # < 1 truncates sampling, which scoring does not model: keep 1 for RL
    max_new_tokens: int = 24
    max_prompt_tokens: int = 0  # 0 = the model's positions - max_new_tokens; also sizes the preflight
    prompt_overflow: str = "truncate"  # truncate (oldest turns, then the middle) | error (rollout.py)


@dataclass
class AlgoConfig:
    estimator: str = "grpo"  # grpo | rloo | gigpo | gae
    modulation: str = "none"  # none | aem | empg
    lam: float = 1.0
    range_guard: float = 0.1
    scope: str = "group"  # group | trajectory | batch
    direction: str = "normal"  # normal | reversed
    shuffle: bool = False
    # The choices the AEM paper leaves open (modulation.py documents each; defaults = the spec's):
    mean_over: str = "responses"  # responses | tokens: what alpha's mean of 1 is taken over
    alpha_min: float = 0.0  # clip alpha to [alpha_min, alpha_max] after normalising; 0 = no bound
    alpha_max: float = 0.0
    renormalize: str = "none"  # none | scale | standardize the advantages after modulation
    empg_k: float = 1.0
    empg_k2: float = 1.0
    empg_zeta: float = 0.05
    gamma: float = 0.95  # gigpo step discount; gae discount over turns
    gae_lambda: float = 0.95
    gigpo_weight: float = 1.0
    std_normalize: bool = True  # grpo and gigpo: divide by the group std (false = Dr.GRPO-style mean only)
    # DAPO's dynamic sampling (rollout.collect_informative): train only on groups whose returns
    # differ, collecting up to max_sampling_rounds batches per iteration to fill env.groups of them
    filter_groups: bool = False
    max_sampling_rounds: int = 1

    @property
    def alpha_clip(self) -> tuple[float, float] | None:
        """``alpha_min``/``alpha_max`` as the modulation's ``clip`` (None when neither is set)."""
        if not (self.alpha_min or self.alpha_max):
            return None
        return (self.alpha_min, self.alpha_max or float("inf"))


@dataclass
class PPOConfig:
    lr: float = 1e-4
    epochs: int = 1
    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float = 0.0  # 0 = off, else c (e.g. 3.0)
    loss_agg: str = "token-mean"  # token-mean | response-mean | trajectory-mean (each trajectory counts once)
    # token = PPO's ratio per token; sequence = GSPO's one ratio per response (aem_train/ppo.py);
    # GSPO also wants loss_agg=response-mean and clip_low/clip_high of a few 1e-4
    ratio_level: str = "token"
    kl_coef: float = 0.0
    entropy_coef: float = 0.0
    vf_coef: float = 0.5
    vf_clip: float = 0.2  # 0 = unclipped value loss
    token_budget: int = 8192  # tokens per micro-batch (gradient accumulation above it)
    minibatches: int = 1  # optimizer steps per epoch
    max_grad_norm: float = 1.0
    target_kl: float = 0.0  # 0 = off; stop the epoch loop when approx KL exceeds it
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    seed: int = 0
    iterations: int = 20
    eval_every: int = 5
    eval_tasks: int = 32
    eval_temperature: float = 0.0  # 0 = greedy
    run_dir: str = "runs/train"
    device: str = "auto"
    threads: int = 2
    checkpoint_every: int = 5
    log_trajectories: bool = True
    save_final_model: bool = True  # an HF directory in run_dir/final_model (3 GB per cell at 1.5B)
    # Every pass once with the longest possible row before iteration 1 (preflight.py). auto = on
    # a GPU only: on CPU an out-of-memory is the kernel's kill, which no check can turn into an error.
    preflight: str = "auto"  # auto | always | never
    # Share of eval tasks that may be excluded after infrastructure failures (each replayed once)
    # with the figure still logged; more and the run stops, since its rate would be over another
    # task set than its other evaluations'. 1.0 logs whatever finished.
    eval_max_excluded: float = 0.1


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_CHOICES = {
    ("algo", "estimator"): ("grpo", "rloo", "gigpo", "gae"),
    ("algo", "modulation"): ("none", "aem", "empg"),
    ("algo", "scope"): ("group", "trajectory", "batch"),
    ("algo", "direction"): ("normal", "reversed"),
    ("algo", "mean_over"): ("responses", "tokens"),
    ("algo", "renormalize"): ("none", "scale", "standardize"),
    ("ppo", "loss_agg"): ("token-mean", "response-mean", "trajectory-mean"),
    ("ppo", "ratio_level"): ("token", "sequence"),
    ("env", "mode"): ("sync", "threads"),
    ("rollout", "prompt_overflow"): ("truncate", "error"),
    ("train", "preflight"): ("auto", "always", "never"),
}


class ConfigError(ValueError):
    pass


def _close(name: str, options: list[str]) -> str:
    m = difflib.get_close_matches(name, options, n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(m)}?)" if m else f" (valid: {', '.join(options)})"


def _coerce(section: str, key: str, value: Any, typ: Any) -> Any:
    if isinstance(value, str) and typ is not str:
        value = yaml.safe_load(value)
        if typ is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                value = float(value)
            except ValueError:
                pass
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    expected = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict}.get(
        getattr(typ, "__name__", str(typ)), None
    )
    if expected is not None and not (isinstance(value, expected) and not (expected is int and isinstance(value, bool))):
        raise ConfigError(f"{section}.{key}={value!r} must be of type {expected.__name__}")
    return value


def apply(cfg: Config, updates: dict[str, Any]) -> Config:
    """Apply nested ``{"section": {"key": value}}`` or dotted ``{"section.key": value}`` updates."""
    sections = {f.name: f for f in fields(cfg)}
    for raw_key, value in updates.items():
        if "." in raw_key:
            sec, key = raw_key.split(".", 1)
            items = {key: value}
        else:
            sec, items = raw_key, value
            if not isinstance(items, dict):
                raise ConfigError(f"'{raw_key}' is a section; set keys as {raw_key}.KEY=VALUE")
        if sec not in sections:
            raise ConfigError(f"unknown config section '{sec}'{_close(sec, list(sections))}")
        sub = getattr(cfg, sec)
        hints = get_type_hints(type(sub))
        names = [f.name for f in fields(sub)]
        for key, v in items.items():
            key, _, entry = key.partition(".")  # env.kwargs.rooms=1: one entry of a dict field
            if key not in names:
                raise ConfigError(f"unknown config key '{sec}.{key}'{_close(key, names)}")
            if entry:
                if hints[key] is not dict:
                    raise ConfigError(f"'{sec}.{key}.{entry}': only dict keys such as env.kwargs take a third part")
                current = dict(getattr(sub, key))
                current[entry] = yaml.safe_load(v) if isinstance(v, str) else v
                v = current
            setattr(sub, key, _coerce(sec, key, v, hints[key]))
    return cfg


def validate(cfg: Config) -> Config:
    for (sec, key), choices in _CHOICES.items():
        v = getattr(getattr(cfg, sec), key)
        if v not in choices:
            raise ConfigError(f"{sec}.{key}={v!r} is not one of {', '.join(choices)}")
    a, p, e = cfg.algo, cfg.ppo, cfg.env
    if a.modulation != "aem" and (a.shuffle or a.direction != "normal" or a.scope != "group"
                                  or a.mean_over != "responses" or a.alpha_min or a.alpha_max):
        raise ConfigError(
            "algo.scope/direction/shuffle/mean_over/alpha_min/alpha_max are AEM options; set algo.modulation=aem to use them"
        )
    if a.modulation == "none" and a.renormalize != "none":
        raise ConfigError("algo.renormalize acts after modulation; set algo.modulation=aem or empg")
    if a.alpha_min < 0 or a.alpha_max < 0 or (a.alpha_max and a.alpha_min > a.alpha_max):
        raise ConfigError("algo.alpha_min/alpha_max must be >= 0 (0 = no bound) with alpha_min <= alpha_max")
    if a.estimator in ("grpo", "rloo", "gigpo") and e.group_size < 2:
        raise ConfigError(f"algo.estimator={a.estimator} needs env.group_size >= 2 (a group baseline)")
    if not 0 < p.clip_low < 1 or not 0 < p.clip_high < 10:
        raise ConfigError("ppo.clip_low must be in (0, 1) and ppo.clip_high in (0, 10)")
    if p.dual_clip and p.dual_clip <= 1:
        raise ConfigError("ppo.dual_clip must be 0 (off) or > 1, e.g. 3.0")
    if a.filter_groups and a.estimator not in ("grpo", "rloo", "gigpo"):
        raise ConfigError(f"algo.filter_groups keeps groups whose returns differ, which only a group estimator "
                          f"uses, not {a.estimator}; set algo.estimator=grpo, rloo or gigpo, or algo.filter_groups=false")
    if a.max_sampling_rounds < 1 or (a.max_sampling_rounds > 1 and not a.filter_groups):
        raise ConfigError("algo.max_sampling_rounds must be >= 1, and > 1 only with algo.filter_groups=true")
    if a.range_guard < 0 or a.lam < 0:
        raise ConfigError("algo.range_guard and algo.lam must be >= 0")
    if not a.std_normalize and a.estimator not in ("grpo", "gigpo"):
        raise ConfigError(f"algo.std_normalize=false has no effect on algo.estimator={a.estimator}; only grpo/gigpo divide by a std")
    for k in ("gamma", "gae_lambda"):
        if not 0 <= getattr(a, k) <= 1:
            raise ConfigError(f"algo.{k} must be in [0, 1]")
    for sec, k in (("ppo", "epochs"), ("ppo", "minibatches"), ("ppo", "token_budget"), ("train", "iterations"),
                   ("train", "eval_every"), ("train", "eval_tasks"), ("train", "checkpoint_every")):
        if getattr(getattr(cfg, sec), k) < 1:
            raise ConfigError(f"{sec}.{k} must be >= 1")
    for k in ("kl_coef", "entropy_coef", "vf_coef", "vf_clip", "target_kl", "max_grad_norm", "weight_decay"):
        if getattr(p, k) < 0:
            raise ConfigError(f"ppo.{k} must be >= 0")
    if not cfg.model.lora and cfg.model.dtype in ("float16", "fp16", "half"):
        raise ConfigError("model.dtype=float16 cannot hold full fine-tuning's weights (updates round away, then NaN); "
                          "use model.dtype=float32 (or bfloat16), or model.lora=true")
    if cfg.model.lora_dropout != 0:
        raise ConfigError("model.lora_dropout must be 0: the learner runs the model in eval mode so its update "
                          "forward equals the scoring forward, and dropout would never apply")
    if not 0 <= cfg.train.eval_max_excluded <= 1:
        raise ConfigError("train.eval_max_excluded must be in [0, 1] (a share of the eval tasks, e.g. 0.1)")
    if cfg.rollout.max_prompt_tokens < 0:
        raise ConfigError("rollout.max_prompt_tokens must be >= 0 (0 = the model's positions - max_new_tokens)")
    if cfg.rollout.max_new_tokens < 1:
        raise ConfigError("rollout.max_new_tokens must be >= 1")
    for k in ("groups", "group_size", "window"):
        if getattr(e, k) < (0 if k == "window" else 1):
            raise ConfigError(f"env.{k} must be positive")
    cfg.model.value_head = a.estimator == "gae"
    return cfg


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p or "." not in p.split("=", 1)[0]:
            raise ConfigError(f"override {p!r} must look like section.key=value, e.g. algo.modulation=aem")
        k, v = p.split("=", 1)
        out[k] = v
    return out


def load(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Defaults <- YAML file <- overrides, then validated."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found; pass an existing YAML file")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: top level must be a mapping of sections")
        apply(cfg, data)
    if overrides:
        apply(cfg, parse_overrides(overrides) if isinstance(overrides, list) else overrides)
    return validate(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    return validate(apply(Config(), data))


def same_config(saved: dict[str, Any], cfg: Config, ignore: tuple[str, ...] = ()) -> bool:
    """Whether a saved config (a run's config.yaml) is ``cfg``: keys added since it was written
    take their defaults, and ``ignore`` names ``section.key`` entries left out of the comparison."""
    try:
        old = from_dict(saved).to_dict()
    except ConfigError:  # a key that no longer exists, a value no longer valid
        return False
    new = cfg.to_dict()
    for name in ignore:
        sec, key = name.split(".")
        for d in (old, new):
            d.get(sec, {}).pop(key, None)
    for d in (old, new):  # one checkpoint directory, however its path is written
        m = d.get("model", {})
        if isinstance(m.get("path"), str) and Path(m["path"]).exists():
            m["path"] = str(Path(m["path"]).resolve())
    return old == new


def replace(cfg: Config, **updates: Any) -> Config:
    """A copy of ``cfg`` with dotted-key updates applied and validated."""
    return validate(apply(from_dict(dataclasses.asdict(cfg)), updates))

"""aem-envs: list, inspect, play, check and measure environments; Docker images and sandboxes.

Every command that reports figures takes ``--json`` and then prints one JSON object on its
last line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

import aem_envs
from aem_envs.core import InfraError
from aem_envs.registration import env_class, registered_ids, spec


def _kv(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` env kwargs; values parsed as YAML scalars (ints, floats, bools)."""
    import yaml

    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise SystemExit(f"error: env argument {p!r} must look like key=value")
        k, v = p.split("=", 1)
        try:
            out[k] = yaml.safe_load(v)
        except yaml.YAMLError:  # e.g. "[1": not a YAML scalar, so it is meant as a string
            out[k] = v
    return out


def _make(env_id: str, **kwargs: Any):
    """``aem_envs.make`` whose complaint about a bad ``-e`` argument is one line naming the fix."""
    try:
        return aem_envs.make(env_id, **kwargs)
    except TypeError as e:
        if not kwargs:
            raise  # not the user's arguments: a bug worth its traceback
        msg = str(e).split(" was raised from the environment creator")[0]
        cls = env_class(env_id)
        where = f"the constructor of {cls.__module__}.{cls.__name__}"
        m = re.search(r"unexpected keyword argument '(\w+)'", msg)
        if m:
            raise ValueError(f"{env_id} does not accept the argument {m.group(1)!r}; see {where} for its options") from None
        raise ValueError(f"{env_id} rejected the arguments -e {kwargs} ({msg}); see {where} for their types") from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def _emit(args: argparse.Namespace, figures: dict[str, Any], text: str) -> None:
    print(text)
    if args.json:
        print(json.dumps(figures))


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for env_id in registered_ids():
        cls = env_class(env_id)
        rows.append({"id": env_id, "version": getattr(cls, "version", "?"), "description": getattr(cls, "description", "")})
    text = "\n".join(f"{r['id']:<28} v{r['version']:<4} {r['description']}" for r in rows)
    _emit(args, {"envs": rows}, text)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    env = _make(args.id, **_kv(args.env_arg))
    try:
        figures = {
            "id": args.id,
            "version": env.version,
            "description": env.description,
            "action_format": env.action_format,
            "max_turns": env.max_turns,
            "invalid_policy": str(env.invalid_policy),
            "splits": {s: len(env.task_ids(s)) for s in env.splits},
            "max_observation_length": env.max_observation_length,
            "max_action_length": env.max_action_length,
        }
        text = "\n".join(f"{k}: {v}" for k, v in figures.items()) + f"\nsystem prompt:\n{env.system_prompt}"
        _emit(args, figures, text)
    finally:
        env.close()
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    env = _make(args.id, split=args.split, **_kv(args.env_arg))
    try:
        opts = {"task_id": args.task_id} if args.task_id else None
        obs, info = env.reset(seed=args.seed, options=opts)
        print(f"[{info['task_id']}] {env.instruction}\n\n{obs}")
        hint = "<action>...</action>" if env.action_format == "tag" else "a line"
        print(f"\n(type an action; it is sent as {hint}. ':oracle' asks the expert, ':quit' leaves)")
        total = 0.0
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                break
            if line == ":quit":
                break
            if line == ":oracle":
                line = env.oracle_action()
                print(f"(oracle) {line}")
            obs, r, term, trunc, info = env.step(env.format_action(line))
            total += r
            print(f"\n{obs}\n[reward {r:+g}, total {total:+g}, turn {info['turn']}]")
            if term or trunc:
                print("SUCCESS" if info["success"] else ("truncated" if trunc else "failed"))
                break
    finally:
        env.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    spec(args.id)  # an unknown id is one error line, not ten failed checks
    report = aem_envs.check_env(args.id, oracle_episodes=args.episodes, **_kv(args.env_arg))
    _emit(args, report.to_dict(), str(report))
    return 0 if report.ok else 1


def run_oracle(env_id: str, episodes: int, split: str, seed: int, **kwargs: Any) -> dict[str, Any]:
    """Oracle success rate, turns and env time per step over ``episodes`` tasks of ``split``."""
    env = _make(env_id, split=split, **kwargs)
    try:
        ids = env.task_ids(split)
        n = min(episodes, len(ids))
        wins, steps, env_time, ret = 0, 0, 0.0, 0.0
        t0 = time.perf_counter()
        for k in range(n):
            _, info = env.reset(seed=seed + k, options={"task_id": ids[(k * len(ids)) // n]})
            env_time += info["timing"]
            done = False
            while not done:
                _, r, te, tr, info = env.step(env.oracle_response())
                steps += 1
                ret += r
                env_time += info["timing"]
                done = te or tr
            wins += info["success"]
        return {
            "env_id": env_id,
            "split": split,
            "episodes": n,
            "success_rate": wins / max(n, 1),
            "mean_steps": steps / max(n, 1),
            "mean_return": ret / max(n, 1),
            "env_seconds_per_step": env_time / max(steps, 1),
            "wall_seconds": time.perf_counter() - t0,
        }
    finally:
        env.close()


def cmd_oracle(args: argparse.Namespace) -> int:
    f = run_oracle(args.id, args.episodes, args.split, args.seed, **_kv(args.env_arg))
    text = (
        f"{f['env_id']} oracle on {f['episodes']} {f['split']} tasks: success {f['success_rate']:.1%}, "
        f"{f['mean_steps']:.1f} steps/episode, {f['env_seconds_per_step'] * 1e3:.3f} ms env time/step"
    )
    _emit(args, f, text)
    return 0 if f["episodes"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aem-envs", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, fn, help: str, env: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        if env:
            sp.add_argument("id", help="environment id, e.g. aem/Household-v0")
            sp.add_argument("--env-arg", "-e", action="append", default=[], metavar="KEY=VALUE",
                            help="constructor argument for the env (repeatable)")
        sp.add_argument("--json", action="store_true", help="print one JSON object of figures last")
        sp.set_defaults(fn=fn)
        return sp

    add("list", cmd_list, "list registered environments", env=False)
    add("info", cmd_info, "describe an environment")
    sp = add("play", cmd_play, "play an environment in the terminal")
    sp.add_argument("--split", default="test", help="split to draw the task from (default test)")
    sp.add_argument("--seed", type=int, default=None, help="reset seed: fixes the drawn task")
    sp.add_argument("--task-id", default=None, help="play this task id instead of drawing one")
    sp = add("check", cmd_check, "run the conformance checker (exit 0 only if all checks pass)")
    sp.add_argument("--episodes", type=_positive_int, default=20, help="oracle episodes in the solvability check")
    sp = add("oracle", cmd_oracle, "measure the oracle policy")
    sp.add_argument("--episodes", type=_positive_int, default=100,
                    help="tasks to play, spread evenly over the split (default 100)")
    sp.add_argument("--split", default="test", help="split whose tasks are played (default test)")
    sp.add_argument("--seed", type=int, default=0, help="reset seed of the first episode (+1 per episode)")
    for register_extra in _EXTRA_COMMANDS:
        register_extra(sub)
    return p


def _extra_commands() -> list:
    """Subcommands that live next to the code they drive (images, sandboxes, web server)."""
    extras = []
    for mod_name in ("aem_envs.images", "aem_envs.sandbox.cli", "aem_envs.envs.webshop.cli", "aem_envs.envs.coderepair.cli"):
        try:
            mod = __import__(mod_name, fromlist=["add_commands"])
        except ModuleNotFoundError as e:
            if e.name and mod_name.startswith(e.name):
                continue  # that part of the package is not present
            raise
        extras.append(mod.add_commands)
    return extras


_EXTRA_COMMANDS = _extra_commands()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except BrokenPipeError:  # output piped into `head`: not an error of ours
        sys.stderr.close()
        return 0
    except (ValueError, KeyError, RuntimeError, InfraError) as e:  # InfraError: no daemon, no image
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

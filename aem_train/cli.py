"""``aem-train``: build tiny models, warm-start them with SFT, evaluate, train.

Subcommands live next to the code they drive. Each module in :data:`COMMAND_MODULES` defines
``add_commands(subparsers)``, which adds its parsers and sets ``fn=callable(args) -> int`` as
their default. To add a command, write ``add_commands`` in your module and append the module
name here; a module that does not exist (yet) is skipped. Commands that report figures take
``--json`` and print one JSON object on their last line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Modules that contribute subcommands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "aem_train.tiny",  # init-model
    "aem_train.pretrain",  # pretrain
    "aem_train.sft",  # sft
    "aem_train.evaluate",  # eval
    "aem_train.trainer",  # train (PPO/GRPO + AEM)
    "aem_train.bench",  # bench
    "aem_train.report",  # report
)


def add_common_options(sp: argparse.ArgumentParser) -> None:
    """Options every aem-train command shares: ``--threads``, ``--import``, ``--json``."""
    sp.add_argument(
        "--threads", type=int, default=2,
        help="torch CPU threads (default 2; for train and bench the config's train.threads, which "
             "this sets: part of a run's config, since the thread count can change CPU results)",
    )
    sp.add_argument(
        "--import", dest="import_module", action="append", default=[], metavar="MODULE_OR_PY",
        help="import a module or .py file that registers extra envs, e.g. examples/custom_env.py (repeatable); "
             "or name the env as MODULE:ID, e.g. env.id=my_envs:aem/MyEnv-v0",
    )
    sp.add_argument("--json", action="store_true", help="print one JSON object of figures last")


def add_env_arg_option(sp: argparse.ArgumentParser) -> None:
    """``--env-arg/-e KEY=VALUE`` (repeatable): env constructor arguments; read with :func:`env_kwargs`."""
    sp.add_argument("--env-arg", "-e", action="append", default=[], metavar="KEY=VALUE",
                    help="constructor argument for the env, e.g. -e max_turns=20 (repeatable)")


def env_kwargs(pairs: list[str]) -> dict:
    """``key=value`` strings to a dict; values parsed as YAML scalars (ints, floats, bools)."""
    import yaml

    out = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"env argument {p!r} must look like key=value, e.g. max_turns=20")
        k, v = p.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def import_env_module(path: str) -> None:
    """Import a module name or a ``.py`` file that registers envs (``--import``); a file runs
    once however often it is named, and a bare module name is also found in the current
    directory (see :func:`aem_envs.registration.import_env_module`)."""
    from aem_envs.registration import import_env_module as _import

    _import(path)


def _load_command_modules() -> list:
    adders = []
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue  # that command's module is not written (yet)
            raise
        if hasattr(mod, "add_commands"):
            adders.append(mod.add_commands)
    return adders


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aem-train",
        description="Train text agents with PPO/GRPO + AEM (Adaptive Entropy Modulation, arXiv 2605.00425).",
        epilog=(
            "your own model: --model DIR, a directory written by save_pretrained (config.json, weights,\n"
            "  tokenizer with a chat template), or a hub id in the Hugging Face cache\n"
            "your own env:   env.id=MODULE:ID (my_envs:aem/MyEnv-v0, or path/to/my_envs.py:aem/MyEnv-v0),\n"
            "  or --import my_envs.py; env arguments: \"env.kwargs={max_turns: 20}\"\n"
            "aem-train COMMAND --help describes each command; README.md has the walk-through."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for add in _load_command_modules():
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from aem_envs.core import InfraError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse hands a nargs="*" positional only the run of words before the first option;
        # config overrides written after an option (--model M env.id=X) belong there too
        if isinstance(getattr(args, "overrides", None), list) and all("=" in x and not x.startswith("-") for x in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "threads", None) is not None:  # `train` leaves it None: its config sets the threads
        import torch

        torch.set_num_threads(args.threads)
    for path in getattr(args, "import_module", []) or []:
        import_env_module(path)
    try:
        return int(args.fn(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, InfraError) as e:  # InfraError: no daemon
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``aem-envs coderepair validate|export``: check bring-your-own task files, export the corpus."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_validate(args: argparse.Namespace) -> int:
    from aem_envs.envs.coderepair.task import load_tasks
    from aem_envs.envs.coderepair.validate import sandbox_factory, validate_task

    tasks = load_tasks(args.task_file)
    if args.ids:
        wanted = set(args.ids.split(","))
        tasks = [t for t in tasks if t.instance_id in wanted]
    if args.limit:
        tasks = tasks[: args.limit]
    factory = sandbox_factory(args.sandbox)
    checks = []
    for t in tasks:
        c = validate_task(t, factory, timeout=args.timeout)
        checks.append(c)
        print(f"[{'ok' if c.ok else 'FAIL'}] {c.instance_id} ({c.seconds:.1f}s)" + "".join(f"\n    - {p}" for p in c.problems))
    n_ok = sum(c.ok for c in checks)
    print(f"{n_ok}/{len(checks)} tasks valid")
    if args.json:
        print(json.dumps({"tasks": len(checks), "valid": n_ok, "invalid": [c.instance_id for c in checks if not c.ok]}))
    return 0 if checks and n_ok == len(checks) else 1


def cmd_export(args: argparse.Namespace) -> int:
    from aem_envs.envs.coderepair.env import export_corpus

    n = export_corpus(args.out, split=args.split)
    print(f"wrote {n} tasks to {args.out}")
    if args.json:
        print(json.dumps({"tasks": n, "out": args.out}))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("coderepair", help="code-repair tasks: validate a task file, export the corpus")
    sub = p.add_subparsers(dest="coderepair_cmd", required=True)
    v = sub.add_parser("validate", help="check a task file (gold patch fixes FAIL_TO_PASS, keeps PASS_TO_PASS; no patch fails)")
    v.add_argument("task_file", help="JSONL or YAML task file")
    v.add_argument("--sandbox", choices=["docker", "local"], default="docker", help="'local' is NOT isolated")
    v.add_argument("--limit", type=int, default=0, help="validate only the first N tasks")
    v.add_argument("--ids", default="", help="comma-separated instance ids to validate")
    v.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    v.add_argument("--json", action="store_true", help="print one JSON object of figures last")
    v.set_defaults(fn=cmd_validate)
    e = sub.add_parser("export", help="write the generated corpus as a task file")
    e.add_argument("out", help="output JSONL path")
    e.add_argument("--split", choices=["train", "test"], default=None)
    e.add_argument("--json", action="store_true", help="print one JSON object of figures last")
    e.set_defaults(fn=cmd_export)


if __name__ == "__main__":  # python -m aem_envs.envs.coderepair.cli validate FILE
    parser = argparse.ArgumentParser(prog="coderepair")
    add_commands(parser.add_subparsers(dest="cmd", required=True))
    ns = parser.parse_args()
    sys.exit(ns.fn(ns))

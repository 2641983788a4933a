"""``aem-envs reap``: remove leaked sandbox containers (owner dead, TTL passed, or stopped)."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_reap(args: argparse.Namespace) -> int:
    from aem_envs.sandbox import lifecycle
    from aem_envs.sandbox.errors import SandboxError

    try:
        removed = lifecycle.reap(force=args.all)
        remaining = len(lifecycle.labelled_containers())
    except SandboxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in removed:
        print(f"removed {r['id']} ({r['reason']}, owner pid {r['owner_pid']})")
    print(f"reaped {len(removed)} sandbox container(s); {remaining} labelled container(s) remain")
    if args.json:
        print(json.dumps({"removed": removed, "remaining": remaining}))
    return 0


def add_commands(subparsers) -> None:
    sp = subparsers.add_parser(
        "reap", help="remove leaked sandbox containers (owner process dead, TTL passed, or stopped)"
    )
    sp.add_argument("--all", action="store_true", help="also remove sandboxes of live processes")
    sp.add_argument("--json", action="store_true", help="print one JSON object of figures last")
    sp.set_defaults(fn=cmd_reap)

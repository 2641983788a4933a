"""Generate the code-repair task index from the corpus (offline, once per corpus change).

    python -m aem_envs.envs.coderepair.generate [--out PATH] [--projects a,b] [--timeout 3]

For every project: the original must pass all of its tests; then every mutation from
:func:`enumerate_mutations` is run against all tests (visible and held-out) with a
:class:`ForkRunner`. A mutant becomes a task only if it fails at least one *visible* test and
finishes within the timeout (no hang, no memory blow-up). Writes ``data/tasks.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path

from aem_envs.envs.coderepair.corpus_index import (
    CORPUS_DIR,
    HELDOUT_MARK,
    INDEX_FORMAT,
    INDEX_PATH,
    INDEX_VERSION,
    corpus_sha,
    function_split,
)
from aem_envs.envs.coderepair.forkrun import ForkRunner
from aem_envs.envs.coderepair.mutations import enumerate_mutations


def generate_project(project_dir: Path, timeout: float, log=print) -> tuple[dict, list[dict]]:
    name = project_dir.name
    modules = sorted(p.relative_to(project_dir).as_posix() for p in (project_dir / "src").glob("*.py"))
    runner = ForkRunner(project_dir, timeout=timeout)
    base = runner.run()
    all_ids = sorted(base.outcomes)
    if not all_ids or not all(base.outcomes.values()) or base.timed_out:
        bad = [t for t, ok in base.outcomes.items() if not ok]
        raise RuntimeError(f"project {name}: the original does not pass all tests ({bad or 'no tests ran'})")
    tests = [t.split("::")[0] for t in all_ids]
    header = {
        "modules": modules,
        "tests": all_ids,
        "visible_files": sorted({f for f in tests if HELDOUT_MARK not in f}),
        "heldout_files": sorted({f for f in tests if HELDOUT_MARK in f}),
        "sha": hashlib.sha256("".join((project_dir / m).read_text() for m in modules).encode()).hexdigest()[:16],
    }
    tasks, rejected = [], Counter()
    for mod in modules:
        source = (project_dir / mod).read_text()
        for m in enumerate_mutations(name, mod, source):
            res = runner.run({mod: m.apply(source)})
            if res.timed_out:
                rejected["hang"] += 1
                continue
            if res.crashed:
                rejected["crash"] += 1
                continue
            fail = res.failed(all_ids)
            if not any(HELDOUT_MARK not in t.split("::")[0] for t in fail):
                rejected["no_visible_failure"] += 1
                continue
            tasks.append({**m.to_dict(), "id": m.task_id, "split": function_split(name, m.function), "fail": fail})
    log(f"{name}: {len(tasks)} tasks, rejected {dict(rejected)}, baseline {base.seconds:.2f}s")
    return header, tasks


def _generate_quiet(project_dir: Path, timeout: float) -> tuple[dict, list[dict]]:
    return generate_project(project_dir, timeout, log=lambda s: print(s, file=sys.stderr, flush=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(INDEX_PATH))
    p.add_argument("--projects", default="", help="comma-separated subset (default: all)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds before a mutant counts as hanging")
    p.add_argument("--jobs", type=int, default=1, help="projects generated in parallel")
    args = p.parse_args(argv)
    names = [n for n in args.projects.split(",") if n] or sorted(
        d.name for d in CORPUS_DIR.iterdir() if (d / "src").is_dir()
    )
    t0 = time.perf_counter()
    projects, tasks = {}, []
    work = [(CORPUS_DIR / n, args.timeout) for n in names]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            results = pool.starmap(_generate_quiet, work, chunksize=1)
    else:
        results = [_generate_quiet(*w) for w in work]
    for name, (header, ptasks) in zip(names, results):
        projects[name] = header
        tasks.extend(ptasks)
    ids = [t["id"] for t in tasks]
    if len(ids) != len(set(ids)):
        raise RuntimeError("duplicate task ids; widen Mutation.key")
    splits = Counter(t["split"] for t in tasks)
    head = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "corpus_sha": corpus_sha(),
        "n_tasks": len(tasks),
        "splits": dict(splits),
        "ops": dict(Counter(t["op"] for t in tasks)),
        "projects": projects,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        f.write(json.dumps(head, separators=(",", ":")) + "\n")
        for t in tasks:
            f.write(json.dumps(t, separators=(",", ":")) + "\n")
    print(f"wrote {len(tasks)} tasks ({dict(splits)}) from {len(names)} projects to {out} "
          f"in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

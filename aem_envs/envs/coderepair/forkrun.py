"""Run a small project's pytest suite thousands of times cheaply (task generation only).

Starting ``python -m pytest`` costs ~0.3 s, mostly imports. :class:`ForkRunner` imports pytest
once and forks a child per run: the child copies the project into a temp dir, overlays the
mutated files, runs ``pytest.main`` in-process and reports per-test outcomes through a file.
Forking gives each run a pristine interpreter (no module cache shared between mutants) and a
hard kill for mutants that hang or eat memory. POSIX only; used offline by the generator,
never by the environment itself.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunResult:
    outcomes: dict[str, bool] = field(default_factory=dict)  # node id -> passed
    timed_out: bool = False
    crashed: bool = False  # the child died without reporting (e.g. memory limit)
    seconds: float = 0.0

    def failed(self, all_ids: list[str]) -> list[str]:
        """Ids of ``all_ids`` that did not pass (missing outcomes count as failures)."""
        return [t for t in all_ids if not self.outcomes.get(t, False)]


class _Collect:
    """pytest plugin: record pass/fail per node id (setup/teardown errors count as fail)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, bool] = {}

    def pytest_runtest_logreport(self, report) -> None:
        ok = report.passed or (report.when != "call" and report.skipped)
        prev = self.outcomes.get(report.nodeid, True)
        self.outcomes[report.nodeid] = prev and ok


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _child(project: Path, overlay: dict[str, str], out_path: str, mem_bytes: int, work: Path) -> None:
    # The cap is on what the mutant may add: a parent that already maps gigabytes (torch
    # loaded in the same test session) must not leave the child unable to allocate at all.
    limit = _address_space_bytes() + mem_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.dont_write_bytecode = True
    try:
        dst = work / project.name
        shutil.copytree(project, dst, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        for rel, text in overlay.items():
            (dst / rel).write_text(text)
        os.chdir(dst)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pytest

        plugin = _Collect()
        pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(dst), "tests"], plugins=[plugin])
        Path(out_path).write_text(json.dumps(plugin.outcomes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


class ForkRunner:
    """Runs ``project``'s tests with some files replaced; see the module docstring."""

    def __init__(self, project: str | Path, timeout: float = 5.0, mem_mb: int = 1024):
        self.project = Path(project).resolve()
        self.timeout = timeout
        self.mem_bytes = mem_mb * 1024 * 1024
        # Scanning every installed distribution for pytest plugins costs more than the tests.
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        import _pytest.python  # noqa: F401  (imported once here so every fork inherits it)
        import pytest  # noqa: F401

    def run(self, overlay: dict[str, str] | None = None) -> RunResult:
        fd, out_path = tempfile.mkstemp(prefix="aem-cr-", suffix=".json")
        os.close(fd)
        # Made (and removed) by the parent: a child killed at the timeout never runs its cleanup.
        work = Path(tempfile.mkdtemp(prefix="aem-cr-"))
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.setpgid(0, 0)
                _child(self.project, overlay or {}, out_path, self.mem_bytes, work)
            except BaseException:
                code = 1
            os._exit(code)
        res = RunResult()
        try:
            while True:
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.perf_counter() - t0 > self.timeout:
                    res.timed_out = True
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.003)
            res.seconds = time.perf_counter() - t0
            text = Path(out_path).read_text()
            if text:
                res.outcomes = json.loads(text)
            elif not res.timed_out:
                res.crashed = True
        finally:
            os.unlink(out_path)
            shutil.rmtree(work, ignore_errors=True)
        return res

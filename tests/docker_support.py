"""The Docker skip mark and agent commands shared by the sandbox, Shell and CodeRepair tests (a
plain module, not conftest: tests/fixtures/byo_repo has a conftest.py of its own, and the names
would clash)."""

from __future__ import annotations

import pytest


def docker_only(image: str = "aem/base:0") -> pytest.MarkDecorator:
    """Skip mark for tests that need a Docker engine with ``image``; the reason names what is
    missing. CI sets AEM_REQUIRE_DOCKER=1 so a missing engine or image fails loudly instead."""
    import os

    reason = None
    try:
        from aem_envs.sandbox import lifecycle

        lifecycle.get_client().images.get(image)
    except Exception as e:  # no engine or no image: say which
        reason = f"Docker not usable here: {str(e).splitlines()[0][:120]}"
    require = os.environ.get("AEM_REQUIRE_DOCKER", "") not in ("", "0")
    return pytest.mark.skipif(reason is not None and not require, reason=reason or "")


def containers_left_after_sigterm(argv: list[str]) -> list:
    """Start ``argv`` (a process that prints ``ready`` once its sandboxes exist), SIGTERM it,
    and return the labelled containers it left behind, removing them so one failing test
    leaks nothing into the next."""
    import subprocess

    from aem_envs.sandbox import lifecycle

    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        p.terminate()
        p.wait(timeout=60)
    finally:
        p.kill()
        p.wait()
    left = [c for c in lifecycle.labelled_containers() if c.labels.get(lifecycle.L_PID) == str(p.pid)]
    for c in left:
        c.remove(force=True)
    return left


#: An agent command that leaves a process running which kills every process started after it
#: (a new shell, the grader's shell, a ``tar`` reading the work tree).
KILL_NEW_PROCESSES = (
    "nohup python3 -c \"import os, time\nme = str(os.getpid()); known = set(os.listdir('/proc'))\n"
    "while True:\n    for p in set(os.listdir('/proc')) - known:\n        if p.isdigit() and p != me:\n"
    "            try: os.kill(int(p), 9)\n            except OSError: pass\n    time.sleep(0.002)\n"
    "\" >/dev/null 2>&1 & sleep 0.3"
)

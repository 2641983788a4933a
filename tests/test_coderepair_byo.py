"""A bring-your-own code-repair task from a repository in ``tests/fixtures`` round-trips
through the validator and ``aem/CodeRepair-v0``.

The fixture (``tests/fixtures/byo_repo``) is a task file (``tasks.yaml``) whose ``repo: repo``
is resolved relative to the file, a tiny ``intervals`` module with a real bug (touching closed
intervals are not merged), its visible tests and one held-out test file (``hidden_paths``).
Every check runs on LocalSandbox (host bash, NOT isolated: logic only) and, where the engine
and ``aem/base:0`` are there, on Docker, where the held-out file must also be unreachable from
the agent's container and no container may be left behind.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import yaml

import aem_envs
from aem_envs.cli import main as cli_main
from aem_envs.envs.coderepair.env import CodeRepairEnv
from aem_envs.envs.coderepair.task import load_tasks
from aem_envs.sandbox import lifecycle
from docker_support import docker_only as docker_only_mark

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "byo_repo"
TASK_FILE = FIXTURE / "tasks.yaml"
TASK_ID = "byo-intervals-touching"
HELDOUT = "tests/test_intervals_heldout.py"
F2P = ["tests/test_intervals.py::test_touching_merge", "tests/test_intervals_heldout.py::test_heldout_touching_chain"]


docker_only = docker_only_mark("aem/base:0")
pytestmark = pytest.mark.timeout(300)  # a hung sandbox must not hang CI

KINDS = ["local", pytest.param("docker", marks=[pytest.mark.docker, docker_only])]


def _my_containers() -> list:
    """Labelled containers created by this process (raw listing: see tests/test_coderepair.py)."""
    api = lifecycle.get_client().api
    return api.containers(all=True, filters={"label": [lifecycle.LABEL, f"{lifecycle.L_PID}={os.getpid()}"]})


@pytest.fixture
def make_env(request):
    """``make_env(kind, **kw)``: the env on this task file; closed (and, for Docker, checked
    to have left no container) by a finalizer even when the test fails."""
    envs: list[CodeRepairEnv] = []
    kinds: set[str] = set()

    def finish() -> None:
        for e in envs:
            e.close()
        if "docker" in kinds:
            assert _my_containers() == [], "containers were left behind"

    request.addfinalizer(finish)

    def make(kind: str, **kw) -> CodeRepairEnv:
        kinds.add(kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # sandbox="local" warns it is not isolated
            env = aem_envs.make("aem/CodeRepair-v0", task_file=str(TASK_FILE), sandbox=kind, split="test", **kw)
        envs.append(env)
        return env

    return make


def _tag(a: str) -> str:
    return f"<action>{a}</action>"


def _wrong_task_file(tmp_path: Path) -> Path:
    """The fixture task twice with broken gold patches: one applies but fixes nothing, one
    does not apply. ``repo`` is absolute here, since the file lives in ``tmp_path``."""
    good = yaml.safe_load(TASK_FILE.read_text())["tasks"][0]
    assert "+        if out and start <= out[-1][1]:" in good["patch"]
    no_fix = good["patch"].replace("start <= out[-1][1]:", "start < out[-1][1] + 0:")
    no_apply = good["patch"].replace("-        if out and start < out[-1][1]:", "-        if out and start < out[-1][0]:")
    tasks = [
        {**good, "instance_id": "byo-wrong-fix", "repo": str(FIXTURE / "repo"), "patch": no_fix},
        {**good, "instance_id": "byo-bad-diff", "repo": str(FIXTURE / "repo"), "patch": no_apply},
    ]
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump({"tasks": tasks}))
    return path


# ---------------------------------------------------------------------------------- task file
def test_task_file_resolves_repo_relative_to_the_file():
    (task,) = load_tasks(TASK_FILE)
    assert task.instance_id == TASK_ID and task.repo == str(FIXTURE / "repo")
    assert task.FAIL_TO_PASS == F2P and len(task.PASS_TO_PASS) == 5
    shown, full = task.start_files(include_hidden=False), task.start_files(include_hidden=True)
    assert HELDOUT not in shown and HELDOUT in full
    assert set(full) - set(shown) == {HELDOUT}
    assert "intervals.py" in shown and "tests/test_intervals.py" in shown
    assert not any("__pycache__" in p for p in full)


# ---------------------------------------------------------------------------------- validator
@pytest.mark.parametrize("kind", KINDS)
def test_validator_accepts_the_task_and_names_wrong_gold_patches(kind, tmp_path, capsys):
    assert cli_main(["coderepair", "validate", str(TASK_FILE), "--sandbox", kind, "--json"]) == 0
    out = capsys.readouterr().out
    assert f"[ok] {TASK_ID}" in out
    assert json.loads(out.strip().splitlines()[-1]) == {"tasks": 1, "valid": 1, "invalid": []}

    assert cli_main(["coderepair", "validate", str(_wrong_task_file(tmp_path)), "--sandbox", kind, "--json"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] byo-wrong-fix" in out and "[FAIL] byo-bad-diff" in out
    assert f"FAIL_TO_PASS tests still fail with the gold patch: {F2P}" in out
    assert "the gold patch does not apply: error: patch failed: intervals.py:11" in out
    assert "PASS_TO_PASS tests fail" not in out  # the message names only what is wrong
    assert json.loads(out.strip().splitlines()[-1]) == {
        "tasks": 2, "valid": 0, "invalid": ["byo-wrong-fix", "byo-bad-diff"]
    }



def _validate_variant(tmp_path: Path, capsys, files: dict[str, str], extra_p2p: tuple[str, ...] = ()) -> str:
    """``coderepair validate`` (local) on the fixture task with ``files`` added to a copy of its
    repository and ``extra_p2p`` appended to PASS_TO_PASS; it must refuse the task. Its output."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE / "repo", repo)
    for rel, text in files.items():
        (repo / rel).write_text(text)
    task = yaml.safe_load(TASK_FILE.read_text())["tasks"][0]
    task = {**task, "repo": str(repo), "PASS_TO_PASS": task["PASS_TO_PASS"] + list(extra_p2p)}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [task]}))
    assert cli_main(["coderepair", "validate", str(path), "--sandbox", "local"]) == 1
    return capsys.readouterr().out


def test_validator_names_a_pytest_setup_that_hides_the_check_test(tmp_path, capsys):
    """A repo whose pytest config would not collect grading's check test: every honest grade
    would count as tampered with, so the validator refuses the task and says why."""
    # the targets' names match test_*_*, the check test's name does not
    out = _validate_variant(tmp_path, capsys, {"pytest.ini": "[pytest]\npython_functions = test_*_*\n"})
    assert "grading's check test was reported missing instead of failed" in out, out
    assert "PASS_TO_PASS" not in out and "FAIL_TO_PASS" not in out  # consequences, not causes


def test_validator_refuses_xfail_marked_pass_to_pass_tests(tmp_path, capsys):
    """Grading counts only PASSED, so an xfail-marked PASS_TO_PASS test could never pass."""
    out = _validate_variant(
        tmp_path, capsys,
        {"tests/test_known_bug.py": "import pytest\n\n@pytest.mark.xfail(reason='known')\ndef test_known_bug():\n"
                                    "    assert False\n"},
        ("tests/test_known_bug.py::test_known_bug",),
    )
    assert "PASS_TO_PASS tests are xfail-marked: ['tests/test_known_bug.py::test_known_bug']" in out, out
    assert "PASS_TO_PASS tests fail" not in out  # named once, with its cause


def test_validator_names_a_target_test_that_compares_with_a_wildcard(tmp_path, capsys):
    """A target test comparing with a home-made wildcard (equal to anything) makes the sentinel
    copies pass on honest code: every grade would be flagged, so the validator says so."""
    out = _validate_variant(
        tmp_path, capsys,
        {"tests/test_wild.py": "from intervals import merge\n\nclass Whatever:\n    def __eq__(self, other):\n"
                               "        return True\n\ndef test_any_result():\n    assert merge([(1, 2)]) == Whatever()\n"},
        ("tests/test_wild.py::test_any_result",),
    )
    assert "grading counts an honest run as tampered with (the code returns values equal to anything (seen by 1 of" in out, out


# ---------------------------------------------------------------------------------- env round trip
def _check_heldout_hidden(env: CodeRepairEnv, kind: str) -> None:
    """The held-out file is nowhere the agent can look: not in its work tree or git history,
    and with Docker nowhere in its container (grading happens in another one)."""
    listing = env.step(_tag("find . -not -path './.git/*' -type f | sort"))[0]
    assert "tests/test_intervals.py" in listing and "heldout" not in listing, listing
    assert "No such file" in env.step(_tag(f"cat {HELDOUT}"))[0]
    assert "heldout" not in env.step(_tag("git log --all --stat | cat"))[0]
    obs = env.step(_tag("grep -rl test_heldout_touching_chain . ; echo END"))[0]
    assert obs.strip() == "END", obs
    if kind == "docker":
        obs = env.step(_tag("find / -name '*heldout*' -not -path '/proc/*' 2>/dev/null; echo END"))[0]
        assert obs.strip() == "END", obs
        obs = env.step(_tag("grep -rl test_heldout_touching_chain /workspace /tmp /home /root 2>/dev/null; echo END"))[0]
        assert obs.strip() == "END", obs


@pytest.mark.parametrize(
    "kind, use_pool",
    [("local", True), pytest.param("docker", True, marks=[pytest.mark.docker, docker_only]),
     pytest.param("docker", False, marks=[pytest.mark.docker, docker_only])],
)
def test_env_oracle_scores_ten_and_immediate_submit_zero(make_env, kind, use_pool):
    env = make_env(kind, use_pool=use_pool)
    assert list(env.task_ids("test")) == [TASK_ID] and list(env.task_ids("train")) == []

    obs, _ = env.reset(seed=0)
    assert "leaves touching intervals apart" in obs and "intervals.py" in obs and "heldout" not in obs
    total, steps = 0.0, []
    while True:
        action = env.oracle_action()
        steps.append(action.split("\n", 1)[0])
        obs, r, te, tr, info = env.step(_tag(action))
        total += r
        if steps[-1] == "run_tests":  # the visible tests pass once the gold patch is in
            assert "All selected tests passed." in obs, obs
        if te or tr:
            break
    assert steps[0].startswith("git apply") and steps[1:] == ["run_tests", "submit"]
    assert te and total == r == 10.0 and info["success"], obs
    assert "FAIL_TO_PASS: 2/2 pass; PASS_TO_PASS: 5/5 pass." in obs
    assert env.last_grade is not None and env.last_grade.resolved

    # Same task again (after a grade ran): the agent still cannot reach the held-out file.
    env.reset(seed=0, options={"task_id": TASK_ID})
    _check_heldout_hidden(env, kind)
    obs, r, te, tr, info = env.step(_tag("submit"))
    assert te and r == 0.0 and not info["success"]
    assert "The bug is not fixed." in obs and "FAIL_TO_PASS: 0/2 pass; PASS_TO_PASS: 5/5 pass." in obs

    if kind == "docker" and use_pool:  # one agent sandbox and both grading sandboxes came from the pool
        stats = next(iter(env._pools.values())).stats
        assert stats["fresh_hits"] + stats["cold_starts"] == 3, stats

"""aem/Shell-v0: task generation, grading, and episodes in the Docker sandbox.

Pure tests need nothing; ``local`` tests run the env on LocalSandbox (host bash, NOT isolated:
only gold commands run there); Docker tests need the engine and the base image.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter

import pytest

import aem_envs
from aem_envs.envs.shell import FAMILIES, make_task
from aem_envs.envs.shell.env import ShellEnv, _default_image
from aem_envs.envs.shell.grading import answer_similarity, manifest, manifest_similarity
from aem_envs.sandbox import lifecycle, tar_of
from docker_support import KILL_NEW_PROCESSES, containers_left_after_sigterm, docker_only as docker_only_mark


docker_only = docker_only_mark(_default_image())
pytestmark = pytest.mark.timeout(300)  # a hung sandbox must not hang CI


@pytest.fixture(scope="module", autouse=True)
def _close_pools():
    yield
    from aem_envs.sandbox.pool import close_shared_pools

    close_shared_pools()


def _play_oracle(env: ShellEnv, task_id: str, seed: int = 0):
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    traj = [obs]
    done = False
    while not done:
        obs, r, te, tr, info = env.step(env.oracle_response())
        traj.append((obs, r, te, tr))
        done = te or tr
    return traj, info, r


def _family_ids(split: str = "test") -> dict[str, str]:
    """One task id per family (family = global index % number of families)."""
    ids = ShellEnv(split=split).task_ids(split)
    out: dict[str, str] = {}
    for i in range(len(FAMILIES)):
        out.setdefault(make_task(ids[i], ids.index_of(ids[i])).family, ids[i])
    return out


def _one_task_per_family(split: str = "test") -> list[str]:
    return list(_family_ids(split).values())


# --------------------------------------------------------------------------- pure
def test_families_and_splits():
    assert len(FAMILIES) >= 15
    env = ShellEnv()
    train, test = env.task_ids("train"), env.task_ids("test")
    assert len(train) >= 10_000 and len(test) >= 1_000
    assert not set(train[:50]) & set(test[:50])
    assert env.task_ids("test").index_of(test[0]) is not None and test[0] not in train
    # construction starts no container
    assert env._sb is None


def test_tasks_are_deterministic_distinct_and_hide_the_gold():
    env = ShellEnv()
    ids = env.task_ids("train")
    a, b = make_task(ids[7], 7), make_task(ids[7], 7)
    assert a.tar() == b.tar() and a.instruction == b.instruction and a.gold == b.gold
    tasks = [make_task(ids[k], k) for k in range(300)]
    assert len({(t.instruction, t.tar()) for t in tasks}) == 300
    fams = Counter(t.family for t in tasks)
    assert set(fams) == set(FAMILIES)
    for t in tasks:
        assert t.gold not in t.instruction
        assert t.check in ("answer", "state") and (t.answer_kind is not None) == (t.check == "answer")
        assert 10 <= len(t.files) <= 120
        assert all(" " not in p for p in t.files)  # file names are shell-safe in the gold commands


def test_answer_normalisation():
    assert answer_similarity(" 42 ", "42\n", "number") == (True, 1.0)
    assert answer_similarity("forty-two", "42", "number")[0] is False
    ok, sim = answer_similarity("./a/b.txt, c.txt", "a/b.txt\nc.txt\n", "paths")
    assert ok and sim == 1.0
    ok, sim = answer_similarity("a/b.txt", "a/b.txt\nc.txt\n", "paths")
    assert not ok and sim == 0.5
    assert answer_similarity("'docs/x.md'", "docs/x.md\n", "path")[0]
    assert not answer_similarity("North", "north", "word")[0]


def test_manifest_compares_archives_by_members():
    import gzip
    import io
    import tarfile

    def targz(names, mtime):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for n in names:
                ti = tarfile.TarInfo(n)
                ti.size, ti.mtime = 2, mtime
                tf.addfile(ti, io.BytesIO(b"hi"))
        return gzip.compress(buf.getvalue(), mtime=mtime)

    a = tar_of({"logs_backup.tar.gz": targz(["logs/a.log", "logs/b.log"], 1), "x": b"1"})
    b = tar_of({"logs_backup.tar.gz": targz(["./logs/b.log", "logs/a.log"], 999), "x": b"1"})
    c = tar_of({"logs_backup.tar.gz": targz(["logs/a.log"], 1), "x": b"1"})

    def rooted(t):  # get_archive returns the tree under its directory name
        src = tarfile.open(fileobj=io.BytesIO(t))
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as dst:
            root = tarfile.TarInfo("workspace")
            root.type = tarfile.DIRTYPE
            dst.addfile(root)
            for m in src.getmembers():
                m.name = "workspace/" + m.name
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        return out.getvalue()

    ma, mb, mc = manifest(rooted(a)), manifest(rooted(b)), manifest(rooted(c))
    assert manifest_similarity(ma, mb)[0]
    eq, sim, diff = manifest_similarity(ma, mc)
    assert not eq and diff == ["logs_backup.tar.gz"] and 0 < sim < 1
    # Counted over what the task or the agent changed: doing nothing (agent == start) earns 0.
    start = dict(mc)
    start.pop("logs_backup.tar.gz")
    assert manifest_similarity(start, mc, start)[1] == 0.0 and manifest_similarity(mc, mc, start)[:2] == (True, 1.0)
    # an entry both deleted counts as matched, though neither tree lists it
    half = {k: v for k, v in start.items() if k != "x"}
    assert manifest_similarity(half, {k: v for k, v in mc.items() if k != "x"}, start)[1] == 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="local"):
        ShellEnv(sandbox="podman")
    with pytest.raises(ValueError):
        ShellEnv(partial_credit=2.0)


# --------------------------------------------------------------------------- local sandbox
def test_oracle_on_local_sandbox_every_family():
    env = aem_envs.make("aem/Shell-v0", sandbox="local", split="test")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fails = []
            for tid in _one_task_per_family():
                _, info, r = _play_oracle(env, tid)
                if not info["success"] or r != 10.0:
                    fails.append((tid, env._task.family, env.last_grade))
        assert not fails, fails
    finally:
        env.close()


# --------------------------------------------------------------------------- docker
@pytest.mark.docker
@docker_only
def test_oracle_solves_every_family_in_docker():
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        fails, turns = [], []
        for tid in _one_task_per_family():
            traj, info, r = _play_oracle(env, tid)
            turns.append(len(traj) - 1)
            if not (info["success"] and r == 10.0 and info["error_kind"] is None):
                fails.append((tid, env._task.family, env.last_grade))
        assert not fails, fails
        assert set(turns) == {2}  # gold command, then submit
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_submit_with_nothing_done_scores_zero_and_partial_credit():
    fam = _family_ids()
    env = aem_envs.make("aem/Shell-v0", split="test")
    env_pc = aem_envs.make("aem/Shell-v0", split="test", partial_credit=0.5)
    try:
        for name in ("count_ext", "sum_column", "files_mentioning_user", "archive_dir", "dedupe", "rename_ext"):
            env.reset(seed=0, options={"task_id": fam[name]})
            _, r, te, tr, info = env.step("<action>submit</action>")
            assert r == 0.0 and te and not info["success"], (name, env.last_grade)
        # Partial credit counts only what the task changes: the untouched tree, which shares
        # most entries with the gold one, earns nothing either.
        env_pc.reset(seed=0, options={"task_id": fam["delete_pattern"]})
        _, r, *_ = env_pc.step("<action>submit</action>")
        assert r == 0.0 and env_pc.last_grade["similarity"] == 0.0
    finally:
        env.close()
        env_pc.close()


@pytest.mark.docker
@docker_only
def test_persistent_shell_and_observation_format():
    env = aem_envs.make("aem/Shell-v0", split="test", command_timeout=1.5)
    try:
        obs, info = env.reset(seed=0, options={"task_id": _one_task_per_family()[0]})
        assert env.instruction in obs
        o, r, te, tr, info = env.step("<action>cd data && export N=5</action>")
        assert o == "(no output)\n[exit code 0]" and r == 0.0 and not te
        o, *_ = env.step("<action>basename $(pwd); echo $N; false</action>")
        assert o == "data\n5\n[exit code 1]"
        o, *_, info = env.step("<action>sleep 60</action>")
        assert "timed out" in o and info["action_valid"] and info["error_kind"] is None
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_escaping_symlink_fails_the_task_not_the_infrastructure():
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        env.reset(seed=0, options={"task_id": _family_ids()["delete_empty"]})
        env.step("<action>find . -type f -empty -delete && ln -s /etc/passwd leak</action>")
        _, r, te, tr, info = env.step("<action>submit</action>")
        assert te and not tr and r == 0.0 and info["error_kind"] is None and not info["success"]
        assert "refused" in env.last_grade["differences"][0]
    finally:
        env.close()


#: One command that makes the agent's own shell veto commands: under ``extdebug`` a DEBUG trap
#: that returns non-zero skips the next command. It skips the host's re-exec of the shell (and
#: the guard that would notice), then, inside the grading directory, skips every gold command and
#: prints a made-up answer instead: before the fix every task was solved by this plus ``submit``.
VETO_TRAP = (
    "shopt -s extdebug; trap 'if [[ $PWD == /tmp/.aem-grade* ]] && (( BASH_SUBSHELL > 0 )); then "
    "[[ -e /tmp/said ]] || { echo 12345; : > /tmp/said; }; false; "
    "elif [[ $BASH_COMMAND == *\"env -i\"* || $BASH_COMMAND == *\"__aem_shell-\"* ]]; then false; "
    "else true; fi' DEBUG"
)


@pytest.mark.docker
@docker_only
def test_agent_shell_cannot_intercept_the_gold_command():
    # The gold command runs in the agent's container: it must run in a shell the agent never
    # touched, not in the agent's shell told to replace itself.
    fam = _family_ids()
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        for name, answer in (("count_ext", "12345"), ("delete_pattern", "")):
            env.reset(seed=0, options={"task_id": fam[name]})
            o, *_ = env.step(f"<action>{VETO_TRAP}</action>")
            assert o == "(no output)\n[exit code 0]", o
            _, r, te, tr, info = env.step(f"<action>submit {answer}</action>")
            assert te and info["error_kind"] is None, (name, info)
            assert r == 0.0 and not info["success"], (name, env.last_grade)
    finally:
        env.close()


@pytest.mark.docker
@docker_only
@pytest.mark.parametrize(
    "family,hide",
    [
        # chmod 000 instead of deleting: tar could not open the files and left them out
        ("delete_pattern", "find . -type f \\( -name '*.tmp' -o -name '*.bak' -o -name '*.swp' \\) -exec chmod 000 {} +"),
        ("delete_empty", "find . -type f -empty -exec chmod 000 {} +"),
        ("dedupe", "md5sum photos/* | sort -k1,1 -k2,2 | awk 'seen[$1]++ {print $2}' | xargs -r chmod 000"),
    ],
)
def test_unreadable_files_cannot_hide_from_the_grader(family, hide):
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        env.reset(seed=0, options={"task_id": _family_ids()[family]})
        o, *_ = env.step(f"<action>{hide}</action>")
        assert o.endswith("[exit code 0]"), o
        _, r, te, tr, info = env.step("<action>submit</action>")
        assert te and not tr and info["error_kind"] is None
        assert r == 0.0 and not info["success"], env.last_grade
        assert "refused" in env.last_grade["differences"][0] and "Permission denied" in env.last_grade["differences"][0]
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_killing_the_graders_shell_fails_the_task_not_the_infrastructure():
    # A process the agent leaves behind that kills every new process also kills the shell the
    # grader starts (and the shell started after the agent's own shell died). That was an infra
    # error: the episode was dropped instead of scored, so a policy could have any episode it
    # was failing excluded from training and evaluation.
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        tid = _family_ids()["count_ext"]
        for last in ("submit 3", "exit"):  # the grader's shell; the agent's own next shell
            env.reset(seed=0, options={"task_id": tid})
            env.step(f"<action>{KILL_NEW_PROCESSES}</action>")
            o, r, te, tr, info = env.step(f"<action>{last}</action>")
            assert info["error_kind"] is None and te and not tr, (o, info)
            assert r == 0.0 and not info["success"] and "killed or stopped every new shell" in o, o
            _, info, r = _play_oracle(env, tid)  # the next episode gets a working sandbox
            assert info["success"] and r == 10.0
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_grader_files_are_invisible_before_submit():
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        env.reset(seed=0, options={"task_id": _family_ids()["sum_column"]})
        gold = env._task.gold
        o, *_ = env.step(
            "<action>grep -rlF -e 'awk -F,' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr "
            "--exclude-dir=lib --exclude-dir=etc 2>/dev/null; ls -A /tmp</action>"
        )
        assert gold.split()[0] == "awk"
        assert o == "home\n[exit code 0]"  # no file holds the gold command; /tmp holds only $HOME
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_a_shell_the_daemon_does_not_start_is_infrastructure_not_the_agent(monkeypatch):
    # The same failure as above (no new shell in a running container), but nothing the agent
    # left is running: a daemon fault, which must stay an infra error (dropped, never scored).
    from aem_envs.sandbox import SandboxError
    from aem_envs.sandbox.docker_sandbox import DockerSandbox

    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        env.reset(seed=0, options={"task_id": _family_ids()["count_ext"]})
        env.step("<action>sleep 60 &</action>")
        assert any("sleep 60" in p for p in env._sb.leftover_processes())
        env.step("<action>kill %1; wait</action>")
        assert env._sb.leftover_processes() == []  # the agent's own shell is the one started last

        def overloaded(self, cleanup, restore=False):
            raise SandboxError(f"sandbox {self.id}: the shell did not start within 60 s; the daemon may be overloaded")

        monkeypatch.setattr(DockerSandbox, "_spawn_shell", overloaded)
        _, r, te, tr, info = env.step("<action>submit</action>")
        assert info["error_kind"] == "infra" and r == 0.0, info
    finally:
        monkeypatch.undo()
        env.close()


@pytest.mark.docker
@docker_only
def test_partial_credit_counts_only_what_the_task_changes():
    # Over the whole tree, the files a task leaves alone earned an idle agent 0.88 of full credit.
    env = aem_envs.make("aem/Shell-v0", split="test", partial_credit=1.0)
    try:
        env.reset(seed=0, options={"task_id": _family_ids()["delete_pattern"]})
        ext = env._task.gold.split("'*.")[1].split("'")[0]
        assert env.step("<action>submit</action>")[1] == 0.0
        env.reset(seed=0, options={"task_id": _family_ids()["delete_pattern"]})
        # delete one of the matching files: partial credit, between nothing and all
        o, *_ = env.step(f"<action>find . -type f -name '*.{ext}' | sort | head -n 1 | xargs rm</action>")
        _, r, te, *_ = env.step("<action>submit</action>")
        assert te and 0.0 < r < 10.0 and env.last_grade["similarity"] == r / 10.0, env.last_grade
        _, info, r = _play_oracle(env, _family_ids()["delete_pattern"])
        assert info["success"] and r == 10.0
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_container_loss_is_an_infra_error_and_the_env_recovers():
    env = aem_envs.make("aem/Shell-v0", split="test")
    try:
        tid = _one_task_per_family()[0]
        env.reset(seed=0, options={"task_id": tid})
        env._sb.container.kill()
        _, r, te, tr, info = env.step("<action>ls</action>")
        assert info["error_kind"] == "infra" and tr and not te and r == 0.0
        _, info, r = _play_oracle(env, tid)  # the next reset replaces the dead container
        assert info["success"]
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_missing_daemon_or_image_is_a_one_line_infra_error(monkeypatch):
    from aem_envs.core import InfraError
    from aem_envs.sandbox import DaemonDown, ImageMissing

    env = aem_envs.make("aem/Shell-v0", split="test", image="aem/not-built:0")
    try:
        with pytest.raises(ImageMissing, match="aem-envs images build") as ei:
            env.reset(seed=0)
        assert isinstance(ei.value, InfraError) and "\n" not in str(ei.value)
    finally:
        env.close()
    monkeypatch.setattr(lifecycle, "_client", None)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    env = aem_envs.make("aem/Shell-v0", split="test", mem_limit="300m")  # its own pool
    try:
        t0 = time.perf_counter()
        with pytest.raises(DaemonDown, match="engine.sh"):
            env.reset(seed=0)
        assert time.perf_counter() - t0 < 10
    finally:
        env.close()


@pytest.mark.docker
@docker_only
def test_reused_env_equals_fresh_env_and_threads_equal_sync():
    fam = _family_ids()
    used = aem_envs.make("aem/Shell-v0", split="test")
    fresh = aem_envs.make("aem/Shell-v0", split="test")
    try:
        with used.frozen_timing(), fresh.frozen_timing():
            _play_oracle(used, fam["archive_dir"])  # leaves an archive behind
            _play_oracle(used, fam["dedupe"])
            t_used, *_ = _play_oracle(used, fam["archive_dir"])
            t_fresh, *_ = _play_oracle(fresh, fam["archive_dir"])
        assert t_used == t_fresh
    finally:
        used.close()
        fresh.close()

    def run(mode):
        out = []
        with aem_envs.make_vec("aem/Shell-v0", num_tasks=2, group_size=2, mode=mode, split="test") as vec:
            for e in vec.envs:
                e._record_timing = False
            obs, _ = vec.reset(seed=3, task_ids=[fam["top_path"], fam["make_executable"]])
            out.append(obs)
            while not vec.all_done:
                acts = [None if vec.done[i] else e.oracle_response() for i, e in enumerate(vec.envs)]
                st = vec.step(acts)
                out.append((st.observations, st.rewards.tolist(), [i and i["success"] for i in st.infos]))
        return out

    t0 = time.perf_counter()
    threads = run("threads")
    sync = run("sync")
    assert threads == sync
    assert threads[-1][1] == [10.0] * 4
    assert time.perf_counter() - t0 < 120


_VEC_HOLDER = """
import sys, time
import aem_envs
vec = aem_envs.make_vec("aem/Shell-v0", num_tasks=1, group_size=2, mode="threads")
vec.reset(seed=0)  # the pool and its containers are made on worker threads
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.docker
@docker_only
def test_sigterm_removes_containers_started_by_vector_threads():
    import sys

    assert containers_left_after_sigterm([sys.executable, "-c", _VEC_HOLDER]) == []


@pytest.mark.docker
@docker_only
def test_zz_no_labelled_containers_left():
    from aem_envs.sandbox.pool import close_shared_pools

    close_shared_pools()
    deadline = time.time() + 30
    while time.time() < deadline:
        mine = [c for c in lifecycle.labelled_containers() if c.labels.get(lifecycle.L_PID) == str(os.getpid())]
        if not mine:
            break
        time.sleep(0.5)
    assert mine == []

"""The sandbox layer against the failure cases of notes/docker.md, on a real Docker engine.

Docker tests share one module-scoped sandbox where a case leaves it usable, and create their
own when they need other limits. Every container is removed by fixture finalizers, and the
last test asserts that no labelled container of this process is left.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import time

import pytest

from aem_envs.core import InfraError
from aem_envs.sandbox import (
    DaemonDown,
    ImageMissing,
    LocalSandbox,
    OutputBuffer,
    SandboxConfig,
    SandboxLost,
    UnsafeArchive,
    check_archive,
    clean_output,
    tar_of,
)
from aem_envs.envs.shell.env import _default_image
from aem_envs.sandbox import lifecycle
from docker_support import containers_left_after_sigterm, docker_only as docker_only_mark

PY = sys.executable


docker_only = docker_only_mark(_default_image())
pytestmark = pytest.mark.timeout(300)  # a hung sandbox must not hang CI


def _image() -> str:
    from aem_envs.envs.shell.env import _default_image

    return _default_image()


def _cfg(**kw) -> SandboxConfig:
    return SandboxConfig(image=_image(), **kw)


@pytest.fixture(scope="module")
def sb(request):
    from aem_envs.sandbox.docker_sandbox import DockerSandbox

    box = DockerSandbox(_cfg(mem_limit="512m"))
    request.addfinalizer(box.close)
    return box


@pytest.fixture
def make_sb(request):
    """Factory for sandboxes with special settings; all closed at test end."""
    from aem_envs.sandbox.docker_sandbox import DockerSandbox

    made = []

    def factory(**kw):
        box = DockerSandbox(_cfg(**kw))
        made.append(box)
        return box

    def fin():
        for b in made:
            b.close()

    request.addfinalizer(fin)
    return factory


def agent_procs(box) -> list[str]:
    """Processes of the agent uid other than the persistent shell and its watchdog."""
    _, out = box._exec_bytes(["ps", "-u", "1000", "-o", "pid=,stat=,args="])
    lines = [ln.strip() for ln in out.decode().splitlines() if ln.strip()]
    lines = [ln for ln in lines if "ps -u 1000" not in ln and " Z " not in f" {ln.split()[1]} "]
    shell = [ln for ln in lines if ln.endswith("bash --noprofile --norc")]
    others = [ln for ln in lines if not ln.endswith("bash --noprofile --norc")]
    # the persistent shell and its watchdog subshell both show as bash
    assert len(shell) <= 2, lines
    return others


# --------------------------------------------------------------------------- pure helpers
def test_output_buffer_keeps_head_and_tail():
    buf = OutputBuffer(100)
    for i in range(1000):
        buf.add(f"{i:04d}\n".encode())
    text, truncated = buf.text()
    assert truncated and text.startswith("0000\n") and text.endswith("0999\n")
    assert "bytes of output omitted" in text and len(text) < 200
    assert buf.total() == 5000


def test_clean_output_handles_binary_ansi_and_cr():
    raw = b"ok \xff\xfe \x1b[31mred\x1b[0m\nprogress 10%\rprogress 100%\r\nbell\x07 \x1b]0;title\x07end\n"
    text = clean_output(raw)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "red" in text and "progress 100%\n" in text and "progress 10%" not in text
    assert "\ufffd" in text  # invalid UTF-8 replaced, not dropped silently
    text.encode("utf-8")


def _raw_tar(name: str, **kw) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        for k, v in kw.items():
            setattr(ti, k, v)
        data = b"x" if ti.type == tarfile.REGTYPE else b""
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize(
    "bad",
    [
        _raw_tar("../evil"),
        _raw_tar("/etc/evil"),
        _raw_tar("a/../../evil"),
        _raw_tar("link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        _raw_tar("d/link", type=tarfile.SYMTYPE, linkname="../../x"),
        _raw_tar("hard", type=tarfile.LNKTYPE, linkname="../x"),
        _raw_tar("dev", type=tarfile.CHRTYPE),
    ],
)
def test_archive_escapes_are_refused(bad):
    with pytest.raises(UnsafeArchive):
        check_archive(bad)


def test_archive_size_cap_and_safe_members():
    ok = tar_of({"a/b.txt": b"hi", "c.txt": (b"x" * 100, 0o600)})
    names = [m.name for m in check_archive(ok)]
    assert "a/b.txt" in names and "c.txt" in names
    with pytest.raises(UnsafeArchive):
        check_archive(ok, max_bytes=50)
    assert isinstance(UnsafeArchive("x"), InfraError)


# --------------------------------------------------------------------------- local (no docker)
def test_local_sandbox_is_marked_and_works(tmp_path):
    with pytest.warns(RuntimeWarning, match="NOT isolated"):
        box = LocalSandbox()
    try:
        assert box.isolated is False
        assert box.run("mkdir d && cd d && export X=7").exit_code == 0
        r = box.run("basename $(pwd); echo $X")
        assert r.output == "d\n7\n"
        r = box.run("echo 'unbalanced")
        assert r.exit_code == 2 and not r.shell_restarted
        r = box.run("sleep 30", timeout=0.5)
        assert r.timed_out and r.exit_code == 124
        r = box.run("exit 4")
        assert r.shell_restarted and r.exit_code == 4
        box.write_file("f/a.txt", "hello")
        assert box.read_file("f/a.txt") == b"hello"
        with pytest.raises(FileNotFoundError, match="not a regular file"):
            box.read_file("f")  # a directory: not the first file inside it
        box.snapshot()
        box.run("rm -rf f; touch junk; export Y=1")
        box.reset()
        assert box.run("ls; echo Y=$Y").output == "d\nf\nY=\n"
    finally:
        box.close()
        box.close()  # idempotent
    assert not os.path.exists(box.root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file")
def test_local_sandbox_refuses_an_unreadable_tree():
    with pytest.warns(RuntimeWarning, match="NOT isolated"):
        box = LocalSandbox()
    try:
        box.run("echo x > f && chmod 000 f")
        with pytest.raises(UnsafeArchive, match="could not be read"):  # was a PermissionError
            box.get_archive(box.workdir)
    finally:
        box.run("chmod 644 f")
        box.close()


# --------------------------------------------------------------------------- docker: basics
@pytest.mark.docker
@docker_only
def test_persistent_shell_state_and_speed(sb):
    assert sb.run("cd /tmp && export FOO=bar && f() { echo fn; }").exit_code == 0
    r = sb.run("pwd; echo $FOO; f")
    assert r.output == "/tmp\nbar\nfn\n" and r.exit_code == 0
    r = sb.run("echo out; echo err >&2; exit_code() { return 3; }; exit_code")
    assert r.output == "out\nerr\n" and r.exit_code == 3
    assert sb.run("printf 'no newline'").output == "no newline"
    t0 = time.perf_counter()
    for _ in range(50):
        sb.run("true")
    per_step = (time.perf_counter() - t0) / 50
    assert per_step < 0.02, f"{per_step * 1e3:.1f} ms per step"
    sb.run("cd /workspace")


@pytest.mark.docker
@docker_only
def test_safe_defaults_uid_caps_nonewprivs_readonly(sb):
    r = sb.run("id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status")
    lines = r.output.split()
    assert lines[0] == "1000" and lines[1] == "1000"
    st = dict(zip(lines[2::2], lines[3::2]))
    assert st["CapEff:"] == "0000000000000000" and st["CapBnd:"] == "0000000000000000"
    assert st["NoNewPrivs:"] == "1" and st["Seccomp:"] == "2"
    assert sb.run("touch /usr/evil").exit_code != 0  # read-only root
    assert sb.run("cat /etc/shadow").exit_code != 0
    r = sb.run("echo $TZ $LANG $PYTHONHASHSEED $PAGER; ulimit -n; ulimit -f")
    assert r.output.split()[:4] == ["UTC", "C.UTF-8", "0", "cat"]
    assert r.output.split()[4] == "4096"
    host = sb.container.client.api.inspect_container(sb.container.id)["HostConfig"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["Init"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 256 and host["NanoCpus"] == 1_000_000_000
    assert host["LogConfig"]["Type"] == "none"
    if lifecycle.swap_supported():
        assert host["MemorySwap"] == host["Memory"] > 0  # no swap beyond the memory limit
    labels = sb.container.labels
    assert labels[lifecycle.LABEL] == "1" and labels[lifecycle.L_PID] == str(os.getpid())
    assert float(labels[lifecycle.L_EXPIRES]) > time.time()


@pytest.mark.docker
@docker_only
def test_network_egress_fails(sb):
    r = sb.run(
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)\"", timeout=10
    )
    assert r.exit_code != 0 and "Network is unreachable" in r.output
    assert sb.run("getent hosts example.com", timeout=10).exit_code != 0
    assert sb.run("ls /sys/class/net").output.split() == ["lo"]


@pytest.mark.docker
@docker_only
def test_files_roundtrip_and_unsafe_archive(sb):
    sb.write_file("rt/a.txt", "héllo\n", mode=0o600)
    assert sb.read_file("rt/a.txt") == "héllo\n".encode()
    assert sb.run("stat -c '%a %U' rt/a.txt").output == "600 agent\n"
    with pytest.raises(FileNotFoundError):
        sb.read_file("rt/missing.txt")
    with pytest.raises(FileNotFoundError, match="not a regular file"):
        sb.read_file("rt")  # a directory: not the first file inside it
    with pytest.raises(UnsafeArchive):
        sb.put_archive("/workspace", _raw_tar("../../etc/evil"))
    sb.run("rm -rf /workspace/rt")


# --------------------------------------------------------------------------- docker: failure cases
@pytest.mark.docker
@docker_only
@pytest.mark.parametrize(
    "cmd",
    [
        "while :; do :; done",  # a loop inside the shell itself
        "sh -c 'while :; do :; done'",
        "bash -c 'trap \"\" TERM INT; while :; do :; done'",  # ignores SIGTERM
        "sleep 300 & (setsid sleep 300 &) ; (sleep 300 &) ; sleep 300",  # background + double fork
    ],
)
def test_deadline_kills_everything(sb, cmd):
    r = sb.run(cmd, timeout=1.0)
    assert r.timed_out and r.exit_code == 124
    assert r.duration < 6
    assert agent_procs(sb) == []
    assert sb.run("echo alive").output == "alive\n"


@pytest.mark.docker
@docker_only
def test_fork_bomb_is_contained(make_sb):
    box = make_sb(pids_limit=128)
    box.run(":(){ :|:& };:", timeout=2.0)  # backgrounds itself: the command returns at once
    time.sleep(0.5)
    _, cur = box._exec_bytes(["cat", "/sys/fs/cgroup/pids/pids.current"])
    assert int(cur.split()[-1]) <= 128 + 2  # the pids limit holds (+ this probe exec)
    assert "alive" in box.run("echo alive", timeout=10).output  # builtins need no fork
    r = box.run("while :; do :; done", timeout=1.0)  # any deadline sweeps every stray process
    assert r.timed_out
    assert box.run("echo again", timeout=10).output == "again\n"
    assert agent_procs(box) == []


@pytest.mark.docker
@docker_only
def test_memory_hog_is_detected(make_sb):
    box = make_sb(mem_limit="256m")
    r = box.run("python3 -c 'x = bytearray(1024**3); print(len(x))'", timeout=30)
    assert r.exit_code == 137 and r.oom_killed and "out-of-memory" in r.output
    assert box.run("echo alive").output == "alive\n"
    assert box.alive()


@pytest.mark.docker
@docker_only
def test_disk_fill_fails_cleanly(make_sb):
    box = make_sb(fsize_bytes=8 * 1024 * 1024)
    r = box.run("echo x > /opt/file")
    assert r.exit_code != 0 and "Read-only file system" in r.output
    r = box.run("head -c 20000000 /dev/zero > /workspace/big; echo status=$?")
    assert "status=153" in r.output  # SIGXFSZ: the file-size ulimit
    assert box.run("stat -c %s /workspace/big").output.strip() == str(8 * 1024 * 1024)
    r = box.run("dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1; df -m /tmp | tail -1", timeout=30)
    assert "No space left on device" in r.output or "File size limit" in r.output
    assert box.run("rm -f /tmp/fill /workspace/big && echo ok").output == "ok\n"


@pytest.mark.docker
@docker_only
def test_200mb_of_output_is_bounded(sb):
    t0 = time.perf_counter()
    r = sb.run("head -c 200000000 /dev/zero | tr '\\0' 'a'; echo; echo END", timeout=60)
    elapsed = time.perf_counter() - t0
    assert r.exit_code == 0 and r.truncated
    assert len(r.output) < sb.config.output_limit + 200
    assert r.output.startswith("aaaa") and r.output.endswith("END\n")
    assert elapsed < 20
    assert sb.run("echo next").output == "next\n"


@pytest.mark.docker
@docker_only
def test_binary_and_escape_output(sb):
    r = sb.run(r"printf 'a\xff\xfeb \033[1;31mred\033[0m\n50%%\r100%%\n'")
    assert r.output == "a\ufffd\ufffdb red\n100%\n"  # a carriage return keeps the last overwrite


@pytest.mark.docker
@docker_only
def test_marker_imitation_does_not_end_a_command(sb):
    # Lines shaped like the protocol's end and death markers, plus a traced (set -x) command.
    r = sb.run(
        "echo AEM0123456789abcdef01234567 0 0; printf '\\nAEMRDY00 READY 0\\n'; "
        "printf '\\nAEMDIE00 DEAD 0\\n'; echo still-running; exit_code() { return 5; }; exit_code"
    )
    assert "still-running" in r.output and r.exit_code == 5 and not r.shell_restarted
    r = sb.run("set -x; echo traced; set +x")
    assert "traced" in r.output and r.exit_code == 0
    assert sb.run("echo after").output == "after\n"


@pytest.mark.docker
@docker_only
def test_unbalanced_quotes_and_heredoc(sb):
    r = sb.run("echo 'unbalanced")
    assert r.exit_code == 2 and "unexpected EOF" in r.output and not r.shell_restarted
    r = sb.run('echo "also unbalanced')
    assert r.exit_code == 2
    r = sb.run("cat <<EOF\nline one\nline two")
    assert "line one\nline two" in r.output and not r.shell_restarted
    assert sb.run("echo fine").output == "fine\n"


@pytest.mark.docker
@docker_only
@pytest.mark.parametrize("cmd", ["exit 3", "exec sh", "kill -9 $$", "set -e; false", "/bin/kill -9 -1"])
def test_shell_death_is_respawned_and_reported(sb, cmd):
    sb.run("echo kept > /workspace/work.txt && cd /tmp && export GONE=1")
    r = sb.run(cmd, timeout=10)
    assert r.shell_restarted and "a new shell was started" in r.output
    if cmd == "exit 3":
        assert r.exit_code == 3
    r = sb.run("pwd; echo GONE=$GONE; cat work.txt && rm work.txt")
    # The new shell resets the shell's state, not the agent's work (it wiped the tree before).
    assert r.output == "/workspace\nGONE=\nkept\n"
    assert sb.alive()


@pytest.mark.docker
@docker_only
def test_builtin_kill_all_keeps_container(sb):
    r = sb.run("sleep 100 & kill -9 -1; echo survived")
    assert "survived" in r.output  # the shell is the caller; the root keeper cannot be signalled
    assert sb.alive() and agent_procs(sb) == []


@pytest.mark.docker
@docker_only
def test_interactive_programs_get_eof(sb):
    assert sb.run("python3", timeout=10).exit_code == 0  # REPL reads EOF and exits
    assert sb.run("read x; echo got=[$x]", timeout=5).output == "got=[]\n"
    assert sb.run("cat", timeout=5).exit_code == 0
    r = sb.run("printf 'l1\\nl2\\n' > /tmp/f; less /tmp/f; more /tmp/f", timeout=5)
    assert r.output.count("l1") == 2 and not r.timed_out
    r = sb.run("echo $PAGER; tty", timeout=5)
    assert r.output.startswith("cat\nnot a tty")


@pytest.mark.docker
@docker_only
def test_reset_leaves_no_trace(make_sb):
    box = make_sb()
    box.put_archive("/workspace", tar_of({"keep/a.txt": b"original\n", "b.txt": (b"B\n", 0o640)}))
    box.snapshot()
    box.run(
        "echo changed > keep/a.txt; rm b.txt; mkdir new; touch new/x; chmod 000 keep; "
        "echo s > /tmp/scratch; export LEAK=1; cd /tmp; alias ll=ls; f() { :; }; "
        "sleep 500 & (setsid sleep 500 &); umask 077"
    )
    box.reset()
    r = box.run("pwd; echo LEAK=$LEAK; type f ll 2>&1 | head -2; ls -A /tmp; umask")
    assert r.output.splitlines()[0] == "/workspace"
    assert "LEAK=" in r.output.splitlines()[1] and "LEAK=1" not in r.output
    assert "scratch" not in r.output and "not found" in r.output
    assert box.read_file("keep/a.txt") == b"original\n"
    assert box.run("stat -c '%a %n' b.txt keep; ls -A").output == "640 b.txt\n755 keep\nb.txt\nkeep\n"
    assert agent_procs(box) == []


@pytest.mark.docker
@docker_only
def test_reset_wipes_every_agent_writable_place(make_sb):
    # Beyond /workspace and /tmp the agent uid can write /run/aem (the protocol's tmpfs),
    # /dev/shm and /dev/mqueue; a file left there would carry notes into the next episode
    # of the same task. Directories the agent made unreadable must not shield their contents.
    box = make_sb()
    box.snapshot()
    planted = "/run/aem/note /run/aem/sh/note /dev/shm/note /dev/mqueue/note /tmp/locked/in/note"
    r = box.run(
        "mkdir -p /tmp/locked/in; for f in " + planted + "; do touch $f || echo FAIL $f; done; "
        "chmod 000 /tmp/locked/in /tmp/locked"
    )
    assert "FAIL" not in r.output, r.output
    box.reset()
    r = box.run(f"ls -A /run/aem /dev/shm /dev/mqueue /tmp; ls {planted} 2>&1 | grep -v 'No such file'")
    assert "note" not in r.output and "locked" not in r.output, r.output
    assert box.run("echo ok", timeout=2).output == "ok\n"  # the protocol's own files came back
    box.run("touch /dev/shm/note")
    box.respawn_shell()
    assert box.run("ls -A /dev/shm").output == ""
    # System V IPC objects are no files but hold data (a message queue) just as well.
    ipc = "tail -n +2 /proc/sysvipc/msg /proc/sysvipc/shm /proc/sysvipc/sem | grep -c '[0-9]'"
    for restart in (box.reset, box.respawn_shell):
        assert box.run("ipcmk -Q >/dev/null && ipcmk -M 4096 >/dev/null && ipcmk -S 1 >/dev/null; " + ipc).output == "3\n"
        restart()
        assert box.run(ipc).output == "0\n"


@pytest.mark.docker
@docker_only
def test_reset_survives_a_tampered_shell(make_sb):
    box = make_sb()
    shell = box._shell
    box.run("ulimit -n 100")  # lowers soft and hard limit
    box.reset()
    assert box._shell is not shell  # a brand-new exec
    assert box.run("ulimit -Hn").output == "4096\n"
    box.run("exec >/tmp/swallowed 2>&1")  # the agent hid stdout from the protocol
    box.reset()
    assert box.run("echo visible").output == "visible\n"
    box.run("exec() { :; }; set() { :; }; unset() { :; }; env() { :; }")  # shadowed builtins
    t0 = time.perf_counter()
    box.reset()
    assert time.perf_counter() - t0 < 3
    assert box.run("type exec | head -1").output == "exec is a shell builtin\n"
    # Shadowing `builtin` itself breaks the framing: the command ends by its deadline, the
    # shell is replaced, and the sandbox keeps answering.
    r = box.run("builtin() { :; }", timeout=1.0)
    assert r.timed_out and r.shell_restarted
    assert box.run("type builtin | head -1").output == "builtin is a shell builtin\n"
    assert agent_procs(box) == []


@pytest.mark.docker
@docker_only
def test_reset_and_respawn_do_not_run_in_the_agents_shell(make_sb):
    # Under extdebug a DEBUG trap that returns non-zero skips the next command, so the agent's
    # shell can veto anything sent to it: its own re-exec, the guard that would notice, the
    # restore of the work tree. Reset and respawn must use a shell the agent never touched.
    box = make_sb()
    box.put_archive("/workspace", tar_of({"a.txt": b"original\n"}))
    box.snapshot()
    veto = (
        "shopt -s extdebug; trap '[[ $BASH_COMMAND != *\"env -i\"* && $BASH_COMMAND != *__aem_shell-* "
        "&& $BASH_COMMAND != *\"tar -x\"* && $BASH_COMMAND != *-delete* ]]' DEBUG; echo changed > a.txt"
    )
    for restart in (box.reset, box.respawn_shell):
        assert box.run(veto).exit_code == 0
        restart()
        r = box.run("shopt extdebug; trap -p DEBUG; echo end")
        assert r.output == "extdebug       \toff\nend\n", r.output
        assert agent_procs(box) == []
    assert box.run("cat a.txt").output == "changed\n"  # respawn keeps the work tree
    box.run(veto)
    box.reset()
    assert box.read_file("a.txt") == b"original\n"


@pytest.mark.docker
@docker_only
@pytest.mark.parametrize(
    "survivor,mark",
    [
        # Renamed (/proc/self/comm) to "x) Z" plus a newline: the sweep read the first line of
        # /proc/PID/stat, took "Z" for its state and skipped it as a zombie.
        ("open('/proc/self/comm', 'w').write('x) Z\\n')\nimport time\nwhile True: time.sleep(0.1)", "x) Z"),
        # The main thread exits, a second thread runs on: the process shows state Z (its leader
        # is a zombie) while it is alive, and was skipped the same way.
        ("import threading, time, ctypes\nthreading.Thread(target=lambda: time.sleep(300)).start()\n"
         "time.sleep(0.1)\nctypes.CDLL(None).pthread_exit(None)", "python3"),
    ],
    ids=["renamed", "zombie-leader"],
)
def test_a_process_that_looks_like_a_zombie_is_killed(make_sb, survivor, mark):
    # Such a process outlived reset, respawn_shell and deadlines (and so the Shell grader's
    # sweep, into the gold command's run and the next episode).
    box = make_sb()
    start = f"nohup python3 -c \"{survivor}\" >/dev/null 2>&1 & sleep 0.5"
    for restart in (box.respawn_shell, box.reset, lambda: box.run("sleep 30", timeout=0.5)):
        box.run(start)
        assert any(mark in p for p in agent_procs(box)), agent_procs(box)
        restart()
        assert agent_procs(box) == []


# Run by an agent command: try to read and to ptrace the shell that runs it, print what happened.
_PEEK_AT_SHELL = """
import ctypes, errno, os, sys
pid = int(sys.argv[1])
try:
    open(f"/proc/{pid}/mem", "rb").close()
    mem = "open"
except OSError as e:
    mem = errno.errorcode[e.errno]
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
    os.waitpid(pid, 0)
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    attach = "attached"
else:
    attach = errno.errorcode[ctypes.get_errno()]
print(mem, attach)
"""


@pytest.mark.docker
@docker_only
def test_agent_processes_cannot_ptrace_or_read_the_shell(make_sb):
    # Same uid and no Yama in the container: any process the agent left could attach to the
    # fresh shell a reset or the grader starts and, in the moment before that shell's sweep
    # kills it, make the shell skip the sweep or the grading. The shell binary is execute-only,
    # which makes the kernel mark the shell non-dumpable: no ptrace, no /proc/PID/mem, for any
    # process without CAP_SYS_PTRACE (all are dropped).
    box = make_sb()
    box.put_archive("/tmp", tar_of({"peek.py": _PEEK_AT_SHELL.encode()}))
    for restart in (lambda: None, box.reset, box.respawn_shell):
        restart()
        box.put_archive("/tmp", tar_of({"peek.py": _PEEK_AT_SHELL.encode()}))
        assert box.run("python3 /tmp/peek.py $$").output == "EACCES EPERM\n"
    # The agent's own programs are ordinary processes: it can still debug what it starts.
    r = box.run("sleep 30 & python3 /tmp/peek.py $!; kill %1")
    assert r.output.split()[-2:] == ["open", "attached"], r.output


@pytest.mark.docker
@docker_only
def test_get_archive_refuses_what_it_cannot_read(make_sb):
    # tar leaves out a file it cannot open (and a directory it cannot list, with its whole
    # subtree) and only says so on stderr: an archive missing them must not pass as the tree.
    box = make_sb()
    box.run("mkdir -p t/d && echo a > t/a && echo b > t/b && echo x > t/d/x")
    assert "t/b" in {m.name for m in tarfile.open(fileobj=io.BytesIO(box.get_archive("t"))).getmembers()}
    for hide in ("chmod 000 t/b", "chmod 300 t/d"):
        box.run("chmod -R u+rwX t && " + hide)
        with pytest.raises(UnsafeArchive, match="Permission denied"):
            box.get_archive("t")
    box.run("chmod -R u+rwX t")
    assert len(tarfile.open(fileobj=io.BytesIO(box.get_archive("t"))).getmembers()) == 5


@pytest.mark.docker
@docker_only
def test_git_work_tree_reset(make_sb):
    box = make_sb()
    box.run(
        "git init -q . && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m init && "
        "echo v1 > f && git add f && git -c user.email=a@b -c user.name=a commit -qm f"
    )
    box.snapshot()
    assert box._snapshot_git
    box.run("echo v2 > f; touch untracked; mkdir -p d/e")
    box.reset()
    assert box.run("cat f; git status --porcelain").output == "v1\n"


@pytest.mark.docker
@docker_only
def test_git_reset_cannot_plant_processes_or_files(make_sb):
    # The restore runs git on the agent's .git: a config that makes git run a command
    # (core.fsmonitor here; smudge filters alike) must not leave a process or a file behind.
    box = make_sb()
    box.run(
        "git init -q . && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m init && "
        "echo v1 > f && git add f && git -c user.email=a@b -c user.name=a commit -qm f"
    )
    box.snapshot()
    plant = "setsid sleep 777 >/dev/null 2>&1 </dev/null & touch /tmp/planted /dev/shm/planted; echo"
    box.run(f"git config core.fsmonitor '{plant}'; echo v2 > f")
    box.reset()
    assert box.run("cat f; ls -A /tmp /dev/shm").output == "v1\n/dev/shm:\n\n/tmp:\nhome\n"
    assert agent_procs(box) == []


@pytest.mark.docker
@docker_only
def test_container_killed_mid_command_is_infra_error(make_sb):
    box = make_sb()
    threading.Timer(0.5, lambda: box.container.kill()).start()
    with pytest.raises(SandboxLost) as ei:
        box.run("sleep 20", timeout=30)
    assert isinstance(ei.value, InfraError)
    assert "\n" not in str(ei.value) and "start a new one" in str(ei.value)


@pytest.mark.docker
@docker_only
def test_container_that_fails_to_start_is_removed():
    # The daemon creates the container, then refuses to start it (a bad tmpfs option here):
    # the created container must not stay behind for the rest of the run.
    from aem_envs.sandbox.docker_sandbox import DockerSandbox
    from aem_envs.sandbox.errors import SandboxError

    with pytest.raises(SandboxError, match="refused to start"):
        DockerSandbox(_cfg(tmpfs=(("/workspace", "size=bogus"),)))
    api = lifecycle.get_client().api
    mine = api.containers(all=True, filters={"label": [lifecycle.LABEL, f"{lifecycle.L_PID}={os.getpid()}"]})
    assert [c for c in mine if c["State"] == "created"] == []


@pytest.mark.docker
@docker_only
def test_snapshot_of_a_killed_container_is_infra_error(make_sb):
    box = make_sb()
    box.container.kill()
    with pytest.raises(SandboxLost, match="container stopped"):
        box.snapshot()  # a one-off exec, not the persistent shell


@pytest.mark.docker
@docker_only
def test_typed_errors_for_missing_image_and_daemon(monkeypatch):
    from aem_envs.sandbox.docker_sandbox import DockerSandbox

    with pytest.raises(ImageMissing, match="aem-envs images build"):
        DockerSandbox(SandboxConfig(image="aem/no-such-image:0"))
    monkeypatch.setattr(lifecycle, "_client", None)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(DaemonDown, match="engine.sh") as ei:
        lifecycle.get_client()
    assert "\n" not in str(ei.value) and isinstance(ei.value, InfraError)


@pytest.mark.docker
@docker_only
def test_concurrent_starts_and_pool(request):
    from aem_envs.sandbox.pool import SandboxPool

    pool = SandboxPool(_cfg(), low=1, high=2)
    request.addfinalizer(pool.close)
    out: list = []

    def grab(i):
        box = pool.acquire(f"task-{i}")
        out.append((i, box, box.run(f"echo {i}").output))

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o for _, _, o in out) == [f"{i}\n" for i in range(6)]
    ids = {b.container.id for _, b, _ in out}
    assert len(ids) == 6  # different tasks never share a container
    i, box, _ = out[0]
    box.put_archive("/workspace", tar_of({"t.txt": b"task\n"}))
    box.snapshot()
    box.run("rm t.txt; echo junk > j")
    pool.release(box, f"task-{i}")
    again = pool.acquire(f"task-{i}")
    assert again is box and again.run("ls").output == "t.txt\n"  # same task: reset and reused
    other = pool.acquire("another-task")
    assert other is not box
    for _, b, _ in out[1:]:
        pool.release(b)
    pool.release(again)
    pool.release(other)


# --------------------------------------------------------------------------- leaks
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from aem_envs.sandbox.docker_sandbox import DockerSandbox
    from aem_envs.sandbox.config import SandboxConfig
    boxes = [DockerSandbox(SandboxConfig(image=sys.argv[1])) for _ in range(2)]
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.docker
@docker_only
def test_sigkilled_owner_is_reaped():
    p = subprocess.Popen([PY, "-c", _HOLDER, _image()], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        mine = [c for c in lifecycle.labelled_containers() if c.labels.get(lifecycle.L_PID) == str(p.pid)]
        assert len(mine) == 2
    finally:
        p.kill()
        p.wait()
    res = subprocess.run([PY, "-m", "aem_envs.cli", "reap", "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    left = [c for c in lifecycle.labelled_containers() if c.labels.get(lifecycle.L_PID) == str(p.pid)]
    assert left == []
    assert "owner dead" in res.stdout


@pytest.mark.docker
@docker_only
def test_sigterm_closes_sandboxes():
    assert containers_left_after_sigterm([PY, "-c", _HOLDER, _image()]) == []


_MID_START_HOLDER = textwrap.dedent(
    """
    import sys, threading, time
    import docker.models.containers as dc
    from aem_envs.sandbox import lifecycle
    from aem_envs.sandbox.config import SandboxConfig
    from aem_envs.sandbox.docker_sandbox import DockerSandbox
    real_start = dc.Container.start
    def slow_start(self, *a, **k):
        print("ready", flush=True)  # the daemon has created the container: SIGTERM lands now
        time.sleep(2)
        return real_start(self, *a, **k)
    dc.Container.start = slow_start
    lifecycle.install_hooks()  # main thread, as pool and env constructors do
    threading.Thread(target=lambda: DockerSandbox(SandboxConfig(image=sys.argv[1])), daemon=True).start()
    time.sleep(60)
    """
)


@pytest.mark.docker
@docker_only
def test_sigterm_during_another_threads_container_start_leaks_nothing():
    # CI once left one container: SIGTERM arrived while a worker thread's container was being
    # created, and the process died before that thread could register or remove it.
    assert containers_left_after_sigterm([PY, "-c", _MID_START_HOLDER, _image()]) == []


_MAIN_THREAD_MID_START_HOLDER = textwrap.dedent(
    """
    import sys, time
    import docker.models.containers as dc
    from aem_envs.sandbox import lifecycle
    from aem_envs.sandbox.config import SandboxConfig
    from aem_envs.sandbox.docker_sandbox import DockerSandbox
    real_start = dc.Container.start
    def slow_start(self, *a, **k):
        print("ready", flush=True)  # created by the daemon, not yet known to any sandbox
        time.sleep(5)
        return real_start(self, *a, **k)
    dc.Container.start = slow_start
    lifecycle.install_hooks()
    DockerSandbox(SandboxConfig(image=sys.argv[1]))  # the main thread itself is mid-create
    time.sleep(60)
    """
)


@pytest.mark.docker
@docker_only
def test_sigterm_during_the_main_threads_own_container_start_leaks_nothing():
    # The handler interrupts the very code that made the container, which never learns its
    # id; the handler sweeps the run's label instead.
    assert containers_left_after_sigterm([PY, "-c", _MAIN_THREAD_MID_START_HOLDER, _image()]) == []


_POOL_HOLDER = textwrap.dedent(
    """
    import sys, time
    from aem_envs.sandbox.pool import SandboxPool
    from aem_envs.sandbox.config import SandboxConfig
    pool = SandboxPool(SandboxConfig(image=sys.argv[1]), low=2, high=2)  # started by its thread
    assert pool.wait_warm(2, timeout=60)
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.docker
@docker_only
def test_sigterm_closes_sandboxes_a_pool_thread_started():
    # The first sandbox of a process may be made by the pool's filler thread, where signal
    # handlers cannot be installed; SIGTERM must still remove the containers.
    assert containers_left_after_sigterm([PY, "-c", _POOL_HOLDER, _image()]) == []


@pytest.mark.docker
@docker_only
def test_zz_no_labelled_containers_left(request):
    # Runs last in this module (name order is file order; zz marks the intent).
    from aem_envs.sandbox.pool import close_shared_pools

    close_shared_pools()
    sbx = request.getfixturevalue("sb")  # module fixtures are finalised after this test: close it now
    sbx.close()
    deadline = time.time() + 30
    while time.time() < deadline:
        mine = [c for c in lifecycle.labelled_containers() if c.labels.get(lifecycle.L_PID) == str(os.getpid())]
        if not mine:
            break
        time.sleep(0.5)
    assert mine == []

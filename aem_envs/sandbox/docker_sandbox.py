"""``DockerSandbox``: one hardened container and one persistent bash per episode.

The shell is an ``exec`` with stdin attached (``tty=False``); its stdout stream is the
Docker multiplexed format (8-byte frame headers), demultiplexed here. Each command is sent as
one line (see :mod:`aem_envs.sandbox.scripts`) and framed by a random end marker carrying its
exit status, so ``cd``/``export`` persist and a step costs a fraction of a millisecond.

Deadlines are enforced inside the container by a watchdog (every process the command left is
frozen and killed, background and double-forked children included), with a host-side
backstop that kills from a separate exec if the watchdog itself was killed. When the shell
dies (``exit``, ``exec``, ``kill -9 $$``) a new one is started and the output says so.
A vanished container or daemon raises :class:`SandboxLost` (an ``InfraError``).
"""

from __future__ import annotations

import io
import secrets
import select
import socket
import struct
import tarfile
import threading
import time
from typing import Any

from aem_envs.sandbox import lifecycle, scripts
from aem_envs.sandbox.base import OutputBuffer, Result, Sandbox, check_archive
from aem_envs.sandbox.config import SandboxConfig
from aem_envs.sandbox.errors import ImageMissing, SandboxError, SandboxLost, UnsafeArchive

#: Extra seconds the watchdog gives a shell whose command was killed (see scripts.WATCHDOG).
WATCHDOG_GRACE = 1.0
#: The agent's shell; :meth:`DockerSandbox.leftover_processes` knows its forks by this command line.
#: An execute-only copy of bash from the base image, so the shell is non-dumpable: no other
#: process of the agent uid can ptrace it or open its memory (see envs_docker/base/Dockerfile).
SHELL_CMD = ["/usr/libexec/aem/bash", "--noprofile", "--norc"]


class _ExecStream:
    """A hijacked exec connection: raw socket in, demultiplexed payload bytes out."""

    def __init__(self, exec_id: str, resp: Any, split_stderr: bool = False):
        self.exec_id = exec_id
        self.split_stderr = split_stderr
        self.stderr = bytearray()
        self._resp = resp  # keeps the HTTP response (and so the socket) alive
        self.sock: socket.socket = getattr(resp, "_sock", resp)
        self.sock.setblocking(True)
        self.rx = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float) -> bytes | None:
        """Payload bytes available within ``timeout`` (b'' at EOF, None when nothing came)."""
        out = self._frames()
        if out:
            return out
        if self.eof:
            return b""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            r, _, _ = select.select([self.sock], [], [], max(left, 0.0))
            if not r:
                return None
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                self.eof = True
                return self._frames() or b""
            self.rx += chunk
            out = self._frames()
            if out:
                return out
            if time.monotonic() >= end:
                return None

    def _frames(self) -> bytes:
        parts = []
        rx = self.rx
        pos = 0
        n = len(rx)
        while n - pos >= 8:
            size = struct.unpack_from(">I", rx, pos + 4)[0]
            if n - pos - 8 < size:
                break
            if self.split_stderr and rx[pos] == 2:
                self.stderr += rx[pos + 8 : pos + 8 + size]
            else:
                parts.append(bytes(rx[pos + 8 : pos + 8 + size]))
            pos += 8 + size
        if pos:
            del rx[:pos]
        return b"".join(parts)

    def close(self) -> None:
        for obj in (self.sock, self._resp):
            try:
                obj.close()
            except Exception:
                pass


class DockerSandbox(Sandbox):
    """A container with the safe defaults of :class:`SandboxConfig` and a persistent shell.

    Thread-safe (one command at a time). ``close()`` is idempotent and removes the container
    with its anonymous volumes.
    """

    isolated = True

    def __init__(self, config: SandboxConfig | None = None, *, image: str | None = None, start_shell: bool = True):
        self.config = config or SandboxConfig()
        if image:
            self.config = self.config.with_(image=image)
        self.workdir = self.config.workdir
        self.scratch = self.config.scratch
        self.loaded_task: str | None = None  # set by envs that uploaded a task's files
        self._lock = threading.RLock()
        self._closed = False
        self._shell: _ExecStream | None = None
        self._starting: str | None = None  # exec id of the shell started last (see leftover_processes)
        self._carry = b""
        self._seq = 0
        self._snapshot: bytes | None = None  # tar of the work tree ``reset`` restores
        self._snapshot_git = False
        self.created_at = time.monotonic()
        self.uses = 0
        self.task_key: str | None = None
        self.restarts = 0
        self._oom_seen = 0
        self._client = lifecycle.get_client()
        self._api = self._client.api
        self.container = self._create()
        try:
            if start_shell:
                self._spawn_shell(cleanup=False)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ container
    def _create(self):
        import docker
        import requests

        lifecycle.reap_once_per_process()
        cfg = self.config
        labels = lifecycle.owner_labels(cfg.ttl, cfg.image)
        kwargs = cfg.run_kwargs(lifecycle.swap_supported())
        lifecycle.ensure_image(cfg.image)  # never let the SDK fall back to a registry pull
        with lifecycle.creating(), lifecycle.START_SEMAPHORE:
            if lifecycle.shutting_down():
                raise SandboxError("the process is exiting; no new sandboxes are created")
            try:
                # create + start, not containers.run: a container the daemon created but could
                # not start is removed here instead of staying "Created" for the whole run.
                c = self._client.containers.create(
                    cfg.image, ["sleep", str(int(cfg.ttl))], detach=True, labels=labels, **kwargs
                )
                try:
                    c.start()
                except BaseException:
                    try:
                        c.remove(force=True, v=True)
                    except Exception:
                        pass  # the reaper removes it once this process is gone
                    raise
            except docker.errors.ImageNotFound:
                raise ImageMissing(
                    f"Docker image {cfg.image!r} is not built; build it with: aem-envs images build"
                ) from None
            except docker.errors.APIError as e:
                if "No such image" in str(e):
                    raise ImageMissing(f"Docker image {cfg.image!r} is not built; build it with: aem-envs images build") from None
                raise SandboxError(f"the Docker daemon refused to start a sandbox: {_one_line(e)}") from None
            except (requests.exceptions.ConnectionError, OSError) as e:
                raise lifecycle.daemon_down_error(e) from None
            lifecycle.register_live(self)
            if lifecycle.shutting_down():  # lost the race with exit or SIGTERM: do not leak it
                self.container = c
                self.close()
                raise SandboxError("the process is exiting; no new sandboxes are created")
        return c

    @property
    def expires_in(self) -> float:
        """Seconds until the container's keeper (``sleep ttl``) exits and the container stops."""
        return self.created_at + self.config.ttl - time.monotonic()

    @property
    def id(self) -> str:
        return self.container.id[:12]

    def _container_state(self) -> dict[str, Any] | None:
        """The container's State, or None when it (or the daemon) is gone."""
        try:
            return self._api.inspect_container(self.container.id)["State"]
        except Exception:
            return None

    def _lost(self, what: str) -> SandboxLost:
        state = self._container_state()
        if state is None:
            try:
                self._client.ping()
                why = "the container was removed"
            except Exception:
                why = "the Docker daemon stopped answering (restarted?); check it with: docker info"
        elif not state.get("Running"):
            why = f"the container stopped (exit {state.get('ExitCode')}, OOMKilled={state.get('OOMKilled')})"
        else:
            why = "the connection to the container broke"
        return SandboxLost(f"sandbox {self.id} lost during {what}: {why}; the episode cannot continue, start a new one")

    # ------------------------------------------------------------------ shell
    def _open_exec(self, cmd: list[str], stdin: bool, split_stderr: bool = False) -> _ExecStream:
        ex = self._api.exec_create(
            self.container.id, cmd, stdin=stdin, stdout=True, stderr=True, tty=False,
            user=self.config.user, workdir="/",
        )
        resp = self._api.exec_start(ex["Id"], socket=True)
        return _ExecStream(ex["Id"], resp, split_stderr)

    def _spawn_shell(self, cleanup: bool, restore: bool = False) -> None:
        """Start a fresh bash in a new exec; with ``cleanup`` kill every leftover process and wipe
        scratch; with ``restore`` also put the work tree back to the snapshot.

        Always a new exec: the agent's shell, asked to replace itself, can refuse (under
        ``shopt -s extdebug`` a DEBUG trap that returns non-zero skips the next command).
        """
        if self._shell is not None:
            self._shell.close()
        self._shell = None
        self._carry = b""
        token = "AEMRDY" + secrets.token_hex(10)
        self._death = ("AEMDIE" + secrets.token_hex(10)).encode()
        payload = None
        git = False
        if restore:
            if self._snapshot_git:
                git = True
            else:
                payload = self._snapshot or _EMPTY_TAR
        script = scripts.bootstrap(
            token, self.config.workdir, self.config.scratch, cleanup,
            len(payload) if payload is not None else None, git, self._death.decode(), WATCHDOG_GRACE,
        )
        wait_s = 60.0
        try:
            stream = self._open_exec(SHELL_CMD, stdin=True)
            self._starting = stream.exec_id
            if payload is not None:
                pre, post = script.split("__AEM_PAYLOAD__\n")
                stream.send(pre.encode())
                stream.send(payload)
                stream.send(post.encode())
            else:
                stream.send(script.encode())
        except Exception as e:
            if isinstance(e, SandboxError):
                raise
            raise self._lost("shell start") from None
        want = b"\n" + token.encode() + b" READY "
        buf = bytearray()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                chunk = stream.read(max(deadline - time.monotonic(), 0.0))
            except OSError:
                chunk = b""
            if chunk is None:
                stream.close()
                raise SandboxError(f"sandbox {self.id}: the shell did not start within {wait_s:g} s; the daemon may be overloaded")
            if chunk == b"":
                stream.close()
                raise self._lost("shell start")
            buf += chunk
            if len(buf) > 1 << 20:  # leftover background output: only the tail can hold READY
                del buf[: len(buf) - 4096]
            i = buf.find(want)
            if i >= 0:
                j = buf.find(b"\n", i + len(want))
                if j >= 0:
                    rc = buf[i + len(want) : j].strip()
                    if rc != b"0":
                        stream.close()
                        detail = bytes(buf[:i]).decode(errors="replace").strip()[-300:]
                        raise SandboxError(f"sandbox {self.id}: shell setup failed (step {rc.decode()}): {detail}")
                    self._carry = bytes(buf[j + 1 :])
                    break
        self._shell = stream

    # ------------------------------------------------------------------ commands
    def run(self, cmd: str, timeout: float | None = None) -> Result:
        if not isinstance(cmd, str):
            raise TypeError(f"cmd must be str, got {type(cmd).__name__}")
        with self._lock:
            self._check_open()
            timeout = float(timeout if timeout is not None else self.config.default_timeout)
            if self._shell is None:
                self._spawn_shell(cleanup=True)
            self._seq += 1
            token = "AEM" + secrets.token_hex(12)
            line = scripts.command_line(cmd, self._seq, timeout, token)
            res = self._exchange(line.encode(), None, token, timeout, "command")
            if res.exit_code == 137 and not res.timed_out and self._oom_killed():
                res.oom_killed = True
                res.output += _note(f"a process was killed by the out-of-memory killer (memory limit {self.config.mem_limit})")
            return res

    def _oom_killed(self) -> bool:
        """Whether the kernel OOM-killed something since the last check (cgroup v1 or v2).

        Needed because an OOM kill inside an exec leaves the container's OOMKilled flag false.
        """
        self._seq += 1
        token = "AEM" + secrets.token_hex(12)
        probe = "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || cat /sys/fs/cgroup/memory.events 2>/dev/null"
        res = self._exchange(scripts.command_line(probe, self._seq, 5.0, token).encode(), None, token, 5.0, "command")
        count = 0
        for line in res.output.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill" and v.strip().isdigit():
                count = int(v)
        seen, self._oom_seen = self._oom_seen, count
        return count > seen

    def _exchange(self, line: bytes, payload: bytes | None, token: str, timeout: float, what: str) -> Result:
        t0 = time.monotonic()
        stream = self._shell
        assert stream is not None
        out = OutputBuffer(self.config.output_limit)
        marker = b"\n" + token.encode() + b" "
        death = b"\n" + self._death + b" DEAD "
        keep = max(len(marker), len(death)) - 1
        window = bytearray(self._carry)
        self._carry = b""
        try:
            stream.send(line)
            if payload:
                stream.send(payload)
        except OSError:
            return self._shell_died(out, window, t0, timeout, what)
        backstop = t0 + timeout + WATCHDOG_GRACE + self.config.backstop_grace
        while True:
            i = window.find(marker)
            if i >= 0:
                j = window.find(b"\n", i + len(marker))
                if j >= 0:
                    out.add(window[:i])
                    fields = window[i + len(marker) : j].split()
                    self._carry = bytes(window[j + 1 :])
                    code = int(fields[0]) if fields and fields[0].isdigit() else -1
                    timed_out = len(fields) > 1 and fields[1] == b"1"
                    text, truncated = out.text()
                    if timed_out:
                        code = 124
                        text += _note(f"timed out after {timeout:g} s; every process it started was killed")
                    return Result(text, code, timed_out, truncated, time.monotonic() - t0)
            else:
                d = window.find(death)
                if d >= 0:
                    j = window.find(b"\n", d + len(death))
                    if j >= 0:
                        code = window[d + len(death) : j].strip()
                        out.add(window[:d])
                        window.clear()
                        return self._shell_died(out, window, t0, timeout, what, _int(code))
                elif len(window) > keep:
                    out.add(window[:-keep])
                    del window[:-keep]
            now = time.monotonic()
            if now > backstop:
                return self._backstop(out, window, t0, timeout)
            try:
                chunk = stream.read(min(backstop - now, 1.0))
            except OSError:
                chunk = b""
            if chunk is None:
                continue
            if chunk == b"":
                return self._shell_died(out, window, t0, timeout, what)
            window += chunk

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(50):
            try:
                info = self._api.exec_inspect(exec_id)
            except Exception:
                return -1
            if not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else -1
            time.sleep(0.02)
        return -1

    def _shell_died(
        self, out: OutputBuffer, window: bytearray, t0: float, timeout: float, what: str, code: int | None = None
    ) -> Result:
        out.add(window)
        stream = self._shell
        assert stream is not None
        if code is None:
            code = self._exit_code(stream.exec_id)
        state = self._container_state()
        if state is None or not state.get("Running"):
            raise self._lost(what)
        elapsed = time.monotonic() - t0
        timed_out = elapsed >= timeout
        self.restarts += 1
        self._spawn_shell(cleanup=True)
        text, truncated = out.text()
        if timed_out:
            text += _note(f"timed out after {timeout:g} s; every process it started was killed")
            code = 124
        text += _note(
            f"the shell exited (status {code}); a new shell was started in {self.workdir}: "
            "variables, functions and the current directory were reset, background processes killed"
        )
        return Result(text, code, timed_out, truncated, time.monotonic() - t0, shell_restarted=True)

    def _backstop(self, out: OutputBuffer, window: bytearray, t0: float, timeout: float) -> Result:
        """The in-container watchdog did not end the command: kill everything from outside."""
        out.add(window)
        try:
            self._api.exec_start(
                self._api.exec_create(
                    self.container.id, ["bash", "-c", scripts.KILLALL + "__aem_killall all"], user=self.config.user
                )["Id"]
            )
        except Exception:
            raise self._lost("a timed-out command") from None
        state = self._container_state()
        if state is None or not state.get("Running"):
            raise self._lost("a timed-out command")
        self.restarts += 1
        self._spawn_shell(cleanup=True)
        text, truncated = out.text()
        text += _note(f"timed out after {timeout:g} s; every process was killed and a new shell started")
        return Result(text, 124, True, truncated, time.monotonic() - t0, shell_restarted=True)

    # ------------------------------------------------------------------ files
    def put_archive(self, path: str, data: bytes) -> None:
        check_archive(data, self.config.max_archive_bytes)
        path = self._abs(path)
        with self._lock:
            self._check_open()
            if self._shell is None:
                self._spawn_shell(cleanup=True)
            token = "AEM" + secrets.token_hex(12)
            line = scripts.put_line(path, len(data), token)
            res = self._exchange(line.encode(), data, token, 120.0, "put_archive")
            if res.shell_restarted or res.exit_code != 0:
                raise SandboxError(f"extracting an archive into {path} failed (exit {res.exit_code}): {res.output.strip()[-300:]}")

    def get_archive(self, path: str) -> bytes:
        path = self._abs(path)
        cap = self.config.max_archive_bytes
        parent, name = (path.rsplit("/", 1) + [""])[:2] if path != "/" else ("/", ".")
        parent = parent or "/"
        with self._lock:
            self._check_open()
            try:
                # tar's status goes to stderr after its messages (the pipe hides it otherwise).
                stream = self._open_exec(
                    ["sh", "-c", '{ tar -c -f - -C "$1" -- "$2"; echo "tar-status $?" >&2; } | head -c "$3"',
                     "sh", parent, name, str(cap + 1)],
                    stdin=False, split_stderr=True,
                )
            except Exception:
                raise self._lost("get_archive") from None
            buf = bytearray()
            try:
                while True:
                    chunk = stream.read(60.0)
                    if chunk is None:
                        raise SandboxError(f"reading {path} from sandbox {self.id} timed out after 60 s")
                    if chunk == b"":
                        break
                    buf += chunk
                    if len(buf) > cap + 65536:
                        break
            except OSError:
                raise self._lost("get_archive") from None
            finally:
                stream.close()
        data = bytes(buf)
        err = bytes(stream.stderr).decode(errors="replace").strip()
        if "No such file" in err:
            raise FileNotFoundError(f"{path} does not exist in the sandbox")
        if len(data) > cap:
            raise UnsafeArchive(f"{path} is larger than max_archive_bytes={cap}; raise it in SandboxConfig")
        if not data:
            raise SandboxError(f"reading {path} from sandbox {self.id} failed: {err[-300:]}")
        if "tar-status 2" in err:
            # Status 2: something could not be read (a file or directory made unreadable) and
            # tar left it out; such an archive is not the tree. Status 1 (a file changed while
            # it was read) still archives every member.
            first = next((ln for ln in err.splitlines() if ln.startswith("tar: ")), err)
            raise UnsafeArchive(f"{path} could not be read completely ({first[5:200]}); make it readable (chmod -R u+rX)")
        check_archive(data, cap)
        return data

    def _exec_bytes(self, cmd: list[str]) -> tuple[int, bytes]:
        """Run ``cmd`` in a one-off exec (not the persistent shell); (exit code, output)."""
        try:
            stream = self._open_exec(cmd, stdin=False)
        except Exception:  # container stopped or daemon gone: infrastructure, typed
            raise self._lost("exec") from None
        buf = bytearray()
        try:
            while True:
                chunk = stream.read(60.0)
                if not chunk:
                    break
                buf += chunk
        finally:
            stream.close()
        return self._exit_code(stream.exec_id), bytes(buf)

    # ------------------------------------------------------------------ state
    def snapshot(self, archive: bytes | None = None) -> None:
        """Record the work tree as the state :meth:`reset` restores.

        ``archive`` (a tar of the work tree, e.g. the one just uploaded) skips reading it back.
        A work tree that is a git repository is restored with ``git reset --hard && git clean
        -fdx`` instead (fast for big repos; trusts its ``.git``). Otherwise the tar is kept on
        the host, where the agent cannot alter it.
        """
        with self._lock:
            self._check_open()
            if archive is None:
                code, _ = self._exec_bytes(["test", "-d", f"{self.workdir}/.git"])
                if code == 0:
                    self._snapshot_git, self._snapshot = True, None
                    return
                archive = _rebase_tar(self.get_archive(self.workdir))
            check_archive(archive, self.config.max_archive_bytes)
            self._snapshot_git, self._snapshot = False, archive

    def reset(self) -> None:
        """Kill every process, wipe scratch, restore the work tree, start a fresh shell.

        One exec round trip: the new shell's bootstrap does the cleanup and reads the
        snapshot tar from its own stdin. Always a new exec, never the agent's shell told to
        replace itself: under ``shopt -s extdebug`` a DEBUG trap that returns non-zero skips
        the next command, so that shell could veto its re-exec and the restore, and stay in
        charge of the next episode (a new exec costs ~70 ms more).
        """
        with self._lock:
            self._check_open()
            self._spawn_shell(cleanup=True, restore=True)
            self.uses += 1

    def respawn_shell(self) -> None:
        """A fresh shell (processes killed, scratch wiped) without touching the work tree.

        A new exec, for the reason given in :meth:`reset`: graders run their gold commands in
        this shell, and the agent's own shell could skip them or print what it likes.
        """
        with self._lock:
            self._check_open()
            self._spawn_shell(cleanup=True)

    def alive(self) -> bool:
        state = self._container_state()
        return bool(state and state.get("Running"))

    def blocked_by_agent(self) -> bool:
        try:
            return self.alive() and bool(self.leftover_processes())
        except Exception:  # the daemon does not answer: infrastructure
            return False

    def leftover_processes(self) -> list[str]:
        """Command lines of the agent uid's processes other than the shell started last (and its
        own forks, the watchdog): what the agent left running.

        Tells a shell that could not start because the agent's own processes kill or stop every
        new one (the agent's doing) from a daemon that did not start it (infrastructure). Read
        through ``docker top`` (the host's ``ps``), so nothing in the container can fake it.
        """
        ours: set[str] = set()
        if self._starting is not None:
            try:
                ours.add(str(self._api.exec_inspect(self._starting).get("Pid") or ""))
            except Exception:
                pass
        top = self.container.top(ps_args="-eo pid,ppid,uid,args")
        shell = " ".join(SHELL_CMD)
        return [args for pid, ppid, uid, args in top.get("Processes") or []
                if uid != "0" and pid not in ours and not (ppid in ours and args == shell)]

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("this sandbox is closed; create a new one")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        c = getattr(self, "container", None)
        if c is not None:
            try:
                c.remove(force=True, v=True)
            except Exception as e:
                if "No such container" not in str(e) and "already in progress" not in str(e):
                    pass  # the reaper or the TTL finishes the job
        lifecycle.unregister_live(self)

    def __del__(self):  # last resort; normal paths call close()
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        c = getattr(self, "container", None)
        return f"DockerSandbox({self.config.image}, id={c.id[:12] if c else None}, closed={self._closed})"


def _int(b: bytes) -> int:
    try:
        return int(b)
    except ValueError:
        return -1


def _note(text: str) -> str:
    return f"\n[sandbox: {text}]"


def _one_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:200]


def _rebase_tar(data: bytes) -> bytes:
    """A tar of ``workspace/...`` (from get_archive) re-rooted at ``.``."""
    src = tarfile.open(fileobj=io.BytesIO(data))
    buf = io.BytesIO()
    with src, tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as dst:
        for m in src.getmembers():
            parts = m.name.split("/", 1)
            m.name = parts[1] if len(parts) > 1 else "."
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return buf.getvalue()


def _empty_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return buf.getvalue()


_EMPTY_TAR = _empty_tar()

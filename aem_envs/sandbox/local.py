"""``LocalSandbox``: the sandbox interface over a local bash in a temp dir. NOT ISOLATED.

For development on machines without Docker. Commands run as *your* user on *your* machine
with your network; nothing stops ``rm -rf ~``. It is never chosen automatically: an env uses it
only when asked by name (``sandbox="local"``), and constructing one emits a warning.
Deadlines are host-side: the shell's whole process group is killed and a new shell started
(processes that left the group with ``setsid`` survive — another reason this is not a sandbox).
"""

from __future__ import annotations

import io
import os
import secrets
import select
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import warnings

from aem_envs.sandbox.base import MAX_ARCHIVE_BYTES, OutputBuffer, Result, Sandbox, check_archive
from aem_envs.sandbox.config import DEFAULT_ENV
from aem_envs.sandbox.errors import SandboxError, UnsafeArchive
from aem_envs.sandbox.scripts import ansi_c_quote


class LocalSandbox(Sandbox):
    """Same interface as :class:`DockerSandbox`; **no isolation whatsoever**."""

    isolated = False

    def __init__(self, output_limit: int = 64 * 1024, default_timeout: float = 30.0, warn: bool = True):
        if warn:
            warnings.warn(
                "LocalSandbox runs agent commands on this machine as this user: it is NOT isolated; "
                "use DockerSandbox for anything but development",
                RuntimeWarning,
                stacklevel=2,
            )
        self.root = tempfile.mkdtemp(prefix="aem-local-sandbox-")
        self.workdir = os.path.join(self.root, "workspace")
        self.scratch = os.path.join(self.root, "tmp")
        os.makedirs(self.workdir)
        os.makedirs(self.scratch)
        self.loaded_task: str | None = None
        self.output_limit = output_limit
        self.default_timeout = default_timeout
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._carry = b""
        self._snapshot: bytes | None = None
        self._closed = False
        self.restarts = 0
        self._spawn()

    # ------------------------------------------------------------------ shell
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "USER", "LOGNAME", "SHELL")}
        env.update(DEFAULT_ENV)
        env.update({"HOME": os.path.join(self.scratch, "home"), "TMPDIR": self.scratch})
        return env

    def _spawn(self) -> None:
        self._kill_shell()
        os.makedirs(os.path.join(self.scratch, "home"), exist_ok=True)
        self._proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=self._env(),
            start_new_session=True,  # its own process group: a deadline kills all of it
        )
        self._carry = b""
        tok = "AEMRDY" + secrets.token_hex(8)
        self._proc.stdin.write(f"exec 9>&1\nprintf '\\n%s\\n' {tok}\n".encode())
        self._proc.stdin.flush()
        res = self._wait(tok.encode() + b"\n", 10.0, drop=True)
        if res is None:
            raise SandboxError("the local shell did not start; is bash installed?")

    def _kill_shell(self) -> None:
        p = self._proc
        self._proc = None
        if p is None:
            return
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for f in (p.stdin, p.stdout):
            try:
                f.close()
            except Exception:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def _wait(self, marker: bytes, timeout: float, drop: bool = False) -> tuple[OutputBuffer, bytes] | None:
        """Read until ``marker`` (then up to the next newline); None on timeout or EOF."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        out = OutputBuffer(self.output_limit)
        window = bytearray(self._carry)
        keep = len(marker)
        end = time.monotonic() + timeout
        while True:
            i = window.find(marker)
            if i >= 0:
                j = window.find(b"\n", i + len(marker) - 1)
                if j >= 0:
                    if not drop:
                        out.add(window[:i])
                    rest = bytes(window[i + len(marker) - 1 : j + 1])
                    self._carry = bytes(window[j + 1 :])
                    return out, rest
            elif len(window) > keep:
                if not drop:
                    out.add(window[:-keep])
                del window[:-keep]
            left = end - time.monotonic()
            if left <= 0:
                out.add(window)
                self._pending = out
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                out.add(window)
                self._pending = out
                self._eof = True
                return None
            window += chunk

    def run(self, cmd: str, timeout: float | None = None) -> Result:
        with self._lock:
            if self._closed:
                raise SandboxError("this sandbox is closed; create a new one")
            timeout = float(timeout if timeout is not None else self.default_timeout)
            if self._proc is None:
                self._spawn()
            t0 = time.monotonic()
            tok = "AEM" + secrets.token_hex(12)
            a, b = tok[:8], tok[8:]
            line = (
                f"builtin eval {ansi_c_quote(cmd)} </dev/null 9>&-; __aem_ec=$?; "
                f"builtin printf '\\n%s%s %s\\n' {a} {b} \"$__aem_ec\" >&9\n"
            )
            self._eof = False
            try:
                self._proc.stdin.write(line.encode())
                self._proc.stdin.flush()
                got = self._wait(b"\n" + tok.encode() + b" ", timeout)
            except (BrokenPipeError, OSError):
                got = None
                self._eof = True
                self._pending = OutputBuffer(self.output_limit)
            if got is not None:
                out, rest = got
                text, trunc = out.text()
                fields = rest.split()
                code = int(fields[0]) if fields and fields[0].lstrip(b"-").isdigit() else -1
                return Result(text, code, False, trunc, time.monotonic() - t0)
            out = self._pending
            timed_out = not self._eof
            code = 124
            if not timed_out:
                try:
                    code = self._proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    code = -1
            self.restarts += 1
            self._spawn()
            text, trunc = out.text()
            if timed_out:
                text += f"\n[sandbox: timed out after {timeout:g} s; the shell's process group was killed]"
            text += "\n[sandbox: the shell exited; a new shell was started: variables and cwd were reset]"
            return Result(text, code, timed_out, trunc, time.monotonic() - t0, shell_restarted=True)

    # ------------------------------------------------------------------ files
    def _abs(self, path: str) -> str:
        # Sandbox paths are "/workspace/..."-style; map them under the temp root.
        if path.startswith("/workspace"):
            path = self.workdir + path[len("/workspace") :]
        elif not path.startswith("/"):
            path = os.path.join(self.workdir, path)
        real = os.path.realpath(path)
        if not (real == self.root or real.startswith(self.root + os.sep)):
            raise SandboxError(f"{path} is outside the local sandbox root {self.root}")
        return real

    def put_archive(self, path: str, data: bytes) -> None:
        members = check_archive(data, MAX_ARCHIVE_BYTES)
        dest = self._abs(path)
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            tf.extractall(dest, members=members, filter="tar")

    def get_archive(self, path: str) -> bytes:
        src = self._abs(path)
        if not os.path.exists(src):
            raise FileNotFoundError(f"{path} does not exist in the sandbox")
        buf = io.BytesIO()
        try:
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
                tf.add(src, arcname=os.path.basename(src.rstrip("/")) or ".")
        except OSError as e:  # a file or directory made unreadable: as DockerSandbox, refused
            raise UnsafeArchive(f"{path} could not be read completely ({e}); make it readable (chmod -R u+rX)") from None
        data = buf.getvalue()
        check_archive(data, MAX_ARCHIVE_BYTES)
        return data

    def snapshot(self, archive: bytes | None = None) -> None:
        if archive is None:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
                tf.add(self.workdir, arcname=".")
            archive = buf.getvalue()
        check_archive(archive)
        self._snapshot = archive

    def _wipe(self, d: str) -> None:
        for dirpath, dirnames, _ in os.walk(d):
            for n in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, n), 0o755)
                except OSError:
                    pass
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, exist_ok=True)

    def reset(self) -> None:
        with self._lock:
            self._kill_shell()
            self._wipe(self.scratch)
            self._wipe(self.workdir)
            if self._snapshot:
                self.put_archive(self.workdir, self._snapshot)
            self._spawn()

    def respawn_shell(self) -> None:
        with self._lock:
            self._kill_shell()
            self._wipe(self.scratch)
            self._spawn()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._kill_shell()
            self._wipe(self.root)
            shutil.rmtree(self.root, ignore_errors=True)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

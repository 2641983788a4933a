"""The sandbox interface shared by :class:`DockerSandbox` and :class:`LocalSandbox`.

A sandbox runs shell commands for one agent episode. ``run`` goes through one long-lived
shell, so ``cd`` and ``export`` persist between commands; each command has a deadline after
which everything it started is killed. Output comes back as cleaned text (valid UTF-8, no ANSI
escapes or carriage returns) bounded to ``head + tail`` with a truncation marker.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from abc import ABC, abstractmethod
from dataclasses import dataclass

from aem_envs.sandbox.errors import UnsafeArchive

#: Default cap on archives moved in or out of a sandbox (bytes, uncompressed).
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024


@dataclass
class Result:
    """What one command produced."""

    output: str  # stdout and stderr interleaved, cleaned, possibly truncated
    exit_code: int  # the command's status; 124 when it timed out, -1 when the shell died
    timed_out: bool = False
    truncated: bool = False  # output bytes were dropped between head and tail
    duration: float = 0.0  # seconds, host-measured
    shell_restarted: bool = False  # the persistent shell died and was respawned
    oom_killed: bool = False  # the kernel's OOM killer ended a process of this command

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Sandbox(ABC):
    """One isolated (or, for :class:`LocalSandbox`, explicitly *not* isolated) shell workspace."""

    #: True only for implementations that isolate the agent from the host.
    isolated: bool = True
    #: Directory the shell starts in and ``reset`` restores.
    workdir: str = "/workspace"

    @abstractmethod
    def run(self, cmd: str, timeout: float | None = None) -> Result:
        """Run ``cmd`` in the persistent shell (stdin is /dev/null)."""

    @abstractmethod
    def put_archive(self, path: str, data: bytes) -> None:
        """Extract the tar ``data`` into directory ``path`` (members are checked first)."""

    @abstractmethod
    def get_archive(self, path: str) -> bytes:
        """A tar of ``path`` (checked and size-capped)."""

    @abstractmethod
    def snapshot(self) -> None:
        """Record the current work tree as the state ``reset`` restores."""

    @abstractmethod
    def reset(self) -> None:
        """Restore the work tree to the last snapshot, kill stray processes, wipe scratch,
        respawn the shell (fresh cwd and environment)."""

    @abstractmethod
    def close(self) -> None:
        """Release everything. Idempotent."""

    def blocked_by_agent(self) -> bool:
        """Whether a shell that failed to start was stopped by processes the agent left running
        (its doing, to be scored) rather than by the infrastructure. False when it cannot tell."""
        return False

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Create or replace the file ``path`` (absolute, or relative to :attr:`workdir`)."""
        data = content.encode() if isinstance(content, str) else content
        path = self._abs(path)
        parent, name = posixpath.split(path)
        self.put_archive(parent, tar_of({name: (data, mode)}))

    def read_file(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        """The bytes of file ``path`` (raises ``FileNotFoundError`` if it is not a file)."""
        data = self.get_archive(self._abs(path))
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            # Only the first member is ``path`` itself; for a directory the rest is its content.
            for m in tf.getmembers()[:1]:
                if m.isfile():
                    if m.size > max_bytes:
                        raise UnsafeArchive(f"{path} is {m.size} bytes, above max_bytes={max_bytes}; raise max_bytes")
                    f = tf.extractfile(m)
                    return f.read() if f else b""
        raise FileNotFoundError(f"{path} is not a regular file in the sandbox")

    def _abs(self, path: str) -> str:
        return posixpath.normpath(path if path.startswith("/") else posixpath.join(self.workdir, path))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- tar helpers
def tar_of(files: dict[str, tuple[bytes, int] | bytes], mtime: float = 1_700_000_000) -> bytes:
    """A tar holding ``{relative path: data or (data, mode)}``; parent directories are added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        dirs: set[str] = set()
        for name in sorted(files):
            val = files[name]
            data, mode = (val, 0o644) if isinstance(val, bytes) else val
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, int(mtime)
                    tf.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, int(mtime)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def check_archive(data: bytes, max_bytes: int = MAX_ARCHIVE_BYTES) -> list[tarfile.TarInfo]:
    """The members of tar ``data`` after refusing anything that could escape the target.

    Refused: absolute names, ``..`` components, symlinks or hard links whose target leaves the
    archive root, device nodes and fifos, and a total size above ``max_bytes``.
    """
    if len(data) > max_bytes:
        raise UnsafeArchive(f"archive is {len(data)} bytes, above the {max_bytes}-byte cap; raise max_bytes")
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data))
    except tarfile.TarError as e:
        raise UnsafeArchive(f"not a readable tar archive ({e}); pass bytes produced by tarfile") from None
    total = 0
    with tf:
        members = tf.getmembers()
    for m in members:
        name = m.name
        if name.startswith("/") or _escapes(name):
            raise UnsafeArchive(f"tar member {name!r} points outside the target directory; use relative paths")
        if m.issym():
            target = m.linkname
            base = posixpath.dirname(name)
            if target.startswith("/") or _escapes(posixpath.join(base, target)):
                raise UnsafeArchive(f"symlink {name!r} -> {target!r} leaves the target directory; refuse or rewrite it")
        elif m.islnk():
            if m.linkname.startswith("/") or _escapes(m.linkname):
                raise UnsafeArchive(f"hard link {name!r} -> {m.linkname!r} leaves the target directory")
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchive(f"tar member {name!r} is a device or fifo; only files, dirs and links are allowed")
        total += max(m.size, 0)
        if total > max_bytes:
            raise UnsafeArchive(f"archive expands to more than {max_bytes} bytes; raise max_bytes")
    return members


def _escapes(path: str) -> bool:
    norm = posixpath.normpath(path)
    return norm == ".." or norm.startswith("../")


# --------------------------------------------------------------------------- output
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC ... BEL or ST
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
)
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_output(raw: bytes) -> str:
    """Text an LLM can read: invalid UTF-8 replaced, ANSI escapes removed, ``\\r`` resolved
    the way a terminal shows it (the last overwrite of each line wins), other control bytes
    dropped."""
    text = raw.decode("utf-8", errors="replace")
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        text = "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line else line for line in text.split("\n"))
    return _CTRL_RE.sub("", text)


class OutputBuffer:
    """Keeps the first ``limit // 2`` and the last ``limit // 2`` bytes of a stream.

    Drains arbitrarily large output in O(limit) memory; ``dropped`` counts the bytes between.
    """

    def __init__(self, limit: int):
        self.limit = max(int(limit), 64)
        self.head_cap = self.limit // 2
        self.tail_cap = self.limit - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
            if not data:
                return
        self.tail += data
        excess = len(self.tail) - self.tail_cap
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def total(self) -> int:
        return len(self.head) + len(self.tail) + self.dropped

    def text(self, strip_final_newline: bool = False) -> tuple[str, bool]:
        """(cleaned text, truncated?)."""
        tail = bytes(self.tail)
        head = bytes(self.head)
        if strip_final_newline:
            if tail.endswith(b"\n"):
                tail = tail[:-1]
            elif not tail and head.endswith(b"\n"):
                head = head[:-1]
        if not self.dropped:
            return clean_output(head + tail), False
        marker = f"\n[... {self.dropped} bytes of output omitted ...]\n"
        return clean_output(head) + marker + clean_output(tail), True

"""Run options of a :class:`~aem_envs.sandbox.DockerSandbox`; every default is the safe one.

=====================  ==========================  ==========================================
field                  default                     why
=====================  ==========================  ==========================================
network                ``"none"``                  no egress, no lateral movement
mem_limit              ``"1g"``                    a memory hog is OOM-killed, not the host
memswap_limit          = mem_limit (no swap)       skipped (with a warning) when the engine
                                                   reports ``SwapLimit: false``
cpus                   ``1.0``                     CFS quota: one runaway loop = one core
pids_limit             ``256``                     fork bombs hit the limit
cap_drop               ``["ALL"]``                 no capabilities at all
no_new_privileges      ``True``                    setuid binaries cannot raise privileges
user                   ``"1000:1000"`` (agent)     every agent command runs as this uid
keeper_user            ``"0"``                     the idle ``sleep TTL`` keeper runs as root
                                                   *without capabilities*, so the agent (uid
                                                   1000, no CAP_KILL) cannot kill it and stop
                                                   the container with ``kill -9 -1``
read_only              ``True``                    root fs read-only; writes go to tmpfs
tmpfs                  /workspace 256m, /tmp 128m  sized scratch; tmpfs pages count against
                                                   ``mem_limit`` (engine behaviour)
init                   ``True``                    docker-init reaps orphans/zombies
log_driver             ``"none"``                  container logs never grow on the host
ulimits                nofile 4096, fsize 256 MiB  a single file cannot fill the disk
env                    TZ=UTC, LANG=C.UTF-8,       reproducible output; PAGER=cat so pagers
                       PYTHONHASHSEED=0, PAGER=cat never wait for a terminal
ttl                    ``3600`` s                  the keeper exits after this; an orphaned
                                                   container dies by itself
=====================  ==========================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_ENV: dict[str, str] = {
    "TZ": "UTC",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "SYSTEMD_PAGER": "",
    "LESS": "-FRX",
    "TERM": "dumb",
    "HOME": "/tmp/home",
    "USER": "agent",
    "GIT_TERMINAL_PROMPT": "0",
    "DEBIAN_FRONTEND": "noninteractive",
}


@dataclass(frozen=True)
class SandboxConfig:
    """Options for one sandbox. Use :meth:`with_` to override a few fields."""

    image: str = "aem/base:0"
    workdir: str = "/workspace"
    scratch: str = "/tmp"
    network: str = "none"
    mem_limit: str = "1g"
    no_swap: bool = True
    cpus: float = 1.0
    pids_limit: int = 256
    cap_drop: tuple[str, ...] = ("ALL",)
    no_new_privileges: bool = True
    user: str = "1000:1000"
    keeper_user: str = "0"
    read_only: bool = True
    tmpfs: tuple[tuple[str, str], ...] = (
        ("/workspace", "size=256m,mode=0755,uid=1000,gid=1000"),
        ("/tmp", "size=128m,mode=1777"),
        ("/run/aem", "size=128m,mode=0700,uid=1000,gid=1000"),
    )
    init: bool = True
    log_driver: str = "none"
    nofile: int = 4096
    fsize_bytes: int = 256 * 1024 * 1024
    env: tuple[tuple[str, str], ...] = tuple(DEFAULT_ENV.items())
    ttl: float = 3600.0
    default_timeout: float = 30.0
    #: Host-side backstop added to a command's deadline before the host kills it itself.
    backstop_grace: float = 5.0
    #: Bytes of output kept per command (half head, half tail).
    output_limit: int = 64 * 1024
    #: Bytes cap for put_archive/get_archive.
    max_archive_bytes: int = 256 * 1024 * 1024
    extra_run_kwargs: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def with_(self, **changes: Any) -> SandboxConfig:
        return replace(self, **changes)

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.env)

    def run_kwargs(self, swap_supported: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``docker.containers.run`` (without image/command/labels)."""
        import docker

        kw: dict[str, Any] = {
            "network_mode": self.network,
            "mem_limit": self.mem_limit,
            "nano_cpus": int(self.cpus * 1e9) if self.cpus else None,
            "pids_limit": self.pids_limit,
            "cap_drop": list(self.cap_drop),
            "security_opt": ["no-new-privileges"] if self.no_new_privileges else [],
            "user": self.keeper_user,
            "read_only": self.read_only,
            "tmpfs": dict(self.tmpfs),
            "init": self.init,
            "log_config": {"type": self.log_driver},
            "ulimits": [
                docker.types.Ulimit(name="nofile", soft=self.nofile, hard=self.nofile),
                docker.types.Ulimit(name="fsize", soft=self.fsize_bytes, hard=self.fsize_bytes),
            ],
            "environment": self.environment,
            "working_dir": self.workdir,
            "stop_signal": "SIGKILL",
        }
        if self.no_swap and self.mem_limit and swap_supported:
            kw["memswap_limit"] = self.mem_limit
        kw = {k: v for k, v in kw.items() if v is not None}
        kw.update(dict(self.extra_run_kwargs))
        return kw

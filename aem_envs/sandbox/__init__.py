"""Sandboxes for agent commands: :class:`DockerSandbox` (isolated), :class:`LocalSandbox`
(development only, NOT isolated), :class:`SandboxPool` (warm containers), and the reaper."""

from aem_envs.sandbox.base import OutputBuffer, Result, Sandbox, check_archive, clean_output, tar_of
from aem_envs.sandbox.config import SandboxConfig
from aem_envs.sandbox.errors import (
    DaemonDown,
    DockerMissing,
    ImageMissing,
    SandboxError,
    SandboxLost,
    UnsafeArchive,
)
from aem_envs.sandbox.lifecycle import LABEL, labelled_containers, reap

__all__ = [
    "LABEL", "DaemonDown", "DockerMissing", "DockerSandbox", "ImageMissing", "LocalSandbox",
    "OutputBuffer", "Result", "Sandbox", "SandboxConfig", "SandboxError", "SandboxLost", "SandboxPool",
    "UnsafeArchive", "check_archive", "clean_output", "labelled_containers", "reap", "tar_of",
]


def __getattr__(name: str):  # the docker-backed classes import the docker SDK lazily
    if name == "DockerSandbox":
        from aem_envs.sandbox.docker_sandbox import DockerSandbox

        return DockerSandbox
    if name == "SandboxPool":
        from aem_envs.sandbox.pool import SandboxPool

        return SandboxPool
    if name == "LocalSandbox":
        from aem_envs.sandbox.local import LocalSandbox

        return LocalSandbox
    raise AttributeError(name)

"""Typed sandbox failures. Each message is one line that names the fix.

All of them are :class:`aem_envs.core.InfraError`: an env that lets one escape from ``_act``
reports ``info["error_kind"] == "infra"`` and ends the episode as truncated, so a learner drops
the trajectory instead of blaming the agent.
"""

from __future__ import annotations

from aem_envs.core import InfraError


class SandboxError(InfraError):
    """Base class: the sandbox infrastructure (not the agent) failed."""


class DockerMissing(SandboxError):
    """The docker SDK or the docker client/engine is not installed."""


class DaemonDown(SandboxError):
    """The Docker daemon does not answer."""


class ImageMissing(SandboxError):
    """The requested image is not present locally (and no registry is used)."""


class SandboxLost(SandboxError):
    """The container or its connection vanished mid-episode (killed, daemon restarted)."""


class UnsafeArchive(SandboxError, ValueError):
    """A tar archive had a member that would escape the target directory, or was too big."""

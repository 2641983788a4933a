"""``aem/Shell-v0``: InterCode-Bash-style tasks in a Docker sandbox (see :mod:`.env`)."""

from aem_envs.envs.shell.env import ShellEnv
from aem_envs.envs.shell.tasks import FAMILIES, ShellTask, make_task

__all__ = ["FAMILIES", "ShellEnv", "ShellTask", "make_task"]

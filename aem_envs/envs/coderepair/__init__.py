"""Code repair: fix injected bugs in small Python repositories; hidden tests grade in Docker.

See :mod:`aem_envs.envs.coderepair.env` for the environment, :mod:`.task` for the task file
format (bring your own tasks), :mod:`.mutations` for the bug injector and :mod:`.generate`
for how the shipped task index is built.
"""

from aem_envs.envs.coderepair.env import CodeRepairEnv, export_corpus
from aem_envs.envs.coderepair.task import Task, load_tasks

__all__ = ["CodeRepairEnv", "Task", "export_corpus", "load_tasks"]

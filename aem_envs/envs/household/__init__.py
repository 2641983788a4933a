"""ALFWorld-style text household (``aem/Household-v0``)."""

from aem_envs.envs.household.env import HouseholdEnv
from aem_envs.envs.household.world import TASK_TYPES

__all__ = ["TASK_TYPES", "HouseholdEnv"]

"""Built-in environments. Each is registered lazily: importing this module imports no env code."""

from aem_envs.registration import register

register("aem/Household-v0", "aem_envs.envs.household:HouseholdEnv")
register("aem/WebShop-v0", "aem_envs.envs.webshop:WebShopEnv")
register("aem/Shell-v0", "aem_envs.envs.shell:ShellEnv")
register("aem/CodeRepair-v0", "aem_envs.envs.coderepair:CodeRepairEnv")

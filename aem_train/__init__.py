"""aem_train: a compact PPO learner for multi-turn text agents with AEM (arXiv 2605.00425).

The data path reads one way: env -> rollout rows (one per turn, :mod:`aem_train.rows`) ->
base advantages (:mod:`aem_train.advantages`) -> modulation (:mod:`aem_train.modulation`) ->
PPO loss (:mod:`aem_train.ppo`).
"""

__version__ = "0.1.0"

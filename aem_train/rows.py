"""The rollout row: one turn of one trajectory, the whole-action unit AEM assigns credit to.

A trajectory of T turns becomes T rows. Each row's prompt is the chat view at that turn and its
response is the token ids exactly as sampled (never re-tokenised), so observation tokens are
only ever prompt and can never carry loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Row:
    prompt_ids: list[int]
    response_ids: list[int]
    old_logprobs: np.ndarray  # float32 [len(response_ids)], log pi_old(y_l | s, y_<l)
    token_entropy: np.ndarray  # float32 [len(response_ids)], full-vocabulary entropy per token
    reward: float  # env reward for this turn
    done: bool  # last turn of its trajectory
    group_id: int  # trajectories of one group share a task
    traj_id: int  # unique within a batch
    turn: int  # 0-based turn index within the trajectory
    task_id: str
    observation: str = ""  # observation the response answered (GiGPO anchor states)
    action: str | None = None
    action_valid: bool = True
    traj_return: float = 0.0  # sum of the trajectory's rewards (filled when it ends)
    traj_success: bool = False  # trajectory solved the task (filled when it ends)
    extras: dict = field(default_factory=dict)  # e.g. "value", "ref_logprobs"

    @property
    def mean_entropy(self) -> float:
        """Hbar: length-normalised response entropy, the AEM confidence proxy."""
        return float(np.mean(self.token_entropy)) if len(self.token_entropy) else 0.0

    @property
    def surprisal(self) -> float:
        """S(y|s) = -log pi_old(y|s) summed over the response's tokens."""
        return float(-np.sum(self.old_logprobs))

    @property
    def num_tokens(self) -> int:
        return len(self.response_ids)

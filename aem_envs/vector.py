"""Vectorised execution for group rollouts.

``make_vec(id, num_tasks, group_size)`` runs ``num_tasks * group_size`` envs. Env ``i`` belongs
to group ``i // group_size``; all envs of a group play the same task (GRPO-style groups) but own
independent RNG streams spawned from one seed. Episodes are *not* auto-reset: a finished env
stays finished (``done[i]``) until the next ``reset`` so a learner sees exactly one episode per
env. ``mode="threads"`` steps envs in a thread pool (worth it when steps wait on I/O, e.g.
Docker); it returns exactly what ``mode="sync"`` returns, because nothing shares random state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from aem_envs.core import TextEnv
from aem_envs.registration import make


@dataclass
class VecStep:
    observations: list[str | None]  # None for envs that were already done before this step
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict[str, Any] | None]


class TextVecEnv:
    def __init__(
        self,
        env_fns: Sequence[Callable[[], TextEnv]],
        group_size: int = 1,
        mode: Literal["sync", "threads"] = "sync",
        max_workers: int | None = None,
    ):
        if mode not in ("sync", "threads"):
            raise ValueError(f"mode={mode!r} is unknown; use 'sync' or 'threads'")
        if group_size < 1 or len(env_fns) % group_size:
            raise ValueError(f"{len(env_fns)} envs cannot be split into groups of {group_size}")
        self.mode = mode
        self.group_size = group_size
        self.envs: list[TextEnv] = []
        try:
            for fn in env_fns:
                self.envs.append(fn())
        except BaseException:  # the envs built so far may hold containers or ports
            for env in self.envs:
                try:
                    env.close()
                except Exception:  # noqa: BLE001, S110 - the constructor's error is the one to report
                    pass
            raise
        self.num_envs = len(self.envs)
        self.num_groups = self.num_envs // group_size
        self.group_ids = np.arange(self.num_envs) // group_size
        self.done = np.ones(self.num_envs, dtype=bool)
        self.task_ids: list[str | None] = [None] * self.num_envs
        self._pool = (
            ThreadPoolExecutor(max_workers or min(32, self.num_envs), thread_name_prefix="aem-vec")
            if mode == "threads"
            else None
        )
        self._closed = False

    def _map(self, fn: Callable[[int], Any], idx: Sequence[int]) -> list[Any]:
        if self._pool is None or len(idx) <= 1:
            return [fn(i) for i in idx]
        return list(self._pool.map(fn, idx))

    def reset(
        self,
        seed: int | None = None,
        task_ids: Sequence[str] | None = None,
        split: str | None = None,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Start one episode per env. ``task_ids`` gives one task per *group*; otherwise each
        group's task is drawn from a generator seeded by ``seed``."""
        ss = np.random.SeedSequence(seed)
        task_ss, *env_ss = ss.spawn(self.num_envs + 1)
        if task_ids is None:
            env0 = self.envs[0]
            ids = env0.task_ids(split or env0.split)
            rng = np.random.default_rng(task_ss)
            picks = rng.choice(len(ids), size=self.num_groups, replace=len(ids) < self.num_groups)
            task_ids = [ids[int(k)] for k in picks]
        if len(task_ids) != self.num_groups:
            raise ValueError(f"got {len(task_ids)} task ids for {self.num_groups} groups")
        env_seeds = [int(s.generate_state(1)[0]) for s in env_ss]

        def _reset(i: int):
            return self.envs[i].reset(
                seed=env_seeds[i], options={"task_id": task_ids[self.group_ids[i]]}
            )

        out = self._map(_reset, range(self.num_envs))
        self.done[:] = False
        self.task_ids = [task_ids[g] for g in self.group_ids]
        return [o for o, _ in out], [info for _, info in out]

    def step(self, actions: Sequence[str | None]) -> VecStep:
        """Step every env that is not done. Actions for done envs must be None."""
        if len(actions) != self.num_envs:
            raise ValueError(f"got {len(actions)} actions for {self.num_envs} envs")
        for i, a in enumerate(actions):
            if self.done[i] and a is not None:
                raise ValueError(f"env {i} is done; pass None as its action until reset()")
            if not self.done[i] and a is None:
                raise ValueError(f"env {i} is active and needs an action (got None)")
        active = [i for i in range(self.num_envs) if not self.done[i]]
        results = self._map(lambda i: self.envs[i].step(actions[i]), active)
        obs: list[str | None] = [None] * self.num_envs
        infos: list[dict[str, Any] | None] = [None] * self.num_envs
        rew = np.zeros(self.num_envs)
        term = np.zeros(self.num_envs, dtype=bool)
        trunc = np.zeros(self.num_envs, dtype=bool)
        for i, (o, r, te, tr, info) in zip(active, results):
            obs[i], rew[i], term[i], trunc[i], infos[i] = o, r, te, tr, info
            if te or tr:
                self.done[i] = True
        return VecStep(obs, rew, term, trunc, infos)

    @property
    def all_done(self) -> bool:
        return bool(self.done.all())

    def close(self) -> None:
        """Close every env, even when one's ``close`` raises (its sandbox may be gone with the
        daemon): the others still hold containers or ports. The first error is re-raised after."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        first: BaseException | None = None
        for env in self.envs:
            try:
                env.close()
            except Exception as e:  # noqa: BLE001 - re-raised below, once every env is closed
                first = first or e
        if first is not None:
            raise first

    def __enter__(self) -> TextVecEnv:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_vec(
    env_id: str,
    num_tasks: int,
    group_size: int = 1,
    mode: Literal["sync", "threads"] = "sync",
    max_workers: int | None = None,
    **env_kwargs: Any,
) -> TextVecEnv:
    """``num_tasks * group_size`` envs of ``env_id``; each group of ``group_size`` shares a task."""
    if num_tasks < 1 or group_size < 1:
        raise ValueError("num_tasks and group_size must be >= 1")
    fns = [lambda: make(env_id, **env_kwargs) for _ in range(num_tasks * group_size)]
    return TextVecEnv(fns, group_size=group_size, mode=mode, max_workers=max_workers)

"""One registry for aem envs, on top of Gymnasium's.

``register("aem/Foo-v0", "pkg.module:FooEnv", **defaults)`` calls ``gymnasium.register``, so
``gymnasium.make("aem/Foo-v0")`` works too. Third-party packages add envs without touching
this repo by declaring an entry point in the group ``aem_envs.envs`` whose target is a
function (or module) that calls :func:`register`; it is loaded on first use.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

NAMESPACE = "aem"
ENTRY_POINT_GROUP = "aem_envs.envs"

_AEM_IDS: dict[str, str] = {}  # id -> entry point, in registration order
_plugins_loaded = False
_plugin_lock = threading.Lock()


class UnknownEnvError(KeyError):
    """``make`` was given an id nobody registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it one clean line
        return str(self.args[0])


def _qualify(env_id: str) -> str:
    return env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"


def register(env_id: str, entry_point: Any, **kwargs: Any) -> None:
    """Register an env under the ``aem/`` namespace (added when ``env_id`` has none).

    ``kwargs`` become the env's default constructor arguments (overridable in ``make``).
    Registering the same id twice replaces the first registration.
    """
    env_id = _qualify(env_id)
    ns = env_id.split("/", 1)[0]
    if ns != NAMESPACE:
        raise ValueError(f"env id {env_id!r} must live in the '{NAMESPACE}/' namespace, e.g. 'aem/MyEnv-v0'")
    if env_id in gym.registry:
        del gym.registry[env_id]
    gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs, disable_env_checker=True)
    _AEM_IDS[env_id] = entry_point if isinstance(entry_point, str) else repr(entry_point)


def load_plugins() -> None:
    """Import the built-in envs and every ``aem_envs.envs`` entry point (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _plugin_lock:
        if _plugins_loaded:
            return
        importlib.import_module("aem_envs.envs")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            target = ep.load()
            if callable(target):
                target()
        _plugins_loaded = True


def registered_ids() -> list[str]:
    load_plugins()
    return [i for i in _AEM_IDS if i in gym.registry]


def spec(env_id: str) -> gym.envs.registration.EnvSpec:
    load_plugins()
    env_id = _qualify(env_id)
    if env_id not in gym.registry or env_id not in _AEM_IDS:
        close = difflib.get_close_matches(env_id, list(_AEM_IDS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `aem-envs list` to see the ids"
        raise UnknownEnvError(f"unknown environment {env_id!r}; {hint}")
    return gym.registry[env_id]


def make(env_id: str, **kwargs: Any):
    """Create a registered env (the :class:`~aem_envs.core.TextEnv` itself, not a wrapper).

    Gymnasium wrappers no longer forward attributes, and an aem env already enforces the
    reset/step order and checks its own outputs, so the bare env is returned.
    """
    s = spec(env_id)
    if kwargs.get("max_episode_steps") is not None:  # a TimeLimit wrapper we would unwrap again
        raise ValueError(
            f"make({s.id!r}) returns the bare env, which has its own turn limit: pass "
            f"max_turns={kwargs['max_episode_steps']} instead of max_episode_steps"
        )
    env = gym.make(s.id, disable_env_checker=True, **kwargs)
    base = env.unwrapped
    base.spec = env.spec
    return base


def env_class(env_id: str) -> type:
    """The class behind an id, without constructing it."""
    ep = spec(env_id).entry_point
    if callable(ep):
        return ep  # type: ignore[return-value]
    mod, _, attr = str(ep).partition(":")
    return getattr(importlib.import_module(mod), attr)

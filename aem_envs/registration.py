"""One registry for aem envs, on top of Gymnasium's.

``register("aem/Foo-v0", "pkg.module:FooEnv", **defaults)`` calls ``gymnasium.register``, so
``gymnasium.make("aem/Foo-v0")`` works too. An env defined outside this repo is found in one
of three ways:

- **an id with its module**, Gymnasium's syntax: ``make("my_envs:aem/Foo-v0")`` (or
  ``"path/to/my_envs.py:aem/Foo-v0"``) imports the module, which calls :func:`register`, then
  makes ``aem/Foo-v0``. Every id argument takes this form (``aem-train train
  env.id=my_envs:Foo-v0``, ``aem-envs check my_envs:Foo-v0``); a module name that is not
  importable is also looked for in the current directory, as ``python -m`` would.
- ``aem-train ... --import my_envs.py`` imports the module before the command runs.
- a package declares an entry point in the group ``aem_envs.envs`` whose target is a function
  (or module) that calls :func:`register`; it is loaded on first use.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import threading
from pathlib import Path
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

NAMESPACE = "aem"
ENTRY_POINT_GROUP = "aem_envs.envs"

_AEM_IDS: dict[str, str] = {}  # id -> entry point, in registration order
_plugins_loaded = False
_plugin_lock = threading.Lock()
_import_lock = threading.Lock()
_imported_files: dict[Path, str] = {}  # .py file -> module name, so a file is executed once


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


def import_env_module(name: str) -> None:
    """Import a module name (``my_envs``, ``pkg.envs``) or a ``.py`` file that registers envs.

    A file is executed once per process however often it is named. A module name that is not
    importable is looked for in the current directory too: console scripts such as
    ``aem-train`` do not put it on ``sys.path`` the way ``python -m`` does, and "my module
    next to my config" is the common case. The directory is appended, so it never shadows an
    installed module.
    """
    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        with _import_lock:
            if path in _imported_files:
                return
            if not path.is_file():
                raise UnknownEnvError(f"env module file {name!r} does not exist")
            mod_name = path.stem if path.stem not in sys.modules else f"_aem_user_{len(_imported_files)}_{path.stem}"
            mod_spec = importlib.util.spec_from_file_location(mod_name, path)
            if mod_spec is None or mod_spec.loader is None:
                raise UnknownEnvError(f"env module file {name!r} cannot be imported as a Python module")
            mod = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_name] = mod  # dataclasses and pickling look their module up here
            try:
                mod_spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[mod_name]
                raise
            _imported_files[path] = mod_name
        return
    try:
        importlib.import_module(name)
        return
    except ModuleNotFoundError as e:
        top = name.split(".")[0]
        if e.name != top:
            raise  # the module exists but imports something missing: its own traceback says what
    cwd = os.getcwd()
    if cwd not in sys.path and ((Path(cwd) / f"{top}.py").is_file() or (Path(cwd) / top).is_dir()):
        sys.path.append(cwd)
        importlib.import_module(name)
        return
    raise UnknownEnvError(
        f"cannot import the env module {name!r}: run from the directory that holds {top}.py, "
        f"add that directory to PYTHONPATH, or name the file, e.g. path/to/{top}.py"
    )


def split_module(env_id: str) -> tuple[str | None, str]:
    """``"my_envs:aem/Foo-v0"`` -> ``("my_envs", "aem/Foo-v0")``; an id without a module -> ``(None, id)``."""
    if ":" not in env_id:
        return None, env_id
    module, _, name = env_id.rpartition(":")
    if not module or not name:
        raise UnknownEnvError(f"env id {env_id!r} must look like MODULE:ID, e.g. my_envs:aem/MyEnv-v0")
    return module, name


def registered_ids() -> list[str]:
    load_plugins()
    return [i for i in _AEM_IDS if i in gym.registry]


def spec(env_id: str) -> gym.envs.registration.EnvSpec:
    """The spec of a registered id; ``"module:id"`` imports ``module`` first (module docstring)."""
    load_plugins()
    module, env_id = split_module(env_id)
    if module is not None:
        import_env_module(module)
    env_id = _qualify(env_id)
    if env_id not in gym.registry or env_id not in _AEM_IDS:
        close = difflib.get_close_matches(env_id, list(_AEM_IDS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `aem-envs list` to see the ids"
        if module is not None:
            hint = f"importing {module!r} did not register it; {hint}"
        else:
            hint += " (an env that your own module registers is named MODULE:ID, e.g. my_envs:aem/MyEnv-v0)"
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
    try:
        env = gym.make(s.id, disable_env_checker=True, **kwargs)
    except TypeError as e:
        _raise_if_unknown_kwarg(s, kwargs, e)
        raise
    base = env.unwrapped
    base.spec = env.spec
    return base


def _accepted_kwargs(target: Any) -> set[str] | None:
    """Keyword names ``target(**kw)`` accepts, following ``**kwargs`` up a class's ``__init__``
    chain (an env's ``__init__`` passes the rest to ``TextEnv``'s); None when any is open-ended."""
    names: set[str] = set()
    funcs = [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]
    for fn in funcs:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None


def _raise_if_unknown_kwarg(s: gym.envs.registration.EnvSpec, kwargs: dict[str, Any], e: TypeError) -> None:
    """An unknown constructor argument is one line naming the accepted ones, not a TypeError
    from deep inside Gymnasium (a YAML ``{rooms:1}`` without a space is the key ``'rooms:1'``).
    Only a key the caller passed counts: any other TypeError is a bug with its own traceback."""
    m = re.search(r"unexpected keyword argument '([^']+)'", str(e))
    if m is None or m.group(1) not in {**(s.kwargs or {}), **kwargs}:
        return
    k = m.group(1)
    hint = " (in YAML write a space after the colon: {rooms: 1})" if ":" in k else ""
    accepted = _accepted_kwargs(env_class(s.id))
    takes = f"it takes: {', '.join(sorted(accepted))}" if accepted else "see its constructor"
    raise ValueError(f"{s.id} does not accept the argument {k!r}{hint}; {takes}") from None


def env_class(env_id: str) -> type:
    """The class behind an id, without constructing it."""
    ep = spec(env_id).entry_point
    if callable(ep):
        return ep  # type: ignore[return-value]
    mod, _, attr = str(ep).partition(":")
    return getattr(importlib.import_module(mod), attr)

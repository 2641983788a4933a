"""The expert: the next action toward the goal from the current state.

Two experts share one planner:

- **search** (the default oracle) plans from what the agent could know: the house layout
  (receptacle names, which room they are in) and the contents of receptacles the agent has
  already seen (``World.seen``). When the goal object (or the lamp) has not been seen, it
  searches the unseen receptacles where such an object is plausibly kept (its *homes*), nearest
  first, opening closed ones. Its demonstrations are therefore imitable by a model that sees
  only the observations.
- **informed** (``informed=True``) is ALFWorld-handcoded-expert style: it knows where
  everything is, including inside closed receptacles, and walks straight there (shortest plans).

Both open what is closed, respect the one-object hand, and are stateless — every call re-plans
from ``World`` alone — so they recover from any state an agent left behind (an object in hand,
a goal object dropped elsewhere, a half-done pick-two, a lamp switched on or off). Every action
returned is admissible; ties break by receptacle order, and a chosen target stays chosen as the
agent moves toward it, so the plan never oscillates.
"""

from __future__ import annotations

from aem_envs.envs.household.catalog import APPLIANCE, LAMP, OBJECTS, VERB
from aem_envs.envs.household.world import HELD, World


def _cost(w: World, r: int) -> int:
    """Actions needed to reach receptacle ``r`` and see inside it."""
    rec = w.receps[r]
    c = 0 if w.at == r else (1 if rec.room == w.room else 2)
    return c + (0 if rec.accessible else 1)


def _go(w: World, r: int) -> str | None:
    """The move toward ``r`` (another room first), or None when already there."""
    if w.at == r:
        return None
    rec = w.receps[r]
    if rec.room != w.room:
        return f"go to {w.rooms[rec.room]}"
    return f"go to {rec.name}"


def _reach(w: World, r: int) -> str | None:
    """The move toward ``r`` or the opening of it, or None when its contents are at hand."""
    step = _go(w, r)
    if step is None and not w.receps[r].accessible:
        return f"open {w.receps[r].name}"
    return step


def _nearest(w: World, candidates: list[int]) -> int:
    return min(candidates, key=lambda r: (_cost(w, r), r))


def _drop(w: World) -> str:
    """Put the useless object in hand down at the nearest place (it is in the way)."""
    held = w.things[w.held].name  # type: ignore[index]
    if w.at is not None:
        rec = w.receps[w.at]
        if not rec.accessible:
            return f"open {rec.name}"
        return f"put {held} {rec.prep} {rec.name}"
    r = _nearest(w, w.room_receps[w.room])
    return f"go to {w.receps[r].name}"


def _search(w: World, homes: tuple[str, ...]) -> str | None:
    """Visit (and open) the nearest unseen receptacle of a kind in ``homes``; None if none is left."""
    unseen = [r for r, rec in enumerate(w.receps) if not w.seen[r] and rec.kind in homes]
    if not unseen:
        unseen = [r for r in range(len(w.receps)) if not w.seen[r]]  # then anywhere at all
    if not unseen:
        return None
    return _reach(w, _nearest(w, unseen))


def _fetch(w: World, exclude_recep: int | None, informed: bool) -> str:
    """Walk to, open and take the most convenient goal object not already where it belongs
    (searching for one first when none is known)."""
    g = w.goal
    best, best_key = None, None
    for t, th in enumerate(w.things):
        if th.kind != g.obj_kind or th.loc == HELD or not (informed or w.seen[th.loc]):
            continue
        if th.loc == exclude_recep and th.has(g.state):
            continue  # already counted in the chosen target
        # Prefer objects already in the goal state (e.g. cleaned, then dropped elsewhere).
        key = (_cost(w, th.loc) + (0 if th.has(g.state) else 2), t)
        if best_key is None or key < best_key:
            best, best_key = t, key
    if best is None:
        step = None if informed else _search(w, OBJECTS[g.obj_kind].homes)
        if step is None:  # cannot happen in generated worlds: there are always enough goal objects
            raise RuntimeError(f"no {g.obj_kind} left to fetch")
        return step
    th = w.things[best]
    step = _reach(w, th.loc)
    return step or f"take {th.name} from {w.receps[th.loc].name}"


def next_action(w: World, informed: bool = False) -> str:
    """The expert's next command (always in ``w.admissible()``); see the module docstring."""
    g = w.goal
    held = w.things[w.held] if w.held is not None else None
    if g.recep_kind is None:  # look at the object under the desklamp
        if held is None:
            return _fetch(w, None, informed)
        if held.kind != g.obj_kind:
            return _drop(w)
        lamp = w.things[w.lamps[0]]
        if not (informed or w.seen[lamp.loc]):
            step = _search(w, LAMP.homes)
            if step is not None:
                return step
        step = _go(w, lamp.loc)
        return step or f"use {lamp.name}"  # the lamp is off, or the goal would already hold

    target = min(w.targets, key=lambda r: (-w.count_placed(r), _cost(w, r), r))
    if held is None:
        return _fetch(w, target, informed)
    if held.kind != g.obj_kind:
        return _drop(w)
    if not held.has(g.state):
        appliance = APPLIANCE[g.state]  # type: ignore[index]
        tool = _nearest(w, [r for r, rec in enumerate(w.receps) if rec.kind == appliance])
        step = _go(w, tool)
        return step or f"{VERB[g.state]} {held.name} with {w.receps[tool].name}"  # type: ignore[index]
    rec = w.receps[target]
    step = _reach(w, target)
    return step or f"put {held.name} {rec.prep} {rec.name}"

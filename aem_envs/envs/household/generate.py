"""Procedural generation: a task id becomes a household and a goal, always the same ones.

The generator is ``random.Random`` seeded with ``(GENERATOR_VERSION, task_id, knobs)`` — a local
instance (string seeds hash with SHA-512, so ids are stable across processes and platforms);
the global ``random`` state is never touched. Constraints (an appliance the task needs, a home
for the object, a target that differs from where the object starts) are met by rejection:
a failed draw simply draws again from the same generator, so it stays deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from aem_envs.envs.household.catalog import (
    LAMP,
    LOOK_OBJECTS,
    OBJECTS,
    RECEPTACLES,
    REPEATABLE,
    ROOMS,
)
from aem_envs.envs.household.world import TASK_TYPES, Goal, Receptacle, Thing, World

#: Bump whenever anything below (or the catalog) changes what an id generates.
GENERATOR_VERSION = "1"

_STATE_OF = {
    "pick_clean_then_place_in_recep": "clean",
    "pick_heat_then_place_in_recep": "hot",
    "pick_cool_then_place_in_recep": "cool",
}
_ROOMS_FOR_STATE = {"clean": ("kitchen", "bathroom"), "hot": ("kitchen",), "cool": ("kitchen",)}
#: Target receptacle kinds that would make a task silly or trivial, per required state.
_EXCLUDED_TARGETS = {
    None: {"garbagecan"},
    "clean": {"garbagecan", "sinkbasin", "bathtubbasin"},
    "hot": {"garbagecan", "microwave", "stoveburner"},
    "cool": {"garbagecan", "fridge"},
}


@dataclass(frozen=True)
class Layout:
    """Difficulty knobs (see :class:`~aem_envs.envs.household.env.HouseholdEnv`)."""

    rooms: int = 2
    receptacles_per_room: int = 7
    distractors: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.rooms <= len(ROOMS):
            raise ValueError(f"rooms={self.rooms} must be between 1 and {len(ROOMS)}")
        if not 3 <= self.receptacles_per_room <= 12:
            raise ValueError(f"receptacles_per_room={self.receptacles_per_room} must be between 3 and 12")
        if not 0 <= self.distractors <= 40:
            raise ValueError(f"distractors={self.distractors} must be between 0 and 40")


def _instruction(rng: random.Random, task_type: str, x: str, target: str | None) -> str:
    prep = RECEPTACLES[target].prep if target else ""
    options = {
        "pick_and_place_simple": (f"put a {x} {prep} {target}.", f"put some {x} {prep} {target}."),
        "look_at_obj_in_light": (f"look at {x} under the desklamp.", f"examine the {x} with the desklamp."),
        "pick_clean_then_place_in_recep": (
            f"put a clean {x} {prep} {target}.", f"clean some {x} and put it {prep} {target}."),
        "pick_heat_then_place_in_recep": (
            f"put a hot {x} {prep} {target}.", f"heat some {x} and put it {prep} {target}."),
        "pick_cool_then_place_in_recep": (
            f"put a cool {x} {prep} {target}.", f"cool some {x} and put it {prep} {target}."),
        "pick_two_obj_and_place": (
            f"put two {x} {prep} {target}.", f"find two {x} and put them {prep} {target}."),
    }[task_type]
    return options[rng.randrange(len(options))]


def _room_kinds(rng: random.Random, room: str, n: int) -> list[str]:
    spec = ROOMS[room]
    kinds = list(spec.required)
    pool = list(spec.optional)
    while len(kinds) < n and pool:
        k = pool.pop(rng.randrange(len(pool)))
        if k in kinds and k not in REPEATABLE:
            continue
        kinds.append(k)
    rng.shuffle(kinds)
    return kinds


def _draw(rng: random.Random, task_type: str, layout: Layout) -> World | None:
    state = _STATE_OF.get(task_type)
    look = task_type == "look_at_obj_in_light"
    if look:
        pool = LOOK_OBJECTS
    elif state:
        flag = {"clean": "cleanable", "hot": "heatable", "cool": "coolable"}[state]
        pool = tuple(k for k, o in OBJECTS.items() if getattr(o, flag))
    else:
        pool = tuple(OBJECTS)
    x = pool[rng.randrange(len(pool))]
    home = OBJECTS[x].homes

    # Rooms: one that has what the task needs, then others at random.
    need = _ROOMS_FOR_STATE.get(state) or (("living room", "bedroom") if look else tuple(ROOMS))
    first = need[rng.randrange(len(need))]
    others = [r for r in ROOMS if r != first]
    rng.shuffle(others)
    rooms = [first] + others[: layout.rooms - 1]
    rng.shuffle(rooms)
    spots = [(kind, k) for k, room in enumerate(rooms) for kind in _room_kinds(rng, room, layout.receptacles_per_room)]
    present = {kind for kind, _ in spots}

    target = None
    if not look:
        excluded = _EXCLUDED_TARGETS[state]
        cands = [k for k in home if k in present and k not in excluded]
        if not cands:
            return None
        target = cands[rng.randrange(len(cands))]
    sources = [i for i, (kind, _) in enumerate(spots) if kind in home and kind != target]
    if not sources:
        return None
    lamp_spots = [i for i, (kind, _) in enumerate(spots) if kind in LAMP.homes]
    if look and not lamp_spots:
        return None

    n_x = 2 + (rng.random() < 0.3) if task_type == "pick_two_obj_and_place" else 1 + (rng.random() < 0.35)
    placed: list[tuple[str, int]] = [(x, sources[rng.randrange(len(sources))]) for _ in range(n_x)]
    if lamp_spots and (look or rng.random() < 0.5):
        placed.append((LAMP.name, lamp_spots[rng.randrange(len(lamp_spots))]))
    distractor_kinds = [k for k in OBJECTS if k != x]
    for _ in range(layout.distractors):
        for _attempt in range(8):
            kind = distractor_kinds[rng.randrange(len(distractor_kinds))]
            where = [i for i, (k, _) in enumerate(spots) if k in OBJECTS[kind].homes]
            if where:
                placed.append((kind, where[rng.randrange(len(where))]))
                break
    rng.shuffle(placed)  # so the goal object is not always "x 1" nor listed first

    receps: list[Receptacle] = []
    seen: dict[str, int] = {}
    for kind, room in spots:
        seen[kind] = seen.get(kind, 0) + 1
        rk = RECEPTACLES[kind]
        receps.append(Receptacle(f"{kind} {seen[kind]}", kind, room, rk.openable, rk.prep))
    things: list[Thing] = []
    seen = {}
    for kind, r in placed:
        seen[kind] = seen.get(kind, 0) + 1
        light = kind == LAMP.name
        things.append(Thing(f"{kind} {seen[kind]}", kind, r, pickupable=not light, light_source=light))
        receps[r].contents.append(len(things) - 1)

    goal = Goal(
        task_type=task_type,
        obj_kind=x,
        recep_kind=target,
        count=2 if task_type == "pick_two_obj_and_place" else 1,
        state=state,
        instruction=_instruction(rng, task_type, x, target),
    )
    return World(rooms, receps, things, goal, start_room=rng.randrange(len(rooms)))


def generate(task_id: str, layout: Layout = Layout()) -> World:
    """The world and goal of ``task_id`` under ``layout`` (deterministic)."""
    key = f"aem-household|{GENERATOR_VERSION}|{task_id}|{layout.rooms}|{layout.receptacles_per_room}|{layout.distractors}"
    rng = random.Random(key)
    task_type = TASK_TYPES[rng.randrange(len(TASK_TYPES))]
    for _ in range(1000):
        world = _draw(rng, task_type, layout)
        if world is not None and not world.goal_satisfied():
            return world
    raise RuntimeError(f"could not generate {task_id!r} with {layout}; use more rooms or receptacles")

"""The household's state and rules: what can be done where, what it does, and what it says.

A :class:`World` is plain mutable data (rooms, receptacles, things, the agent) plus the rules of
ALFWorld's command language. The step path is: look the command up in the cached admissible
set (:meth:`World.lookup`), apply it (:meth:`World.execute`), re-derive the admissible set once.
Commands that are not admissible get a specific reason from :meth:`World.explain`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aem_envs.envs.household.catalog import OBJECTS

HELD = -1  # Thing.loc of the object in the agent's hands

#: ALFWorld's task types, in a fixed order (task generation indexes into it).
TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

#: Operations that only report; they never change the state (nor the goal's status).
INSPECT_OPS = frozenset({"look", "inventory", "examine_recep", "examine_thing"})

COMMANDS_HELP = (
    "go to X, open X, close X, take X from Y, put X in/on Y, clean X with Y, heat X with Y, "
    "cool X with Y, use X, look, inventory, examine X"
)


@dataclass
class Receptacle:
    name: str  # "cabinet 3"
    kind: str  # "cabinet"
    room: int
    openable: bool
    prep: str  # "in" / "on"
    is_open: bool = False
    contents: list[int] = field(default_factory=list)  # thing indices, in display order

    @property
    def accessible(self) -> bool:
        """Its contents can be seen and taken (open, or nothing to open)."""
        return self.is_open or not self.openable


@dataclass
class Thing:
    name: str  # "apple 2"
    kind: str  # "apple"
    loc: int  # receptacle index, or HELD
    pickupable: bool = True
    light_source: bool = False
    clean: bool = False
    hot: bool = False
    cool: bool = False
    on: bool = False  # light sources only

    def has(self, state: str | None) -> bool:
        return state is None or getattr(self, state)


@dataclass(frozen=True)
class Goal:
    task_type: str  # one of TASK_TYPES
    obj_kind: str
    recep_kind: str | None  # None for look_at_obj_in_light
    count: int = 1  # 2 for pick_two_obj_and_place
    state: str | None = None  # "clean" / "hot" / "cool" the object must have when placed
    instruction: str = ""


def a_list(names: list[str]) -> str:
    """ALFWorld's enumeration: 'a apple 2', 'a apple 2, and a mug 1', or 'nothing'."""
    if not names:
        return "nothing"
    if len(names) == 1:
        return f"a {names[0]}"
    return ", ".join(f"a {n}" for n in names[:-1]) + f", and a {names[-1]}"


_PUT_RE = re.compile(r"^put (.+?) (?:in/on|in|on|into|onto|to) (.+)$")
_TOOL_RE = re.compile(r"^(clean|heat|cool) (.+?) (?:with|using|in) (.+)$")
_TAKE_RE = re.compile(r"^take (.+?) from (.+)$")


def normalize(command: str) -> str:
    """Lower-case, single spaces, no trailing period: the admissible actions' own form."""
    return " ".join(command.lower().replace(",", " ").split()).rstrip(".").strip()


class World:
    """One household episode's full state, with ALFWorld's command rules."""

    def __init__(
        self,
        rooms: list[str],
        receptacles: list[Receptacle],
        things: list[Thing],
        goal: Goal,
        start_room: int,
    ):
        self.rooms = rooms
        self.receps = receptacles
        self.things = things
        self.goal = goal
        self.room = start_room
        self.at: int | None = None  # receptacle index; None = the middle of self.room
        self.held: int | None = None
        self.room_receps = [[i for i, r in enumerate(receptacles) if r.room == k] for k in range(len(rooms))]
        self.recep_index = {r.name: i for i, r in enumerate(receptacles)}
        self.thing_index = {t.name: i for i, t in enumerate(things)}
        self.room_index = {name: i for i, name in enumerate(rooms)}
        self.targets = [i for i, r in enumerate(receptacles) if r.kind == goal.recep_kind]
        self.lamps = [i for i, t in enumerate(things) if t.light_source]
        # Receptacles whose contents the agent has seen. Only the agent moves things, so what it
        # saw stays true; the searching expert plans from this instead of hidden contents.
        self.seen = [False] * len(receptacles)
        self._adm: dict[str, tuple[str, int]] | None = None
        self._adm_text: str | None = None

    # ------------------------------------------------------------------ queries
    def where(self) -> str:
        if self.at is None:
            return f"the middle of the {self.rooms[self.room]}"
        return f"{self.receps[self.at].name} in the {self.rooms[self.room]}"

    def count_placed(self, r: int) -> int:
        """Goal objects (in the goal state) inside receptacle ``r``."""
        g, things = self.goal, self.things
        return sum(1 for t in self.receps[r].contents if things[t].kind == g.obj_kind and things[t].has(g.state))

    def goal_satisfied(self) -> bool:
        g = self.goal
        if g.recep_kind is None:  # look at the object under a switched-on lamp
            if self.held is None or self.things[self.held].kind != g.obj_kind:
                return False
            return any(self.things[k].on and self.things[k].loc == self.at for k in self.lamps)
        return any(self.count_placed(r) >= g.count for r in self.targets)

    def admissible(self) -> dict[str, tuple[str, int]]:
        """Every command valid now, mapped to (operation, operand). Cached until the state changes."""
        if self._adm is not None:
            return self._adm
        receps, things, here = self.receps, self.things, self.at
        acts: dict[str, tuple[str, int]] = {}
        for r in self.room_receps[self.room]:
            if r != here:
                acts[f"go to {receps[r].name}"] = ("goto", r)
        for k, name in enumerate(self.rooms):
            if k != self.room:
                acts[f"go to {name}"] = ("room", k)
        held = self.held
        if here is not None:
            rec = receps[here]
            if rec.openable:
                acts[f"{'close' if rec.is_open else 'open'} {rec.name}"] = ("close" if rec.is_open else "open", here)
            if rec.accessible:
                for t in rec.contents:
                    th = things[t]
                    if th.light_source:
                        acts[f"use {th.name}"] = ("use", t)
                    elif held is None and th.pickupable:
                        acts[f"take {th.name} from {rec.name}"] = ("take", t)
                if held is not None:
                    acts[f"put {things[held].name} {rec.prep} {rec.name}"] = ("put", here)
            if held is not None:
                h = things[held]
                kind = OBJECTS[h.kind]
                if rec.kind == "sinkbasin" and kind.cleanable:
                    acts[f"clean {h.name} with {rec.name}"] = ("clean", here)
                elif rec.kind == "microwave" and kind.heatable:
                    acts[f"heat {h.name} with {rec.name}"] = ("heat", here)
                elif rec.kind == "fridge" and kind.coolable:
                    acts[f"cool {h.name} with {rec.name}"] = ("cool", here)
            acts[f"examine {rec.name}"] = ("examine_recep", here)
        if held is not None:
            acts[f"examine {things[held].name}"] = ("examine_thing", held)
        acts["inventory"] = ("inventory", 0)
        acts["look"] = ("look", 0)
        self._adm = acts
        return acts

    def admissible_text(self) -> str:
        """'Admissible actions: a, b, ...' (cached with the admissible set)."""
        if self._adm is None or self._adm_text is None:
            self._adm_text = "Admissible actions: " + ", ".join(self.admissible())
        return self._adm_text

    def lookup(self, command: str) -> tuple[str, int] | None:
        """The admissible operation ``command`` names, tolerating case, spacing and in/on."""
        acts = self.admissible()
        op = acts.get(command)
        if op is not None:
            return op
        cmd = normalize(command)
        op = acts.get(cmd)
        if op is None and cmd.startswith("put "):
            m = _PUT_RE.match(cmd)
            if m and m.group(2) in self.recep_index:
                rec = self.receps[self.recep_index[m.group(2)]]
                op = acts.get(f"put {m.group(1)} {rec.prep} {rec.name}")
        return op

    # ------------------------------------------------------------------ text
    def describe_recep(self, r: int) -> str:
        rec = self.receps[r]
        if rec.openable and not rec.is_open:
            return f"The {rec.name} is closed."
        names = [self.things[t].name for t in rec.contents]
        if rec.openable:
            return f"The {rec.name} is open. In it, you see {a_list(names)}."
        return f"{rec.prep.capitalize()} the {rec.name}, you see {a_list(names)}."

    def describe_room(self) -> str:
        names = [self.receps[r].name for r in self.room_receps[self.room]]
        text = f"Looking quickly around you, you see {a_list(names)}."
        others = [n for k, n in enumerate(self.rooms) if k != self.room]
        if others:
            text += f" From here you can also go to the {' and the '.join(others)}."
        return text

    def look(self) -> str:
        if self.at is None:
            return f"You are in the middle of the {self.rooms[self.room]}. {self.describe_room()}"
        return f"You are at {self.where()}. {self.describe_recep(self.at)}"

    def intro(self) -> str:
        return f"You are in the middle of the {self.rooms[self.room]}. {self.describe_room()}"

    # ------------------------------------------------------------------ rules
    def execute(self, op: str, arg: int) -> str:
        """Apply an admissible operation (from :meth:`lookup`) and return the feedback text."""
        receps, things = self.receps, self.things
        if op in INSPECT_OPS:
            return self._inspect(op, arg)
        self._adm = self._adm_text = None  # every other operation changes the state
        if op == "goto":
            self.at = arg
            if receps[arg].accessible:
                self.seen[arg] = True
            return f"You arrive at {receps[arg].name}. {self.describe_recep(arg)}"
        if op == "room":
            self.room, self.at = arg, None
            return f"You arrive at the {self.rooms[arg]}. {self.describe_room()}"
        if op == "open":
            receps[arg].is_open = True
            self.seen[arg] = True
            return f"You open the {receps[arg].name}. {self.describe_recep(arg)}"
        if op == "close":
            receps[arg].is_open = False
            return f"You close the {receps[arg].name}."
        if op == "take":
            th = things[arg]
            rec = receps[th.loc]
            rec.contents.remove(arg)
            th.loc, self.held = HELD, arg
            return f"You pick up the {th.name} from the {rec.name}."
        if op == "put":
            h, rec = self.held, receps[arg]
            assert h is not None
            rec.contents.append(h)
            things[h].loc, self.held = arg, None
            return f"You put the {things[h].name} {rec.prep} the {rec.name}."
        if op in ("clean", "heat", "cool"):
            th = things[self.held]  # type: ignore[index]
            if op == "clean":
                th.clean = True
            elif op == "heat":
                th.hot, th.cool = True, False
            else:
                th.cool, th.hot = True, False
            return f"You {op} the {th.name} using the {receps[arg].name}."
        if op == "use":
            th = things[arg]
            th.on = not th.on
            return f"You turn {'on' if th.on else 'off'} the {th.name}."
        raise ValueError(f"unknown operation {op!r}")

    def _inspect(self, op: str, arg: int) -> str:
        if op == "look":
            return self.look()
        if op == "inventory":
            if self.held is None:
                return "You are not carrying anything."
            return f"You are carrying: a {self.things[self.held].name}."
        if op == "examine_recep":
            return self.describe_recep(arg)
        th = self.things[arg]
        states = [s for s in ("clean", "hot", "cool") if getattr(th, s)]
        if not states:
            return f"There's nothing special about {th.name}."
        return f"This is a {' and '.join(states)} {th.name}."

    # ------------------------------------------------------------------ invalid commands
    def explain(self, command: str) -> str:
        """Why ``command`` is not admissible now, naming what would make it work."""
        cmd = normalize(command)
        if not cmd:
            return f"the action is empty; commands are: {COMMANDS_HELP}"
        verb = cmd.split()[0]
        try:
            reason = self._why(cmd, verb)
        except _Reason as r:
            reason = str(r)
        return reason

    def _recep_named(self, name: str) -> int:
        r = self.recep_index.get(name)
        if r is None:
            if name in self.room_index:
                raise _Reason(f"the {name} is a room; you can only go to it")
            if name in self.thing_index:
                raise _Reason(f"{name} is an object, not a receptacle")
            raise _Reason(f"there is no receptacle called '{name}' in this house")
        return r

    def _must_be_at(self, r: int) -> None:
        rec = self.receps[r]
        if self.at != r:
            if rec.room != self.room:
                raise _Reason(f"{rec.name} is in the {self.rooms[rec.room]}; 'go to {self.rooms[rec.room]}' first")
            raise _Reason(f"you are not at {rec.name} (you are at {self.where()}); 'go to {rec.name}' first")

    def _must_hold(self, name: str) -> int:
        t = self.thing_index.get(name)
        if t is None:
            raise _Reason(f"there is no object called '{name}' in this house")
        if self.held != t:
            held = f"you are carrying {self.things[self.held].name}" if self.held is not None else "your hands are empty"
            raise _Reason(f"you are not carrying {name} ({held})")
        return t

    def _why(self, cmd: str, verb: str) -> str:
        if verb == "go":
            target = cmd[6:] if cmd.startswith("go to ") else ""
            if not target:
                return "say 'go to X' with X a receptacle in this room or another room"
            if target == self.rooms[self.room]:
                return f"you are already in the {target}"
            if target in self.room_index:
                return "that room cannot be reached"  # not reachable with the current rules
            r = self._recep_named(target)
            if r == self.at:
                return f"you are already at {target}"
            self._must_be_at(r)  # raises: it is in another room
        elif verb in ("open", "close"):
            r = self._recep_named(cmd.partition(" ")[2])
            rec = self.receps[r]
            if not rec.openable:
                return f"{rec.name} cannot be opened or closed"
            self._must_be_at(r)
            return f"{rec.name} is already {'open' if rec.is_open else 'closed'}"
        elif verb in ("pick", "get", "grab"):
            return "to pick something up, say 'take X from Y'"
        elif verb in ("move", "place", "drop"):
            return "to put something down, say 'put X in Y' or 'put X on Y'"
        elif verb == "take":
            m = _TAKE_RE.match(cmd)
            if not m:
                return "say 'take X from Y' with X an object you see at receptacle Y"
            obj, r = m.group(1), self._recep_named(m.group(2))
            self._must_be_at(r)
            rec = self.receps[r]
            if not rec.accessible:
                return f"the {rec.name} is closed; 'open {rec.name}' first"
            t = self.thing_index.get(obj)
            if t is None or self.things[t].loc != r:
                return f"there is no {obj} {rec.prep} the {rec.name}"
            if not self.things[t].pickupable:
                return f"the {obj} cannot be picked up"
            if self.held is not None:
                return (f"you are already carrying {self.things[self.held].name} and can carry only one object; "
                        f"put it somewhere first")
        elif verb == "put":
            m = _PUT_RE.match(cmd)
            if not m:
                return "say 'put X in Y' or 'put X on Y' with X the object you carry"
            self._must_hold(m.group(1))
            r = self._recep_named(m.group(2))
            self._must_be_at(r)
            rec = self.receps[r]
            if not rec.accessible:
                return f"the {rec.name} is closed; 'open {rec.name}' first"
        elif verb in ("clean", "heat", "cool"):
            m = _TOOL_RE.match(cmd)
            if not m:
                return f"say '{verb} X with Y' with X the object you carry and Y the appliance you are at"
            appliance = {"clean": "sinkbasin", "heat": "microwave", "cool": "fridge"}[verb]
            t = self._must_hold(m.group(2))
            kind = OBJECTS[self.things[t].kind]
            able = {"clean": kind.cleanable, "heat": kind.heatable, "cool": kind.coolable}[verb]
            if not able:
                return f"the {self.things[t].name} cannot be {'cleaned' if verb == 'clean' else verb + 'ed'}"
            r = self._recep_named(m.group(3))
            if self.receps[r].kind != appliance:
                return f"you can only {verb} things with a {appliance}"
            self._must_be_at(r)
        elif verb == "use":
            name = cmd[4:]
            t = self.thing_index.get(name)
            if t is None:
                if name in self.recep_index:
                    return f"{name} cannot be used; only lamps can (e.g. 'use desklamp 1')"
                return f"there is no '{name}' in this house"
            th = self.things[t]
            if not th.light_source:
                return f"the {name} cannot be used; only lamps can"
            self._must_be_at(th.loc)
        elif verb == "examine":
            name = cmd[8:]
            r = self.recep_index.get(name)
            if r is not None:
                self._must_be_at(r)
            elif name in self.thing_index:
                return f"you can only examine the receptacle you are at or the object you carry, not {name}"
            else:
                return f"there is nothing called '{name}' here"
        elif cmd in ("look", "inventory"):
            return "the command failed"  # unreachable: both are always admissible
        else:
            return f"'{cmd}' is not a command; commands are: {COMMANDS_HELP}"
        return f"'{cmd}' is not possible right now"


class _Reason(Exception):
    """Carries an explanation out of nested precondition checks."""

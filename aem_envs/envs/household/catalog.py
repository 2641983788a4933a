"""What a household is made of: room layouts, receptacle kinds and object kinds.

Names follow ALFWorld (``sinkbasin``, ``stoveburner``, ``desklamp``) so prompts and skills transfer.
Each object kind lists its *homes*: the receptacle kinds it plausibly starts in. Generation
only places objects in their homes and picks task targets among them, so instructions stay
sensible ("put a clean mug in coffeemachine", never "put a pillow in microwave").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReceptacleKind:
    name: str
    openable: bool  # starts closed and hides its contents until opened
    prep: str  # "in" or "on": used in put commands and instructions


@dataclass(frozen=True)
class ObjectKind:
    name: str
    homes: tuple[str, ...]
    cleanable: bool = False
    heatable: bool = False
    coolable: bool = False
    pickupable: bool = True
    light_source: bool = False


def _recs(prep: str, openable: bool, *names: str) -> dict[str, ReceptacleKind]:
    return {n: ReceptacleKind(n, openable, prep) for n in names}


RECEPTACLES: dict[str, ReceptacleKind] = {
    **_recs("in", True, "fridge", "microwave", "cabinet", "drawer", "safe"),
    **_recs("in", False, "sinkbasin", "bathtubbasin", "garbagecan", "laundryhamper", "coffeemachine", "toaster"),
    **_recs(
        "on", False, "countertop", "stoveburner", "diningtable", "shelf", "sofa", "sidetable",
        "coffeetable", "armchair", "tvstand", "dresser", "bed", "desk", "toilet", "towelholder",
    ),
}

#: Receptacle kinds a room may hold several of (numbered cabinet 1, cabinet 2, ...).
REPEATABLE = frozenset({"cabinet", "drawer", "shelf", "countertop", "stoveburner", "sidetable"})


@dataclass(frozen=True)
class RoomKind:
    name: str  # as typed in "go to <room>"
    required: tuple[str, ...]  # always present (appliances the tasks rely on, one open surface)
    optional: tuple[str, ...]  # drawn (with these multiplicities as weights) to fill the room


ROOMS: dict[str, RoomKind] = {
    r.name: r
    for r in (
        RoomKind(
            "kitchen",
            ("fridge", "microwave", "sinkbasin", "stoveburner", "countertop"),
            ("cabinet", "cabinet", "cabinet", "drawer", "drawer", "countertop", "stoveburner",
             "diningtable", "diningtable", "coffeemachine", "toaster", "garbagecan", "shelf"),
        ),
        RoomKind(
            "living room",
            ("sofa", "sidetable"),
            ("coffeetable", "coffeetable", "armchair", "tvstand", "shelf", "drawer", "cabinet",
             "garbagecan", "dresser", "diningtable", "sidetable"),
        ),
        RoomKind(
            "bedroom",
            ("bed", "desk"),
            ("sidetable", "sidetable", "dresser", "drawer", "drawer", "shelf", "garbagecan",
             "laundryhamper", "safe", "armchair"),
        ),
        RoomKind(
            "bathroom",
            ("sinkbasin", "toilet"),
            ("bathtubbasin", "cabinet", "cabinet", "countertop", "garbagecan", "towelholder",
             "drawer", "shelf"),
        ),
    )
}

_FRUIT_HOMES = ("countertop", "diningtable", "fridge", "garbagecan", "sinkbasin", "microwave")
_CUTLERY_HOMES = ("countertop", "diningtable", "drawer", "sinkbasin")
_DESK_HOMES = ("desk", "drawer", "sidetable", "shelf", "dresser", "coffeetable")
_POCKET_HOMES = ("coffeetable", "sidetable", "dresser", "drawer", "sofa", "armchair", "desk", "shelf")
_DECOR_HOMES = ("shelf", "coffeetable", "sidetable", "dresser", "tvstand", "desk")
_TOILETRY_HOMES = ("toilet", "cabinet", "countertop", "shelf", "garbagecan")


def _obj(name: str, homes: tuple[str, ...], flags: str = "") -> ObjectKind:
    # flags: c = cleanable, h = heatable, k = coolable
    return ObjectKind(name, homes, "c" in flags, "h" in flags, "k" in flags)


OBJECTS: dict[str, ObjectKind] = {
    o.name: o
    for o in (
        _obj("apple", _FRUIT_HOMES, "chk"),
        _obj("tomato", _FRUIT_HOMES, "chk"),
        _obj("potato", _FRUIT_HOMES + ("cabinet",), "chk"),
        _obj("egg", _FRUIT_HOMES, "chk"),
        _obj("lettuce", ("countertop", "diningtable", "fridge", "sinkbasin"), "ck"),
        _obj("bread", ("countertop", "diningtable", "fridge", "cabinet"), "hk"),
        _obj("mug", ("countertop", "diningtable", "cabinet", "coffeemachine", "sinkbasin", "shelf", "microwave", "desk"), "chk"),
        _obj("cup", ("countertop", "diningtable", "cabinet", "fridge", "sinkbasin", "shelf", "microwave"), "chk"),
        _obj("plate", ("countertop", "diningtable", "cabinet", "fridge", "shelf", "sinkbasin"), "chk"),
        _obj("bowl", ("countertop", "diningtable", "cabinet", "fridge", "shelf", "sinkbasin", "microwave"), "ck"),
        _obj("pan", ("stoveburner", "countertop", "cabinet", "sinkbasin"), "ck"),
        _obj("pot", ("stoveburner", "countertop", "cabinet", "diningtable"), "ck"),
        _obj("knife", _CUTLERY_HOMES, "c"),
        _obj("butterknife", _CUTLERY_HOMES, "c"),
        _obj("fork", _CUTLERY_HOMES, "c"),
        _obj("spoon", _CUTLERY_HOMES, "c"),
        _obj("spatula", _CUTLERY_HOMES, "c"),
        _obj("ladle", _CUTLERY_HOMES, "c"),
        _obj("dishsponge", ("countertop", "sinkbasin", "cabinet", "drawer", "shelf"), "c"),
        _obj("winebottle", ("countertop", "diningtable", "cabinet", "fridge", "shelf"), "k"),
        _obj("book", ("desk", "bed", "shelf", "sidetable", "coffeetable", "sofa", "dresser", "drawer", "armchair")),
        _obj("cd", ("desk", "drawer", "shelf", "safe", "sidetable", "tvstand", "garbagecan", "dresser")),
        _obj("pen", _DESK_HOMES),
        _obj("pencil", _DESK_HOMES),
        _obj("cellphone", ("bed", "desk", "sofa", "sidetable", "dresser", "drawer", "coffeetable", "armchair")),
        _obj("keychain", _POCKET_HOMES + ("safe",)),
        _obj("creditcard", _POCKET_HOMES),
        _obj("remotecontrol", ("sofa", "coffeetable", "tvstand", "armchair", "sidetable")),
        _obj("pillow", ("sofa", "bed", "armchair")),
        _obj("alarmclock", ("desk", "sidetable", "dresser", "shelf")),
        _obj("laptop", ("desk", "bed", "sofa", "coffeetable")),
        _obj("statue", _DECOR_HOMES),
        _obj("vase", _DECOR_HOMES),
        _obj("watch", ("sidetable", "dresser", "drawer", "coffeetable", "safe", "desk")),
        _obj("newspaper", ("sofa", "coffeetable", "sidetable", "armchair", "diningtable", "garbagecan")),
        _obj("soapbar", ("sinkbasin", "bathtubbasin", "countertop", "cabinet", "toilet"), "c"),
        _obj("cloth", ("countertop", "cabinet", "bathtubbasin", "drawer", "towelholder", "garbagecan", "sinkbasin"), "c"),
        _obj("towel", ("towelholder", "bathtubbasin", "countertop")),
        _obj("toiletpaper", _TOILETRY_HOMES),
        _obj("spraybottle", _TOILETRY_HOMES),
        _obj("soapbottle", _TOILETRY_HOMES + ("bathtubbasin",)),
        _obj("candle", ("toilet", "countertop", "cabinet", "shelf", "bathtubbasin")),
    )
}

#: The light source of look-at-object-in-light tasks: fixed on a surface, switched with "use".
LAMP = ObjectKind("desklamp", ("desk", "sidetable", "dresser"), pickupable=False, light_source=True)

#: Objects one examines under the lamp (ALFWorld's look_at_obj_in_light objects).
LOOK_OBJECTS = (
    "book", "cd", "pen", "pencil", "cellphone", "keychain", "creditcard", "remotecontrol", "pillow",
    "alarmclock", "laptop", "statue", "vase", "watch", "newspaper", "mug", "bowl", "cup",
)

#: Appliance that performs each transformation, and the command verb.
APPLIANCE = {"clean": "sinkbasin", "hot": "microwave", "cool": "fridge"}
VERB = {"clean": "clean", "hot": "heat", "cool": "cool"}

"""The product catalog and the shopping goals, generated deterministically from (version, seed).

A catalog holds a few thousand products in ten categories. Every product has a type (the noun
a shopper names: "t-shirt", "water bottle"), 3-5 attributes out of its category's vocabulary
("machine washable", "bpa free"), selectable options per dimension (size, color, ...), a price
and a rating. Many products share a type and differ only in attributes, options and price, so
a shopper has to search with the right terms and read the results to find a match.

A :class:`Goal` is derived from one *target* product: its type, 1-3 of its attributes, one
value for some of its option dimensions and a price bound above its price. Any product that
satisfies the same requirements is as good as the target (:meth:`Catalog.is_good`).

:func:`score` is WebShop's reward (Yao et al., 2022), without its fuzzy text matching:

    r = r_type * (|attrs matched| + |options matched| + [price <= bound]) / (|attrs| + |options| + 1)

with ``r_type`` = 1 when the bought product has the goal's type and 0 otherwise.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

#: Changes whenever generation changes (products or goals with the same seed/id differ).
CATALOG_VERSION = "1"

COLORS = ("black", "white", "navy", "red", "grey", "green", "blue", "pink", "beige", "brown", "purple", "yellow")


@dataclass(frozen=True)
class Category:
    name: str
    types: tuple[str, ...]
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]  # (dimension, values in display order)
    price: tuple[float, float]
    blurbs: tuple[str, ...]  # generic feature bullets of the category


CATEGORIES: tuple[Category, ...] = (
    Category(
        "clothing",
        ("t-shirt", "hoodie", "polo shirt", "sweatpants"),
        ("machine washable", "100% cotton", "slim fit", "relaxed fit", "moisture wicking", "quick dry",
         "long sleeve", "short sleeve", "fleece lined", "organic cotton", "tagless", "pre-shrunk"),
        (("size", ("xs", "s", "m", "l", "xl", "xxl")), ("color", COLORS)),
        (9.0, 49.0),
        ("Soft fabric that keeps its shape", "Reinforced double-stitched seams", "True to size"),
    ),
    Category(
        "shoes",
        ("running shoes", "sneakers", "hiking boots", "sandals"),
        ("non-slip", "waterproof", "breathable mesh", "memory foam", "lightweight", "arch support",
         "rubber sole", "wide fit", "slip-on", "lace-up", "cushioned insole"),
        (("size", ("6", "7", "8", "9", "10", "11", "12")), ("color", COLORS[:8])),
        (24.0, 119.0),
        ("Flexible outsole for all-day comfort", "Padded collar and tongue", "Easy to clean"),
    ),
    Category(
        "audio",
        ("wireless earbuds", "over-ear headphones", "bluetooth speaker"),
        ("noise cancelling", "waterproof", "long battery life", "usb-c charging", "built-in microphone",
         "bass boost", "foldable", "fast charging", "touch control", "low latency"),
        (("color", ("black", "white", "blue", "red", "green", "pink", "grey", "purple")),),
        (15.0, 199.0),
        ("Stable bluetooth connection up to 30 ft", "Clear highs and deep lows", "Includes charging cable"),
    ),
    Category(
        "home",
        ("throw pillow cover", "fleece blanket", "blackout curtains", "bath towel set"),
        ("machine washable", "super soft", "hypoallergenic", "fade resistant", "100% cotton", "quick dry",
         "thermal insulated", "wrinkle free", "eco friendly", "easy care"),
        (("size", ("small", "medium", "large", "twin", "queen", "king")), ("color", COLORS)),
        (10.0, 79.0),
        ("Adds a cozy touch to any room", "Colors stay vivid wash after wash", "Gift ready packaging"),
    ),
    Category(
        "kitchen",
        ("coffee mug", "water bottle", "lunch box", "travel tumbler"),
        ("dishwasher safe", "bpa free", "leak proof", "insulated", "microwave safe", "stainless steel",
         "keeps drinks cold", "reusable", "easy to clean", "lightweight"),
        (("capacity", ("12 oz", "16 oz", "20 oz", "24 oz", "32 oz")), ("color", COLORS[:10])),
        (8.0, 45.0),
        ("Fits most cup holders", "Food grade materials", "Backed by a lifetime warranty"),
    ),
    Category(
        "beauty",
        ("shampoo", "face moisturizer", "body lotion", "lip balm"),
        ("paraben free", "sulfate free", "cruelty free", "fragrance free", "for sensitive skin",
         "long lasting", "natural ingredients", "vegan", "dermatologist tested", "non-greasy"),
        (("scent", ("unscented", "lavender", "coconut", "vanilla", "citrus", "rose")),
         ("size", ("1 fl oz", "4 fl oz", "8 fl oz", "16 fl oz"))),
        (5.0, 39.0),
        ("Made in small batches", "Absorbs quickly", "Suitable for daily use"),
    ),
    Category(
        "grocery",
        ("green tea", "coffee beans", "protein bars", "trail mix"),
        ("gluten free", "organic", "non-gmo", "low sugar", "high protein", "keto friendly", "kosher",
         "individually wrapped", "vegan", "fair trade"),
        (("flavor", ("original", "chocolate", "vanilla", "mint", "honey", "berry")),
         ("pack", ("pack of 1", "pack of 2", "pack of 6", "pack of 12"))),
        (5.0, 59.0),
        ("Resealable bag keeps it fresh", "Great for work, travel and school", "Sourced from trusted farms"),
    ),
    Category(
        "pets",
        ("dog collar", "cat toy", "dog bed", "pet bowl"),
        ("durable", "adjustable", "washable cover", "non-toxic", "chew resistant", "reflective",
         "orthopedic", "non-slip", "easy to clean", "for small dogs"),
        (("size", ("small", "medium", "large", "x-large")), ("color", COLORS[:8])),
        (6.0, 69.0),
        ("Vet recommended design", "Safe for everyday use", "Satisfaction guaranteed"),
    ),
    Category(
        "phone accessories",
        ("phone case", "screen protector", "charging cable", "phone stand"),
        ("shockproof", "slim", "wireless charging compatible", "tempered glass", "fast charging",
         "braided nylon", "anti-scratch", "adjustable angle", "foldable", "military grade"),
        (("model", ("iphone 14", "iphone 15", "galaxy s23", "galaxy s24", "pixel 8")), ("color", COLORS[:6])),
        (6.0, 39.0),
        ("Precise cutouts for every port", "Easy installation", "Lifetime replacement"),
    ),
    Category(
        "office",
        ("desk lamp", "backpack", "notebook", "desk organizer"),
        ("led", "dimmable", "water resistant", "usb charging port", "ergonomic", "lightweight",
         "large capacity", "eco friendly", "acid free paper", "space saving"),
        (("color", ("black", "white", "grey", "blue", "green", "pink", "brown")),),
        (7.0, 89.0),
        ("Keeps your workspace tidy", "Sturdy build for daily use", "Modern minimalist design"),
    ),
)

#: Category attributes that make no sense for a type (sleeves on sweatpants).
NOT_APPLICABLE: dict[str, frozenset[str]] = {
    "sweatpants": frozenset({"short sleeve", "long sleeve"}),
    "sandals": frozenset({"lace-up", "waterproof"}),
    "cat toy": frozenset({"for small dogs", "orthopedic", "washable cover", "reflective", "adjustable"}),
    "pet bowl": frozenset({"orthopedic", "washable cover", "reflective", "adjustable", "chew resistant"}),
    "dog collar": frozenset({"orthopedic", "washable cover", "easy to clean"}),
    "dog bed": frozenset({"reflective", "adjustable"}),
    "charging cable": frozenset({"tempered glass", "shockproof", "slim", "adjustable angle", "foldable"}),
    "screen protector": frozenset({"braided nylon", "fast charging", "adjustable angle", "foldable"}),
    "phone stand": frozenset({"tempered glass", "braided nylon", "military grade"}),
    "phone case": frozenset({"braided nylon", "fast charging", "adjustable angle"}),
    "notebook": frozenset({"led", "dimmable", "usb charging port", "ergonomic"}),
    "desk organizer": frozenset({"led", "dimmable", "acid free paper"}),
    "desk lamp": frozenset({"acid free paper", "large capacity", "water resistant"}),
    "backpack": frozenset({"led", "dimmable", "acid free paper", "space saving"}),
    "coffee beans": frozenset({"high protein", "individually wrapped"}),
    "green tea": frozenset({"high protein"}),
    "lip balm": frozenset({"sulfate free"}),
    "coffee mug": frozenset({"keeps drinks cold"}),
}

BRANDS = (
    "Northwind", "Acme", "Bluepeak", "Cedarline", "Driftwood", "Everly", "Fenwick", "Goldcrest",
    "Harborview", "Ironleaf", "Juniper", "Kestrel", "Lumen", "Maple & Co", "Nimbus", "Oakridge",
    "Pinebrook", "Quillon", "Redwood", "Silverline", "Tidewater", "Umbra", "Vantage", "Willowby",
    "Yardley", "Zephyr", "Amberly", "Brightwell", "Coastal", "Dovetail", "Emberly", "Foxglove",
)
_QUALIFIERS = ("Classic", "Premium", "Essential", "Everyday", "Pro", "Original", "Deluxe", "Sport", "Ultra", "Basic")

_TEMPLATES = (
    "i need {a_type}{attr_and}{opts}, and price lower than {price} dollars",
    "i am looking for {a_type}{attr_and}{opts}, and price lower than {price} dollars",
    "find me {attr_sp}{type}{opts}, and price lower than {price} dollars",
    "i want to buy {a_type}{attr_and}{opts}, and price lower than {price} dollars",
)


@dataclass(frozen=True)
class Product:
    index: int
    asin: str
    category: str
    ptype: str
    brand: str
    title: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price: float
    rating: float
    description: str
    features: tuple[str, ...]

    @cached_property
    def option_map(self) -> dict[str, tuple[str, ...]]:
        return dict(self.options)

    @property
    def short_title(self) -> str:
        """The title cut to 60 characters at a word boundary (results pages stay short)."""
        if len(self.title) <= 60:
            return self.title
        return self.title[:57].rsplit(" ", 1)[0].rstrip(",-") + "..."

    def search_text(self) -> str:
        """What the search index sees: everything a shopper can read about the product."""
        opts = " ".join(v for _, vals in self.options for v in vals)
        return " ".join((self.title, self.ptype, " ".join(self.attributes), " ".join(self.features), opts))


@dataclass(frozen=True)
class Goal:
    """What the shopper asks for. ``options`` maps a dimension to the wanted value."""

    task_index: int
    target: str  # asin of the product the goal was drawn from
    ptype: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    price_upper: float
    instruction: str

    @property
    def option_map(self) -> dict[str, str]:
        return dict(self.options)

    @property
    def n_requirements(self) -> int:
        return len(self.attributes) + len(self.options) + 1


@dataclass(frozen=True)
class ScoreBreakdown:
    type_match: bool
    attributes_matched: int
    options_matched: int
    price_ok: bool
    n_requirements: int

    @property
    def value(self) -> float:
        if not self.type_match:
            return 0.0
        hits = self.attributes_matched + self.options_matched + int(self.price_ok)
        return hits / self.n_requirements


def score_breakdown(goal: Goal, product: Product, selected: Mapping[str, str]) -> ScoreBreakdown:
    attrs = set(product.attributes)
    return ScoreBreakdown(
        type_match=product.ptype == goal.ptype,
        attributes_matched=sum(a in attrs for a in goal.attributes),
        options_matched=sum(selected.get(dim) == val for dim, val in goal.options),
        price_ok=product.price <= goal.price_upper,
        n_requirements=goal.n_requirements,
    )


def score(goal: Goal, product: Product, selected: Mapping[str, str]) -> float:
    """WebShop's reward in [0, 1] for buying ``product`` with ``selected`` options."""
    return score_breakdown(goal, product, selected).value


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(CATALOG_VERSION.encode()), *keys]))


def _article(phrase: str) -> str:
    if _plural(phrase):
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _title_case(s: str) -> str:
    return " ".join(w if w[0].isdigit() else w[0].upper() + w[1:] for w in s.split())


def _join_and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class Catalog:
    """All products of one (seed, size) plus the goal of every task index."""

    seed: int
    n_products: int
    test_every: int = 8  # product i is a test target iff i % test_every == 0
    products: list[Product] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_products < 200:
            raise ValueError(f"n_products={self.n_products} is too small; use at least 200")
        if not self.products:
            self.products = _generate_products(self.seed, self.n_products)
        self.by_asin: dict[str, Product] = {p.asin: p for p in self.products}
        if len(self.by_asin) != len(self.products):
            raise RuntimeError("duplicate asin generated; bump CATALOG_VERSION and fix the generator")
        self.by_type: dict[str, list[Product]] = {}
        for p in self.products:
            self.by_type.setdefault(p.ptype, []).append(p)
        self._pools = {
            "test": [p for p in self.products if p.index % self.test_every == 0],
            "train": [p for p in self.products if p.index % self.test_every != 0],
        }
        self._goals: dict[tuple[str, int], Goal] = {}

    def target_pool(self, split: str) -> list[Product]:
        """Products goals of ``split`` are drawn from; the two pools are disjoint."""
        return self._pools[split]

    def goal(self, split: str, index: int) -> Goal:
        """The goal of task ``index`` of ``split`` (a pure function of seed, split and index)."""
        key = (split, index)
        g = self._goals.get(key)
        if g is None:
            g = self._goals[key] = _generate_goal(self, split, index)
        return g

    def is_good(self, goal: Goal, product: Product) -> bool:
        """``product`` can reach score 1 for ``goal`` (right type, attributes, options, price)."""
        if product.ptype != goal.ptype or product.price > goal.price_upper:
            return False
        if not set(goal.attributes) <= set(product.attributes):
            return False
        om = product.option_map
        return all(val in om.get(dim, ()) for dim, val in goal.options)

    def good_asins(self, goal: Goal) -> set[str]:
        return {p.asin for p in self.by_type[goal.ptype] if self.is_good(goal, p)}


class _Draws:
    """Uniform numbers drawn in one bulk call, consumed one by one.

    Per-call overhead of ``Generator.integers``/``choice`` made catalog generation take over a
    second; one ``random`` call per product keeps it deterministic and ~10x faster.
    """

    def __init__(self, uniforms: list[float]):
        self._u = uniforms
        self._i = 0

    def uniform(self) -> float:
        u = self._u[self._i]
        self._i += 1
        return u

    def index(self, n: int) -> int:
        return min(int(self.uniform() * n), n - 1)

    def integer(self, lo: int, hi: int) -> int:
        """Uniform in [lo, hi)."""
        return lo + self.index(hi - lo)

    def sample(self, n: int, k: int) -> list[int]:
        """``k`` distinct indices of range(n), in random order."""
        keys = [self.uniform() for _ in range(n)]
        return sorted(range(n), key=keys.__getitem__)[:k]


_DRAWS_PER_PRODUCT = 96  # a product consumes at most ~60


def _generate_products(seed: int, n: int) -> list[Product]:
    rng = _rng(seed, 0)
    products: list[Product] = []
    seen: set[str] = set()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    uniforms = rng.random((n, _DRAWS_PER_PRODUCT)).tolist()
    for i in range(n):
        d = _Draws(uniforms[i])
        cat = CATEGORIES[i % len(CATEGORIES)]
        ptype = cat.types[d.index(len(cat.types))]
        asin = "B0" + "".join(alphabet[d.index(len(alphabet))] for _ in range(8))
        while asin in seen:  # vanishingly rare; the suffix keeps ids unique and deterministic
            asin = asin[:-1] + alphabet[(alphabet.index(asin[-1]) + 1) % len(alphabet)]
        seen.add(asin)
        allowed = [a for a in cat.attributes if a not in NOT_APPLICABLE.get(ptype, ())]
        k_attr = min(d.integer(3, 6), len(allowed))
        attrs = tuple(allowed[j] for j in sorted(d.sample(len(allowed), k_attr)))
        options = []
        for dim, values in cat.options:
            k = d.integer(min(2, len(values)), len(values) + 1)
            options.append((dim, tuple(values[j] for j in sorted(d.sample(len(values), k)))))
        lo, hi = cat.price
        price = math.floor(lo + (hi - lo) * d.uniform() ** 1.5) + (0.99 if d.uniform() < 0.7 else 0.49)
        rating = round(3.0 + 2.0 * d.uniform(), 1)
        brand = BRANDS[d.index(len(BRANDS))]
        shown = [attrs[j] for j in d.sample(len(attrs), 2)]
        qual = _QUALIFIERS[d.index(len(_QUALIFIERS))]
        title = f"{brand} {qual} {_title_case(shown[0])} {_title_case(ptype)}, {_title_case(shown[1])}"
        if d.uniform() < 0.5:
            title += f" - {_title_case(cat.name)}"
        blurb = cat.blurbs[d.index(len(cat.blurbs))]
        be = "are" if _plural(ptype) else "is"
        features = tuple(f"{_title_case(a)}: {_feature_line(a, ptype)}" for a in attrs) + (blurb,)
        description = (
            f"{brand} {qual.lower()} {ptype} {be} {_join_and(list(attrs))}. "
            f"{blurb}. Rated {rating} out of 5 by our customers."
        )
        products.append(Product(i, asin, cat.name, ptype, brand, title, attrs, tuple(options),
                                round(price, 2), rating, description, features))
    return products


def _option_phrase(dim: str, val: str) -> str:
    if dim == "color":
        return f"{val} color"
    return val if val.startswith(dim) else f"{dim} {val}"  # "pack of 6", not "pack pack of 6"


def _plural(ptype: str) -> bool:
    return ptype.endswith("s")


def _feature_line(attr: str, ptype: str) -> str:
    return f"{'these' if _plural(ptype) else 'this'} {ptype} {'are' if _plural(ptype) else 'is'} {attr}"


def _generate_goal(cat: Catalog, split: str, index: int) -> Goal:
    d = _Draws(_rng(cat.seed, 1, 0 if split == "train" else 1, index).random(32).tolist())
    pool = cat.target_pool(split)
    target = pool[d.index(len(pool))]
    k = (1, 2, 2, 3)[d.index(4)]
    attrs = tuple(target.attributes[j] for j in sorted(d.sample(len(target.attributes), k)))
    opts: list[tuple[str, str]] = []
    for j, (dim, values) in enumerate(target.options):
        # Each dimension is asked for with probability 0.8; at least one always is.
        if d.uniform() < 0.8 or (not opts and j == len(target.options) - 1):
            opts.append((dim, values[d.index(len(values))]))
    # A bound 5-60 % above the price, rounded up to a whole 5 dollars: cheap enough to rule out
    # some same-type products, loose enough that the target is never the only fit by price.
    bound = math.ceil(target.price * (1.05 + 0.55 * d.uniform()) / 5.0) * 5.0
    opt_text = " and ".join(_option_phrase(dim, val) for dim, val in opts)
    attr_list = list(attrs)
    words = {
        "a_type": _article(target.ptype),
        "type": target.ptype,
        "attr_and": (" that are " if _plural(target.ptype) else " that is ") + _join_and(attr_list),
        "attr_sp": " ".join(attr_list) + " ",
        "opts": f" with {opt_text}" if opts else "",
        "price": f"{bound:.2f}",
    }
    instruction = _TEMPLATES[d.index(len(_TEMPLATES))].format(**words)
    return Goal(index, target.asin, target.ptype, attrs, tuple(opts), bound, instruction)

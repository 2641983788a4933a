"""The expert: search with the goal's key terms, open a product that can score 1, pick the
options, buy. It reads only the current page (kind, links, ``data-*`` state) plus the goal
and the catalog, so it acts correctly from any state an agent may have left behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from aem_envs.envs.webshop.app import PAGE_SIZE
from aem_envs.envs.webshop.catalog import Goal, score
from aem_envs.envs.webshop.observe import Page
from aem_envs.envs.webshop.search import normalize_query
from aem_envs.envs.webshop.shop import Shop


@dataclass(frozen=True)
class Plan:
    query: str
    targets: frozenset[str]  # lower-case asins worth buying (score 1, or the best available)
    rank: int  # position of the first target in the query's results


def candidate_queries(goal: Goal) -> list[str]:
    """Queries the expert tries, most natural first."""
    key = " ".join((*goal.attributes, goal.ptype))
    opts = " ".join(v for _, v in goal.options)
    return [key, f"{key} {opts}", goal.instruction]


def make_plan(shop: Shop, goal: Goal) -> Plan:
    """The query whose results show a score-1 product earliest (fewest pages to turn)."""
    good = shop.catalog.good_asins(goal)
    best: Plan | None = None
    for q in candidate_queries(goal):
        hits = shop.search(q)
        rank = next((i for i, a in enumerate(hits) if a in good), None)
        if rank is not None and (best is None or rank < best.rank):
            best = Plan(normalize_query(q), frozenset(a.lower() for a in good), rank)
    if best is not None:
        return best
    # No score-1 product in any result list: buy the best partial match of the first query.
    q = candidate_queries(goal)[0]
    hits = shop.search(q) or shop.search(goal.instruction)
    by_asin = shop.catalog.by_asin

    def value(asin: str) -> float:
        p = by_asin[asin]
        avail = p.option_map
        return score(goal, p, {d: v for d, v in goal.options if v in avail.get(d, ())})

    i = max(range(len(hits)), key=lambda j: (value(hits[j]), -j)) if hits else 0
    return Plan(normalize_query(q), frozenset({hits[i].lower()} if hits else ()), i)


def next_action(page: Page, goal: Goal, plan: Plan) -> str:
    """The expert's action on ``page`` (a bare ``search[...]`` / ``click[...]``)."""
    links = page.links
    if page.has_search:
        return f"search[{plan.query}]"
    if page.kind == "results":
        if normalize_query(page.meta.get("q", "")) != plan.query:
            return "click[back to search]"
        for label in links:
            if label in plan.targets:
                return f"click[{label}]"
        want = plan.rank // PAGE_SIZE + 1
        cur = int(page.meta.get("page-no", "1"))
        if cur < want and "next >" in links:
            return "click[next >]"
        if cur > want and "< prev" in links:
            return "click[< prev]"
        return "click[back to search]"
    if page.kind == "item":
        if page.meta.get("asin", "").lower() not in plan.targets:
            return "click[< prev]"
        for dim, val in goal.options:
            if page.meta.get(f"opt-{dim}") != val and val in links:
                return f"click[{val}]"
        return "click[buy now]"
    if "< prev" in links:  # description / features
        return "click[< prev]"
    return "click[back to search]"

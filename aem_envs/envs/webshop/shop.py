"""One shop = catalog + search index + task ids, built once per (seed, size) and shared.

Building the catalog and the BM25 index takes about a second, so :func:`get_shop` caches them at
module level: every env instance, vector-env worker thread and the web server of one process
use the same immutable shop, and ``reset`` never re-indexes anything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

from aem_envs.core import TaskIds
from aem_envs.envs.webshop.catalog import Catalog, Goal
from aem_envs.envs.webshop.observe import PageCache
from aem_envs.envs.webshop.search import SearchIndex

#: Number of tasks per split; ids are ``webshop-train-000000`` ... and ``webshop-test-100000`` ...
N_TRAIN, N_TEST, TEST_START = 6000, 500, 100_000
DEFAULT_PRODUCTS = 4000


@dataclass
class Shop:
    seed: int = 0
    n_products: int = DEFAULT_PRODUCTS
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.seed, self.n_products)
        self.index = SearchIndex(self.catalog)
        self.page_cache = PageCache()
        self.ids = {"train": TaskIds("webshop-train-", 0, N_TRAIN), "test": TaskIds("webshop-test-", TEST_START, N_TEST)}

    def split_of(self, task_id: str) -> str | None:
        for split, ids in self.ids.items():
            if task_id in ids:
                return split
        return None

    def goal(self, task_id: str) -> Goal:
        """The goal behind ``task_id``; ``KeyError`` for an id of neither split."""
        for split, ids in self.ids.items():
            k = ids.index_of(task_id)
            if k is not None:
                with self._lock:  # the goal cache is a plain dict shared by threads
                    return self.catalog.goal(split, k)
        raise KeyError(f"unknown webshop task id {task_id!r}; ids look like {self.ids['test'][0]!r}")

    def search(self, query: str) -> tuple[str, ...]:
        with self._lock:  # the LRU cache is reordered on every hit
            return self.index.search(query)

    @cached_property
    def app(self):
        """The Flask app serving this shop (built on first use)."""
        from aem_envs.envs.webshop.app import create_app

        return create_app(self)


_SHOPS: dict[tuple[int, int], Shop] = {}
_SHOPS_LOCK = threading.Lock()


def get_shop(seed: int = 0, n_products: int = DEFAULT_PRODUCTS) -> Shop:
    """The shared shop for ``(seed, n_products)``, built on first request."""
    key = (int(seed), int(n_products))
    with _SHOPS_LOCK:
        shop = _SHOPS.get(key)
        if shop is None:
            shop = _SHOPS[key] = Shop(*key)
        return shop

"""BM25 search over the catalog (``bm25s``), with a result cache.

Documents are each product's title, type, attributes, feature bullets and option values. A
light plural stemmer makes "t-shirts" find "t-shirt". Ties are broken by catalog order, so a
query always returns the same ranking.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import bm25s
import numpy as np
from bm25s.tokenization import Tokenizer

from aem_envs.envs.webshop.catalog import Catalog

#: Results a search returns at most (WebShop shows the top 50 as 10 pages of 5).
MAX_RESULTS = 50


def _stem(word: str) -> str:
    # Plural "s" only: a full stemmer would need PyStemmer, and shoppers mostly differ from
    # titles by number ("sandals" vs "sandal"), not by derivation.
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_SPACE = re.compile(r"\s+")


def normalize_query(query: str) -> str:
    return _SPACE.sub(" ", query.strip().lower())


class SearchIndex:
    """``search(query) -> [asin, ...]`` best first, at most :data:`MAX_RESULTS`."""

    def __init__(self, catalog: Catalog, cache_size: int = 8192):
        self.catalog = catalog
        self._asins = [p.asin for p in catalog.products]
        self._tokenizer = Tokenizer(stopwords="en", stemmer=_stem)
        corpus = [p.search_text() for p in catalog.products]
        ids = self._tokenizer.tokenize(corpus, return_as="ids", show_progress=False)
        self._bm25 = bm25s.BM25()
        self._bm25.index(ids, show_progress=False)
        self._order = np.arange(len(self._asins))
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._cache_size = cache_size

    def search(self, query: str) -> tuple[str, ...]:
        q = normalize_query(query)
        hit = self._cache.get(q)
        if hit is not None:
            self._cache.move_to_end(q)
            return hit
        result = self._rank(q)
        self._cache[q] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _rank(self, q: str) -> tuple[str, ...]:
        tokens = self._tokenizer.tokenize([q], update_vocab=False, return_as="ids", show_progress=False)[0]
        if not tokens:
            return ()
        scores = self._bm25.get_scores(tokens)
        n = min(MAX_RESULTS, int(np.count_nonzero(scores > 0)))
        if n == 0:
            return ()
        # Highest score first; equal scores in catalog order (lexsort's last key is primary).
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else self._order
        cut = scores[top].min()
        cand = np.flatnonzero(scores >= cut)
        ranked = cand[np.lexsort((cand, -scores[cand]))][:n]
        return tuple(self._asins[i] for i in ranked)

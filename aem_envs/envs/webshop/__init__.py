"""WebShop: a shopping environment over a real web application (AEM's second benchmark).

Modules: :mod:`.catalog` (products, goals, reward), :mod:`.search` (BM25), :mod:`.shop`
(shared catalog + index), :mod:`.app` (Flask pages), :mod:`.observe` (HTML -> text),
:mod:`.server` (localhost HTTP), :mod:`.oracle` (expert), :mod:`.env` (``WebShopEnv``),
:mod:`.cli` (``aem-envs serve-web``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aem_envs.envs.webshop.env import WebShopEnv

__all__ = ["WebShopEnv"]


def __getattr__(name: str):
    # Lazy: `aem-envs` imports .cli on every start; flask/bm25s load only when the env is used.
    if name == "WebShopEnv":
        from aem_envs.envs.webshop.env import WebShopEnv

        return WebShopEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""WebShopEnv: shop for the product an instruction describes, through the shop's web pages."""

from __future__ import annotations

import functools
import re
from typing import Any, Literal
from urllib.parse import urlencode

from aem_envs.core import InfraError, InvalidAction, Outcome, TextEnv
from aem_envs.envs.webshop.catalog import CATALOG_VERSION, Goal
from aem_envs.envs.webshop.observe import Page, parse_page
from aem_envs.envs.webshop.oracle import Plan, make_plan, next_action
from aem_envs.envs.webshop.server import ShopServer, http_fetch, wsgi_fetch
from aem_envs.envs.webshop.shop import DEFAULT_PRODUCTS, get_shop

_ACTION_RE = re.compile(r"^\s*(search|click)\s*\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)
_WS = re.compile(r"\s+")

SYSTEM_PROMPT = """You are shopping on a web shop for the product the task describes.
Each turn you see the current page; clickable elements are shown as [Label] and listed after "Clickable:".
Reply with exactly one action inside <action></action>:
- search[your query]  (only on the page with a [Search box])
- click[label]        (one of the clickable labels, e.g. click[next >], click[b0abc12345], click[m], click[buy now])
Open a product, select every option the task asks for by clicking its value, then click[buy now].
The episode ends when you buy. You get credit for matching the product type, attributes, options and price."""


class WebShopEnv(TextEnv):
    """A WebShop-style shopping task (AEM's second benchmark) over a real Flask web app.

    The env speaks HTTP to the shop: by default (``mode="inprocess"``) through Flask's
    in-process test client (no sockets, no Docker); ``mode="wsgi"`` calls the app as a WSGI
    callable with a minimal request environ (same requests and pages, without the test
    client's bookkeeping: ~200 us less per step); ``mode="server"`` starts the app on
    ``host:port`` (port 0 = a free one) and fetches pages with ``urllib``, so a person can
    open the same pages in a browser. Each page's HTML is turned into the observation by BeautifulSoup
    (:mod:`~aem_envs.envs.webshop.observe`).

    **Actions** (``action_format = "tag"``): ``<action>search[red cotton t-shirt]</action>`` on
    the search page, ``<action>click[label]</action>`` for any listed clickable (case-
    insensitive). Anything else raises :class:`InvalidAction` and the invalid-action policy
    applies.

    **Reward.** Buying ends the episode with WebShop's score ``r`` in [0, 1] (type match x the
    fraction of attributes, options and price bound satisfied; see
    :func:`~aem_envs.envs.webshop.catalog.score`). ``reward="score"`` (default) pays ``10 * r``;
    ``reward="success"`` pays 10 only when ``r == 1``. Success is ``r == 1``. ``info["raw_score"]``
    holds ``r`` after the purchase and None before; :attr:`last_raw_score` holds it too.

    **Page cache.** GET pages are pure functions of their URL, so parsed pages are kept in an
    LRU shared by the envs of one process (``page_cache=True``, the in-process default;
    ``False`` makes every step a request + parse; server mode defaults to ``False``).

    **Tasks.** 6000 train and 500 test instructions, each generated from a target product;
    train and test targets are disjoint products. The catalog is a pure function of
    ``catalog_seed`` and ``n_products`` (and :attr:`version`) and is built once per process.
    """

    version = CATALOG_VERSION
    description = "Find and buy the product an instruction describes in a web shop (search, click, options)."
    action_format = "tag"
    system_prompt = SYSTEM_PROMPT
    max_observation_length = 8192
    max_action_length = 4096
    oracle_min_success = 0.95

    def __init__(
        self,
        *,
        mode: Literal["inprocess", "wsgi", "server"] = "inprocess",
        catalog_seed: int = 0,
        n_products: int = DEFAULT_PRODUCTS,
        reward: Literal["score", "success"] = "score",
        host: str = "127.0.0.1",
        port: int = 0,
        page_cache: bool | None = None,
        max_turns: int = 15,
        **kwargs: Any,
    ):
        super().__init__(max_turns=max_turns, **kwargs)
        if mode not in ("inprocess", "wsgi", "server"):
            raise ValueError(f"mode={mode!r} is unknown; use 'inprocess', 'wsgi' or 'server'")
        if reward not in ("score", "success"):
            raise ValueError(f"reward={reward!r} is unknown; use 'score' or 'success'")
        self.mode, self.reward_mode = mode, reward
        self.shop = get_shop(catalog_seed, n_products)
        # Off in server mode by default: there every step should be a real HTTP request.
        use_cache = (mode != "server") if page_cache is None else bool(page_cache)
        self._cache = self.shop.page_cache if use_cache else None
        self._server: ShopServer | None = None
        if mode == "server":
            self._server = ShopServer(self.shop.app, host, port).start()
            base = self._server.url
            self._fetch = lambda method, path: http_fetch(base, method, path)
        elif mode == "wsgi":
            self._fetch = functools.partial(wsgi_fetch, self.shop.app)
        else:
            client = self.shop.app.test_client()

            def fetch(method: str, path: str) -> tuple[int, str]:
                resp = client.open(path, method=method)
                return resp.status_code, resp.get_data(as_text=True)

            self._fetch = fetch
        self.goal: Goal | None = None
        self.page: Page | None = None
        self.url: str = ""
        self.last_raw_score: float | None = None
        self._plan: Plan | None = None

    @property
    def base_url(self) -> str | None:
        """Where a browser can open the shop (server mode only)."""
        return self._server.url if self._server else None

    # ------------------------------------------------------------------ hooks
    def task_ids(self, split: str):
        if split not in self.shop.ids:
            raise ValueError(f"split={split!r} is unknown; use one of {list(self.shop.ids)}")
        return self.shop.ids[split]

    def _load_task(self, task_id: str) -> str:
        self.goal = self.shop.goal(task_id)
        self.instruction = self.goal.instruction
        self.last_raw_score, self._plan = None, None
        return self._open("GET", f"/{task_id}").observation

    def _act(self, action: str) -> Outcome:
        m = _ACTION_RE.match(action)
        if not m:
            raise InvalidAction(f"'{_short(action)}' is not search[query] or click[label]")
        verb, arg = m.group(1).lower(), _WS.sub(" ", m.group(2)).strip()
        page = self.page
        assert page is not None
        if verb == "search":
            if not page.has_search:
                raise InvalidAction("there is no search box on this page; click[back to search] first")
            if not arg:
                raise InvalidAction("empty query; write search[some words]")
            new = self._open("GET", f"/{self._task_id}/search?" + urlencode([("q", arg)]))
        else:
            link = page.links.get(arg.lower())
            if link is None:
                if not page.links:
                    raise InvalidAction(f"'{_short(arg)}' is not clickable; nothing is clickable here, use search[query]")
                raise InvalidAction(f"'{_short(arg)}' is not clickable here; clickable: {', '.join(page.links)}")
            new = self._open(link.method, link.url)
        if new.kind != "done":
            return Outcome(new.observation)
        try:
            raw = float(new.meta["score"])
        except (KeyError, ValueError) as e:
            raise InfraError(f"the shop's purchase page carries no score ({e})") from None
        self.last_raw_score = raw
        success = raw >= 1.0
        reward = 10.0 * raw if self.reward_mode == "score" else (10.0 if success else 0.0)
        return Outcome(new.observation, reward=reward, done=True, success=success)

    def oracle_action(self) -> str:
        if self.goal is None or self.page is None:
            raise RuntimeError("oracle_action() called before reset(); call env.reset() first")
        if self._plan is None:
            self._plan = make_plan(self.shop, self.goal)
        return next_action(self.page, self.goal, self._plan)

    def admissible_actions(self) -> list[str] | None:
        """The clickables of the current page, plus ``search[<instruction>]`` on the search page."""
        if self.page is None:
            return None
        acts = [f"search[{self.instruction}]"] if self.page.has_search else []
        return acts + [f"click[{label}]" for label in self.page.links]

    def _close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # ------------------------------------------------------------------ info
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        info["raw_score"] = self.last_raw_score
        return obs, info

    def step(self, action: str):
        obs, reward, terminated, truncated, info = super().step(action)
        info["raw_score"] = self.last_raw_score
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    def _open(self, method: str, path: str) -> Page:
        cacheable = method == "GET" and self._cache is not None
        if cacheable:
            page = self._cache.get(path)
            if page is not None:
                self.page, self.url = page, path
                return page
        try:
            status, html = self._fetch(method, path)
        except OSError as e:  # server mode: the socket failed
            raise InfraError(f"the shop at {self.base_url} did not answer {method} {path}: {e}") from None
        if status != 200:
            raise InfraError(f"the shop answered HTTP {status} to {method} {path}")
        page = parse_page(html)
        if cacheable:
            self._cache.put(path, page)
        self.page, self.url = page, path
        return page


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."

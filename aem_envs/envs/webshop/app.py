"""The shop as a Flask web application.

Every page is a pure function of its URL: the session id in the path is the task id (it
selects the instruction), and the query string carries the search terms, the results page and
the options chosen so far. So the same URL shows the same page to the env's in-process client,
to a browser, and to a test fetching it over real HTTP.

Routes::

    GET  /                                    task list (?split=train|test, ?start=N)
    GET  /<sid>                               search page
    GET  /<sid>/search?q=..&page=N            results, 5 per page, top 50
    GET  /<sid>/item/<asin>?q=..&page=N&<dimension>=<value>...
    GET  /<sid>/item/<asin>/description|features?...
    POST /<sid>/buy/<asin>?<dimension>=<value>...   ends the session, shows the score

Hrefs are built with plain string formatting rather than ``url_for``: a results page has
~10 links and ``url_for`` costs more than the rest of the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from functools import lru_cache
from urllib.parse import quote, quote_plus

from flask import Flask, abort, render_template, request

from aem_envs.envs.webshop.catalog import Product, score

if TYPE_CHECKING:
    from aem_envs.envs.webshop.shop import Shop

#: Results shown per page (short pages keep the text observation small).
PAGE_SIZE = 5
_HERE = Path(__file__).parent


@lru_cache(maxsize=65536)
def _qp(s: str) -> str:
    # Query strings are rebuilt for ~15 links per page; quoting each piece once is the
    # difference between urlencode dominating a request and not showing up in a profile.
    return quote_plus(s)


def _opts_qs(chosen: dict[str, str]) -> str:
    return "&".join(f"{_qp(k)}={_qp(v)}" for k, v in chosen.items())


def _state_qs(q: str, page: int, chosen: dict[str, str]) -> str:
    tail = _opts_qs(chosen)
    return f"q={_qp(q)}&page={page}" + (f"&{tail}" if tail else "")


def create_app(shop: Shop, index_split: str = "test") -> Flask:
    """A Flask app over ``shop``; ``index_split`` is the split listed at ``/``."""
    app = Flask("aem_webshop", template_folder=str(_HERE / "templates"), static_folder=str(_HERE / "static"))
    app.config["INDEX_SPLIT"] = index_split
    app.jinja_env.auto_reload = False
    catalog = shop.catalog

    def goal_or_404(sid: str):
        try:
            return shop.goal(sid)
        except KeyError as e:
            abort(404, description=str(e.args[0]))

    def product_or_404(asin: str) -> Product:
        p = catalog.by_asin.get(asin)
        if p is None:
            abort(404, description=f"no product {asin!r}")
        return p

    def chosen_options(p: Product) -> dict[str, str]:
        args = request.args
        chosen = {}
        for dim, values in p.options:
            v = args.get(dim)
            if v is not None:
                if v not in values:
                    abort(400, description=f"{dim}={v!r} is not an option of {p.asin}; choose one of {list(values)}")
                chosen[dim] = v
        return chosen

    def page_arg() -> int:
        try:
            return max(1, int(request.args.get("page", "1")))
        except ValueError:
            abort(400, description="page must be an integer")

    @app.after_request
    def cacheable(resp):
        # GET pages depend on the URL alone: let browsers (and the env's page cache) reuse them.
        if request.method == "GET" and resp.status_code == 200 and request.path != "/":
            resp.headers["Cache-Control"] = "public, max-age=86400"
        return resp

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(405)
    def error(e):
        return render_template("error.html", code=e.code, message=e.description), e.code

    @app.get("/")
    def index():
        split = request.args.get("split", app.config["INDEX_SPLIT"])
        if split not in shop.ids:
            abort(404, description=f"split {split!r} is unknown; use one of {list(shop.ids)}")
        ids = shop.ids[split]
        try:
            start = max(0, int(request.args.get("start", "0") or 0))
        except ValueError:
            abort(400, description="start must be an integer")
        shown = ids[start : start + 50]
        more = f"/?split={split}&start={start + 50}" if start + 50 < len(ids) else None
        tasks = [(tid, shop.goal(tid).instruction) for tid in shown]
        return render_template("index.html", split=split, n=len(ids), tasks=tasks, more=more)

    @app.get("/<sid>")
    def search_page(sid: str):
        goal = goal_or_404(sid)
        return render_template("search.html", page_kind="search", meta=(), goal=goal, sid=sid)

    @app.get("/<sid>/search")
    def results(sid: str):
        goal = goal_or_404(sid)
        q = request.args.get("q", "").strip()
        if not q:
            abort(400, description="empty search; type some words into the search box")
        hits = shop.search(q)
        pages = max(1, -(-len(hits) // PAGE_SIZE))
        page = min(page_arg(), pages)
        base = f"/{sid}/search?q={_qp(q)}"
        items = [
            (f"/{sid}/item/{asin}?{_state_qs(q, page, {})}", catalog.by_asin[asin])
            for asin in hits[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        ]
        return render_template(
            "results.html", page_kind="results", meta=(("q", q), ("page-no", page)), goal=goal, sid=sid,
            home=f"/{sid}", page=page, pages=pages, total=len(hits), items=items,
            prev=f"{base}&page={page - 1}" if page > 1 else None,
            next=f"{base}&page={page + 1}" if page < pages else None,
        )

    def item_context(sid: str, asin: str) -> dict:
        goal = goal_or_404(sid)
        p = product_or_404(asin)
        chosen = chosen_options(p)
        q = request.args.get("q", "")
        page = page_arg()
        item_base = f"/{sid}/item/{quote(asin)}"
        back = f"/{sid}/search?q={_qp(q)}&page={page}" if q else f"/{sid}"
        meta = (("asin", asin), ("q", q), ("page-no", page), *((f"opt-{k}", v) for k, v in chosen.items()))
        return dict(goal=goal, p=p, chosen=chosen, q=q, page=page, item_base=item_base, back=back,
                    meta=meta, sid=sid, home=f"/{sid}")

    @app.get("/<sid>/item/<asin>")
    def item(sid: str, asin: str):
        c = item_context(sid, asin)
        p, chosen, q, page, item_base = c["p"], c["chosen"], c["q"], c["page"], c["item_base"]
        options = [
            (dim, [(f"{item_base}?{_state_qs(q, page, {**chosen, dim: v})}", v) for v in values], chosen.get(dim))
            for dim, values in p.options
        ]
        state = _state_qs(q, page, chosen)
        return render_template(
            "item.html", page_kind="item", options=options,
            description=f"{item_base}/description?{state}", features=f"{item_base}/features?{state}",
            buy=f"/{sid}/buy/{quote(p.asin)}?{_opts_qs(chosen)}", **c,
        )

    @app.get("/<sid>/item/<asin>/<view>")
    def detail(sid: str, asin: str, view: str):
        if view not in ("description", "features"):
            abort(404, description=f"no {view!r} view; use description or features")
        c = item_context(sid, asin)
        p = c["p"]
        c["back"] = f"{c['item_base']}?{_state_qs(c['q'], c['page'], c['chosen'])}"
        return render_template(
            "detail.html", page_kind=view, text=p.description if view == "description" else "",
            lines=p.features if view == "features" else (), **c,
        )

    @app.post("/<sid>/buy/<asin>")
    def buy(sid: str, asin: str):
        goal = goal_or_404(sid)
        p = product_or_404(asin)
        chosen = chosen_options(p)
        s = score(goal, p, chosen)
        # repr keeps the exact float, so the env's success test (score == 1) is exact.
        meta = (("asin", asin), ("score", repr(s)))
        return render_template("done.html", page_kind="done", meta=meta, goal=goal, p=p, score=s,
                               chosen=", ".join(f"{k}: {v}" for k, v in chosen.items()))

    return app

"""HTML page -> text observation, with BeautifulSoup.

The observation is the page's visible text, one line per block element, with every clickable
element written as ``[Label]`` in place, followed by one line listing the clickable labels in
the form ``click[...]`` expects (lower case). The instruction box is left out: the chat view
already shows the instruction once per prompt. The search form's text field is shown as
``[Search box]``; its submit button is not clickable (use ``search[query]``).

What is clickable: ``<a href>`` (followed with GET) and ``<button>`` inside a form other than the
search form (submitted with the form's method to its action URL).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment

_BLOCK = frozenset({"div", "p", "h1", "h2", "h3", "h4", "ul", "ol", "li", "form", "br", "table", "tr"})
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Link:
    method: str  # "GET" or "POST"
    url: str


@dataclass(frozen=True)
class Page:
    """A parsed page: what the agent reads and where each click leads. Treat as immutable:
    envs share parsed pages through :class:`PageCache`."""

    kind: str  # body's data-page: search, results, item, description, features, done, error, index
    text: str  # the page text with [clickables] in place
    links: dict[str, Link] = field(default_factory=dict)  # lower-case label -> target
    has_search: bool = False
    meta: dict[str, str] = field(default_factory=dict)  # body's other data-* attributes

    @property
    def observation(self) -> str:
        if not self.links:
            return self.text
        return f"{self.text}\nClickable: {', '.join(self.links)}"


def _norm(s: str) -> str:
    return _WS.sub(" ", s).strip()


def parse_page(html: str) -> Page:
    # multi_valued_attributes=None: keep class="a b" a plain string (we never read classes; saves ~5%).
    soup = BeautifulSoup(html, "html.parser", multi_valued_attributes=None)
    body = soup.body or soup
    attrs = body.attrs if isinstance(body, Tag) else {}
    meta = {k[5:]: str(v) for k, v in attrs.items() if k.startswith("data-") and k != "data-page"}
    state = {"search": False}
    lines: list[list[str]] = [[]]
    links: OrderedDict[str, Link] = OrderedDict()

    def newline() -> None:
        if lines[-1]:
            lines.append([])

    def walk(node: Tag, form: Tag | None) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, Comment):
                    t = _norm(str(child))
                    if t:
                        lines[-1].append(t)
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if child.get("id") == "instruction" or name in ("script", "style", "head", "title"):
                continue
            if name == "a" and child.has_attr("href"):
                label = _norm(child.get_text())
                lines[-1].append(f"[{label}]")
                links.setdefault(label.lower(), Link("GET", str(child["href"])))
                continue
            if name == "input":
                if form is not None and form.get("id") == "search":
                    state["search"] = True
                    lines[-1].append("[Search box]")
                continue
            if name == "button":
                if form is None or form.get("id") == "search":
                    continue
                label = _norm(child.get_text())
                lines[-1].append(f"[{label}]")
                method = str(form.get("method", "get")).upper()
                links.setdefault(label.lower(), Link(method, str(form.get("action", ""))))
                continue
            block = name in _BLOCK
            if block:
                newline()
            walk(child, child if name == "form" else form)
            if block:
                newline()

    walk(body, None)
    text = "\n".join(" ".join(parts) for parts in lines if parts)
    return Page(str(attrs.get("data-page", "unknown")), text, dict(links), state["search"], meta)


class PageCache:
    """LRU cache of parsed pages by URL, shared by all envs of one shop.

    The shop's GET pages are pure functions of their URL (the app sends them with a
    ``Cache-Control: max-age`` header), so a client may reuse a page it fetched before, as a
    browser does. Rollouts that repeat a task (groups of samples per task) revisit most
    pages; a hit skips both the request and the parse. Thread-safe.
    """

    def __init__(self, size: int = 8192):
        self.size = size
        self._d: OrderedDict[str, Page] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, url: str) -> Page | None:
        with self._lock:
            page = self._d.get(url)
            if page is None:
                self.misses += 1
                return None
            self._d.move_to_end(url)
            self.hits += 1
            return page

    def put(self, url: str, page: Page) -> None:
        with self._lock:
            self._d[url] = page
            if len(self._d) > self.size:
                self._d.popitem(last=False)

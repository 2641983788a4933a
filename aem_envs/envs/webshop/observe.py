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


@dataclass
class Page:
    """A parsed page: what the agent reads and where each click leads."""

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
    soup = BeautifulSoup(html, "html.parser")
    body = soup.body or soup
    attrs = body.attrs if isinstance(body, Tag) else {}
    meta = {k[5:]: str(v) for k, v in attrs.items() if k.startswith("data-") and k != "data-page"}
    page = Page(kind=str(attrs.get("data-page", "unknown")), text="", meta=meta)
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
                    page.has_search = True
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
    page.text = "\n".join(" ".join(parts) for parts in lines if parts)
    page.links = dict(links)
    return page

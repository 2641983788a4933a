"""Turning an agent's whole response into the action unit the env executes.

Two conventions, one per env (``TextEnv.action_format``):

- ``"tag"``: the text inside the *last* ``<action>...</action>`` pair, stripped. The agent may
  think freely before it; only the tagged text is executed. An unclosed final tag counts as
  no action, because a response cut off by the token limit must not run half a command.
- ``"last_line"``: the last non-empty line, stripped.
"""

from __future__ import annotations

import re
from typing import Literal

ActionFormat = Literal["tag", "last_line"]

_OPEN_RE = re.compile(r"<action>", re.IGNORECASE)
_CLOSE_RE = re.compile(r"</action>", re.IGNORECASE)


def extract_tag(response: str, tag: str = "action") -> str | None:
    """Text between the last ``<tag>`` of ``response`` and the ``</tag>`` after it (None if
    there is no such tag, it is never closed, or the text is empty).

    The *last opening* tag counts, so a tag mentioned while thinking ("I answer in an <action>
    tag: <action>look</action>") is not glued onto the action.
    """
    if tag == "action":
        open_re, close_re = _OPEN_RE, _CLOSE_RE
    else:
        open_re = re.compile(rf"<{re.escape(tag)}>", re.IGNORECASE)
        close_re = re.compile(rf"</{re.escape(tag)}>", re.IGNORECASE)
    last = None
    for last in open_re.finditer(response):
        pass
    if last is None:
        return None
    close = close_re.search(response, last.end())
    if close is None:  # the final tag is unclosed: a cut-off response runs nothing
        return None
    text = response[last.end() : close.start()].strip()
    return text or None


def last_line(response: str) -> str | None:
    """The last non-empty line of ``response`` (None if there is none)."""
    for line in reversed(response.splitlines()):
        if line.strip():
            return line.strip()
    return None


def parse_action(response: str, fmt: ActionFormat = "tag") -> str | None:
    if fmt == "tag":
        return extract_tag(response)
    if fmt == "last_line":
        return last_line(response)
    raise ValueError(f"action_format={fmt!r} is unknown; use 'tag' or 'last_line'")


def format_action(action: str, fmt: ActionFormat = "tag") -> str:
    """The canonical response for a bare action (what the oracle and SFT demos emit)."""
    if fmt == "tag":
        return f"<action>{action}</action>"
    if fmt == "last_line":
        return action
    raise ValueError(f"action_format={fmt!r} is unknown; use 'tag' or 'last_line'")

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

_TAG_RE = re.compile(r"<action>(.*?)</action>", re.DOTALL | re.IGNORECASE)


def extract_tag(response: str, tag: str = "action") -> str | None:
    """Text inside the last ``<tag>...</tag>`` of ``response`` (None if absent or empty)."""
    pattern = _TAG_RE if tag == "action" else re.compile(
        rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL | re.IGNORECASE
    )
    found = pattern.findall(response)
    if not found:
        return None
    text = found[-1].strip()
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

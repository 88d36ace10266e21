"""What a chat adapter shows: a template key, its variables and its buttons (no Telegram here).

Services that answer in chat (points, training) return a `Screen`; the gateway renders it
with `bot/gateway/outbound.reply`, the action server with `dispatcher.reply`, the outbox with
`enqueue(template=…, variables=…, buttons=…)` — the same words and buttons however the user
asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Screen:
    """One reply: a template, its variables and its buttons."""

    template: str
    vars: dict[str, Any] = field(default_factory=dict)
    buttons: list[dict[str, Any]] = field(default_factory=list)


def button(label_key: str, payload: str, **label_vars: Any) -> dict[str, Any]:
    """A button whose label is a template (rendered with `label_vars` in the user's locale)."""
    b: dict[str, Any] = {"label_key": label_key, "payload": payload}
    if label_vars:
        b["vars"] = label_vars
    return b

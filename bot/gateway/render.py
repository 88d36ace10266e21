"""Turn Rasa responses and template keys into Telegram messages (HTML, inline keyboards)."""

from __future__ import annotations

import html
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from core.i18n import renderer

TELEGRAM_TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64


@dataclass
class Outgoing:
    """One Telegram message to send."""

    text: str
    keyboard: InlineKeyboardMarkup | None = None


class CallbackStore:
    """Keeps button payloads longer than Telegram's 64-byte callback_data, for a while."""

    def __init__(self, max_items: int = 50_000, ttl_seconds: float = 7 * 24 * 3600) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self.max_items = max_items
        self.ttl = ttl_seconds

    def encode(self, payload: str) -> str:
        """callback_data for a payload: the payload itself if it fits, else a short key."""
        if len(payload.encode()) <= CALLBACK_DATA_LIMIT and not payload.startswith("k:"):
            return payload
        key = "k:" + secrets.token_urlsafe(12)
        self._items[key] = (time.monotonic(), payload)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return key

    def decode(self, data: str) -> str | None:
        """The payload behind callback_data, or None if it has expired."""
        if not data.startswith("k:"):
            return data
        item = self._items.get(data)
        if item is None or time.monotonic() - item[0] > self.ttl:
            return None
        return item[1]


def render(key: str, locale: str, **variables: Any) -> str:
    """Render one template key."""
    return renderer().render(key, locale, **variables)


def keyboard(buttons: list[dict[str, str]], locale: str, store: CallbackStore
             ) -> InlineKeyboardMarkup | None:
    """Inline keyboard, one button per row; labels from template keys or literal text."""
    rows = []
    for b in buttons:
        if b.get("label_key"):
            label = render(b["label_key"], locale)
        else:
            label = str(b.get("label") or b.get("title") or b.get("payload", "?"))
        label = html.unescape(label)[:64]
        rows.append([InlineKeyboardButton(label, callback_data=store.encode(str(b["payload"])))])
    return InlineKeyboardMarkup(rows) if rows else None


def from_rasa(responses: list[dict[str, Any]], locale: str, store: CallbackStore
              ) -> list[Outgoing]:
    """Render Rasa's replies: custom template payloads, or plain text escaped as a fallback."""
    out: list[Outgoing] = []
    for r in responses:
        custom = r.get("custom") if isinstance(r.get("custom"), dict) else None
        buttons = list(r.get("buttons") or [])
        if custom and custom.get("command"):
            continue  # instructions for the gateway (e.g. hand-off), not text
        if custom and custom.get("template"):
            text = render(str(custom["template"]), locale, **(custom.get("vars") or {}))
            buttons = list(custom.get("buttons") or []) + buttons
        elif r.get("text"):
            text = html.escape(str(r["text"]))
        else:
            continue
        chunks = split_text(text)
        out.extend(Outgoing(chunk) for chunk in chunks[:-1])
        out.append(Outgoing(chunks[-1], keyboard(buttons, locale, store)))
    return out


def commands(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gateway instructions among Rasa's replies (custom payloads with a `command`)."""
    return [r["custom"] for r in responses
            if isinstance(r.get("custom"), dict) and r["custom"].get("command")]


def plain(text: str) -> str:
    """Telegram HTML to plain text (for transcripts)."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def split_text(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split at line breaks so no message exceeds Telegram's limit (tags stay within lines)."""
    if len(text) <= limit:
        return [text]
    chunks, current = [], ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks

"""Turn Rasa responses and template keys into Telegram messages (HTML, inline keyboards)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from core.i18n import renderer
from core.services import callbacks

TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024


@dataclass
class Outgoing:
    """One Telegram message to send, with the long button payloads its keyboard refers to."""

    text: str
    keyboard: InlineKeyboardMarkup | None = None
    callbacks: dict[str, str] = field(default_factory=dict)


class CallbackKeys:
    """Encodes button payloads as callback_data; payloads over Telegram's 64 bytes get a short
    key and are collected here, for the sender to store in the database before sending."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}

    def encode(self, payload: str) -> str:
        """callback_data for a payload: the payload itself if it fits, else its key."""
        if not callbacks.needs_key(payload):
            return payload
        key = callbacks.key_for(payload)
        self.pending[key] = payload
        return key


def render(key: str, locale: str, **variables: Any) -> str:
    """Render one template key."""
    return renderer().render(key, locale, **variables)


def keyboard(buttons: list[dict[str, str]], locale: str, store: CallbackKeys
             ) -> InlineKeyboardMarkup | None:
    """Inline keyboard, one button per row; labels from template keys or literal text."""
    rows = []
    for b in buttons:
        if b.get("label_key"):  # a template; `vars` fill it (e.g. a reward's name and cost)
            label = render(b["label_key"], locale, **(b.get("vars") or {}))
        else:
            label = str(b.get("label") or b.get("title") or b.get("payload", "?"))
        label = html.unescape(label)[:64]
        rows.append([InlineKeyboardButton(label, callback_data=store.encode(str(b["payload"])))])
    return InlineKeyboardMarkup(rows) if rows else None


def from_rasa(responses: list[dict[str, Any]], locale: str) -> list[Outgoing]:
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
        out.extend(message(text, buttons, locale))
    return out


def message(text: str, buttons: list[dict[str, str]] | None, locale: str,
            limit: int = TELEGRAM_TEXT_LIMIT) -> list[Outgoing]:
    """Rendered HTML as one or more messages within Telegram's limit, buttons on the last."""
    chunks = split_text(text, limit)
    store = CallbackKeys()
    kb = keyboard(buttons, locale, store) if buttons else None
    return [Outgoing(chunk) for chunk in chunks[:-1]] + [
        Outgoing(chunks[-1], kb, store.pending)]


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
            cut = _safe_cut(line, limit)
            chunks.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def _safe_cut(line: str, limit: int) -> int:
    """Where to cut an over-long line: at `limit`, but never inside a tag or an entity."""
    head = line[:limit]
    cut = limit
    lt, gt = head.rfind("<"), head.rfind(">")
    if lt > gt and lt > 0:
        cut = lt
    amp = head.rfind("&", 0, cut)
    if amp > head.rfind(";", 0, cut) and cut - amp <= 10 and amp > 0:
        cut = amp
    return cut


def cap(text: str, limit: int) -> str:
    """Plain text shortened to `limit` characters with an ellipsis (e.g. captions)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

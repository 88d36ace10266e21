"""Send one outbox row through python-telegram-bot and say what happened (never raises)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.delivery.store import Outcome
from bot.gateway.render import CallbackKeys, keyboard, render, split_text
from core.models import OutboxMessage

log = logging.getLogger(__name__)
CAPTION_LIMIT = 1024
# Button payloads over 64 bytes were stored by outbox.enqueue under keys derived from the
# payload (core.services.callbacks); the keyboard built here uses the same keys.


def message_text(row: OutboxMessage, default_locale: str) -> str | None:
    """The message's HTML: ready `text`, or its template rendered in its locale."""
    if row.text is not None:
        return row.text
    if row.template:
        return render(row.template, row.locale or default_locale, **(row.variables or {}))
    return None


def markup(row: OutboxMessage, default_locale: str) -> InlineKeyboardMarkup | None:
    """Inline keyboard of the row: callback buttons as the gateway builds them, plus URLs."""
    if not row.buttons:
        return None
    locale = row.locale or default_locale
    rows: list[list[InlineKeyboardButton]] = []
    store = CallbackKeys()
    for b in row.buttons:
        built = keyboard([{**b, "payload": b.get("payload", "-")}], locale, store)
        assert built is not None
        button = built.inline_keyboard[0][0]
        if b.get("url"):  # same label rules, but a link instead of a callback
            button = InlineKeyboardButton(button.text, url=str(b["url"]))
        rows.append([button])
    return InlineKeyboardMarkup(rows)


def classify(exc: Exception) -> Outcome:
    """Map a Bot API error to retry / permanent failure / throttle / migration."""
    if isinstance(exc, RetryAfter):
        delta = getattr(exc, "_retry_after", None)
        seconds = delta.total_seconds() if isinstance(delta, dt.timedelta) else 1.0
        return Outcome("throttled", retry_after=max(seconds, 0.5))
    if isinstance(exc, ChatMigrated):
        return Outcome("migrated", new_chat_id=int(exc.new_chat_id))
    text = str(exc.message if isinstance(exc, TelegramError) else exc)
    low = text.lower()
    if isinstance(exc, Forbidden):
        if "blocked" in low:
            return Outcome("failed", error="blocked")
        if "kicked" in low:
            return Outcome("failed", error="kicked")
        if "deleted" in low:
            return Outcome("failed", error="deleted")
        return Outcome("failed", error=f"forbidden: {text}"[:300])
    if isinstance(exc, BadRequest):
        if "chat not found" in low:
            return Outcome("failed", error="chat_not_found")
        return Outcome("failed", error=f"bad_request: {text}"[:300])
    if isinstance(exc, TimedOut):
        return Outcome("retry", error="timeout")
    if isinstance(exc, InvalidToken):  # our configuration, not the message: keep it queued
        return Outcome("retry", error=f"invalid_token: {text}"[:300])
    if isinstance(exc, NetworkError):
        return Outcome("retry", error=f"server_error: {text}"[:300])
    if isinstance(exc, TelegramError):
        return Outcome("retry", error=f"telegram: {text}"[:300])
    return Outcome("failed", error=f"render: {type(exc).__name__}: {text}"[:300])


def part_count(row: OutboxMessage, default_locale: str) -> int:
    """How many Telegram messages the row becomes (for pacing)."""
    if row.copy_message_id is not None or row.kind in MEMBER_ACTIONS:
        return 1
    try:
        text = message_text(row, default_locale)
    except Exception:  # rendering errors are reported by send()
        return 1
    if row.media_ref:
        if text is None or len(text) <= CAPTION_LIMIT:
            return 1
        return 1 + len(split_text(text))
    return len(split_text(text or ""))


# A local file is uploaded once per worker process: Telegram's file_id of the first upload is
# sent after that (a lesson with a PDF pushed to 2,000 dealers is one upload, not 2,000).
_uploaded: dict[tuple[str, float], str] = {}
UPLOAD_CACHE_SIZE = 512
# While a file's first upload is under way, other sends of the same file wait for it (and then
# use its file_id) instead of uploading it again in parallel.
_uploading: dict[tuple[str, float], asyncio.Lock] = {}


def _local_key(ref: str) -> tuple[str, float] | None:
    if ref.startswith(("http://", "https://")):
        return None
    path = Path(ref)
    try:
        return (str(path.resolve()), path.stat().st_mtime) if path.is_file() else None
    except OSError:
        return None


def _media(ref: str) -> Any:
    key = _local_key(ref)
    if key is None:
        return ref  # a file_id or a URL Telegram fetches itself
    if key in _uploaded:
        return _uploaded[key]
    path = Path(ref)
    return InputFile(path.read_bytes(), filename=path.name)


async def _send_media(method: Any, chat_id: int, field: str, ref: str,
                      **kwargs: Any) -> Any:
    """Send a photo/document; a local file not uploaded yet is uploaded by one send at a time."""
    key = _local_key(ref)
    if key is None or key in _uploaded:
        return await method(chat_id, **{field: _media(ref)}, **kwargs)
    lock = _uploading.setdefault(key, asyncio.Lock())
    async with lock:
        message = await method(chat_id, **{field: _media(ref)}, **kwargs)
        _remember_upload(ref, message)
    if key in _uploaded:
        _uploading.pop(key, None)
    return message


def _remember_upload(ref: str, message: Any) -> None:
    """Keep the file_id Telegram gave a local file we uploaded (a photo: its largest size)."""
    key = _local_key(ref)
    if key is None or key in _uploaded:
        return
    file_id = None
    if getattr(message, "photo", None):
        file_id = message.photo[-1].file_id
    elif getattr(message, "document", None) is not None:
        file_id = message.document.file_id
    if file_id:
        if len(_uploaded) >= UPLOAD_CACHE_SIZE:
            _uploaded.pop(next(iter(_uploaded)))
        _uploaded[key] = file_id


# --- Member actions (community/): rows that are a Bot API call, not a message. ------------
# kind="kick": variables.user_id is removed from the group (ban, then unban so they can be
# invited again later). The worker paces, retries and records them like messages.
MEMBER_ACTIONS = ("kick",)


async def member_action(bot: Bot, row: OutboxMessage, chat_id: int) -> Outcome:
    """Carry out a member-action row; never raises."""
    try:
        user_id = int((row.variables or {})["user_id"])
        await bot.ban_chat_member(chat_id, user_id)
        await bot.unban_chat_member(chat_id, user_id, only_if_banned=True)
    except Exception as exc:
        outcome = classify(exc)
        if outcome.kind == "failed" and outcome.error and "user_id" in outcome.error:
            outcome.error = f"bad_request: no user_id ({outcome.error})"[:300]
        return outcome
    return Outcome("sent", parts_sent=1)


async def send(bot: Bot, row: OutboxMessage, chat_id: int, default_locale: str) -> Outcome:
    """Send the row (resuming after parts already delivered); returns the outcome."""
    if row.kind in MEMBER_ACTIONS:
        return await member_action(bot, row, chat_id)
    first_id: int | None = row.telegram_message_id
    done = row.parts_sent or 0
    sent_now = 0

    def progress(outcome: Outcome) -> Outcome:
        outcome.message_id = first_id
        outcome.parts_sent = done + sent_now
        return outcome

    try:
        reply_markup = markup(row, default_locale)
        reply = {"reply_to_message_id": row.reply_to_message_id} \
            if row.reply_to_message_id else {}
        if row.copy_message_id is not None and row.copy_from_chat_id is not None:
            copied = await bot.copy_message(chat_id, row.copy_from_chat_id, row.copy_message_id,
                                            reply_markup=reply_markup, **reply)
            first_id, sent_now = int(copied.message_id), 1
        else:
            text = message_text(row, default_locale)
            steps: list[tuple[str, str | None]] = []  # (what, text)
            if row.media_ref:
                caption_fits = text is None or len(text) <= CAPTION_LIMIT
                steps.append(("media", text if caption_fits else None))
                if not caption_fits:
                    steps.extend(("text", part) for part in split_text(text or ""))
            else:
                steps.extend(("text", part) for part in split_text(text or ""))
            for index, (what, body) in enumerate(steps):
                if index < done:
                    continue  # delivered by an earlier attempt
                last = index == len(steps) - 1
                extra: dict[str, Any] = {"reply_markup": reply_markup} if last else {}
                if index == 0:
                    extra.update(reply)
                if what == "media":
                    method = bot.send_photo if row.media_kind == "photo" else bot.send_document
                    field = "photo" if row.media_kind == "photo" else "document"
                    message = await _send_media(method, chat_id, field, str(row.media_ref),
                                                caption=body, parse_mode=ParseMode.HTML,
                                                **extra)
                else:
                    message = await bot.send_message(chat_id, body or "",
                                                     parse_mode=ParseMode.HTML, **extra)
                if first_id is None:
                    first_id = int(message.message_id)
                sent_now += 1
    except Exception as exc:  # every failure becomes an outcome; the worker must keep going
        outcome = classify(exc)
        if outcome.kind == "failed" and outcome.error and outcome.error.startswith("render"):
            log.exception("outbox %s could not be built", row.id)
        return progress(outcome)
    if row.pin and first_id is not None:
        try:
            await bot.pin_chat_message(chat_id, first_id, disable_notification=True)
        except TelegramError as exc:  # the message arrived; a failed pin must not resend it
            log.warning("outbox %s sent but not pinned: %s", row.id, exc)
    return progress(Outcome("sent"))

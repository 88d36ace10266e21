"""The gateway's one way out to Telegram for direct messages (a person is waiting).

Retries belong to python-telegram-bot's AIORateLimiter alone (it waits out 429s); nothing here
retries on top of it, so a timed-out send is never sent twice by us. A failure is raised to the
caller and, unless handled there, reaches the error handler, which logs it and tells the user.
Messages the services ask for (notices, broadcasts) go through the outbox instead.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Message
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.gateway.context import gw, turn
from bot.gateway.render import (
    TELEGRAM_CAPTION_LIMIT,
    Outgoing,
    cap,
    message,
    plain,
    render,
)
from core.services import callbacks

log = logging.getLogger(__name__)


async def send(context: ContextTypes.DEFAULT_TYPE, chat_id: int, out: Outgoing) -> Message:
    """Send one message (its long button payloads stored first); raises on failure."""
    if out.callbacks:
        async with gw(context).db.transaction() as s:
            await callbacks.save(s, out.callbacks)
    sent = await context.bot.send_message(chat_id, out.text, parse_mode=ParseMode.HTML,
                                          reply_markup=out.keyboard)
    current = turn(context)
    if current is not None and chat_id > 0:  # private chats keep a transcript for hand-offs
        current.lines.append((chat_id, "bot", plain(out.text)))
    return sent


async def send_all(context: ContextTypes.DEFAULT_TYPE, chat_id: int,
                   messages: list[Outgoing]) -> list[Message]:
    """Send messages in order; returns what Telegram accepted."""
    return [await send(context, chat_id, out) for out in messages]


async def send_html(context: ContextTypes.DEFAULT_TYPE, chat_id: int, html: str,
                    buttons: list[dict[str, str]] | None = None, locale: str = "en"
                    ) -> list[Message]:
    """Send rendered HTML of any length: split within Telegram's limit, buttons on the last."""
    return await send_all(context, chat_id, message(html, buttons, locale))


async def reply(context: ContextTypes.DEFAULT_TYPE, chat_id: int, locale: str, template: str,
                buttons: list[dict[str, str]] | None = None, **variables: Any
                ) -> list[Message]:
    """Render a template in the user's locale and send it (split if it is too long)."""
    return await send_html(context, chat_id, render(template, locale, **variables), buttons,
                           locale)


async def edit(context: ContextTypes.DEFAULT_TYPE, chat_id: int, message_id: int,
               locale: str, template: str, buttons: list[dict[str, str]] | None = None,
               **variables: Any) -> Message | bool:
    """Replace a bot message's text and buttons with a rendered template (no buttons: the
    keyboard goes). Through the same bot, so the same rate limiter; raises on failure. Text
    over Telegram's limit keeps its first part (edited messages are short: quiz questions)."""
    out = message(render(template, locale, **variables), buttons, locale)
    first = out[0] if len(out) == 1 else Outgoing(out[0].text)
    if first.callbacks:
        async with gw(context).db.transaction() as s:
            await callbacks.save(s, first.callbacks)
    return await context.bot.edit_message_text(first.text, chat_id, message_id,
                                               parse_mode=ParseMode.HTML,
                                               reply_markup=first.keyboard)


async def copy(context: ContextTypes.DEFAULT_TYPE, chat_id: int, source: Message) -> Message:
    """Copy a photo, voice note, file … to another chat; a caption over Telegram's limit for
    bots is shortened (the full caption is sent as text after it)."""
    caption = source.caption or ""
    if len(caption) <= TELEGRAM_CAPTION_LIMIT:
        return await context.bot.copy_message(chat_id, source.chat_id, source.message_id)
    copied = await context.bot.copy_message(chat_id, source.chat_id, source.message_id,
                                            caption=cap(caption, TELEGRAM_CAPTION_LIMIT),
                                            parse_mode=None)
    await send_html(context, chat_id, source.caption_html or caption)
    return copied

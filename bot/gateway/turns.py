"""The life of one update: kept in order per chat, claimed once, marked done after success.

- `ChatOrderedProcessor` runs updates concurrently across chats but one at a time per chat
  (identify → decide → act, hand-off and relays included), in the order Telegram sent them.
  The locks live in this process: this is tested with ONE gateway process (see README).
- `begin_turn` (first) claims the update and, in private chats, refreshes the sender and
  decides where a message goes — one unit of work before any handler talks to Rasa.
- `end_turn` (last) marks the update done and appends the transcript lines, in one unit of
  work. A crash in between leaves the claim 'processing'; once its lease runs out a
  redelivered update is handled again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    ContextTypes,
    TypeHandler,
)

from bot.gateway.context import Turn, gw, turn
from bot.gateway.outbound import reply
from core.i18n import detect_script
from core.services import accounts, conversations, updates

log = logging.getLogger(__name__)

LEASE_SECONDS = 300  # longer than any handler runs (Rasa's timeout plus a few sends)
FIRST_GROUP, LAST_GROUP = -1, 1000
HANDOFF_BUTTON = [{"label_key": "button_human", "payload": "/human_handoff"}]


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Concurrent across chats, in arrival order within a chat (one asyncio lock per chat)."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update's handlers while holding its chat's lock."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock, users = self._locks.get(chat.id, (asyncio.Lock(), 0))
        self._locks[chat.id] = (lock, users + 1)
        try:
            async with lock:
                await coroutine
        finally:
            lock, users = self._locks[chat.id]
            if users <= 1:
                del self._locks[chat.id]
            else:
                self._locks[chat.id] = (lock, users - 1)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


async def begin_turn(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Claim the update (stop if handled before) and identify the private sender, at once."""
    g = gw(context)
    current = Turn(update.update_id)
    chat, user, message = update.effective_chat, update.effective_user, update.message
    private = chat is not None and user is not None and chat.type == "private"
    text = message.text if message is not None else None
    async with g.db.transaction() as s:
        if not await updates.claim(s, update.update_id, LEASE_SECONDS):
            log.info("duplicate update %s ignored", update.update_id)
            raise ApplicationHandlerStop
        if private:
            assert user is not None and chat is not None
            typed = text if text and not text.startswith("/") else None
            current.ident = await accounts.touch_identity(
                s, user.id, first_name=user.first_name or "", username=user.username,
                language_code=user.language_code,
                detected_locale=detect_script(typed) if typed else None,
                default_locale=g.settings.app.default_locale)
            if message is not None and not (text or "").startswith("/"):
                current.route = await conversations.decide_route(
                    s, user.id, text, g.settings.linking.code_length)
    if private and text and not text.startswith("/") and chat is not None:
        current.lines.append((chat.id, "user", text))
    context.turn = current  # type: ignore[attr-defined]


async def end_turn(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every handler succeeded: mark the update done and keep its transcript lines."""
    current = turn(context)
    if current is None:
        return
    g = gw(context)
    async with g.db.transaction() as s:
        await updates.mark_done(s, current.update_id)
        await conversations.note_lines(s, current.lines, g.settings.support.transcript_lines)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure with its traceback, then apologise briefly — never a stack trace."""
    log.error("update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)
    if (isinstance(update, Update) and update.effective_chat and update.effective_user
            and update.effective_chat.type == "private"):
        current = turn(context)
        locale = gw(context).settings.app.default_locale
        if current is not None and current.ident is not None:
            locale = current.ident.locale
        try:
            await reply(context, update.effective_chat.id, locale, "error_generic",
                        buttons=HANDOFF_BUTTON)
        except Exception:
            log.exception("could not send the apology either")
    # The update stays claimed but not done: it is not marked handled.
    raise ApplicationHandlerStop


def register(app: Application) -> None:
    """The first and last handler of every update, and the error handler."""
    app.add_handler(TypeHandler(Update, begin_turn), group=FIRST_GROUP)
    app.add_handler(TypeHandler(Update, end_turn), group=LAST_GROUP)
    app.add_error_handler(on_error)


"""Training in Telegram: a dealer's /courses, /next and every `trn:` button.

Thin: one unit of work calling training.learning → render what it returns. Button payloads
are attacker-controlled; training.learning parses each one and checks it is the presser's.
A quiz answer edits the question's message (the choice ✓/✗ and the explanation) and the next
question is sent straight away by the gateway (a person is waiting on every tap); lessons
arrive through the outbox, which the worker sends at interactive priority.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.gateway.context import gw, turn
from bot.gateway.outbound import edit, reply
from bot.gateway.render import plain, render
from core.errors import DomainError
from core.screens import Screen
from core.services.accounts import IdentityView
from training import learning
from training.content import Target

log = logging.getLogger(__name__)


def _ident(context: ContextTypes.DEFAULT_TYPE) -> IdentityView:
    current = turn(context)
    assert current is not None and current.ident is not None, "private updates are identified"
    return current.ident


async def _show(context: ContextTypes.DEFAULT_TYPE, chat_id: int, locale: str,
                screen: Screen) -> None:
    await reply(context, chat_id, locale, screen.template, buttons=screen.buttons or None,
                **screen.vars)


async def _replace(context: ContextTypes.DEFAULT_TYPE, chat_id: int, message_id: int | None,
                   locale: str, screen: Screen) -> None:
    """Edit the pressed message into `screen`; if it cannot be (too old, not text), send it."""
    if message_id is not None:
        try:
            await edit(context, chat_id, message_id, locale, screen.template,
                       buttons=screen.buttons or None, **screen.vars)
            return
        except TelegramError:
            log.debug("could not edit message %s", message_id, exc_info=True)
    await _show(context, chat_id, locale, screen)


async def courses_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/courses: the dealer's courses with progress and a Continue button each."""
    assert update.effective_chat is not None
    ident = _ident(context)
    try:
        async with gw(context).db.transaction() as s:
            screen = await learning.my_courses(s, ident)
    except DomainError as exc:
        await reply(context, update.effective_chat.id, ident.locale, exc.template, **exc.vars)
        return
    await _show(context, update.effective_chat.id, ident.locale, screen)


async def next_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/next: the next lesson of the course under way (queued; the worker sends it now)."""
    assert update.effective_chat is not None
    chat_id, ident = update.effective_chat.id, _ident(context)
    try:
        async with gw(context).db.transaction() as s:
            screen = await learning.next_lesson(s, ident, Target(chat_id, ident.locale))
    except DomainError as exc:
        await reply(context, chat_id, ident.locale, exc.template, **exc.vars)
        return
    await _show(context, chat_id, ident.locale, screen)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A `trn:` button: the callback query is always answered; then the pressed message is
    edited and/or new messages sent, or a short notice pops up."""
    query = update.callback_query
    chat = update.effective_chat
    assert query is not None
    if chat is None or chat.type != "private":
        await query.answer()
        return
    g, ident = gw(context), _ident(context)
    try:
        async with g.db.transaction() as s:
            outcome = await learning.press(s, ident, query.data, Target(chat.id, ident.locale),
                                           settings=g.settings)
    except DomainError as exc:  # rolled back: nothing half-done
        await query.answer()
        await reply(context, chat.id, ident.locale, exc.template, **exc.vars)
        return
    notice = outcome.notice
    await query.answer(plain(render(notice, ident.locale))[:200] if notice else None)
    if outcome.edit is not None:
        await _replace(context, chat.id, query.message.message_id if query.message else None,
                       ident.locale, outcome.edit)
    for screen in outcome.send:
        await _show(context, chat.id, ident.locale, screen)


def register(app: Application) -> None:
    """/courses, /next (private chats) and the `trn:` buttons."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("courses", courses_command, filters=private))
    app.add_handler(CommandHandler("next", next_command, filters=private))
    app.add_handler(CallbackQueryHandler(on_button, pattern=r"^trn:"))

"""The assistant in private chats: commands, free text to Rasa, buttons, link codes.

Thin: the sender and the route of a message were decided when the update was claimed
(bot.gateway.turns); handlers here call Rasa or a service and render.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.gateway.context import Turn, gw, turn
from bot.gateway.handoff import relay_to_staff, start_handoff
from bot.gateway.outbound import reply, send_all
from bot.gateway.rasa_client import RasaUnavailable
from bot.gateway.render import TELEGRAM_TEXT_LIMIT, commands, from_rasa, render
from core.errors import DomainError
from core.i18n import to_simplified
from core.services import accounts, callbacks
from core.services.accounts import IdentityView

log = logging.getLogger(__name__)

HANDOFF_PAYLOAD = "/human_handoff"
HANDOFF_BUTTON = [{"label_key": "button_human", "payload": HANDOFF_PAYLOAD}]


def _turn(context: ContextTypes.DEFAULT_TYPE) -> Turn:
    current = turn(context)
    assert current is not None and current.ident is not None, "private updates are identified"
    return current


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start [CODE]: welcome, or link the chat with the code from a deep link."""
    assert update.effective_chat is not None
    ident = _turn(context).ident
    assert ident is not None
    chat_id = update.effective_chat.id
    if context.args:
        await link_with_code(context, chat_id, ident, context.args[0])
        return
    await reply(context, chat_id, ident.locale, "welcome", name=ident.first_name,
                linked=ident.is_linked, account=ident.customer_name or "")


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the assistant can do."""
    assert update.effective_chat is not None
    ident = _turn(context).ident
    assert ident is not None
    await reply(context, update.effective_chat.id, ident.locale, "help")


async def link_with_code(context: ContextTypes.DEFAULT_TYPE, chat_id: int,
                         ident: IdentityView, code: str) -> None:
    """Redeem a one-time link code and say what happened."""
    g = gw(context)
    async with g.db.transaction() as s:
        outcome = await accounts.redeem_link_code(s, g.settings.linking,
                                                  ident.telegram_user_id, code)
    if outcome.error is not None or outcome.identity is None:
        error = outcome.error or DomainError()
        await reply(context, chat_id, ident.locale, error.template, **error.vars)
        return
    linked = outcome.identity
    await reply(context, chat_id, ident.locale, "link_success",
                account=linked.customer_name or "", code=linked.customer_code or "",
                kind=linked.customer_kind or "staff", role=linked.staff_role or "")


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot does not know."""
    assert update.effective_chat is not None and update.effective_message is not None
    ident = _turn(context).ident
    assert ident is not None
    command = (update.effective_message.text or "").split()[0][:40]
    await reply(context, update.effective_chat.id, ident.locale, "unknown_command",
                command=command)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A private text message: relayed to staff, redeemed as a link code, or asked of Rasa."""
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    current = _turn(context)
    ident, route = current.ident, current.route
    assert ident is not None and route is not None
    text = message.text or ""
    chat_id = update.effective_chat.id
    if not text.strip():
        await reply(context, chat_id, ident.locale, "message_empty")
    elif len(text) > TELEGRAM_TEXT_LIMIT:
        await reply(context, chat_id, ident.locale, "message_too_long",
                    limit=TELEGRAM_TEXT_LIMIT, length=len(text))
    elif route.action == "relay" and route.ticket is not None:
        await relay_to_staff(update, context, route.ticket, ident)
    elif route.action == "link":
        await link_with_code(context, chat_id, ident, text.strip())
    else:
        await ask_assistant(context, chat_id, ident, text)


async def ask_assistant(context: ContextTypes.DEFAULT_TYPE, chat_id: int, ident: IdentityView,
                        text: str) -> None:
    """Send the text to Rasa (in Simplified script) and relay the replies."""
    g = gw(context)
    metadata = {"locale": ident.locale, "customer_code": ident.customer_code,
                "customer_kind": ident.customer_kind}
    try:
        responses = await g.rasa.send(str(ident.telegram_user_id), to_simplified(text), metadata)
    except RasaUnavailable as exc:
        log.warning("assistant unavailable for chat %s: %s", chat_id, exc)
        await reply(context, chat_id, ident.locale, "assistant_unavailable",
                    buttons=HANDOFF_BUTTON)
        return
    messages = from_rasa(responses, ident.locale)
    for command in commands(responses):
        if command.get("command") == "handoff":
            await send_all(context, chat_id, messages)
            await start_handoff(context, chat_id, ident, str(command.get("kind") or "handoff"),
                                str(command.get("reason") or text))
            return
    if not messages:
        # Rasa answered nothing: usually the action server or database is down.
        await reply(context, chat_id, ident.locale, "error_unavailable", buttons=HANDOFF_BUTTON)
        return
    await send_all(context, chat_id, messages)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: its payload goes to Rasa as if the user had typed it."""
    query = update.callback_query
    assert query is not None and update.effective_chat is not None
    await query.answer()
    chat_id = update.effective_chat.id
    ident = _turn(context).ident if update.effective_chat.type == "private" else None
    if ident is None:  # a stray button in a group: nothing to ask the assistant
        return
    async with gw(context).db.transaction() as s:
        payload = await callbacks.load(s, query.data or "")
    if payload is None:
        await reply(context, chat_id, ident.locale, "button_expired")
        return
    if payload == HANDOFF_PAYLOAD:  # works even when Rasa is down
        await start_handoff(context, chat_id, ident, "handoff", render("button_human", "en"))
        return
    await ask_assistant(context, chat_id, ident, payload)


async def on_non_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice, files …: relayed during a hand-off, else say what the bot
    reads."""
    assert update.effective_chat is not None and update.effective_message is not None
    current = _turn(context)
    ident, route = current.ident, current.route
    assert ident is not None
    if route is not None and route.action == "relay" and route.ticket is not None:
        await relay_to_staff(update, context, route.ticket, ident)
        return
    m = update.effective_message
    kind = ("sticker" if m.sticker else "photo" if m.photo else "voice" if m.voice or m.audio
            else "document" if m.document else "location" if m.location else "other")
    await reply(context, update.effective_chat.id, ident.locale, "non_text", kind=kind,
                buttons=HANDOFF_BUTTON)


def register_commands(app: Application) -> None:
    """/start and /help."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("start", start, filters=private))
    app.add_handler(CommandHandler("help", help_command, filters=private))


def register(app: Application) -> None:
    """Private-chat catch-alls, registered after every feature: any other button goes to
    Rasa, unknown commands are named, free text is asked of the assistant, the rest is
    explained. Edited messages are not re-answered (only new messages)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(private & filters.COMMAND, unknown_command))
    app.add_handler(MessageHandler(private & filters.TEXT, on_text))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL,
                                   on_non_text))

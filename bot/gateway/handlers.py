"""Telegram handlers for private chats: thin — parse, call a service or Rasa, render."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.gateway.context import Gateway
from bot.gateway.handoff import relay_to_staff, start_handoff
from bot.gateway.rasa_client import RasaUnavailable
from bot.gateway.render import (
    TELEGRAM_TEXT_LIMIT,
    Outgoing,
    commands,
    from_rasa,
    keyboard,
    plain,
    render,
)
from core.errors import DomainError
from core.i18n import LOCALES, detect_script, normalize_locale, to_simplified
from core.services import accounts, notifications, tickets
from core.services.accounts import IdentityView

log = logging.getLogger(__name__)

GATEWAY = "gateway"
LANGUAGE_LABELS = {"zh-Hans": "简体中文", "zh-Hant": "繁體中文", "en": "English"}
HANDOFF_PAYLOAD = "/human_handoff"
HANDOFF_BUTTON = [{"label_key": "button_human", "payload": HANDOFF_PAYLOAD}]


def gw(context: ContextTypes.DEFAULT_TYPE) -> Gateway:
    """The gateway state stored in bot_data."""
    return context.bot_data[GATEWAY]


async def send(context: ContextTypes.DEFAULT_TYPE, chat_id: int, message: Outgoing) -> None:
    """Send one message; retry transient network failures (429s are retried by the limiter)."""
    if chat_id > 0:
        gw(context).note(chat_id, "bot", plain(message.text))
    for attempt in range(3):
        try:
            await context.bot.send_message(chat_id, message.text, parse_mode=ParseMode.HTML,
                                           reply_markup=message.keyboard)
            return
        except (BadRequest, Forbidden):
            raise
        except RetryAfter as exc:  # the limiter gave up; wait once more ourselves
            await asyncio.sleep(float(exc.retry_after.total_seconds()
                                      if hasattr(exc.retry_after, "total_seconds")
                                      else exc.retry_after))
        except NetworkError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))


async def reply(context: ContextTypes.DEFAULT_TYPE, chat_id: int, locale: str, template: str,
                buttons: list[dict[str, str]] | None = None, **variables: Any) -> None:
    """Render a template in the user's locale and send it."""
    kb = keyboard(buttons, locale, gw(context).callbacks) if buttons else None
    await send(context, chat_id, Outgoing(render(template, locale, **variables), kb))


async def identify(update: Update, context: ContextTypes.DEFAULT_TYPE,
                   text: str | None = None) -> IdentityView:
    """Create or refresh the sender's identity, following the script they write in."""
    user = update.effective_user
    assert user is not None
    g = gw(context)
    async with g.db.transaction() as s:
        return await accounts.touch_identity(
            s, user.id, first_name=user.first_name or "", username=user.username,
            language_code=user.language_code,
            detected_locale=detect_script(text) if text else None,
            default_locale=g.settings.app.default_locale,
        )


async def drop_duplicates(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stop here if Telegram delivered this update before (handled once)."""
    if not await gw(context).first_delivery(update.update_id):
        log.info("duplicate update %s ignored", update.update_id)
        raise ApplicationHandlerStop


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start [CODE]: welcome, or link the chat with the code from a deep link."""
    assert update.effective_chat is not None and update.effective_user is not None
    ident = await identify(update, context)
    chat_id = update.effective_chat.id
    if context.args:
        await link_with_code(update, context, ident, context.args[0])
        return
    await reply(context, chat_id, ident.locale, "welcome", name=ident.first_name,
                linked=ident.is_linked, account=ident.customer_name or "")


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the assistant can do."""
    assert update.effective_chat is not None
    ident = await identify(update, context)
    await reply(context, update.effective_chat.id, ident.locale, "help")


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language [en|zh-Hans|zh-Hant]: set the reply language, or pick one from buttons."""
    assert update.effective_chat is not None and update.effective_user is not None
    ident = await identify(update, context)
    chat_id = update.effective_chat.id
    if context.args:
        chosen = normalize_locale(" ".join(context.args))
        if chosen:
            async with gw(context).db.transaction() as s:
                await accounts.set_locale(s, update.effective_user.id, chosen)
            await reply(context, chat_id, chosen, "language_set")
            return
    buttons = InlineKeyboardMarkup(
        [[InlineKeyboardButton(LANGUAGE_LABELS[loc], callback_data=f"lang:{loc}")]
         for loc in LOCALES]
    )
    await send(context, chat_id, Outgoing(render("language_pick", ident.locale), buttons))


async def on_language_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A language button was pressed."""
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_user is not None
    await query.answer()
    chosen = query.data.split(":", 1)[1]
    if chosen in LOCALES:
        async with gw(context).db.transaction() as s:
            await accounts.set_locale(s, update.effective_user.id, chosen)
        await reply(context, query.message.chat.id if query.message else update.effective_user.id,
                    chosen, "language_set")


async def on_notify_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """'Tell me when it is back': subscribe to a back-in-stock notification."""
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_user is not None
    await query.answer()
    ident = await identify(update, context)
    sku = query.data.split(":", 1)[1]
    try:
        async with gw(context).db.transaction() as s:
            new = await notifications.subscribe(s, update.effective_user.id, sku)
    except DomainError as exc:
        await reply(context, update.effective_user.id, ident.locale, exc.template, **exc.vars)
        return
    await reply(context, update.effective_user.id, ident.locale, "restock_subscribed",
                sku=sku, already=not new)


async def link_with_code(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         ident: IdentityView, code: str) -> None:
    """Redeem a one-time link code and say what happened."""
    assert update.effective_chat is not None and update.effective_user is not None
    g = gw(context)
    async with g.db.transaction() as s:
        outcome = await accounts.redeem_link_code(s, g.settings.linking,
                                                  update.effective_user.id, code)
    if outcome.error is not None or outcome.identity is None:
        error = outcome.error or DomainError()
        await reply(context, update.effective_chat.id, ident.locale, error.template,
                    **error.vars)
        return
    linked = outcome.identity
    await reply(context, update.effective_chat.id, ident.locale, "link_success",
                account=linked.customer_name or "", code=linked.customer_code or "",
                kind=linked.customer_kind or "staff", role=linked.staff_role or "")


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot does not know."""
    assert update.effective_chat is not None and update.effective_message is not None
    ident = await identify(update, context)
    command = (update.effective_message.text or "").split()[0][:40]
    await reply(context, update.effective_chat.id, ident.locale, "unknown_command",
                command=command)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A private text message: link codes are redeemed, everything else goes to Rasa."""
    message = update.effective_message
    assert message is not None and update.effective_chat is not None
    text = message.text or ""
    ident = await identify(update, context, text)
    chat_id = update.effective_chat.id
    if not text.strip():
        await reply(context, chat_id, ident.locale, "message_empty")
        return
    if len(text) > TELEGRAM_TEXT_LIMIT:
        await reply(context, chat_id, ident.locale, "message_too_long",
                    limit=TELEGRAM_TEXT_LIMIT, length=len(text))
        return
    g = gw(context)
    g.note(chat_id, "user", text)
    async with g.db.transaction() as s:
        ticket = await tickets.open_ticket_for(s, ident.telegram_user_id)
    if ticket is not None:
        await relay_to_staff(update, context, ticket, ident)
        return
    if accounts.looks_like_link_code(text, g.settings.linking.code_length):
        await link_with_code(update, context, ident, text.strip())
        return
    async with g.chat_lock(chat_id):
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
    messages = from_rasa(responses, ident.locale, g.callbacks)
    for command in commands(responses):
        if command.get("command") == "handoff":
            for out in messages:
                await send(context, chat_id, out)
            await start_handoff(context, chat_id, ident, str(command.get("kind") or "handoff"),
                                str(command.get("reason") or text))
            return
    if not messages:
        # Rasa answered nothing: usually the action server or database is down.
        await reply(context, chat_id, ident.locale, "error_unavailable", buttons=HANDOFF_BUTTON)
        return
    for out in messages:
        await send(context, chat_id, out)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button: its payload goes to Rasa as if the user had typed it."""
    query = update.callback_query
    assert query is not None and update.effective_user is not None
    await query.answer()
    chat_id = query.message.chat.id if query.message else update.effective_user.id
    ident = await identify(update, context)
    payload = gw(context).callbacks.decode(query.data or "")
    if payload is None:
        await reply(context, chat_id, ident.locale, "button_expired")
        return
    if payload == HANDOFF_PAYLOAD:  # works even when Rasa is down
        await start_handoff(context, chat_id, ident, "handoff", render("button_human", "en"))
        return
    async with gw(context).chat_lock(chat_id):
        await ask_assistant(context, chat_id, ident, payload)


async def on_non_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice, files …: say what the bot can read."""
    assert update.effective_chat is not None and update.effective_message is not None
    ident = await identify(update, context)
    async with gw(context).db.transaction() as s:
        ticket = await tickets.open_ticket_for(s, ident.telegram_user_id)
    if ticket is not None:
        await relay_to_staff(update, context, ticket, ident)
        return
    m = update.effective_message
    kind = ("sticker" if m.sticker else "photo" if m.photo else "voice" if m.voice or m.audio
            else "document" if m.document else "location" if m.location else "other")
    await reply(context, update.effective_chat.id, ident.locale, "non_text", kind=kind,
                buttons=HANDOFF_BUTTON)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure with its traceback, then apologise briefly — never a stack trace."""
    log.error("update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)
    if (isinstance(update, Update) and update.effective_chat and update.effective_user
            and update.effective_chat.type == "private"):
        try:
            async with gw(context).db.transaction() as s:
                ident = await accounts.get_identity(s, update.effective_user.id)
            locale = ident.locale if ident else gw(context).settings.app.default_locale
        except Exception:  # the database itself may be what failed
            locale = gw(context).settings.app.default_locale
        try:
            await reply(context, update.effective_chat.id, locale, "error_generic",
                        buttons=HANDOFF_BUTTON)
        except Exception:
            log.exception("could not send the apology either")

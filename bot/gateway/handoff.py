"""Human hand-off: open a ticket, post it to the staff group, relay both ways, cancel, close.

The ticket's staff post goes through the outbox (queued with the ticket, sent by the delivery
worker): the ticket is 'pending' until it is sent, 'open' after; if staff cannot be reached
it becomes 'unreachable', the customer is told, and the assistant answers them again.
Relays and staff replies are sent directly (a person is waiting) through bot.gateway.outbound.
"""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.gateway.context import Gateway, gw, turn
from bot.gateway.outbound import copy, reply, send_html
from bot.gateway.render import plain, render
from core.errors import NotFound, PermissionDenied
from core.services import conversations, tickets
from core.services import staff as staff_service
from core.services.accounts import IdentityView, get_identity
from core.services.tickets import TicketView

log = logging.getLogger(__name__)

CANCEL_PAYLOAD = "ticket:cancel"
CANCEL_BUTTON = {"label_key": "button_cancel_handoff", "payload": CANCEL_PAYLOAD}


def _staff_locale(g: Gateway) -> str:
    return g.settings.app.default_locale


async def start_handoff(context: ContextTypes.DEFAULT_TYPE, chat_id: int, ident: IdentityView,
                        kind: str, reason: str) -> None:
    """Open (or reuse) the chat's ticket with its staff post queued, and tell the user."""
    g = gw(context)
    keep = g.settings.support.transcript_lines
    current = turn(context)
    # This turn's lines are written when it ends; the post shows them already.
    pending = [(who, text) for c, who, text in (current.lines if current else []) if c == chat_id]
    async with g.db.transaction() as s:
        lines = await conversations.transcript(s, chat_id, keep)
        ticket = await tickets.request_handoff(
            s, ident.telegram_user_id, ident.customer_id, kind, reason,
            staff_chat_id=_staff_chat(g), staff_locale=_staff_locale(g),
            user_name=ident.first_name, transcript=(lines + pending)[-keep:])
    staffed, opens_at = tickets.staffed_now(g.settings.support, g.settings.app.timezone)
    await reply(context, chat_id, ident.locale, "handoff_started", ticket_id=ticket.id,
                staffed=staffed, opens_at=opens_at, complaint=ticket.kind == "complaint",
                already=not ticket.created, buttons=[CANCEL_BUTTON])


def _staff_chat(g: Gateway) -> int:
    staff_chat = g.settings.staff_chat_id
    if staff_chat is None:  # settings require one whenever a real token is set
        raise RuntimeError("telegram.staff_chat_id is not set")
    return staff_chat


async def relay_to_staff(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         ticket: TicketView, ident: IdentityView) -> None:
    """A message from a chat with a ticket goes to staff; the bot itself stays quiet.

    Direct while the ticket is open (a person is waiting); queued behind the ticket's post
    while that is still on its way.
    """
    g = gw(context)
    staff_chat = _staff_chat(g)
    message = update.effective_message
    if message is None:
        return
    header = render("ticket_relay", _staff_locale(g), ticket_id=ticket.id,
                    user_name=ident.first_name, text=message.text or "")
    if ticket.status == "pending":
        async with g.db.transaction() as s:
            await tickets.queue_relay(s, ticket.id, staff_chat, html=header)
            if not message.text:
                await tickets.queue_relay(s, ticket.id, staff_chat,
                                          copy_from=(message.chat_id, message.message_id))
        return
    sent = await send_html(context, staff_chat, header)
    if not message.text:  # photos, voice, files: pass the original along
        sent.append(await copy(context, staff_chat, message))
    async with g.db.transaction() as s:
        for part in sent:
            await tickets.remember_staff_message(s, ticket.id, staff_chat, part.message_id)


async def on_staff_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Staff replied (in the staff group) to a ticket's message: relay it to the customer."""
    message = update.effective_message
    if message is None or message.reply_to_message is None:
        return
    g = gw(context)
    async with g.db.transaction() as s:
        ticket = await tickets.ticket_for_staff_message(s, message.chat_id,
                                                        message.reply_to_message.message_id)
        customer = (await get_identity(s, ticket.telegram_user_id)) if ticket else None
    if ticket is None:
        return
    loc = _staff_locale(g)
    text = message.text or ""
    if text.split(maxsplit=1)[:1] and text.split()[0].split("@")[0] == "/close":
        refusal = await staff_refusal(context, message.from_user.id if message.from_user else 0,
                                      message.chat_id, f"ticket:{ticket.id}:close")
        if refusal is not None:
            await message.reply_text(refusal)
            return
        await close(context, ticket.id, _staff_name(message), message.chat_id)
        return
    if ticket.status != "open":
        await send_html(context, message.chat_id,
                        render("ticket_already_closed", loc, ticket_id=ticket.id))
        return
    try:
        if text:
            await reply(context, ticket.telegram_user_id, customer.locale if customer else loc,
                        "staff_reply", staff=_staff_name(message), text=text)
        else:
            await copy(context, ticket.telegram_user_id, message)
    except TelegramError as exc:  # blocked the bot, deleted the account …
        log.warning("ticket %s: reply not delivered: %s", ticket.id, exc)
        await send_html(context, message.chat_id, render(
            "staff_reply_undelivered", loc, ticket_id=ticket.id, reason=str(exc)[:200]))
        return
    async with g.db.transaction() as s:
        await tickets.staff_replied(s, ticket.id, message.chat_id, message.message_id)


async def on_close_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The 'close ticket' button under a ticket in the staff group."""
    query = update.callback_query
    assert query is not None and query.data is not None
    try:
        ticket_id = int(query.data.rsplit(":", 1)[1])
    except ValueError:
        await query.answer()
        return
    chat_id = query.message.chat.id if query.message else None
    refusal = await staff_refusal(context, query.from_user.id, chat_id,
                                  f"ticket:{ticket_id}:close")
    if refusal is not None:
        await query.answer(refusal, show_alert=True)
        return
    await query.answer()
    name = query.from_user.full_name if query.from_user else "staff"
    await close(context, ticket_id, name, chat_id)


async def staff_refusal(context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int | None,
                        action: str) -> str | None:
    """None if this user may do a staff action here; else the (plain) text to answer with.

    The decision is core.services.staff.require_role; a refusal is audited.
    """
    g = gw(context)
    try:
        async with g.db.transaction() as s:
            try:
                await staff_service.require_role(
                    s, user_id, staff_service.TICKET_ROLES, chat_id,
                    staff_chat_id=g.settings.staff_chat_id, action=action)
            except PermissionDenied as exc:  # caught inside: the audit row commits
                log.warning("refused %s by %s in chat %s: %s", action, user_id, chat_id, exc)
                return plain(render("staff_only", _staff_locale(g)))
    except Exception:
        log.exception("permission check failed for %s", action)
        return plain(render("staff_only", _staff_locale(g)))
    return None


async def close(context: ContextTypes.DEFAULT_TYPE, ticket_id: int, staff: str,
                staff_chat: int | None) -> None:
    """Close the ticket, tell the customer the assistant is back, and confirm to staff."""
    g = gw(context)
    try:
        async with g.db.transaction() as s:
            ticket = await tickets.close_ticket(s, ticket_id, f"staff:{staff}")
            customer = await get_identity(s, ticket.telegram_user_id)
    except NotFound:
        return
    loc = _staff_locale(g)
    if ticket.just_closed:
        try:
            await reply(context, ticket.telegram_user_id, customer.locale if customer else loc,
                        "handoff_closed", ticket_id=ticket.id)
        except TelegramError as exc:
            log.warning("ticket %s: closing notice not delivered: %s", ticket.id, exc)
    if staff_chat is not None:
        await send_html(context, staff_chat, render("ticket_closed_staff", loc,
                                                    ticket_id=ticket.id, staff=staff))


async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel: the customer withdraws their hand-off; the assistant answers again."""
    assert update.effective_chat is not None
    await _cancel(context, update.effective_chat.id)


async def on_cancel_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The 'cancel' button under the hand-off confirmation."""
    query = update.callback_query
    assert query is not None and update.effective_chat is not None
    await query.answer()
    await _cancel(context, update.effective_chat.id)


async def _cancel(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    current = turn(context)
    assert current is not None and current.ident is not None
    ident = current.ident
    g = gw(context)
    async with g.db.transaction() as s:
        ticket = await tickets.cancel_ticket(s, ident.telegram_user_id)
    if ticket is None:
        await reply(context, chat_id, ident.locale, "handoff_nothing_to_cancel")
        return
    await reply(context, chat_id, ident.locale, "handoff_cancelled", ticket_id=ticket.id)
    staff_chat = g.settings.staff_chat_id
    if staff_chat is not None:
        try:
            await send_html(context, staff_chat, render(
                "ticket_cancelled_staff", _staff_locale(g), ticket_id=ticket.id,
                user_name=ident.first_name))
        except TelegramError as exc:
            log.warning("ticket %s: cancel notice to staff failed: %s", ticket.id, exc)


def _staff_name(message: Message) -> str:
    user = message.from_user
    return user.first_name if user else "staff"


def register(app: Application) -> None:
    """The staff group (replies, /close, the close button) and the customer's cancel."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    staff_chat = gw_settings_staff_chat(app)
    if staff_chat is not None:
        app.add_handler(MessageHandler(filters.Chat(staff_chat) & filters.REPLY, on_staff_reply))
    app.add_handler(CallbackQueryHandler(on_close_button, pattern=r"^ticket:close:"))
    app.add_handler(CallbackQueryHandler(on_cancel_button, pattern=rf"^{CANCEL_PAYLOAD}$"))
    app.add_handler(CommandHandler("cancel", cancel_command, filters=private))


def gw_settings_staff_chat(app: Application) -> int | None:
    """The staff group's chat id from the gateway's settings."""
    return app.bot_data["gateway"].settings.staff_chat_id

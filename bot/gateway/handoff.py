"""Human hand-off: open a ticket, post it to the staff group, relay both ways, cancel, close.

Staff posts and relays are sent directly (a person is waiting) through bot.gateway.outbound.
A ticket is 'pending' until its staff post is sent, 'open' after; if staff cannot be reached
it becomes 'unreachable', the customer is told, and the assistant answers them again.
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
from bot.gateway.render import render
from core.errors import NotFound
from core.services import conversations, tickets
from core.services.accounts import IdentityView, get_identity
from core.services.tickets import TicketView

log = logging.getLogger(__name__)

CANCEL_PAYLOAD = "ticket:cancel"
CANCEL_BUTTON = {"label_key": "button_cancel_handoff", "payload": CANCEL_PAYLOAD}


def _staff_locale(g: Gateway) -> str:
    return g.settings.app.default_locale


async def start_handoff(context: ContextTypes.DEFAULT_TYPE, chat_id: int, ident: IdentityView,
                        kind: str, reason: str) -> None:
    """Open (or reuse) the chat's ticket, post it to the staff group, and tell the user."""
    g = gw(context)
    async with g.db.transaction() as s:
        ticket = await tickets.open_ticket(s, ident.telegram_user_id, ident.customer_id, kind,
                                           reason)
        lines = await conversations.transcript(s, chat_id, g.settings.support.transcript_lines)
    current = turn(context)
    if current is not None:  # this turn's lines are written when it ends
        lines += [(who, text) for c, who, text in current.lines if c == chat_id]
    lines = lines[-g.settings.support.transcript_lines:]
    if ticket.status == "pending" and not await _post_to_staff(context, ticket, ident, reason,
                                                               lines):
        await reply(context, chat_id, ident.locale, "handoff_unreachable", ticket_id=ticket.id)
        return
    staffed, opens_at = tickets.staffed_now(g.settings.support, g.settings.app.timezone)
    await reply(context, chat_id, ident.locale, "handoff_started", ticket_id=ticket.id,
                staffed=staffed, opens_at=opens_at, complaint=ticket.kind == "complaint",
                already=not ticket.created, buttons=[CANCEL_BUTTON])


async def _post_to_staff(context: ContextTypes.DEFAULT_TYPE, ticket: TicketView,
                         ident: IdentityView, reason: str, lines: list[tuple[str, str]]
                         ) -> bool:
    """Post the ticket (split if long, close button on the last part); False if it failed."""
    g = gw(context)
    staff_chat = g.settings.staff_chat_id
    loc = _staff_locale(g)
    try:
        if staff_chat is None:
            raise RuntimeError("telegram.staff_chat_id is not set")
        text = render("ticket_staff_post", loc, ticket_id=ticket.id, kind=ticket.kind,
                      customer_code=ticket.customer_code or "",
                      customer_name=ticket.customer_name or "", user_name=ident.first_name,
                      user_id=ident.telegram_user_id, reason=reason,
                      transcript=[{"who": w, "text": t} for w, t in lines])
        posted = await send_html(context, staff_chat, text, [
            {"label_key": "button_close_ticket", "payload": f"ticket:close:{ticket.id}"}], loc)
    except (TelegramError, RuntimeError) as exc:
        log.error("ticket %s: staff post failed: %s", ticket.id, exc)
        async with g.db.transaction() as s:
            await tickets.mark_unreachable(s, ticket.id, f"{type(exc).__name__}: {exc}")
        return False
    async with g.db.transaction() as s:
        await tickets.staff_post_sent(s, ticket.id, staff_chat, posted[0].message_id)
        for part in posted[1:]:
            await tickets.remember_staff_message(s, ticket.id, staff_chat, part.message_id)
    return True


async def relay_to_staff(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         ticket: TicketView, ident: IdentityView) -> None:
    """A message from a chat with an open ticket goes to staff; the bot itself stays quiet."""
    g = gw(context)
    staff_chat = g.settings.staff_chat_id
    message = update.effective_message
    if staff_chat is None or message is None:
        return
    header = render("ticket_relay", _staff_locale(g), ticket_id=ticket.id,
                    user_name=ident.first_name, text=message.text or "")
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
    await query.answer()
    try:
        ticket_id = int(query.data.rsplit(":", 1)[1])
    except ValueError:
        return
    chat_id = query.message.chat.id if query.message else None
    name = query.from_user.full_name if query.from_user else "staff"
    await close(context, ticket_id, name, chat_id)


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

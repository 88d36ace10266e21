"""Human hand-off in the gateway: open a ticket, post it to the staff group, relay both ways."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.gateway.context import Gateway
from bot.gateway.render import plain, render
from core.errors import NotFound, PermissionDenied
from core.services import staff as staff_service
from core.services import tickets
from core.services.accounts import IdentityView
from core.services.tickets import TicketView

log = logging.getLogger(__name__)


def _gw(context: ContextTypes.DEFAULT_TYPE) -> Gateway:
    return context.bot_data["gateway"]


def _staff_locale(g: Gateway) -> str:
    return g.settings.app.default_locale


async def start_handoff(context: ContextTypes.DEFAULT_TYPE, chat_id: int, ident: IdentityView,
                        kind: str, reason: str) -> None:
    """Open (or reuse) the chat's ticket, tell the user, and post it to the staff group."""
    from bot.gateway.handlers import reply

    g = _gw(context)
    async with g.db.transaction() as s:
        ticket = await tickets.open_ticket(s, ident.telegram_user_id, ident.customer_id, kind,
                                           reason)
    staffed, opens_at = tickets.staffed_now(g.settings.support, g.settings.app.timezone)
    await reply(context, chat_id, ident.locale, "handoff_started", ticket_id=ticket.id,
                staffed=staffed, opens_at=opens_at, complaint=ticket.kind == "complaint",
                already=not ticket.created)
    if not ticket.created:
        return
    staff_chat = g.settings.staff_chat_id
    if staff_chat is None:
        log.warning("ticket %s opened but telegram.staff_chat_id is not set", ticket.id)
        return
    loc = _staff_locale(g)
    text = render("ticket_staff_post", loc, ticket_id=ticket.id, kind=ticket.kind,
                  customer_code=ticket.customer_code or "", customer_name=ticket.customer_name
                  or "", user_name=ident.first_name, user_id=ident.telegram_user_id,
                  reason=reason, transcript=[{"who": w, "text": t}
                                             for w, t in g.transcript(chat_id)])
    button = InlineKeyboardMarkup([[InlineKeyboardButton(
        render("button_close_ticket", loc), callback_data=f"ticket:close:{ticket.id}")]])
    posted = await context.bot.send_message(staff_chat, text, parse_mode=ParseMode.HTML,
                                            reply_markup=button)
    async with g.db.transaction() as s:
        await tickets.remember_staff_message(s, ticket.id, staff_chat, posted.message_id)


async def relay_to_staff(update: Update, context: ContextTypes.DEFAULT_TYPE,
                         ticket: TicketView, ident: IdentityView) -> None:
    """A message from a chat with an open ticket goes to staff; the bot itself stays quiet."""
    g = _gw(context)
    staff_chat = g.settings.staff_chat_id
    message = update.effective_message
    if staff_chat is None or message is None:
        return
    loc = _staff_locale(g)
    header = render("ticket_relay", loc, ticket_id=ticket.id, user_name=ident.first_name,
                    text=message.text or "")
    sent = await context.bot.send_message(staff_chat, header, parse_mode=ParseMode.HTML)
    copied = None
    if not message.text:  # photos, voice, files: pass the original along
        copied = await context.bot.copy_message(staff_chat, message.chat_id, message.message_id)
    async with g.db.transaction() as s:
        await tickets.remember_staff_message(s, ticket.id, staff_chat, sent.message_id)
        if copied is not None:
            await tickets.remember_staff_message(s, ticket.id, staff_chat, copied.message_id)


async def on_staff_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Staff replied (in the staff group) to a ticket's message: relay it to the customer."""
    message = update.effective_message
    if message is None or message.reply_to_message is None:
        return
    g = _gw(context)
    async with g.db.transaction() as s:
        ticket = await tickets.ticket_for_staff_message(s, message.chat_id,
                                                        message.reply_to_message.message_id)
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
        await message.reply_text(render("ticket_already_closed", loc, ticket_id=ticket.id),
                                 parse_mode=ParseMode.HTML)
        return
    from bot.gateway.handlers import reply
    from core.services.accounts import get_identity

    async with g.db.transaction() as s:
        customer = await get_identity(s, ticket.telegram_user_id)
    locale = customer.locale if customer else loc
    if text:
        await reply(context, ticket.telegram_user_id, locale, "staff_reply",
                    staff=_staff_name(message), text=text)
    else:
        await context.bot.copy_message(ticket.telegram_user_id, message.chat_id,
                                       message.message_id)
    async with g.db.transaction() as s:
        await tickets.remember_staff_message(s, ticket.id, message.chat_id, message.message_id)


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
    g = _gw(context)
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
    from bot.gateway.handlers import reply
    from core.services.accounts import get_identity

    g = _gw(context)
    try:
        async with g.db.transaction() as s:
            ticket = await tickets.close_ticket(s, ticket_id, f"staff:{staff}")
            customer = await get_identity(s, ticket.telegram_user_id)
    except NotFound:
        return
    loc = _staff_locale(g)
    if ticket.just_closed:
        await reply(context, ticket.telegram_user_id, customer.locale if customer else loc,
                    "handoff_closed", ticket_id=ticket.id)
    if staff_chat is not None:
        await context.bot.send_message(staff_chat, render("ticket_closed_staff", loc,
                                                          ticket_id=ticket.id, staff=staff),
                                       parse_mode=ParseMode.HTML)


def _staff_name(message: Message) -> str:
    user = message.from_user
    return user.first_name if user else "staff"

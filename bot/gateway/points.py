"""Reward points in chat: /points, /redeem, /top, the `pts:` buttons, and staff decisions.

Thin: parse the command or button (payloads are attacker-controlled: community.points.chat
parses them and checks every id against the presser) → one unit of work calling
community.points.chat → render the Screen it returns. The intents points_balance and
redeem_points reach the same screens through the action server (bot/actions/points.py).

Staff approve or reject a redemption request with the buttons under its post in the staff
group (only there, only admin/customer_service — core.services.staff.require_role). Reject
asks for a reason: staff reply to the bot's prompt (or send `/reject <id> <reason>`); the
refund is made once by the ledger, and the dealer is told through the outbox.
"""

from __future__ import annotations

import logging

from telegram import Update
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
from bot.gateway.outbound import reply, send_html
from bot.gateway.render import plain, render
from community.points import chat
from community.points.chat import Screen
from core.errors import DomainError, PermissionDenied
from core.services.accounts import IdentityView

log = logging.getLogger(__name__)

DEALER_VERBS = ("cat", "pick", "ok", "no", "top")
STAFF_VERBS = ("approve", "reject")
# Replies to the reason prompt are looked at in their own handler group: in group 0 the
# hand-off's staff-reply handler takes every reply in the staff group first.
PROMPT_GROUP = 1


def _ident(context: ContextTypes.DEFAULT_TYPE) -> IdentityView:
    current = turn(context)
    assert current is not None and current.ident is not None, "private updates are identified"
    return current.ident


def _staff_locale(g: Gateway) -> str:
    return g.settings.app.default_locale


async def _show(context: ContextTypes.DEFAULT_TYPE, chat_id: int, locale: str,
                screen: Screen) -> None:
    await reply(context, chat_id, locale, screen.template, buttons=screen.buttons or None,
                **screen.vars)


async def _dealer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, verb: str,
                  args: list[str]) -> bool:
    """One dealer step (a command or a button), in one unit of work; errors in words.

    True if the step was done (False: the user was told why not)."""
    g = gw(context)
    ident = _ident(context)
    try:
        async with g.db.transaction() as s:
            account = chat.account_of(ident, g.settings.points)
            screen = await _dealer_step(s, g, ident, account, verb, args)
    except DomainError as exc:  # the unit of work rolled back: nothing half-done
        await reply(context, chat_id, ident.locale, exc.template, **exc.vars)
        return False
    if screen is None:
        await reply(context, chat_id, ident.locale, "button_expired")
        return False
    await _show(context, chat_id, ident.locale, screen)
    return True


async def _dealer_step(s, g: Gateway, ident: IdentityView, account: int, verb: str,  # type: ignore[no-untyped-def]
                       args: list[str]) -> Screen | None:
    if verb == "balance":
        return await chat.balance_screen(s, account, cfg=g.settings.points)
    if verb == "cat":
        return await chat.catalogue_screen(s, account, chat.int_arg(args) or 0)
    if verb == "top":
        scope = args[0] if args else "region"
        period = args[1] if len(args) > 1 else "month"
        return await chat.leaderboard_screen(s, account, scope, period)
    ref = chat.int_arg(args)
    if ref is None:
        return None
    if verb == "pick":
        return await chat.choose(s, ident.telegram_user_id, account, ref)
    if verb == "ok":
        return await chat.confirm(s, ref, ident.telegram_user_id, account,
                                  staff_chat_id=g.settings.staff_chat_id,
                                  staff_locale=_staff_locale(g))
    if verb == "no":
        return await chat.cancel(s, ref, ident.telegram_user_id, account)
    return None


async def points_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/points: balance, pending, debt, expiring soon, recent history."""
    assert update.effective_chat is not None
    await _dealer(context, update.effective_chat.id, "balance", [])


async def redeem_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/redeem: the rewards catalogue with buttons."""
    assert update.effective_chat is not None
    await _dealer(context, update.effective_chat.id, "cat", ["0"])


async def top_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/top: the leaderboard of the dealer's region this month (buttons switch)."""
    assert update.effective_chat is not None
    await _dealer(context, update.effective_chat.id, "top", ["region", "month"])


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A `pts:` button: dealer steps in a private chat, staff decisions in the staff group."""
    query = update.callback_query
    assert query is not None and update.effective_chat is not None
    data = query.data or ""
    chat_id = update.effective_chat.id
    if update.effective_chat.type == "private":
        parsed = chat.parse(data, DEALER_VERBS)
        await query.answer()
        if parsed is None:
            await reply(context, chat_id, _ident(context).locale, "button_expired")
            return
        verb, args = parsed
        if await _dealer(context, chat_id, verb, args) and verb in ("ok", "no"):
            await _drop_keyboard(query)  # the confirm buttons have done their job
        return
    parsed = chat.parse(data, STAFF_VERBS)
    request_id = chat.int_arg(parsed[1]) if parsed else None
    if parsed is None or request_id is None:
        await query.answer()
        return
    await _staff_decision(update, context, parsed[0], request_id)


async def _drop_keyboard(query) -> None:  # type: ignore[no-untyped-def]
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError:  # cosmetic: the one-time row already makes a second tap harmless
        log.debug("could not remove the keyboard", exc_info=True)


async def _staff_decision(update: Update, context: ContextTypes.DEFAULT_TYPE, verb: str,
                          request_id: int) -> None:
    query = update.callback_query
    assert query is not None and query.from_user is not None
    g = gw(context)
    chat_id = query.message.chat.id if query.message else None
    loc = _staff_locale(g)
    name = query.from_user.full_name or "staff"
    prompt: Screen | None = None
    result: Screen | None = None
    try:
        async with g.db.transaction() as s:
            try:
                staff_id = await chat.staff_member(
                    s, query.from_user.id, chat_id, staff_chat_id=g.settings.staff_chat_id,
                    action=f"redemption:{request_id}:{verb}", cfg=g.settings.points)
            except PermissionDenied:  # caught inside: the audit row commits
                staff_id = None
            if staff_id is not None:
                if verb == "approve":
                    result = await chat.approve(s, request_id, staff_id, name)
                else:
                    prompt = await chat.ask_reason(s, request_id)
    except DomainError as exc:
        await query.answer(plain(render(exc.template, loc, **exc.vars)), show_alert=True)
        return
    if staff_id is None:
        await query.answer(plain(render("points_staff_only", loc)), show_alert=True)
        return
    await query.answer()
    assert chat_id is not None
    if result is not None:
        await _drop_keyboard(query)
        await _show(context, chat_id, loc, result)
        return
    assert prompt is not None
    sent = await send_html(context, chat_id, render(prompt.template, loc, **prompt.vars))
    async with g.db.transaction() as s:
        await chat.remember_prompt(s, chat_id, sent[-1].message_id, request_id,
                                   query.from_user.id,
                                   query.message.message_id if query.message else None)


async def _reject(context: ContextTypes.DEFAULT_TYPE, user_id: int, name: str, chat_id: int,
                  request_id: int, reason: str, post_message_id: int | None = None) -> None:
    g = gw(context)
    loc = _staff_locale(g)
    result: Screen | None = None
    try:
        async with g.db.transaction() as s:
            try:
                staff_id = await chat.staff_member(
                    s, user_id, chat_id, staff_chat_id=g.settings.staff_chat_id,
                    action=f"redemption:{request_id}:reject", cfg=g.settings.points)
            except PermissionDenied:
                staff_id = None
            if staff_id is not None:
                result = await chat.reject(s, request_id, staff_id, name, reason)
    except DomainError as exc:
        await send_html(context, chat_id, render(exc.template, loc, **exc.vars))
        return
    if result is None:
        await send_html(context, chat_id, render("points_staff_only", loc))
        return
    await _show(context, chat_id, loc, result)
    if post_message_id is not None:  # the request's Approve / Reject buttons are done
        try:
            await context.bot.edit_message_reply_markup(chat_id, post_message_id,
                                                        reply_markup=None)
        except TelegramError:
            log.debug("could not remove the request's buttons", exc_info=True)


async def on_reason_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Staff replied to a reason prompt: reject that request with the reply as the reason."""
    message = update.effective_message
    if (message is None or message.reply_to_message is None or message.from_user is None
            or not message.text):
        return
    g = gw(context)
    async with g.db.transaction() as s:
        prompt = await chat.prompt_request(s, message.chat_id,
                                           message.reply_to_message.message_id)
    if prompt is None:
        return
    await _reject(context, message.from_user.id, message.from_user.first_name or "staff",
                  message.chat_id, prompt[0], message.text, prompt[1])


async def reject_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reject <request id> <reason> in the staff group."""
    message = update.effective_message
    assert message is not None and message.from_user is not None
    args = context.args or []
    request_id = chat.int_arg(args)
    if request_id is None:
        await send_html(context, message.chat_id, render("points_reject_usage",
                                                         _staff_locale(gw(context))))
        return
    await _reject(context, message.from_user.id, message.from_user.first_name or "staff",
                  message.chat_id, request_id, " ".join(args[1:]))


def register(app: Application) -> None:
    """/points, /redeem, /top, the `pts:` buttons, /reject and reason replies (staff group)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("points", points_command, filters=private))
    app.add_handler(CommandHandler("redeem", redeem_command, filters=private))
    app.add_handler(CommandHandler("top", top_command, filters=private))
    app.add_handler(CallbackQueryHandler(on_button, pattern=r"^pts:"))
    staff_chat = app.bot_data["gateway"].settings.staff_chat_id
    if staff_chat is not None:
        app.add_handler(CommandHandler("reject", reject_command,
                                       filters=filters.Chat(staff_chat)))
        app.add_handler(MessageHandler(filters.Chat(staff_chat) & filters.REPLY & filters.TEXT
                                       & ~filters.COMMAND, on_reason_reply),
                        group=PROMPT_GROUP)

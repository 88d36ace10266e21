"""Training in Telegram: a trainer pushes a lesson or a course to dealers (private chat).

- `/push <course> [lesson=<key>] <segment> [at=…] [every=mon@09:00] [tz=Europe/Berlin]` →
  a preview (who, how many reachable, unknown codes, when in app.timezone and the trainer's
  zone) stored as a draft push, with Send / Cancel (`trnp:ok:<id>`, `trnp:no:<id>`);
- Send makes the draft active by a conditional UPDATE: a double tap fires once;
- `/pushes` lists the scheduled pushes, each with `trnp:cancel:<id>`.

Thin: parse → one unit of work calling training.push → render its Screen. Only staff whose
role is in settings.training.push_roles; anyone else is told so in words (and audited).
Payloads are parsed strictly (training.push.parse_payload) and checked again by the service
(a draft is confirmed by its author only).
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.gateway.context import gw, turn
from bot.gateway.outbound import reply
from core.errors import DomainError, PermissionDenied
from core.screens import Screen
from training import push

log = logging.getLogger(__name__)


def _locale(context: ContextTypes.DEFAULT_TYPE) -> str:
    current = turn(context)
    if current is not None and current.ident is not None:
        return current.ident.locale
    return gw(context).settings.app.default_locale


def _args(update: Update) -> str:
    text = (update.effective_message.text or "") if update.effective_message else ""
    parts = text.split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


async def _show(context: ContextTypes.DEFAULT_TYPE, chat_id: int, screen: Screen) -> None:
    await reply(context, chat_id, _locale(context), screen.template,
                buttons=screen.buttons or None, **screen.vars)


async def _draft(s, context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int,  # type: ignore[no-untyped-def]
                 text: str) -> Screen:
    settings = gw(context).settings
    words = text.split(maxsplit=1)
    if not words or "=" in words[0] or words[0] == "all":
        return Screen("training_push_usage")
    rest = words[1] if len(words) > 1 else ""
    opts = push.command_options(rest)
    view = await push.create_push(
        s, course_code=words[0], item_key=opts.get("lesson"), segment=push.parse_segment(rest),
        actor=f"tg:{user_id}", report_chat_id=chat_id, at=opts.get("at"),
        weekly=opts.get("every"), timezone=opts.get("tz"), draft=True,
        app_timezone=settings.app.timezone)
    return push.preview_screen(view, settings.app.timezone, opts.get("tz"))


async def _step(context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int, verb: str,
                arg: str | int) -> Screen:
    """One trainer step in one unit of work: role check, then the service."""
    g = gw(context)
    tz = g.settings.app.timezone
    actor = f"tg:{user_id}"
    try:
        async with g.db.transaction() as s:
            try:
                await push.require_pusher(s, user_id, g.settings.training.push_roles)
            except PermissionDenied:  # the audit row commits with this unit of work
                return Screen("training_push_refused")
            if verb == "push":
                return await _draft(s, context, user_id, chat_id, str(arg))
            if verb == "list":
                return push.list_screen(await push.list_pushes(s), tz)
            push_id = int(arg)
            if verb == "ok":
                view = await push.confirm(s, push_id, actor)
                return push.result_screen(view, tz) if view else Screen("training_push_gone")
            if verb == "no":
                dropped = await push.drop_draft(s, push_id, actor)
                return Screen("training_push_dropped" if dropped else "training_push_gone",
                              {"id": push_id})
            cancelled = await push.cancel(s, push_id, actor)
            return Screen("training_push_cancelled" if cancelled else "training_push_gone",
                          {"id": push_id})
    except DomainError as exc:  # rolled back: nothing half-made
        return Screen(exc.template, dict(exc.vars))


async def cmd_push(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/push <course> [lesson=…] <segment> [at=…] [every=…] [tz=…]: a preview to confirm."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    await _show(context, chat.id, await _step(context, user.id, chat.id, "push",
                                              _args(update)))


async def cmd_pushes(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/pushes: the scheduled pushes, a cancel button each."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    await _show(context, chat.id, await _step(context, user.id, chat.id, "list", 0))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send / Cancel under a preview, Cancel under /pushes (`trnp:` payloads)."""
    query = update.callback_query
    chat = update.effective_chat
    if query is None or chat is None:
        return
    await query.answer()
    parsed = push.parse_payload(query.data)
    if parsed is None:
        await reply(context, chat.id, _locale(context), "button_expired")
        return
    verb, push_id = parsed
    screen = await _step(context, query.from_user.id, chat.id, verb, push_id)
    if verb in ("ok", "no") and screen.template != "training_push_refused":
        try:  # the preview's buttons have done their job
            await query.edit_message_reply_markup(reply_markup=None)
        except TelegramError as exc:
            log.debug("could not drop the preview's buttons: %s", exc)
    await _show(context, chat.id, screen)


def register(app: Application) -> None:
    """/push, /pushes and the trnp: buttons, in private chats."""
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("push", cmd_push, filters=private))
    app.add_handler(CommandHandler("pushes", cmd_pushes, filters=private))
    app.add_handler(CallbackQueryHandler(on_button, pattern=r"^trnp:"))

"""Training in Telegram: progress reports for staff and certificate checks for anyone.

- `/progress <course> [group=<chat id|title>] [csv]`, `/progress dealer=<code> [csv]`: staff
  in the staff group whose role is in training.report_roles; anyone else is told, in words,
  who may ask and where. `csv` sends the report as a spreadsheet (a document, right away:
  someone is waiting for it).
- `/verify <code>`: anyone, anywhere (dealers, retailers, staff, a customer's customer).

Thin: parse (training.reports.parse_query / the code as typed) → one unit of work calling
training/ services → render the Screen. The `trn:cert:` button is learning's.
"""

from __future__ import annotations

import logging

from telegram import InputFile, Update
from telegram.ext import Application, CommandHandler, ContextTypes

from bot.gateway.context import gw, turn
from bot.gateway.outbound import reply
from bot.gateway.render import render
from core.errors import DomainError, NotFound, PermissionDenied
from training import certificates, reports

log = logging.getLogger(__name__)


def _args(update: Update) -> str:
    text = (update.effective_message.text or "") if update.effective_message else ""
    parts = text.split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


def _locale(context: ContextTypes.DEFAULT_TYPE) -> str:
    current = turn(context)
    if current is not None and current.ident is not None and current.ident.locale:
        return current.ident.locale
    return gw(context).settings.app.default_locale


async def cmd_progress(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/progress …: a course's, a group's or a dealer's training progress (report roles)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    g = gw(context)
    locale = _locale(context)
    refused: PermissionDenied | None = None
    async with g.db.transaction() as s:  # the refusal's audit row commits with it
        try:
            await reports.require_reporter(s, user.id, chat.id,
                                           roles=g.settings.training.report_roles,
                                           staff_chat_id=g.settings.staff_chat_id)
        except PermissionDenied as exc:
            refused = exc
    if refused is not None:
        await reply(context, chat.id, locale, refused.template, **refused.vars)
        return
    query = reports.parse_query(_args(update))
    if query is None:
        await reply(context, chat.id, locale, "training_progress_usage")
        return
    try:
        async with g.db.transaction() as s:
            if query.csv:
                name, data, rows = await reports.csv_for(s, course=query.course, group=query.group,
                                                   dealer=query.dealer)
            else:
                screen = await reports.query_screen(s, query)
    except NotFound as exc:
        await reply(context, chat.id, locale, "training_progress_not_found",
                    what=exc.vars.get("what", ""), ref=exc.vars.get("ref", ""))
        return
    except DomainError as exc:
        await reply(context, chat.id, locale, exc.template, **exc.vars)
        return
    if query.csv:
        await context.bot.send_document(
            chat.id, InputFile(data, filename=name),
            caption=render("training_progress_csv_caption", locale, name=name, count=rows),
            parse_mode="HTML")
        return
    await reply(context, chat.id, locale, screen.template, buttons=screen.buttons or None,
                **screen.vars)


async def cmd_verify(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/verify <code>: is this a real certificate, and whose?"""
    chat = update.effective_chat
    if chat is None:
        return
    locale = _locale(context)
    typed = _args(update)
    if not typed.strip():
        await reply(context, chat.id, locale, "training_verify_usage")
        return
    async with gw(context).db.transaction() as s:
        screen = await certificates.verify(s, typed)
    await reply(context, chat.id, locale, screen.template, **screen.vars)


def register(app: Application) -> None:
    """/progress (refused in words outside the staff group or role) and /verify."""
    app.add_handler(CommandHandler("progress", cmd_progress))
    app.add_handler(CommandHandler("verify", cmd_verify))

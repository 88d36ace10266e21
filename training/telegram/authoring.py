"""Training in Telegram: a trainer writes a course in a guided flow (training/authoring.py).

- `/newcourse [code]`, `/editcourse <code>`: private chats; anyone else is refused in words.
- The `trna:` buttons of the flow (the service parses each payload and checks the draft is
  the presser's and open).
- Messages while a trainer has an open draft, and `/cancel` then: `DraftMessages`, the first
  handler of group 0. It takes a private message only when the sender has an open draft;
  otherwise the update goes on to the handler the group would have chosen without it (the
  hand-off's /cancel, the assistant's free text …) — a PTB filter cannot ask the database,
  so the "does not match" is decided in the callback. Customers are let through without a
  database read (the turn already knows they are not staff).
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Message, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.gateway.context import gw, turn
from bot.gateway.outbound import reply
from bot.gateway.render import plain, render
from core.errors import DomainError
from core.screens import Screen
from training import authoring
from training.authoring import Author, Incoming

log = logging.getLogger(__name__)

GROUP = 0
PRIVATE = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
CANCEL = filters.Regex(r"^/cancel(@\w+)?(\s|$)")


def _author(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Author | None:
    current = turn(context)
    chat = update.effective_chat
    if current is None or current.ident is None or chat is None or chat.type != "private":
        return None
    return Author(current.ident.telegram_user_id, chat.id, current.ident.locale)


async def _run(update: Update, context: ContextTypes.DEFAULT_TYPE, step: Any
               ) -> tuple[Author, Screen | None] | None:
    """One unit of work around a service step: (who, the screen to show — a DomainError's
    in words, the step rolled back — or None when the step declined); None outside a
    private chat."""
    who = _author(update, context)
    if who is None:
        return None
    g = gw(context)
    try:
        async with g.db.transaction() as s:
            return who, await step(s, who, g.settings.training)
    except DomainError as exc:
        return who, Screen(exc.template, dict(exc.vars))


async def _show(context: ContextTypes.DEFAULT_TYPE, who: Author, screen: Screen) -> None:
    await reply(context, who.chat_id, who.locale, screen.template,
                buttons=screen.buttons or None, **screen.vars)


async def new_course(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/newcourse [code]: start writing a course."""
    code = (context.args or [""])[0]
    done = await _run(update, context,
                      lambda s, who, cfg: authoring.new_course(s, who, code, cfg=cfg))
    if done is not None and done[1] is not None:
        await _show(context, *done)  # type: ignore[arg-type]


async def edit_course(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/editcourse <code>: add lessons or quizzes to an existing course."""
    if not context.args:
        who = _author(update, context)
        if who is not None:
            await reply(context, who.chat_id, who.locale, "training_author_edit_usage")
        return
    code = context.args[0]
    done = await _run(update, context,
                      lambda s, who, cfg: authoring.edit_course(s, who, code, cfg=cfg))
    if done is not None and done[1] is not None:
        await _show(context, *done)  # type: ignore[arg-type]


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A `trna:` button of the flow."""
    query = update.callback_query
    assert query is not None
    data = query.data
    parsed = authoring.parse_payload(data)
    if parsed is not None and parsed[0] == "pv":  # a dealer's button in a preview
        current = turn(context)
        locale = current.ident.locale if current and current.ident else "en"
        await query.answer(plain(render("training_author_preview_button", locale)),
                           show_alert=True)
        return
    await query.answer()
    done = await _run(update, context,
                      lambda s, who, cfg: authoring.press(s, who, data, cfg=cfg))
    if done is not None and done[1] is not None:
        await _show(context, *done)  # type: ignore[arg-type]


def incoming(message: Message) -> Incoming:
    """What the trainer sent, as the service reads it (text with its formatting, the largest
    photo, a document's file and name; anything else is `other`)."""
    if message.text is not None:
        return Incoming("text", text=message.text, html=message.text_html_urled)
    caption = message.caption or ""
    caption_html = message.caption_html_urled if message.caption else ""
    if message.photo:
        return Incoming("photo", text=caption, html=caption_html,
                        file_id=message.photo[-1].file_id)
    if message.document is not None:
        return Incoming("document", text=caption, html=caption_html,
                        file_id=message.document.file_id,
                        file_name=message.document.file_name or "")
    return Incoming("other")


async def on_draft_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A trainer's message (or /cancel) into their open draft; False when it is not the
    flow's (no open draft, or not staff at all) and should go on."""
    current = turn(context)
    message = update.effective_message
    if current is None or current.ident is None or current.ident.staff_id is None:
        return False  # customers never write courses: no database read for them
    if message is None:
        return False
    cancel = bool(message.text and CANCEL.check_update(update))
    done = await _run(update, context, lambda s, who, cfg: (
        authoring.cancel_open(s, who) if cancel
        else authoring.receive(s, who, incoming(message), cfg=cfg)))
    if done is None or done[1] is None:
        return False
    await _show(context, *done)  # type: ignore[arg-type]
    return True


class DraftMessages(MessageHandler):
    """A MessageHandler whose callback may decline the update (return False): then the next
    handler of its group that matches handles it, as if this one had not matched."""

    def __init__(self, callback: Any, group: int) -> None:
        super().__init__(PRIVATE & ~filters.StatusUpdate.ALL & (~filters.COMMAND | CANCEL),
                         callback)
        self.group = group

    async def handle_update(self, update: Any, application: Any, check_result: Any,
                            context: Any) -> Any:
        """Run the callback; if it declined, hand the update to the next matching handler."""
        if await super().handle_update(update, application, check_result, context):
            return None
        handlers = application.handlers.get(self.group, [])
        for handler in handlers[handlers.index(self) + 1:] if self in handlers else []:
            check = handler.check_update(update)
            if check is not None and check is not False:
                return await handler.handle_update(update, application, check, context)
        return None


def register(app: Application) -> None:
    """/newcourse, /editcourse, the `trna:` buttons, and the open draft's messages (first in
    group 0, so /cancel reaches an open draft before the hand-off's /cancel)."""
    app.add_handler(CommandHandler("newcourse", new_course, filters=PRIVATE))
    app.add_handler(CommandHandler("editcourse", edit_course, filters=PRIVATE))
    app.add_handler(CallbackQueryHandler(on_button, pattern=r"^trna:"))
    drafts = DraftMessages(on_draft_message, GROUP)
    app.add_handler(drafts, group=GROUP)
    handlers = app.handlers[GROUP]
    handlers.insert(0, handlers.pop(handlers.index(drafts)))

"""/language and the language buttons."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.gateway.context import gw, turn
from bot.gateway.outbound import reply
from core.i18n import LOCALES, normalize_locale
from core.services import accounts

LANGUAGE_LABELS = {"zh-Hans": "简体中文", "zh-Hant": "繁體中文", "en": "English"}


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language [en|zh-Hans|zh-Hant]: set the reply language, or pick one from buttons."""
    assert update.effective_chat is not None and update.effective_user is not None
    current = turn(context)
    assert current is not None and current.ident is not None
    chat_id = update.effective_chat.id
    if context.args:
        chosen = normalize_locale(" ".join(context.args))
        if chosen:
            async with gw(context).db.transaction() as s:
                await accounts.set_locale(s, update.effective_user.id, chosen)
            await reply(context, chat_id, chosen, "language_set")
            return
    await reply(context, chat_id, current.ident.locale, "language_pick",
                buttons=[{"label": LANGUAGE_LABELS[loc], "payload": f"lang:{loc}"}
                         for loc in LOCALES])


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


def register(app: Application) -> None:
    """/language and its buttons."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler("language", language, filters=private))
    app.add_handler(CallbackQueryHandler(on_language_button, pattern=r"^lang:"))

"""The "tell me when it's back" button under an out-of-stock answer."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot.gateway.context import gw, turn
from bot.gateway.outbound import reply
from core.errors import DomainError
from core.services import notifications


async def on_notify_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """'Tell me when it is back': subscribe to a back-in-stock notification."""
    query = update.callback_query
    assert query is not None and query.data is not None and update.effective_user is not None
    await query.answer()
    current = turn(context)
    assert current is not None and current.ident is not None
    locale, user_id = current.ident.locale, update.effective_user.id
    sku = query.data.split(":", 1)[1]
    try:
        async with gw(context).db.transaction() as s:
            new = await notifications.subscribe(s, user_id, sku)
    except DomainError as exc:
        await reply(context, user_id, locale, exc.template, **exc.vars)
        return
    await reply(context, user_id, locale, "restock_subscribed", sku=sku, already=not new)


def register(app: Application) -> None:
    """The back-in-stock button (no NLU needed)."""
    app.add_handler(CallbackQueryHandler(on_notify_button, pattern=r"^notify:"))

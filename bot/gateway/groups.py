"""Group chats other than the staff group: the registration point for community features.

`community/` (dealer groups) and `training/` register their group handlers from
bot/gateway/app.py right after this module. Until then the bot reads nothing in groups:
`ignore` takes every group update so nothing else (the assistant) ever answers there.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def ignore(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group message no feature handles: say nothing."""


def register(app: Application) -> None:
    """The last word on group messages (community handlers go before this one)."""
    app.add_handler(MessageHandler(filters.ChatType.GROUPS, ignore))

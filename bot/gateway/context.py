"""What the gateway's handlers share: the Gateway (database, settings, Rasa client) and the
Turn of the update being handled (who sent it, where it goes, what the bot said)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from telegram.ext import ContextTypes

from bot.gateway.rasa_client import RasaClient
from core.db import Database
from core.services.accounts import IdentityView
from core.services.conversations import Route
from core.settings import Settings

GATEWAY = "gateway"


@dataclass
class Gateway:
    """Process-wide state of the bot gateway (one per Application). Nothing here is needed
    by another gateway process: tickets, transcripts, button payloads and update claims live
    in the database."""

    settings: Settings
    db: Database
    rasa: RasaClient
    background: list[asyncio.Task] = field(default_factory=list)


@dataclass
class Turn:
    """One update being handled: claimed in one unit of work before any handler runs, and
    marked done (with the transcript lines it produced) in one after they all succeeded."""

    update_id: int
    ident: IdentityView | None = None  # the sender, in private chats
    route: Route | None = None  # for private messages
    lines: list[tuple[int, str, str]] = field(default_factory=list)  # (chat_id, who, text)


def gw(context: ContextTypes.DEFAULT_TYPE) -> Gateway:
    """The gateway state stored in bot_data."""
    return context.bot_data[GATEWAY]


def turn(context: ContextTypes.DEFAULT_TYPE) -> Turn | None:
    """The turn of the update this context belongs to (None outside an update)."""
    return getattr(context, "turn", None)

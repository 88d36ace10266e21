"""Periodic jobs of the gateway: close unanswered tickets, prune old claims, buttons, lines.

Each job is one unit of work calling a service, and safe to run on several gateways at once.
"""

from __future__ import annotations

import asyncio
import logging

from bot.gateway.context import Gateway
from core.services import callbacks, conversations, tickets, updates

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 300


async def run_once(g: Gateway) -> None:
    """Every job once."""
    async with g.db.transaction() as s:
        closed = await tickets.close_unanswered(s, g.settings.support.unanswered_close_hours,
                                                g.settings.app.default_locale)
    for t in closed:
        log.info("ticket %s closed: unanswered for %s h", t.id,
                 g.settings.support.unanswered_close_hours)
    async with g.db.transaction() as s:
        await updates.prune(s, keep_days=7)
        await callbacks.prune(s, keep_days=30)
        await conversations.prune_lines(s, keep_days=30)


async def loop(g: Gateway, interval: float = INTERVAL_SECONDS) -> None:
    """Run the jobs now and then every `interval` seconds until cancelled."""
    while True:
        try:
            await run_once(g)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("housekeeping failed; retrying in %s s", interval)
        await asyncio.sleep(interval)

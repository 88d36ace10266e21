"""The points scheduler jobs as service calls (bot/scheduler runs each slot once).

Each takes the scheduler's session (one transaction, together with the run's
`scheduled_runs` row) and returns a small summary for that row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from community.points import ledger, reports
from core.models import PRIORITY_BULK
from core.services.outbox import enqueue
from core.settings import PointsSection


@dataclass(frozen=True)
class LeaderboardGroup:
    """A dealer group that gets a monthly leaderboard: of a region, a tier, or everyone."""

    chat_id: int
    scope: str = "all"  # all | region | tier
    key: str | None = None  # the region or tier
    locale: str | None = None


# The community module registers where its dealer groups are (nothing until it does).
GroupSource = Callable[[AsyncSession], Awaitable[list[LeaderboardGroup]]]
_group_sources: list[GroupSource] = []


def leaderboard_groups(fn: GroupSource) -> GroupSource:
    """Register `fn(session) -> [LeaderboardGroup]` (decorator) for the monthly posts."""
    _group_sources.append(fn)
    return fn


def previous_month(day: dt.date) -> dt.date:
    """The first day of the month before `day`'s."""
    return (day.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


async def daily(s: AsyncSession, now: dt.datetime, cfg: PointsSection | None = None
                ) -> dict[str, Any]:
    """Mature pending order points, expire what is due today, queue expiry reminders."""
    matured = await ledger.mature_due(s, now=now, cfg=cfg)
    run = await ledger.expire_due(s, ledger.local_today(now), now=now, cfg=cfg)
    return {"matured": matured, "expired_accounts": run.expired_accounts,
            "expired_points": run.expired_points, "reminders": run.reminders}


async def monthly_statements(s: AsyncSession, slot_day: dt.date) -> dict[str, Any]:
    """Queue last month's statement to every linked chat (de-duplicated per chat and month)."""
    month = previous_month(slot_day)
    return {"month": f"{month:%Y-%m}",
            "queued": await reports.queue_monthly_statements(s, month)}


async def monthly_leaderboards(s: AsyncSession, slot_day: dt.date, *, limit: int = 10
                               ) -> dict[str, Any]:
    """Post last month's leaderboard to every registered dealer group (once per group)."""
    month = previous_month(slot_day)
    label = f"{month:%Y-%m}"
    queued = 0
    for source in _group_sources:
        for g in await source(s):
            rows = await reports.leaderboard(s, g.scope, "month", limit, key=g.key, month=month)
            if not rows:
                continue
            if await enqueue(
                    s, g.chat_id, template="points_leaderboard_post", locale=g.locale,
                    variables={"month": label, "where": g.key or "",
                               "rows": [{"rank": r.rank, "name": r.name, "points": r.points}
                                        for r in rows]},
                    priority=PRIORITY_BULK, ref=f"points-leaderboard:{label}",
                    dedupe_key=f"points-leaderboard:{label}:{g.chat_id}"):
                queued += 1
    return {"month": label, "queued": queued}

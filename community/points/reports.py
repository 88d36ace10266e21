"""Monthly statements, leaderboards and finance exports built from the points ledger."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.points.ledger import _audit, _settings, linked_chats
from community.points.models import PointsBalance, PointsEntry
from core.models import PRIORITY_BULK, Customer
from core.services.outbox import enqueue

SCOPES = ("all", "region", "tier")
PERIODS = ("month", "all")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class LeaderRow:
    """One place on a leaderboard."""

    rank: int
    account_id: int
    code: str
    name: str
    region: str
    tier: str | None
    points: int


@dataclass(frozen=True)
class StatementView:
    """An account's month: opening, earned, spent, expired, other, closing."""

    account_id: int
    month: str  # YYYY-MM
    opening: int
    earned: int
    spent: int
    expired: int
    other: int  # reversals, refunds, adjustments
    closing: int
    pending: int


def _month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = ZoneInfo(_settings().app.timezone)
    start = dt.datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(dt.UTC), nxt.astimezone(dt.UTC)


def _sum_if(cond: Any, value: Any = PointsEntry.amount) -> Any:
    return func.coalesce(func.sum(case((cond, value), else_=0)), 0)


async def statements(s: AsyncSession, month: dt.date,
                     account_ids: list[int] | None = None) -> list[StatementView]:
    """Each account's statement for the month containing `month` (operator's timezone)."""
    start, end = _month_bounds(month)
    inside = and_(PointsEntry.created_at >= start, PointsEntry.created_at < end)
    stmt = (select(PointsEntry.account_id,
                   _sum_if(PointsEntry.created_at < start),
                   _sum_if(and_(inside, PointsEntry.kind.in_(("earn", "mature")))),
                   _sum_if(and_(inside, PointsEntry.kind == "spend")),
                   _sum_if(and_(inside, PointsEntry.kind == "expire")),
                   _sum_if(and_(inside, PointsEntry.kind.in_(("reverse", "refund", "adjust")))),
                   _sum_if(PointsEntry.created_at < end, PointsEntry.pending))
            .where(PointsEntry.created_at < end)
            .group_by(PointsEntry.account_id).order_by(PointsEntry.account_id))
    if account_ids is not None:
        stmt = stmt.where(PointsEntry.account_id.in_(account_ids))
    label = f"{month.year:04d}-{month.month:02d}"
    out = []
    for account_id, opening, earned, spent, expired, other, pending in (
            await s.execute(stmt)).tuples():
        opening, earned, spent, expired, other = map(int, (opening, earned, spent, expired,
                                                           other))
        out.append(StatementView(account_id, label, opening, earned, -spent, -expired, other,
                                 opening + earned + spent + expired + other, int(pending)))
    return out


async def queue_monthly_statements(s: AsyncSession, month: dt.date) -> int:
    """Queue last month's statement to every linked chat; run twice, queued once."""
    rows = await statements(s, month)
    chats = await linked_chats(s, [r.account_id for r in rows])
    queued = 0
    for r in rows:
        for chat_id, locale in chats.get(r.account_id, []):
            if await enqueue(
                    s, chat_id, template="points_statement", locale=locale,
                    variables={"month": r.month, "opening": r.opening, "earned": r.earned,
                               "spent": r.spent, "expired": r.expired, "other": r.other,
                               "closing": r.closing, "pending": r.pending},
                    priority=PRIORITY_BULK, ref=f"points:{r.account_id}",
                    dedupe_key=f"points-statement:{r.account_id}:{r.month}:{chat_id}"):
                queued += 1
    if queued:
        await _audit(s, "system", "points.statements", f"{month:%Y-%m}", {"queued": queued})
    return queued


async def leaderboard(s: AsyncSession, scope: str = "all", period: str = "month",
                      limit: int = 10, *, key: str | None = None,
                      month: dt.date | None = None) -> list[LeaderRow]:
    """Top earners (earned minus reversed) overall, in one region or one tier; month or ever.

    scope: all | region | tier (then `key` is the region or tier); period: month | all.
    """
    if scope not in SCOPES or period not in PERIODS:
        raise ValueError(f"scope must be one of {SCOPES}, period one of {PERIODS}")
    if scope != "all" and not key:
        raise ValueError(f"a {scope} leaderboard needs key= (which {scope})")
    points = func.sum(PointsEntry.amount + PointsEntry.pending).label("points")
    stmt = (select(Customer.id, Customer.code, Customer.name, Customer.region, Customer.tier,
                   points)
            .join(PointsEntry, PointsEntry.account_id == Customer.id)
            .where(PointsEntry.kind.in_(("earn", "reverse")))
            .group_by(Customer.id, Customer.code, Customer.name, Customer.region,
                      Customer.tier)
            .having(points > 0)
            .order_by(points.desc(), Customer.code).limit(limit))
    if period == "month":
        from community.points.ledger import local_today

        start, end = _month_bounds(month or local_today())
        stmt = stmt.where(PointsEntry.created_at >= start, PointsEntry.created_at < end)
    if scope == "region":
        stmt = stmt.where(Customer.region == key)
    elif scope == "tier":
        stmt = stmt.where(Customer.tier == key)
    rows = (await s.execute(stmt)).tuples().all()
    return [LeaderRow(i, r[0], r[1], r[2], r[3], r[4], int(r[5]))
            for i, r in enumerate(rows, start=1)]


# --------------------------------------------------------------------------- export


def safe_cell(value: Any) -> str:
    """A CSV cell spreadsheets won't run as a formula (text led by = + - @ tab CR gets a ').

    Numbers stay numbers: -30 points is a debit for finance, not a formula.
    """
    if value is None:
        return ""
    if isinstance(value, int | Decimal | dt.date | dt.datetime):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


LEDGER_COLUMNS = ("id", "created_at", "account_code", "account_name", "kind", "source_key",
                  "amount", "pending", "expires_on", "actor", "reason")
BALANCE_COLUMNS = ("account_code", "account_name", "kind", "region", "tier", "available",
                   "pending", "updated_at")


async def export_ledger(s: AsyncSession, out: TextIO, *, since: dt.datetime | None = None,
                        until: dt.datetime | None = None) -> int:
    """Write ledger entries as formula-safe CSV, oldest first; returns rows written."""
    writer = csv.writer(out)
    writer.writerow(LEDGER_COLUMNS)
    stmt = (select(PointsEntry.id, PointsEntry.created_at, Customer.code, Customer.name,
                   PointsEntry.kind, PointsEntry.source_key, PointsEntry.amount,
                   PointsEntry.pending, PointsEntry.expires_on, PointsEntry.actor,
                   PointsEntry.reason)
            .join(Customer, Customer.id == PointsEntry.account_id).order_by(PointsEntry.id))
    if since is not None:
        stmt = stmt.where(PointsEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(PointsEntry.created_at < until)
    n = 0
    result = await s.stream(stmt.execution_options(yield_per=1000))
    async for row in result:
        writer.writerow([safe_cell(v) for v in row])
        n += 1
    return n


async def export_balances(s: AsyncSession, out: TextIO) -> int:
    """Write every balance as formula-safe CSV; returns rows written."""
    writer = csv.writer(out)
    writer.writerow(BALANCE_COLUMNS)
    rows = await s.execute(
        select(Customer.code, Customer.name, Customer.kind, Customer.region, Customer.tier,
               PointsBalance.available, PointsBalance.pending, PointsBalance.updated_at)
        .join(Customer, Customer.id == PointsBalance.account_id).order_by(Customer.code))
    n = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        n += 1
    return n

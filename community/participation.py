"""Participation: messages per member per group per day (one upsert per message), the first
message of a dealer's day earns participation points, and staff reports/CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.models import CommunityGroup, GroupMessage, ParticipationDay
from core.errors import DomainError
from core.models import Customer, utcnow

log = logging.getLogger(__name__)


def local_day(timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The operator's calendar day."""
    return (now or utcnow()).astimezone(ZoneInfo(timezone)).date()


async def count_message(s: AsyncSession, group_id: int, telegram_user_id: int,
                        customer_id: int | None, day: dt.date, *, text: str = "",
                        store_content: bool = False) -> int:
    """Count one message; returns the member's messages in the group that day. The first
    one of a dealer's day awards participation points (idempotent by its key)."""
    ins = (pg_insert if s.bind is not None and s.bind.dialect.name == "postgresql"
           else sqlite_insert)(ParticipationDay)
    count = await s.scalar(
        ins.values(group_id=group_id, telegram_user_id=telegram_user_id,
                   customer_id=customer_id, day=day, messages=1)
        .on_conflict_do_update(index_elements=["group_id", "telegram_user_id", "day"],
                               set_={"messages": ParticipationDay.messages + 1})
        .returning(ParticipationDay.messages))
    if store_content and text:
        s.add(GroupMessage(group_id=group_id, telegram_user_id=telegram_user_id,
                           text=text[:4096]))
    if count == 1 and customer_id is not None:
        from community.points.ledger import award_participation
        try:
            # Eligibility is checked before anything is written, so a refusal leaves no trace.
            await award_participation(s, customer_id, day, f"group:{group_id}")
        except DomainError as exc:  # not eligible (e.g. points off for this kind)
            log.debug("no participation points for %s: %s", customer_id, exc)
    return int(count or 0)


@dataclass(frozen=True)
class ActivityRow:
    """Messages of one member in one group over a period."""

    group: str
    telegram_user_id: int
    dealer_code: str
    dealer_name: str
    days: int
    messages: int


async def activity(s: AsyncSession, since: dt.date, until: dt.date,
                   chat_id: int | None = None) -> list[ActivityRow]:
    """Per group and member: active days and messages between `since` and `until`."""
    q = (select(CommunityGroup.title, ParticipationDay.telegram_user_id,
                func.coalesce(func.max(Customer.code), ""),
                func.coalesce(func.max(Customer.name), ""),
                func.count(ParticipationDay.id), func.sum(ParticipationDay.messages))
         .join(CommunityGroup, CommunityGroup.id == ParticipationDay.group_id)
         .outerjoin(Customer, Customer.id == ParticipationDay.customer_id)
         .where(ParticipationDay.day >= since, ParticipationDay.day <= until)
         .group_by(CommunityGroup.title, ParticipationDay.telegram_user_id)
         .order_by(func.sum(ParticipationDay.messages).desc()))
    if chat_id is not None:
        q = q.where(CommunityGroup.chat_id == chat_id)
    return [ActivityRow(str(t), int(u), str(c), str(n), int(d), int(m or 0))
            for t, u, c, n, d, m in (await s.execute(q)).all()]


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (=, +, -, @, tab, CR first)."""
    text = str(value)
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def to_csv(rows: list[ActivityRow]) -> str:
    """The activity report as CSV text (formula-safe cells)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["group", "telegram_user_id", "dealer_code", "dealer_name", "days", "messages"])
    for r in rows:
        w.writerow([safe_cell(r.group), r.telegram_user_id, safe_cell(r.dealer_code),
                    safe_cell(r.dealer_name), r.days, r.messages])
    return out.getvalue()

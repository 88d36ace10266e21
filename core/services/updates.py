"""Telegram update claims: handle a redelivered update once, and again if its attempt crashed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ProcessedUpdate, utcnow


def _insert(s: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(ProcessedUpdate)


async def claim(s: AsyncSession, update_id: int, lease_seconds: float = 120.0,
                now: dt.datetime | None = None) -> bool:
    """Claim an update for handling; False if it is done or another attempt holds its lease."""
    now = now or utcnow()
    lease = now + dt.timedelta(seconds=lease_seconds)
    got = await s.scalar(
        _insert(s).values(update_id=update_id, processed_at=now, state="processing",
                          lease_until=lease)
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(ProcessedUpdate.update_id))
    if got is not None:
        return True
    # Seen before: take it over only if that attempt never finished and its lease ran out.
    taken = await s.execute(
        update(ProcessedUpdate)
        .where(ProcessedUpdate.update_id == update_id, ProcessedUpdate.state == "processing",
               ProcessedUpdate.lease_until < now)
        .values(lease_until=lease, processed_at=now))
    return bool(taken.rowcount)


async def mark_done(s: AsyncSession, update_id: int) -> None:
    """The update was handled: a redelivery is dropped from now on."""
    await s.execute(update(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id)
                    .values(state="done", lease_until=None, processed_at=utcnow()))


async def state_of(s: AsyncSession, update_id: int) -> str | None:
    """'processing', 'done', or None if never claimed."""
    return await s.scalar(select(ProcessedUpdate.state)
                          .where(ProcessedUpdate.update_id == update_id))


async def prune(s: AsyncSession, keep_days: float = 7, now: dt.datetime | None = None) -> int:
    """Forget update ids older than Telegram would ever redeliver."""
    cutoff = (now or utcnow()) - dt.timedelta(days=keep_days)
    result = await s.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
    return int(result.rowcount or 0)

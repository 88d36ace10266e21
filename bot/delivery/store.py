"""The worker's database side: claim, reserve a send slot, record outcomes, reclaim leases.

Each function is one short transaction of its own (the worker is an adapter: it owns its
units of work). Outcome writes run the outbox hooks in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from sqlalchemy import case, func, select, update

from core.db import Database
from core.models import PRIORITY_BULK, DeliveryPace, OutboxMessage, utcnow
from core.services import outbox

log = logging.getLogger(__name__)
GLOBAL_KEY = "global"
FINAL = ("sent", "failed", "cancelled")


@dataclass
class Outcome:
    """What one attempt to send a row came to."""

    kind: str  # sent | retry | failed | throttled | migrated
    message_id: int | None = None
    error: str | None = None
    retry_after: float = 0.0
    new_chat_id: int | None = None
    parts_sent: int = 0
    sent_to: int | None = None  # the chat actually used, when a known migration redirected it


async def claim(db: Database, worker_id: str, limit: int, lease_seconds: float,
                urgent_only: bool = False) -> list[OutboxMessage]:
    """Take up to `limit` due rows, most urgent first; they are ours until the lease ends."""
    if limit <= 0:
        return []
    now = utcnow()
    due = (select(OutboxMessage.id)
           .where(OutboxMessage.status == "queued", OutboxMessage.not_before <= now)
           .order_by(OutboxMessage.priority.desc(), OutboxMessage.id)
           .limit(limit))
    if urgent_only:
        due = due.where(OutboxMessage.priority > PRIORITY_BULK)
    if not db.is_sqlite:  # rows another worker is claiming right now are skipped, not waited on
        due = due.with_for_update(skip_locked=True)
    async with db.transaction() as s:
        # Two statements: PostgreSQL may run an IN (… LIMIT n) subquery more than once.
        ids = list((await s.scalars(due)).all())
        if not ids:
            return []
        rows = list((await s.scalars(
            update(OutboxMessage)
            # status is checked again: on SQLite two claims can select the same ids
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "queued")
            .values(status="sending", claimed_by=worker_id,
                    lease_until=now + dt.timedelta(seconds=lease_seconds), in_call_at=None)
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False))).all())
    rows.sort(key=lambda r: (-r.priority, r.id))
    return rows


async def begin_call(db: Database, message_id: int, worker_id: str, parts: int,
                     rate_per_second: float) -> float | None:
    """Mark the row as in the HTTP call and reserve its shared send slot.

    Returns the Unix time the slot starts, or None when the row is no longer ours (cancelled,
    or reclaimed after the lease ran out) and must not be sent.
    """
    interval = parts / rate_per_second
    async with db.transaction() as s:
        mine = await s.scalar(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                   OutboxMessage.claimed_by == worker_id)
            .values(in_call_at=utcnow())
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False))
        if mine is None:
            return None
        # The pace row is locked (SQLite: the write lock is held since the UPDATE above)
        # before "now" is read: read earlier, a wait on the lock would hand out a slot already
        # in the past, and senders leaving that wait together would send at once.
        current = await s.scalar(select(DeliveryPace.next_at)
                                 .where(DeliveryPace.key == GLOBAL_KEY).with_for_update())
        now = time.time()
        if current is None:  # the row the migration inserts is gone: start it again
            s.add(DeliveryPace(key=GLOBAL_KEY, next_at=now + interval))
            return now
        start = max(float(current), now)
        await s.execute(update(DeliveryPace).where(DeliveryPace.key == GLOBAL_KEY)
                        .values(next_at=start + interval))
    return start


async def pause_all(db: Database, seconds: float) -> None:
    """Telegram said the whole bot must wait: no worker gets a slot before then."""
    until = time.time() + seconds
    async with db.transaction() as s:
        await s.execute(update(DeliveryPace).where(DeliveryPace.key == GLOBAL_KEY)
                        .values(next_at=case((DeliveryPace.next_at > until,
                                              DeliveryPace.next_at), else_=until)))


async def release(db: Database, ids: list[int], worker_id: str,
                  not_before: dt.datetime | None = None) -> None:
    """Give claimed, untried rows back to the queue (shutdown, or their chat must wait)."""
    if not ids:
        return
    async with db.transaction() as s:
        await s.execute(update(OutboxMessage)
                        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "sending",
                               OutboxMessage.claimed_by == worker_id)
                        .values(status="queued", claimed_by=None, lease_until=None,
                                in_call_at=None, not_before=not_before or utcnow())
                        .execution_options(synchronize_session=False))


async def reclaim_expired(db: Database) -> tuple[int, int]:
    """Queue rows whose lease ran out (their worker died); returns (reclaimed, were in a call)."""
    now = utcnow()
    expired = (select(OutboxMessage.id, OutboxMessage.in_call_at)
               .where(OutboxMessage.status == "sending", OutboxMessage.lease_until < now))
    if not db.is_sqlite:
        expired = expired.with_for_update(skip_locked=True)
    async with db.transaction() as s:
        rows = (await s.execute(expired)).all()
        if rows:
            await s.execute(update(OutboxMessage)
                            .where(OutboxMessage.id.in_([r.id for r in rows]),
                                   OutboxMessage.status == "sending",
                                   OutboxMessage.lease_until < now)
                            .values(status="queued", claimed_by=None, lease_until=None,
                                    in_call_at=None, not_before=now)
                            .execution_options(synchronize_session=False))
    return len(rows), sum(1 for r in rows if r.in_call_at is not None)


async def in_call_count(db: Database) -> int:
    """Rows in a Telegram call right now (or when their worker died): the possible repeats."""
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "sending", OutboxMessage.in_call_at.is_not(None))) or 0)


async def record(db: Database, row: OutboxMessage, worker_id: str, outcome: Outcome,
                 max_attempts: int, backoff_seconds: float) -> str:
    """Write the attempt's outcome and run the hooks, in one transaction; returns the status."""
    async with db.transaction() as s:
        msg = await s.get(OutboxMessage, row.id, with_for_update=not db.is_sqlite)
        if msg is None:
            return "gone"
        if msg.status in FINAL:
            # Another worker recorded it (it reclaimed the row after our lease ran out).
            log.warning("outbox %s already %s; outcome %s not written", msg.id, msg.status,
                        outcome.kind)
            return msg.status
        now = utcnow()
        if outcome.message_id is not None and msg.telegram_message_id is None:
            msg.telegram_message_id = outcome.message_id
        msg.parts_sent = max(msg.parts_sent or 0, outcome.parts_sent)
        if outcome.sent_to is not None and outcome.sent_to != msg.chat_id:
            msg.chat_id, msg.migrated_from = outcome.sent_to, msg.chat_id
        msg.claimed_by = None
        msg.lease_until = None
        msg.in_call_at = None
        if outcome.kind == "sent":
            msg.status, msg.sent_at, msg.error = "sent", now, None
            hook = outbox.after_sent_hook(msg.kind)
            if hook is not None:
                await hook(s, msg, int(msg.telegram_message_id or 0))
        elif outcome.kind == "throttled":  # not an attempt: Telegram asked us to wait
            msg.status = "queued"
            msg.not_before = now + dt.timedelta(seconds=outcome.retry_after)
        elif outcome.kind == "migrated" and outcome.new_chat_id is not None:
            old = msg.chat_id
            if msg.migrated_from is not None and old == outcome.new_chat_id:
                await _fail(s, msg, "migrated: loop")
            else:
                await outbox.chat_migrated(s, old, outcome.new_chat_id)
                msg.chat_id, msg.migrated_from = outcome.new_chat_id, old
                msg.status, msg.not_before = "queued", now
        elif outcome.kind == "retry":
            msg.attempts = (msg.attempts or 0) + 1
            if msg.attempts >= max_attempts:
                await _fail(s, msg, f"{outcome.error} (after {msg.attempts} attempts)")
            else:
                delay = backoff_seconds * 2 ** (msg.attempts - 1)
                msg.status, msg.error = "queued", outcome.error
                msg.not_before = now + dt.timedelta(seconds=delay)
        else:
            msg.attempts = (msg.attempts or 0) + 1
            await _fail(s, msg, outcome.error or "failed")
        return msg.status


async def _fail(s, msg: OutboxMessage, reason: str) -> None:  # type: ignore[no-untyped-def]
    msg.status, msg.error = "failed", reason[:1000]
    hook = outbox.after_failed_hook(msg.kind)
    if hook is not None:
        await hook(s, msg, msg.error)

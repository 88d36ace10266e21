"""The outbox: a message to send is a row written in the same transaction as its cause.

Services never call Telegram. They `enqueue` here, inside the caller's unit of work, so a
change, its audit row and the messages it causes commit together or not at all. The delivery
worker (bot/delivery) claims the rows and sends them within Telegram's limits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from core.models import (
    PRIORITY_NOTICE,
    Campaign,
    ChatMigration,
    OutboxMessage,
    utcnow,
)
from core.services import callbacks

# After-send effects, by message kind, run by the worker in the same transaction that records
# the outcome (e.g. a ticket's staff post remembers its Telegram message id, so staff replies
# find the ticket). Services register them at import time; the worker imports the services.
AfterSent = Callable[[AsyncSession, OutboxMessage, int], Awaitable[None]]
AfterFailed = Callable[[AsyncSession, OutboxMessage, str], Awaitable[None]]
_after_sent: dict[str, AfterSent] = {}
_after_failed: dict[str, AfterFailed] = {}


def on_sent(kind: str) -> Callable[[AfterSent], AfterSent]:
    """Register `fn(session, message, telegram_message_id)` for messages of `kind` once sent."""
    def register(fn: AfterSent) -> AfterSent:
        _after_sent[kind] = fn
        return fn
    return register


def on_failed(kind: str) -> Callable[[AfterFailed], AfterFailed]:
    """Register `fn(session, message, reason)` for messages of `kind` that failed for good."""
    def register(fn: AfterFailed) -> AfterFailed:
        _after_failed[kind] = fn
        return fn
    return register


AfterMigrated = Callable[[AsyncSession, int, int], Awaitable[None]]
_after_migrated: list[AfterMigrated] = []


def on_migrated(fn: AfterMigrated) -> AfterMigrated:
    """Register `fn(session, old_chat_id, new_chat_id)`, run when a group became a supergroup."""
    _after_migrated.append(fn)
    return fn


def after_migrated_hooks() -> list[AfterMigrated]:
    """Every chat-migration effect registered, in registration order."""
    return list(_after_migrated)


def after_sent_hook(kind: str) -> AfterSent | None:
    """The after-send effect registered for `kind`, if any."""
    return _after_sent.get(kind)


def after_failed_hook(kind: str) -> AfterFailed | None:
    """The permanent-failure effect registered for `kind`, if any."""
    return _after_failed.get(kind)


def _insert(s: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(OutboxMessage)


async def enqueue(
    s: AsyncSession,
    chat_id: int,
    *,
    template: str | None = None,
    variables: dict[str, Any] | None = None,
    locale: str | None = None,
    text: str | None = None,
    buttons: list[dict[str, Any]] | None = None,
    media_kind: str | None = None,
    media_ref: str | None = None,
    copy_from: tuple[int, int] | None = None,
    reply_to_message_id: int | None = None,
    pin: bool = False,
    priority: int = PRIORITY_NOTICE,
    dedupe_key: str | None = None,
    not_before: dt.datetime | None = None,
    campaign_id: int | None = None,
    ref: str | None = None,
    kind: str = "message",
) -> int | None:
    """Queue one message; returns its id, or None when `dedupe_key` was queued before.

    Content: `template` + `variables` rendered in `locale` at send time, or ready HTML `text`,
    or `copy_from=(chat_id, message_id)` to copy a message (photos, files). `buttons` are
    `{"label" | "label_key", "payload" | "url"}` dicts, one per row. The dedupe key is made
    one-time by a unique index, so two workers or a retried job never queue it twice.
    """
    if template is None and text is None and copy_from is None and media_ref is None:
        raise ValueError("a message needs a template, text, media or a message to copy")
    # Long button payloads are stored now, in this transaction, under the key the worker's
    # keyboard will use (derived from the payload), so the button works on any gateway.
    await callbacks.save(s, {callbacks.key_for(p): p for p in (
        str(b["payload"]) for b in buttons or [] if b.get("payload") is not None)
        if callbacks.needs_key(p)})
    values = dict(
        chat_id=chat_id, kind=kind, priority=priority, template=template,
        variables=variables or {}, locale=locale, text=text, buttons=buttons or [],
        media_kind=media_kind, media_ref=media_ref,
        copy_from_chat_id=copy_from[0] if copy_from else None,
        copy_message_id=copy_from[1] if copy_from else None,
        reply_to_message_id=reply_to_message_id, pin=pin, dedupe_key=dedupe_key,
        not_before=not_before or utcnow(), campaign_id=campaign_id, ref=ref, status="queued",
        attempts=0, created_at=utcnow(),
    )
    stmt = _insert(s).values(**values).returning(OutboxMessage.id)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    return await s.scalar(stmt)


async def start_campaign(s: AsyncSession, kind: str, title: str, created_by: str,
                         report_chat_id: int | None = None) -> int:
    """Open a campaign that messages can join; its report goes to `report_chat_id`."""
    campaign = Campaign(kind=kind, title=title[:200], created_by=created_by[:100],
                        report_chat_id=report_chat_id)
    s.add(campaign)
    await s.flush()
    return campaign.id


# --- Operating the outbox: failures, retries, campaign reports and cancelling ---------------

# Outcomes a message ends in; 'queued' and 'sending' are still open.
OPEN_STATUSES = ("queued", "sending")


async def chat_migrated(s: AsyncSession, old_chat_id: int, new_chat_id: int) -> None:
    """Record that a group moved to a new chat id and point its queued messages there."""
    existing = await s.get(ChatMigration, old_chat_id)
    if existing is None:
        s.add(ChatMigration(old_chat_id=old_chat_id, new_chat_id=new_chat_id))
    else:
        existing.new_chat_id = new_chat_id
    await s.execute(update(OutboxMessage)
                    .where(OutboxMessage.chat_id == old_chat_id,
                           OutboxMessage.status == "queued")
                    .values(chat_id=new_chat_id, migrated_from=old_chat_id))
    for fn in after_migrated_hooks():
        await fn(s, old_chat_id, new_chat_id)


async def migrated_chat_id(s: AsyncSession, chat_id: int) -> int | None:
    """The supergroup id a group moved to, or None if it never migrated."""
    return await s.scalar(select(ChatMigration.new_chat_id)
                          .where(ChatMigration.old_chat_id == chat_id))


async def failed_messages(s: AsyncSession, campaign_id: int | None = None,
                          limit: int = 500) -> list[OutboxMessage]:
    """Messages that failed for good (newest first), optionally of one campaign."""
    q = select(OutboxMessage).where(OutboxMessage.status == "failed")
    if campaign_id is not None:
        q = q.where(OutboxMessage.campaign_id == campaign_id)
    return list((await s.scalars(q.order_by(OutboxMessage.id.desc()).limit(limit))).all())


async def retry(s: AsyncSession, ids: list[int] | None = None, campaign_id: int | None = None,
                all_failed: bool = False) -> int:
    """Queue failed messages again (by id, by campaign or all); returns how many."""
    if not ids and campaign_id is None and not all_failed:
        raise ValueError("say which messages to retry: ids, a campaign or all failed")
    q = update(OutboxMessage).where(OutboxMessage.status == "failed")
    if ids:
        q = q.where(OutboxMessage.id.in_(ids))
    if campaign_id is not None:
        q = q.where(OutboxMessage.campaign_id == campaign_id)
    result = await s.execute(q.values(status="queued", attempts=0, error=None, claimed_by=None,
                                      lease_until=None, in_call_at=None, not_before=utcnow()))
    if campaign_id is not None:  # a finished campaign is running again until these are done
        await s.execute(update(Campaign).where(Campaign.id == campaign_id,
                                               Campaign.status == "finished")
                        .values(status="running", finished_at=None, reported_at=None))
    return int(result.rowcount or 0)


async def cancel_campaign(s: AsyncSession, campaign_id: int, by: str = "cli") -> int:
    """Stop a campaign: its queued (and claimed but untried) messages become 'cancelled'.

    Messages already in a Telegram call finish; nothing else of the campaign is sent.
    Returns how many messages were cancelled.
    """
    campaign = await s.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    now = utcnow()
    result = await s.execute(
        update(OutboxMessage)
        .where(OutboxMessage.campaign_id == campaign_id,
               (OutboxMessage.status == "queued")
               | ((OutboxMessage.status == "sending") & OutboxMessage.in_call_at.is_(None)))
        .values(status="cancelled", error=f"cancelled by {by}"[:200], claimed_by=None,
                lease_until=None)
        .execution_options(synchronize_session=False))
    if campaign.status == "running":
        campaign.status = "cancelled"
        campaign.finished_at = now
    return int(result.rowcount or 0)


@dataclass
class CampaignReport:
    """Where a campaign stands: counts by outcome and failure reasons grouped."""

    id: int
    title: str
    status: str
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every message of the campaign."""
        return self.queued + self.sending + self.sent + self.failed + self.cancelled

    @property
    def open(self) -> int:
        """Messages not yet at an outcome."""
        return self.queued + self.sending

    def variables(self) -> dict[str, Any]:
        """Template variables for the campaign_progress / campaign_final messages."""
        return {"id": self.id, "title": self.title, "status": self.status,
                "total": self.total, "queued": self.open, "sent": self.sent,
                "failed": self.failed, "cancelled": self.cancelled,
                "reasons": [{"reason": r, "count": n} for r, n in self.reasons]}


async def campaign_report(s: AsyncSession, campaign_id: int) -> CampaignReport:
    """Counts of a campaign's messages by status, and its failure reasons grouped."""
    campaign = await s.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    report = CampaignReport(id=campaign.id, title=campaign.title, status=campaign.status)
    rows = await s.execute(select(OutboxMessage.status, func.count())
                           .where(OutboxMessage.campaign_id == campaign_id)
                           .group_by(OutboxMessage.status))
    for status, count in rows.all():
        if hasattr(report, status) and status not in ("id", "title", "status", "reasons"):
            setattr(report, status, int(count))
    reasons = await s.execute(select(OutboxMessage.error, func.count())
                              .where(OutboxMessage.campaign_id == campaign_id,
                                     OutboxMessage.status == "failed")
                              .group_by(OutboxMessage.error)
                              .order_by(func.count().desc()))
    report.reasons = [(str(reason or "?"), int(n)) for reason, n in reasons.all()]
    return report

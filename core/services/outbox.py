"""The outbox: a message to send is a row written in the same transaction as its cause.

Services never call Telegram. They `enqueue` here, inside the caller's unit of work, so a
change, its audit row and the messages it causes commit together or not at all. The delivery
worker (bot/delivery) claims the rows and sends them within Telegram's limits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import PRIORITY_NOTICE, Campaign, OutboxMessage, utcnow

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

"""Human hand-off tickets: open, relay between the chat and the staff group, close.

A ticket is 'pending' until its staff post is confirmed sent, 'open' while staff have it (the
bot relays and stays quiet), 'unreachable' when the post failed for good, and 'closed' or
'cancelled' when over. Only an 'open' ticket silences the assistant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from core.models import (
    ACTIVE_TICKET_STATUSES,
    PRIORITY_INTERACTIVE,
    PRIORITY_NOTICE,
    PRIORITY_STAFF,
    TICKET_KINDS,
    AuditLog,
    Customer,
    OutboxMessage,
    TelegramIdentity,
    Ticket,
    TicketMessage,
    utcnow,
)
from core.services import outbox
from core.settings import SupportSection

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class TicketView:
    id: int
    telegram_user_id: int
    kind: str
    status: str
    reason: str
    customer_code: str | None
    customer_name: str | None
    created: bool = False  # True when this call opened it
    just_closed: bool = False  # True when this call closed (or cancelled, expired) it
    created_at: dt.datetime | None = None
    answered: bool = False  # a staff member has replied


async def _view(s, t: Ticket, created: bool = False,  # type: ignore[no-untyped-def]
                just_closed: bool = False) -> TicketView:
    customer = await s.get(Customer, t.customer_id) if t.customer_id else None
    return TicketView(t.id, t.telegram_user_id, t.kind, t.status, t.reason,
                      customer.code if customer else None, customer.name if customer else None,
                      created, just_closed, t.created_at, t.answered_at is not None)


def _active(telegram_user_id: int):  # type: ignore[no-untyped-def]
    return select(Ticket).where(Ticket.telegram_user_id == telegram_user_id,
                                Ticket.status.in_(ACTIVE_TICKET_STATUSES))


def _insert(s: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(Ticket)


async def open_ticket(s: AsyncSession, telegram_user_id: int, customer_id: int | None,
                      kind: str, reason: str) -> TicketView:
    """Open a ticket for the chat (status 'pending' until staff have the post), or return the
    active one: the database keeps one per chat, so double taps and two gateways agree."""
    kind = kind if kind in TICKET_KINDS else "handoff"
    # Insert first: concurrent callers wait on the partial unique index, and exactly one wins.
    new_id = await s.scalar(
        _insert(s).values(telegram_user_id=telegram_user_id, customer_id=customer_id,
                          kind=kind, status="pending", reason=reason[:2000], created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["telegram_user_id"],
                                index_where=Ticket.status.in_(ACTIVE_TICKET_STATUSES))
        .returning(Ticket.id))
    if new_id is None:
        existing = await s.scalar(_active(telegram_user_id))
        if existing is None:  # closed between the insert and the read: try once more
            return await open_ticket(s, telegram_user_id, customer_id, kind, reason)
        return await _view(s, existing)
    s.add(AuditLog(actor=f"tg:{telegram_user_id}", action=f"ticket.open.{kind}",
                   subject=f"ticket:{new_id}"))
    t = await s.get(Ticket, new_id)
    assert t is not None
    return await _view(s, t, created=True)


async def request_handoff(s: AsyncSession, telegram_user_id: int, customer_id: int | None,
                          kind: str, reason: str, *, staff_chat_id: int, staff_locale: str,
                          user_name: str, transcript: list[tuple[str, str]]) -> TicketView:
    """Open the chat's ticket and queue its post to the staff group in the same unit of work
    (or return the active one, whose post is queued already). The delivery worker sends the
    post; its hooks open the ticket, or mark it unreachable and tell the customer."""
    ticket = await open_ticket(s, telegram_user_id, customer_id, kind, reason)
    if ticket.created:
        await outbox.enqueue(
            s, staff_chat_id, kind="ticket_post", ref=f"ticket:{ticket.id}",
            priority=PRIORITY_STAFF, template="ticket_staff_post", locale=staff_locale,
            variables={"ticket_id": ticket.id, "kind": ticket.kind,
                       "customer_code": ticket.customer_code or "",
                       "customer_name": ticket.customer_name or "", "user_name": user_name,
                       "user_id": telegram_user_id, "reason": reason[:2000],
                       "transcript": [{"who": w, "text": t} for w, t in transcript]},
            buttons=[{"label_key": "button_close_ticket",
                      "payload": f"ticket:close:{ticket.id}"}],
            dedupe_key=f"ticket:{ticket.id}:post")
    return ticket


async def queue_relay(s: AsyncSession, ticket_id: int, staff_chat_id: int, *,
                      html: str | None = None, copy_from: tuple[int, int] | None = None) -> None:
    """Queue a customer's message for staff while the ticket's post is still on its way
    (behind the post, so staff see them in order)."""
    await outbox.enqueue(s, staff_chat_id, kind="ticket_relay", ref=f"ticket:{ticket_id}",
                         priority=PRIORITY_STAFF, text=html, copy_from=copy_from)


@outbox.on_sent("ticket_relay")
async def _ticket_relay_sent(s: AsyncSession, message: OutboxMessage, message_id: int) -> None:
    await remember_staff_message(s, _ticket_id(message.ref), message.chat_id, message_id)


async def active_ticket(s: AsyncSession, telegram_user_id: int) -> TicketView | None:
    """The chat's pending or open ticket, if any."""
    t = await s.scalar(_active(telegram_user_id))
    return None if t is None else await _view(s, t)


async def open_ticket_for(s: AsyncSession, telegram_user_id: int) -> TicketView | None:
    """The chat's ticket that staff have (then the bot relays and stays quiet), if any.

    A ticket whose staff post was never confirmed silences nobody.
    """
    t = await s.scalar(select(Ticket).where(
        Ticket.telegram_user_id == telegram_user_id, Ticket.status == "open"))
    return None if t is None else await _view(s, t)


async def get_ticket(s: AsyncSession, ticket_id: int) -> TicketView:
    """One ticket; NotFound if there is none with that number."""
    t = await s.get(Ticket, ticket_id)
    if t is None:
        raise NotFound(f"no ticket {ticket_id}")
    return await _view(s, t)


async def remember_staff_message(s: AsyncSession, ticket_id: int, chat_id: int,
                                 message_id: int) -> None:
    """Record a staff-group message that belongs to a ticket."""
    s.add(TicketMessage(ticket_id=ticket_id, staff_chat_id=chat_id, message_id=message_id))


async def staff_post_sent(s: AsyncSession, ticket_id: int, chat_id: int,
                          message_id: int) -> None:
    """The ticket's post reached the staff group: remember it; the ticket is open from now."""
    s.add(TicketMessage(ticket_id=ticket_id, staff_chat_id=chat_id, message_id=message_id))
    t = await s.get(Ticket, ticket_id)
    if t is not None and t.status == "pending":
        t.status = "open"


async def staff_replied(s: AsyncSession, ticket_id: int, chat_id: int, message_id: int) -> None:
    """A staff reply was delivered to the customer: remember it; the ticket is answered."""
    s.add(TicketMessage(ticket_id=ticket_id, staff_chat_id=chat_id, message_id=message_id))
    t = await s.get(Ticket, ticket_id)
    if t is not None and t.answered_at is None:
        t.answered_at = utcnow()


async def mark_unreachable(s: AsyncSession, ticket_id: int, reason: str) -> TicketView | None:
    """Staff could not be reached for a pending ticket: it silences nobody from now.

    Returns the ticket if this call changed it (so the caller tells the customer once).
    """
    t = await s.get(Ticket, ticket_id)
    if t is None or t.status != "pending":
        return None
    t.status = "unreachable"
    t.closed_at = utcnow()
    t.closed_by = "system:unreachable"
    s.add(AuditLog(actor="system", action="ticket.unreachable", subject=f"ticket:{t.id}",
                   details={"reason": reason[:500]}))
    return await _view(s, t, just_closed=True)


async def _locale_of(s: AsyncSession, telegram_user_id: int, default: str) -> str:
    ident = await s.get(TelegramIdentity, telegram_user_id)
    return (ident.locale if ident and ident.locale else None) or default


@outbox.on_sent("ticket_post")
async def _ticket_post_sent(s: AsyncSession, message: OutboxMessage, message_id: int) -> None:
    await staff_post_sent(s, _ticket_id(message.ref), message.chat_id, message_id)


@outbox.on_failed("ticket_post")
async def _ticket_post_failed(s: AsyncSession, message: OutboxMessage, reason: str) -> None:
    ticket = await mark_unreachable(s, _ticket_id(message.ref), reason)
    if ticket is not None:
        await outbox.enqueue(
            s, ticket.telegram_user_id, template="handoff_unreachable",
            locale=await _locale_of(s, ticket.telegram_user_id, message.locale or "zh-Hans"),
            variables={"ticket_id": ticket.id}, priority=PRIORITY_INTERACTIVE,
            dedupe_key=f"ticket:{ticket.id}:unreachable", kind="ticket_notice",
            ref=f"ticket:{ticket.id}")


def _ticket_id(ref: str | None) -> int:
    return int(str(ref).rsplit(":", 1)[-1])


async def cancel_ticket(s: AsyncSession, telegram_user_id: int) -> TicketView | None:
    """The customer withdraws their active ticket; None if there was none."""
    t = await s.scalar(_active(telegram_user_id))
    if t is None:
        return None
    t.status = "cancelled"
    t.closed_at = utcnow()
    t.closed_by = f"tg:{telegram_user_id}"
    s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="ticket.cancel",
                   subject=f"ticket:{t.id}"))
    return await _view(s, t, just_closed=True)


async def ticket_for_staff_message(s: AsyncSession, chat_id: int, message_id: int
                                   ) -> TicketView | None:
    """The ticket a staff-group message belongs to."""
    t = await s.scalar(
        select(Ticket).join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
        .where(TicketMessage.staff_chat_id == chat_id, TicketMessage.message_id == message_id))
    return None if t is None else await _view(s, t)


async def close_ticket(s: AsyncSession, ticket_id: int, closed_by: str) -> TicketView:
    """Close a ticket (idempotent); the bot answers the chat again afterwards."""
    t = await s.get(Ticket, ticket_id)
    if t is None:
        raise NotFound(f"no ticket {ticket_id}")
    just_closed = t.status in ACTIVE_TICKET_STATUSES
    if just_closed:
        t.status = "closed"
        t.closed_at = utcnow()
        t.closed_by = closed_by[:100]
        s.add(AuditLog(actor=closed_by[:100], action="ticket.close", subject=f"ticket:{t.id}"))
    return await _view(s, t, just_closed=just_closed)


async def close_and_notify(s: AsyncSession, ticket_id: int, closed_by: str,
                           default_locale: str = "zh-Hans") -> TicketView:
    """Close a ticket and queue the customer's "the assistant is back" notice (CLI, jobs)."""
    ticket = await close_ticket(s, ticket_id, closed_by)
    if ticket.just_closed:
        await outbox.enqueue(
            s, ticket.telegram_user_id, template="handoff_closed",
            locale=await _locale_of(s, ticket.telegram_user_id, default_locale),
            variables={"ticket_id": ticket.id}, priority=PRIORITY_NOTICE,
            dedupe_key=f"ticket:{ticket.id}:closed", kind="ticket_notice",
            ref=f"ticket:{ticket.id}")
    return ticket


async def close_unanswered(s: AsyncSession, hours: float, default_locale: str = "zh-Hans",
                           now: dt.datetime | None = None) -> list[TicketView]:
    """Close active tickets no staff member answered within `hours`; queue a notice for each.

    Idempotent: a closed ticket is never picked again and each notice has a dedupe key.
    """
    cutoff = (now or utcnow()) - dt.timedelta(hours=hours)
    stale = (await s.scalars(
        select(Ticket).where(Ticket.status.in_(ACTIVE_TICKET_STATUSES),
                             Ticket.answered_at.is_(None), Ticket.created_at < cutoff)
        .order_by(Ticket.id).with_for_update(skip_locked=True))).all()
    closed = []
    for t in stale:
        t.status = "closed"
        t.closed_at = utcnow()
        t.closed_by = "system:unanswered"
        s.add(AuditLog(actor="system", action="ticket.expire", subject=f"ticket:{t.id}",
                       details={"hours": hours}))
        await outbox.enqueue(
            s, t.telegram_user_id, template="handoff_expired",
            locale=await _locale_of(s, t.telegram_user_id, default_locale),
            variables={"ticket_id": t.id, "hours": hours}, priority=PRIORITY_NOTICE,
            dedupe_key=f"ticket:{t.id}:expired", kind="ticket_notice", ref=f"ticket:{t.id}")
        closed.append(await _view(s, t, just_closed=True))
    return closed


async def list_tickets(s: AsyncSession, status: str | None = None, limit: int = 50
                       ) -> list[TicketView]:
    """Newest tickets first; `status` 'active' means pending or open."""
    query = select(Ticket)
    if status == "active":
        query = query.where(Ticket.status.in_(ACTIVE_TICKET_STATUSES))
    elif status:
        query = query.where(Ticket.status == status)
    rows = (await s.scalars(query.order_by(Ticket.id.desc()).limit(limit))).all()
    return [await _view(s, t) for t in rows]


def staffed_now(support: SupportSection, timezone: str, now: dt.datetime | None = None
                ) -> tuple[bool, str]:
    """Whether staff are at work now, and when they next start (e.g. 'Mon 09:00')."""
    local = (now or utcnow()).astimezone(ZoneInfo(timezone))
    days = {d.strip().lower()[:3] for d in support.days.split(",") if d.strip()}
    opens = dt.time.fromisoformat(support.opens_at)
    closes = dt.time.fromisoformat(support.closes_at)
    today = DAYS[local.weekday()]
    if today in days and opens <= local.time() < closes:
        return True, ""
    for ahead in range(0, 8):
        day = local + dt.timedelta(days=ahead)
        if DAYS[day.weekday()] in days and (ahead > 0 or local.time() < opens):
            return False, f"{day.date().isoformat()} {support.opens_at}"
    return False, support.opens_at


"""Human hand-off tickets: open, relay between the chat and the staff group, close."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from core.models import AuditLog, Customer, Ticket, TicketMessage, utcnow
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
    just_closed: bool = False  # True when this call closed it


async def _view(s, t: Ticket, created: bool = False,  # type: ignore[no-untyped-def]
                just_closed: bool = False) -> TicketView:
    customer = await s.get(Customer, t.customer_id) if t.customer_id else None
    return TicketView(t.id, t.telegram_user_id, t.kind, t.status, t.reason,
                      customer.code if customer else None, customer.name if customer else None,
                      created, just_closed)


async def open_ticket(s: AsyncSession, telegram_user_id: int, customer_id: int | None,
                      kind: str, reason: str) -> TicketView:
    """Open a ticket for the chat, or return the one already open."""
    existing = await s.scalar(select(Ticket).where(
        Ticket.telegram_user_id == telegram_user_id, Ticket.status == "open"))
    if existing:
        return await _view(s, existing)
    t = Ticket(telegram_user_id=telegram_user_id, customer_id=customer_id,
               kind=kind if kind in ("handoff", "complaint") else "handoff",
               reason=reason[:2000])
    s.add(t)
    await s.flush()
    s.add(AuditLog(actor=f"tg:{telegram_user_id}", action=f"ticket.open.{t.kind}",
                   subject=f"ticket:{t.id}"))
    return await _view(s, t, created=True)


async def open_ticket_for(s: AsyncSession, telegram_user_id: int) -> TicketView | None:
    """The chat's open ticket, if any (then the bot stays quiet)."""
    t = await s.scalar(select(Ticket).where(
        Ticket.telegram_user_id == telegram_user_id, Ticket.status == "open"))
    return None if t is None else await _view(s, t)


async def remember_staff_message(s: AsyncSession, ticket_id: int, chat_id: int,
                                 message_id: int) -> None:
    """Record a staff-group message that belongs to a ticket."""
    s.add(TicketMessage(ticket_id=ticket_id, staff_chat_id=chat_id, message_id=message_id))


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
    just_closed = t.status == "open"
    if just_closed:
        t.status = "closed"
        t.closed_at = utcnow()
        t.closed_by = closed_by[:100]
        s.add(AuditLog(actor=closed_by[:100], action="ticket.close", subject=f"ticket:{t.id}"))
    return await _view(s, t, just_closed=just_closed)


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


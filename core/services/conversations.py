"""Private conversations: where a message goes (staff, link code, assistant) and the recent
transcript that a hand-off shows staff (kept in the database, last few lines per chat)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ChatLine
from core.services import accounts, tickets
from core.services.tickets import TicketView

LINE_LIMIT = 500  # characters kept per transcript line


@dataclass(frozen=True)
class Route:
    """What to do with a private message: relay to staff, redeem a link code, or ask the
    assistant."""

    action: str  # relay | link | assistant
    ticket: TicketView | None = None


async def decide_route(s: AsyncSession, telegram_user_id: int, text: str | None,
                       code_length: int) -> Route:
    """A ticket with staff (or whose staff post is on its way) silences the bot: relay; a bare
    link code is redeemed; else the assistant. An unreachable ticket silences nobody."""
    ticket = await tickets.active_ticket(s, telegram_user_id)
    if ticket is not None:
        return Route("relay", ticket)
    if text and accounts.looks_like_link_code(text, code_length):
        return Route("link")
    return Route("assistant")


async def note_lines(s: AsyncSession, lines: list[tuple[int, str, str]], keep: int) -> None:
    """Append (chat_id, who, text) lines and keep only the last `keep` lines of those chats."""
    if not lines:
        return
    for chat_id, who, text in lines:
        s.add(ChatLine(chat_id=chat_id, who=who, text=text[:LINE_LIMIT]))
    await s.flush()
    for chat_id in {c for c, _, _ in lines}:
        oldest_kept = await s.scalar(
            select(ChatLine.id).where(ChatLine.chat_id == chat_id)
            .order_by(ChatLine.id.desc()).offset(max(keep, 1) - 1).limit(1))
        if oldest_kept is not None:
            await s.execute(delete(ChatLine).where(ChatLine.chat_id == chat_id,
                                                   ChatLine.id < oldest_kept))


async def transcript(s: AsyncSession, chat_id: int, limit: int) -> list[tuple[str, str]]:
    """The last `limit` lines of a chat as (who, text), oldest first."""
    rows = (await s.execute(
        select(ChatLine.who, ChatLine.text).where(ChatLine.chat_id == chat_id)
        .order_by(ChatLine.id.desc()).limit(limit))).all()
    return [(str(w), str(t)) for w, t in reversed(rows)]


async def prune_lines(s: AsyncSession, keep_days: float = 30) -> int:
    """Forget transcript lines of conversations nobody continued for `keep_days`."""
    import datetime as dt

    from core.models import utcnow

    cutoff = utcnow() - dt.timedelta(days=keep_days)
    result = await s.execute(delete(ChatLine).where(ChatLine.at < cutoff))
    return int(result.rowcount or 0)

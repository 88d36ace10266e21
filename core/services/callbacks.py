"""Button payloads longer than Telegram's 64-byte callback_data, kept in the database.

The key is derived from the payload, so every gateway (and a restarted one) finds it, and
storing the same payload twice is a no-op.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import CallbackPayload, utcnow

CALLBACK_DATA_LIMIT = 64
PREFIX = "k:"


def key_for(payload: str) -> str:
    """The short callback_data standing for a long payload."""
    digest = hashlib.sha256(payload.encode()).digest()[:18]
    return PREFIX + base64.urlsafe_b64encode(digest).decode()


def needs_key(payload: str) -> bool:
    """True when the payload cannot be callback_data itself."""
    return len(payload.encode()) > CALLBACK_DATA_LIMIT or payload.startswith(PREFIX)


async def save(s: AsyncSession, payloads: dict[str, str]) -> None:
    """Store key → payload pairs (a stored one is only marked as used again)."""
    if not payloads:
        return
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    stmt = insert(CallbackPayload).values(
        [{"key": k, "payload": p, "created_at": now} for k, p in payloads.items()])
    # Sending the same button again keeps its payload from being pruned.
    await s.execute(stmt.on_conflict_do_update(
        index_elements=["key"], set_={"created_at": stmt.excluded.created_at}))


async def load(s: AsyncSession, data: str) -> str | None:
    """The payload behind callback_data, or None if it is unknown or was pruned."""
    if not data.startswith(PREFIX):
        return data
    return await s.scalar(select(CallbackPayload.payload).where(CallbackPayload.key == data))


async def prune(s: AsyncSession, keep_days: float = 30, now: dt.datetime | None = None) -> int:
    """Forget payloads of old buttons (pressing one then says the button expired)."""
    cutoff = (now or utcnow()) - dt.timedelta(days=keep_days)
    result = await s.execute(delete(CallbackPayload).where(CallbackPayload.created_at < cutoff))
    return int(result.rowcount or 0)

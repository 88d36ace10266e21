"""A pooled connection the server dropped is replaced at checkout (the one-round-trip ping)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import Database


async def test_a_connection_killed_by_the_server_is_replaced(postgres_db: Database) -> None:
    db = postgres_db
    async with db.transaction() as s:
        pid = await s.scalar(text("SELECT pg_backend_pid()"))
    admin = create_async_engine(db.url)
    try:
        async with admin.begin() as conn:  # the server restarts / an idle timeout hits
            assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()
    async with db.transaction() as s:  # the pooled connection is dead: the ping replaces it
        assert await s.scalar(text("SELECT pg_backend_pid()")) != pid

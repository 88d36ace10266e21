"""Database engine and units of work: one session per update, action call or request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only


class Database:
    """Owns the engine; created at process start-up and disposed at shutdown."""

    def __init__(self, url: str, echo: bool = False, search_path: str | None = None) -> None:
        self.url = url
        kwargs: dict = {"echo": echo, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10)
            if search_path:  # tests give each run its own PostgreSQL schema
                kwargs["connect_args"] = {"server_settings": {"search_path": search_path}}
            if url.startswith("postgresql+asyncpg"):
                # Still a ping at every checkout, but one round trip instead of three (see
                # _asyncpg_ping); a dead connection is replaced just the same.
                kwargs["pool_pre_ping"] = False
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        elif url.startswith("postgresql+asyncpg"):
            event.listen(self.engine.sync_engine, "checkout", _asyncpg_ping)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """True for the SQLite backend (no row locks, one writer at a time)."""
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Open a session in a transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session:
            async with session.begin():
                yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the gateway read while an import writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL never corrupts the file; it skips an fsync per commit (a power cut can
    # lose the last commits, not the database). Every chat message commits a few times.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _asyncpg_ping(dbapi_connection, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
    """Pessimistic disconnect handling for asyncpg in one round trip.

    SQLAlchemy's pool_pre_ping on asyncpg pings inside an explicit transaction (BEGIN, a
    prepared `;`, ROLLBACK: three round trips, for PgBouncer's transaction mode). A simple-
    protocol `SELECT 1` (execute() without arguments: no prepared statement) is as safe
    with PgBouncer and costs one. DisconnectionError makes the pool replace the connection
    and check out again, as pre-ping does.
    """
    try:
        await_only(dbapi_connection.driver_connection.execute("SELECT 1"))
    except Exception as exc:
        raise DisconnectionError(f"connection failed its ping: {exc}") from exc


def insert_for(s: AsyncSession, model: Any) -> Any:
    """An INSERT for `model` in the session's dialect (PostgreSQL or SQLite), so callers can
    add `.on_conflict_do_nothing(…)` / `.on_conflict_do_update(…)`: one-time by the database."""
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)

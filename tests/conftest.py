"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, and named personas."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import Database
from core.migrate import upgrade

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str | None:
    """The PostgreSQL URL tests use, or None when TEST_POSTGRES_URL=off."""
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG)
    return None if url.lower() in {"off", "no", "0", ""} else url


async def _postgres_schema_db(base_url: str) -> tuple[Database, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base_url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OSError as exc:  # connection refused
        raise RuntimeError(
            f"PostgreSQL is not reachable at {base_url} ({exc}). Start it, point "
            "TEST_POSTGRES_URL at another server, or set TEST_POSTGRES_URL=off to skip "
            "the PostgreSQL half of the suite."
        ) from exc
    finally:
        await admin.dispose()
    return Database(base_url, search_path=schema), schema


async def _drop_schema(base_url: str, schema: str) -> None:
    admin = create_async_engine(base_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await admin.dispose()


def _backends() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    if postgres_url():
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@asynccontextmanager
async def _migrated_postgres(base: str) -> AsyncIterator[Database]:
    database, schema = await _postgres_schema_db(base)
    try:
        await upgrade(database.engine)
        yield database
    finally:
        await database.dispose()
        await _drop_schema(base, schema)


@pytest.fixture(params=_backends())
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    """A freshly migrated, empty database: SQLite file and PostgreSQL schema variants."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await upgrade(database.engine)
        yield database
        await database.dispose()
        return
    base = postgres_url()
    assert base
    async with _migrated_postgres(base) as database:
        yield database


@pytest.fixture
async def postgres_db() -> AsyncIterator[Database]:
    """A migrated PostgreSQL schema only, for behaviour SQLite does not have (server-side
    connections). Skipped only when the PostgreSQL half is switched off (TEST_POSTGRES_URL=off)."""
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL=off")
    async with _migrated_postgres(base) as database:
        yield database


@pytest.fixture
async def sqlite_db(tmp_path) -> AsyncIterator[Database]:
    """A migrated SQLite database only (for tests that need no backend matrix)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    await upgrade(database.engine)
    yield database
    await database.dispose()


async def uow(db: Database, service, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Call one service function in its own unit of work, as an adapter would."""
    async with db.transaction() as s:
        return await service(s, *args, **kwargs)

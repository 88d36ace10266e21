"""Fixtures for the delivery worker: the emulator, a real PTB Bot, fast settings, a runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest_asyncio
from sqlalchemy import func, select

from bot.delivery.worker import Worker
from core.db import Database
from core.models import OutboxMessage
from core.settings import Settings, load_settings
from sandbox.emulator import RunningEmulator, running_emulator
from tests.emulator.conftest import Control, make_bot

FAST = {
    "APP__DELIVERY__BACKOFF_SECONDS": "0.05",
    "APP__DELIVERY__LEASE_SECONDS": "5",
    "APP__DELIVERY__POLL_SECONDS": "0.05",
    "APP__DELIVERY__MAX_ATTEMPTS": "3",
}


def fast_settings(**overrides: str) -> Settings:
    """Real config.yml with short backoff, lease and poll, so tests run in seconds."""
    return load_settings(env={**FAST, **overrides})


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    """The emulator with Telegram's flood limits on."""
    async with running_emulator() as emulator:
        yield emulator


@pytest_asyncio.fixture
async def ctl(emu: RunningEmulator) -> AsyncIterator[Control]:
    """The emulator's control API."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        yield Control(emu.url, http)


@pytest_asyncio.fixture
async def tgbot(emu: RunningEmulator) -> AsyncIterator[Any]:
    """An initialised PTB Bot pointed at the emulator."""
    bot = make_bot(emu)
    await bot.initialize()
    yield bot
    await bot.shutdown()


async def private_chats(ctl: Control, *ids: int) -> None:
    """Users who have talked to the bot (so it may write to them)."""
    for uid in ids:
        await ctl.post("chats", {"id": uid, "type": "private", "first_name": f"U{uid}"})


async def groups(ctl: Control, *ids: int, kind: str = "supergroup") -> None:
    """Groups the bot administers."""
    for gid in ids:
        await ctl.post("chats", {"id": gid, "type": kind, "title": f"G{gid}"})


@asynccontextmanager
async def running_worker(settings: Settings, db: Database, bot: Any,
                         **kwargs: Any) -> AsyncIterator[Worker]:
    """A worker task in this event loop, stopped (and awaited) on exit."""
    worker = Worker(settings, db, bot, **kwargs)
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 20,
                     what: str = "condition") -> None:
    """Poll `check` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def count(db: Database, **where: Any) -> int:
    """Outbox rows matching column == value filters."""
    async with db.transaction() as s:
        q = select(func.count()).select_from(OutboxMessage)
        for k, v in where.items():
            q = q.where(getattr(OutboxMessage, k) == v)
        return int(await s.scalar(q) or 0)


async def open_rows(db: Database) -> int:
    """Rows still queued or being sent (one query: a row may move between the two)."""
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_(("queued", "sending")))) or 0)


async def rows(db: Database) -> list[OutboxMessage]:
    """Every outbox row, by id."""
    async with db.transaction() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def accepted(ctl: Control) -> dict[int, int]:
    """Messages the emulator accepted per chat."""
    stats = await ctl.get("stats")
    return {int(k): v for k, v in stats["accepted"]["per_chat"].items()}

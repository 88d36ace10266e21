"""Fixtures: in-process emulator on a free port, a real PTB Bot pointed at it, control client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from telegram import Bot
from telegram.ext import BaseRateLimiter, ExtBot
from telegram.request import HTTPXRequest

from sandbox.emulator import RunningEmulator, running_emulator

TOKEN = "123456789:TEST-emulator-token"
BOT_ID = 123456789
RITA = {"id": 1001, "first_name": "Rita", "username": "rita_shop", "language_code": "en"}
DAN = {"id": 1002, "first_name": "Dan", "language_code": "en"}
TESS = {"id": 1003, "first_name": "Tess", "language_code": "zh-hans"}
GROUP = {"id": -1001234567890, "type": "supergroup", "title": "Dealer community"}


class Control:
    """A thin client for /_emulator/ that checks the HTTP status."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def request(self, method: str, path: str, body: Any = None,
                      expect: int = 200) -> Any:
        """Call the control API and assert the status (POST/DELETE always send JSON)."""
        if body is None and method not in ("GET", "HEAD"):
            body = {}
        async with self.session.request(method, f"{self.base}/_emulator/{path}",
                                        json=body) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == expect, (resp.status, data)
            return data

    async def post(self, path: str, body: Any, expect: int = 200) -> Any:
        """POST JSON."""
        return await self.request("POST", path, body, expect)

    async def get(self, path: str, expect: int = 200) -> Any:
        """GET."""
        return await self.request("GET", path, None, expect)

    async def say(self, user: dict, text: str, **extra: Any) -> dict:
        """Inject a private text message from ``user``."""
        return await self.post("updates/message", {"user": user, "text": text, **extra})

    async def group(self, chat: dict = GROUP, **extra: Any) -> dict:
        """Register a supergroup (bot is admin unless bot_status says otherwise)."""
        return await self.post("chats", {**chat, **extra})


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    """The emulator on 127.0.0.1:<free port>."""
    async with running_emulator() as emulator:
        yield emulator


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest_asyncio.fixture
async def ctl(emu: RunningEmulator, http: aiohttp.ClientSession) -> Control:
    """Control API client."""
    return Control(emu.url, http)


def make_bot(emu: RunningEmulator, token: str = TOKEN,
             rate_limiter: BaseRateLimiter | None = None) -> Bot:
    """A real python-telegram-bot Bot talking to the emulator (an ExtBot with a rate limiter,
    as the gateway's Application builds it, when ``rate_limiter`` is given)."""
    bot_class = Bot if rate_limiter is None else partial(ExtBot, rate_limiter=rate_limiter)
    return bot_class(
        token,
        base_url=emu.bot_base_url,
        base_file_url=emu.file_base_url,
        # plain HTTP to 127.0.0.1: skipping certificate loading saves ~50 ms per test
        request=HTTPXRequest(connection_pool_size=8, read_timeout=5, connect_timeout=2,
                             httpx_kwargs={"verify": False}),
        get_updates_request=HTTPXRequest(read_timeout=5, connect_timeout=2,
                                         httpx_kwargs={"verify": False}),
    )


@pytest_asyncio.fixture
async def bot(emu: RunningEmulator) -> AsyncIterator[Bot]:
    """An initialised PTB Bot (initialize() already called getMe on the emulator)."""
    telegram_bot = make_bot(emu)
    await telegram_bot.initialize()
    yield telegram_bot
    await telegram_bot.shutdown()


class FakeClock:
    """A monotonic clock the test moves by hand, so flood-limit windows are deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


@pytest.fixture
def clock(emu: RunningEmulator) -> FakeClock:
    """Freeze the emulator's flood-limit clock (the rest of the emulator keeps real time)."""
    fake = FakeClock()
    emu.state.limiter.clock = fake
    return fake


@pytest.fixture
def rita() -> dict:
    """A retailer user."""
    return dict(RITA)

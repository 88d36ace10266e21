"""One running system for the training gateway tests: the sandbox harness's `start_system`
without Rasa (training commands and buttons never go through NLU). Find a button with
`sandbox.harness.pick`, press it with `Harness.click` (`force=True` for a tap Telegram would
not offer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from sandbox.harness import Harness, start_system, stop_system


@asynccontextmanager
async def training_system(
        tmp_path_factory: pytest.TempPathFactory, name: str,
        prepare: Callable[[AsyncSession, Settings], Awaitable[Any]] | None = None,
        skip: Iterable[str] = ("rasa", "actions")) -> AsyncIterator[Harness]:
    """The demo data (as `make run` seeds it, personas linked), `prepare(session, settings)`
    run in one transaction (its result is `harness.prepared`), then the launcher's processes
    except those in `skip`; stopped on exit."""
    harness = await start_system(tmp_path_factory.mktemp(name), log=lambda _: None,
                                 skip=skip, prepare=prepare)
    try:
        yield harness
    finally:
        await stop_system(harness)

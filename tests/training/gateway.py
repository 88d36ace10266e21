"""One running system for the training gateway tests: the sandbox harness's `start_system`
without Rasa (training commands and buttons never go through NLU), and `pick` to find a
button by its label (press it with `Harness.click`, `force=True` for a tap Telegram would
not offer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from sandbox.harness import Harness, buttons, start_system, stop_system


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


def pick(sent: list[dict], label_part: str) -> tuple[dict, str]:
    """(message, callback_data) of the first button whose label contains `label_part`."""
    for e in sent:
        message = e.get("message") or {}
        for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
            for b in row:
                if label_part in b.get("text", ""):
                    return message, b["callback_data"]
    raise AssertionError(f"no {label_part!r} in {buttons(sent)}")

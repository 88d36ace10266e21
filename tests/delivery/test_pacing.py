"""Pacing on the moment a request leaves (not the moment its slot was reserved), and 429s."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import update

from bot.delivery import store
from bot.delivery import worker as worker_module
from bot.delivery.pacing import SendWindow
from bot.delivery.worker import Worker
from core.db import Database
from core.models import DeliveryPace, OutboxMessage
from core.services import outbox
from tests.conftest import uow
from tests.delivery.conftest import (
    accepted,
    fast_settings,
    open_rows,
    private_chats,
    running_worker,
    wait_until,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_send_window_holds_at_most_limit_in_any_window() -> None:
    clock = FakeClock()
    window = SendWindow(3, 1.0, clock=clock)
    for _ in range(3):
        assert window.delay() == 0
        window.charge()
        clock.now += 0.1
    # The fourth must wait until the first (sent at 100.0) has left the window.
    assert abs(window.delay() - 0.7) < 1e-9
    clock.now = 101.0
    assert window.delay() == 0
    window.charge()
    assert abs(window.delay() - 0.1) < 1e-9  # the one sent at 100.1 leaves next
    # A split message (parts) needs room for all its parts; more parts than the limit wait
    # for an empty window rather than forever.
    assert abs(window.delay(2) - 0.2) < 1e-9
    assert abs(window.delay(10) - 1.0) < 1e-9


async def test_slot_is_taken_when_the_pace_row_is_ours_not_before_waiting_for_it(
        db: Database) -> None:
    """A sender that waited for another's write must not get a slot in the past (it would
    send at once, next to the ones whose slots really are now)."""
    await uow(db, outbox.enqueue, 8200, text="x")
    [row] = await store.claim(db, "w", 10, 60)
    held = asyncio.Event()
    hold_end = 0.0

    async def other_worker() -> None:  # holds the pace row (on SQLite: the write lock)
        nonlocal hold_end
        async with db.transaction() as s:
            await s.execute(update(DeliveryPace).where(DeliveryPace.key == store.GLOBAL_KEY)
                            .values(next_at=0.0))
            held.set()
            await asyncio.sleep(0.4)
            hold_end = time.time()

    holder = asyncio.create_task(other_worker())
    await held.wait()
    slot = await store.begin_call(db, row.id, "w", 1, 28.0)
    await holder
    assert slot is not None and slot >= hold_end, (slot, hold_end)


class StallingWorker(Worker):
    """A worker whose event loop 'stalls': senders due during a stall wake together after it
    (a busy CPU, a slow commit, a garbage collection), as happens on a shared machine."""

    stalls: list[float] = []
    stall_seconds = 0.6

    async def _wait_for_slot(self, slot: float, row: OutboxMessage) -> None:
        await super()._wait_for_slot(slot, row)
        now = time.time()
        for start in self.stalls:
            if start <= now < start + self.stall_seconds:
                await asyncio.sleep(start + self.stall_seconds - now)


async def test_senders_woken_late_do_not_bunch_past_the_bot_wide_window(
        db: Database, emu, ctl, tgbot, monkeypatch) -> None:
    # Telegram's 30/s and the worker's 28/s, scaled down to 13/s and 10/s. Without the
    # send-time window the stalls below put ~16 requests in one second.
    await ctl.post("limits", {"global_max": 13})
    users = list(range(8001, 8061))
    await private_chats(ctl, *users)
    for uid in users:
        await uow(db, outbox.enqueue, uid, text=f"promo {uid}")
    left: list[float] = []  # the moments the worker's requests leave

    async def timed_send(*args, **kwargs):  # type: ignore[no-untyped-def]
        left.append(time.monotonic())
        return await real_send(*args, **kwargs)

    real_send = worker_module.send
    monkeypatch.setattr(worker_module, "send", timed_send)
    settings = fast_settings(APP__DELIVERY__GLOBAL_PER_SECOND="12")
    t0 = time.time()
    StallingWorker.stalls = [t0 + 1.0, t0 + 3.0]
    worker = StallingWorker(settings, db, tgbot, concurrency=8)  # the bot's pool: 8
    assert worker.rate == 10 and worker.window.limit == 10
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(ready))
    try:
        await wait_until(lambda: _none_open(db), timeout=30, what="all sent")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    got = await accepted(ctl)
    assert all(got.get(uid) == 1 for uid in users)
    refused = (await ctl.get("stats"))["refused"]
    # Measured where the worker is in control (the emulator shares this process's event loop,
    # so on a loaded machine its arrival times add jitter a real Telegram would not see):
    # never more than the worker's 10 in one second, however late its senders woke.
    busiest = max(sum(1 for t in left[i:] if t < start + 1.0) for i, start in enumerate(left))
    assert busiest <= 10, (busiest, refused)


async def _none_open(db: Database) -> bool:
    return await open_rows(db) == 0


async def test_bot_wide_429_slows_the_worker_down_instead_of_stopping_it(
        db: Database, emu, ctl, tgbot) -> None:
    """The 429'd message waits its retry_after; the rest of the campaign keeps going."""
    users = list(range(8101, 8121))
    await private_chats(ctl, 8100, *users)
    # A 429 for a chat that was within its own limit: the worker reads it as bot-wide.
    await ctl.post("faults", {"kind": "429", "chat_id": 8100, "retry_after": 3, "times": 1})
    first = await uow(db, outbox.enqueue, 8100, text="told to wait")
    for uid in users:
        await uow(db, outbox.enqueue, uid, text=f"promo {uid}")
    t0 = time.time()
    async with running_worker(fast_settings(), db, tgbot) as worker:
        await wait_until(lambda: _none_open(db), timeout=30, what="all sent")
        assert worker.stats.throttled == 1 and worker.slow_until > 0  # slowed down a while
    sent = {e["chat_id"]: e["time"] for e in await ctl.get("sent?timeout=0")}
    assert sent[8100] - t0 >= 2.9, "retry_after is honoured for the chat it was about"
    others = max(sent[uid] for uid in users) - t0
    assert others < 2.5, f"the other chats waited {others:.1f} s"
    stats = await ctl.get("stats")
    assert stats["refused"]["global"] == 0
    assert first

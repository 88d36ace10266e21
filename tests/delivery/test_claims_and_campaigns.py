"""Claiming, leases, dedupe, priority, campaigns (reports, cancel), CLI and database outages."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3

from sqlalchemy import update

from bot.delivery import store
from bot.delivery.worker import Worker
from core import cli
from core.db import Database
from core.models import (
    PRIORITY_BULK,
    PRIORITY_INTERACTIVE,
    PRIORITY_STAFF,
    Campaign,
    OutboxMessage,
    utcnow,
)
from core.services import outbox
from tests.conftest import uow
from tests.delivery.conftest import (
    accepted,
    count,
    fast_settings,
    groups,
    open_rows,
    private_chats,
    rows,
    running_worker,
    wait_until,
)


async def test_claim_lease_and_reclaim_after_a_crash(db: Database) -> None:
    async with db.transaction() as s:
        ids = [await outbox.enqueue(s, 100 + i, text="x") for i in range(3)]
    a = await store.claim(db, "A", 2, lease_seconds=60)
    b = await store.claim(db, "B", 5, lease_seconds=60)
    assert [r.id for r in a] == ids[:2] and [r.id for r in b] == ids[2:]
    assert await store.claim(db, "C", 5, lease_seconds=60) == []
    # A dies: one row was in its HTTP call, one only claimed.
    assert await store.begin_call(db, ids[0], "A", 1, 28.0) is not None
    assert await store.begin_call(db, ids[0], "B", 1, 28.0) is None  # not B's row
    async with db.transaction() as s:
        await s.execute(update(OutboxMessage).where(OutboxMessage.claimed_by == "A")
                        .values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    assert await store.reclaim_expired(db) == (2, 1)
    again = await store.claim(db, "C", 5, lease_seconds=60)
    assert [r.id for r in again] == ids[:2]


async def test_dedupe_key_is_never_queued_twice(db: Database) -> None:
    first = await uow(db, outbox.enqueue, 1, text="x", dedupe_key="restock:1")
    again = await uow(db, outbox.enqueue, 1, text="x", dedupe_key="restock:1")
    assert first is not None and again is None
    assert await count(db) == 1


async def test_claim_takes_the_most_urgent_first(db: Database) -> None:
    async with db.transaction() as s:
        bulk = [await outbox.enqueue(s, 1, text="b", priority=PRIORITY_BULK) for _ in range(3)]
        staff = await outbox.enqueue(s, 2, text="s", priority=PRIORITY_STAFF)
        person = await outbox.enqueue(s, 3, text="p", priority=PRIORITY_INTERACTIVE)
        later = await outbox.enqueue(s, 4, text="l", priority=PRIORITY_INTERACTIVE,
                                     not_before=utcnow() + dt.timedelta(hours=1))
    got = [r.id for r in await store.claim(db, "A", 10, 60)]
    assert got == [person, staff, *bulk] and later not in got
    assert await store.claim(db, "B", 10, 60, urgent_only=True) == []


async def test_campaign_cancelled_half_way_and_final_report_once(
        db: Database, emu, ctl, tgbot) -> None:
    users = list(range(20_001, 20_041))
    staff = -100555
    await private_chats(ctl, *users)
    await groups(ctl, staff)
    async with db.transaction() as s:
        cid = await outbox.start_campaign(s, "promo", "Half", "test", report_chat_id=staff)
        for uid in users:
            await outbox.enqueue(s, uid, text="promo", priority=PRIORITY_BULK, campaign_id=cid)
    settings = fast_settings(APP__DELIVERY__GLOBAL_PER_SECOND="12")  # 10/s: 4 s for 40
    async with running_worker(settings, db, tgbot, progress_seconds=0.5) as worker:
        await wait_until(lambda: _sent(db, 10), what="a quarter sent")
        cancelled = await uow(db, outbox.cancel_campaign, cid)
        assert cancelled > 10
        await wait_until(lambda: _reported(db, cid), what="final report")
        await wait_until(lambda: _no_open(db), what="report sent")
        # Another tick (or worker) must not report twice.
        second = Worker(settings, db, tgbot, worker_id="other")
        from bot.delivery import reports
        assert await reports.tick(db, 0.5, "en") == []
        del second, worker
    sent = sum(v for k, v in (await accepted(ctl)).items() if k in users)
    report = await uow(db, outbox.campaign_report, cid)
    assert report.sent == sent and report.cancelled == cancelled
    assert report.sent + report.cancelled == 40 and report.status == "cancelled"
    finals = [r for r in await rows(db) if r.dedupe_key == f"campaign:{cid}:final"]
    assert len(finals) == 1 and finals[0].status == "sent"
    history = await ctl.get(f"chats/{staff}/history")
    msgs = history if isinstance(history, list) else history["messages"]
    texts = [m["text"] for m in msgs if m.get("from", {}).get("is_bot")]
    finals_seen = [t for t in texts if "Half" in t and ("已取消" in t or "cancelled" in t)]
    assert len(finals_seen) == 1, texts


async def _sent(db: Database, n: int) -> bool:
    return await count(db, status="sent") >= n


async def _no_open(db: Database) -> bool:
    return await open_rows(db) == 0


async def _reported(db: Database, cid: int) -> bool:
    async with db.transaction() as s:
        return (await s.get(Campaign, cid)).reported_at is not None


async def test_campaign_finishes_with_reasons_grouped_and_cli(
        db: Database, emu, ctl, tgbot, capsys, monkeypatch) -> None:
    await private_chats(ctl, 30_001, 30_002, 30_003)
    await groups(ctl, -100666)
    await ctl.post("faults", {"kind": "blocked", "chat_id": 30_002, "times": None})
    async with db.transaction() as s:
        cid = await outbox.start_campaign(s, "promo", "Full", "test", report_chat_id=-100666)
        for uid in (30_001, 30_002, 30_003, 40_404):
            await outbox.enqueue(s, uid, text="promo", priority=PRIORITY_BULK, campaign_id=cid)
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _reported(db, cid), what="final report")
        await wait_until(lambda: _no_open(db), what="report sent")
    report = await uow(db, outbox.campaign_report, cid)
    assert (report.sent, report.failed, report.status) == (2, 2, "finished")
    assert sorted(report.reasons) == [("blocked", 1), ("chat_not_found", 1)]
    # The CLI reads the same database.
    monkeypatch.setattr(cli, "_db", lambda settings: _Borrowed(db))
    settings = fast_settings()

    async def run(*argv: str) -> int:
        args = cli.build_parser().parse_args(list(argv))
        return await args.handler(settings, args)

    assert await run("campaign", "report", str(cid)) == 0
    assert "blocked" in capsys.readouterr().out
    assert await run("outbox", "failed", "--campaign", str(cid)) == 0
    assert "chat_not_found" in capsys.readouterr().out
    assert await run("outbox", "retry", "--campaign", str(cid)) == 0
    assert await count(db, status="queued") == 2
    assert await run("campaign", "report", "999") == 1
    assert "no campaign 999" in capsys.readouterr().err
    assert await run("outbox", "retry") == 2
    assert "--campaign N or --all-failed" in capsys.readouterr().err


class _Borrowed:
    """The test's database, lent to a CLI command that would dispose of it."""

    def __init__(self, db: Database) -> None:
        self.transaction = db.transaction

    async def dispose(self) -> None:
        """The test owns the engine."""


async def test_database_briefly_unavailable_the_worker_keeps_going(
        db: Database, emu, ctl, tgbot, tmp_path) -> None:
    await private_chats(ctl, 50_001, 50_002)
    await uow(db, outbox.enqueue, 50_001, text="before")
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _sent(db, 1), what="first sent")
        await uow(db, outbox.enqueue, 50_002, text="after")
        broken = await _break(db)
        await asyncio.sleep(1.5)  # the worker meets the outage
        await broken.restore()
        await wait_until(lambda: _sent(db, 2), timeout=30, what="sent after the outage")
    assert (await accepted(ctl)).get(50_002) == 1


class _Outage:
    def __init__(self, restore) -> None:  # type: ignore[no-untyped-def]
        self.restore = restore


async def _break(db: Database) -> _Outage:
    """Make every new database call of the worker fail until restore() (connection refused)."""
    real_connect = db.engine.sync_engine.pool._creator  # noqa: SLF001 - test-only hook

    def refuse():  # type: ignore[no-untyped-def]
        raise (sqlite3.OperationalError("unable to open database file") if db.is_sqlite
               else ConnectionRefusedError(111, "Connection refused"))

    db.engine.sync_engine.pool._creator = refuse  # noqa: SLF001
    await db.engine.dispose(close=False)  # pooled connections are dropped: every call reconnects

    async def restore() -> None:
        db.engine.sync_engine.pool._creator = real_connect  # noqa: SLF001

    return _Outage(restore)

"""Reward points: once-only earning, no overspending, reversal debt, FIFO expiry, reconcile."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text

from community.points import ledger, reports, rewards
from community.points.errors import (
    AlreadyDecided,
    NotEnoughPoints,
    OutOfStock,
    ReasonRequired,
)
from community.points.models import PointsBalance, PointsEntry
from core.db import Database
from core.errors import PermissionDenied
from core.models import (
    AuditLog,
    Customer,
    Order,
    OrderLine,
    OutboxMessage,
    Product,
    StaffMember,
    TelegramIdentity,
)
from core.settings import PointsSection
from tests.conftest import uow

CFG = PointsSection(rules={"bonus": 100, "course_completed": 50, "quiz_passed": 20,
                           "participation_day": 5, "referral": 200},
                    tier_multipliers={}, participation_daily_cap=12, return_window_days=14,
                    expire_after_days=365, remind_days_before=30)
T0 = dt.datetime(2026, 1, 10, 4, 0, tzinfo=dt.UTC)


async def _setup(s, code: str = "D001", tier: str | None = "general",
                 region: str = "华东") -> int:
    c = Customer(code=code, kind="dealer", name=f"Dealer {code}", region=region, tier=tier)
    s.add(c)
    await s.flush()
    return c.id


async def _staff(s, role: str) -> int:
    m = StaffMember(name=f"{role} person", role=role)
    s.add(m)
    await s.flush()
    return m.id


async def _entries(db: Database, account: int) -> list[tuple[str, str, int, int]]:
    async with db.transaction() as s:
        rows = await s.execute(select(PointsEntry.kind, PointsEntry.source_key,
                                      PointsEntry.amount, PointsEntry.pending)
                               .where(PointsEntry.account_id == account)
                               .order_by(PointsEntry.id))
        return [tuple(r) for r in rows]


async def _reconciled(db: Database) -> None:
    report = await uow(db, ledger.reconcile)
    assert report.ok, report.drifts


async def test_same_source_awarded_twice_is_one_entry(db: Database) -> None:
    account = await uow(db, _setup)
    first = await uow(db, ledger.award, account, "quiz_passed", "quiz-7", cfg=CFG)
    again = await uow(db, ledger.award, account, "quiz_passed", "quiz-7", cfg=CFG)
    assert (first.created, first.points) == (True, 20)
    assert (again.created, again.points) == (False, 0)
    assert len(await _entries(db, account)) == 1
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 20
    await _reconciled(db)


async def test_concurrent_units_of_work_award_one_source_once(db: Database) -> None:
    account = await uow(db, _setup)
    results = await asyncio.gather(*(
        uow(db, ledger.award, account, "course_completed", "course-3", cfg=CFG)
        for _ in range(8)))
    assert sum(r.created for r in results) == 1
    assert len(await _entries(db, account)) == 1
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 50
    await _reconciled(db)


async def test_concurrent_redemptions_never_overspend(db: Database) -> None:
    account = await uow(db, _setup)
    await uow(db, ledger.award, account, "bonus", "welcome", cfg=CFG)  # 100 points
    await uow(db, rewards.upsert_reward, "CUP", kind="gift", name_zh="水杯", cost=20,
              needs_approval=False)

    async def one() -> str:
        try:
            await uow(db, rewards.redeem, account, "CUP")
            return "ok"
        except NotEnoughPoints:
            return "not enough"

    outcomes = await asyncio.gather(*(one() for _ in range(20)))
    assert outcomes.count("ok") == 5
    assert outcomes.count("not enough") == 15
    view = await uow(db, ledger.balance, account, cfg=CFG)
    assert (view.available, view.debt) == (0, 0)
    await _reconciled(db)


async def test_concurrent_redemptions_never_oversell_stock(db: Database) -> None:
    account = await uow(db, _setup)
    await uow(db, ledger.award, account, "bonus", "welcome", cfg=CFG)
    await uow(db, rewards.upsert_reward, "FAN", kind="gift", name_zh="电扇", cost=10, stock=3)

    async def one() -> str:
        try:
            await uow(db, rewards.redeem, account, "FAN")
            return "ok"
        except OutOfStock:
            return "out"

    outcomes = await asyncio.gather(*(one() for _ in range(8)))
    assert outcomes.count("ok") == 3
    assert (await uow(db, rewards.catalogue))[0].stock == 0
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 70
    await _reconciled(db)


async def _delivered_order(s, account: int, value: str = "120.00") -> int:
    p = Product(sku="NOODLE-1", name_zh="红烧牛肉面", category="方便面", price=Decimal(value))
    s.add(p)
    await s.flush()
    o = Order(order_no="SO20260101-0001", customer_id=account, status="delivered",
              created_at=T0)
    s.add(o)
    await s.flush()
    s.add(OrderLine(order_id=o.id, product_id=p.id, quantity=1, unit_price=Decimal(value)))
    await s.flush()
    return o.id


async def _set_status(s, order_id: int, status: str) -> None:
    (await s.get(Order, order_id)).status = status
    await s.flush()


async def test_order_points_pending_then_available_then_reversed_into_debt(db: Database
                                                                           ) -> None:
    account = await uow(db, _setup)
    order = await uow(db, _delivered_order, account)
    changes = await uow(db, ledger.apply_order_changes, [order], cfg=CFG, now=T0)
    assert (changes.earned, changes.points) == (1, 120)
    again = await uow(db, ledger.apply_order_changes, [order], cfg=CFG, now=T0)
    assert again.earned == 0  # a re-import earns nothing more
    view = await uow(db, ledger.balance, account, cfg=CFG)
    assert (view.available, view.pending) == (0, 120)

    later = T0 + dt.timedelta(days=15)
    assert await uow(db, ledger.mature_due, now=later, cfg=CFG) == 1
    assert await uow(db, ledger.mature_due, now=later, cfg=CFG) == 0
    await uow(db, rewards.upsert_reward, "COUPON", kind="coupon", name_zh="券", cost=100,
              needs_approval=False)
    await uow(db, rewards.redeem, account, "COUPON", now=later)

    await uow(db, _set_status, order, "cancelled")
    changes = await uow(db, ledger.apply_order_changes, [order], cfg=CFG, now=later)
    assert changes.reversed == 1
    view = await uow(db, ledger.balance, account, cfg=CFG)
    assert (view.available, view.pending, view.debt) == (-100, 0, 100)
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "points.debt")) == 1
    with pytest.raises(NotEnoughPoints):  # a debt blocks redemption
        await uow(db, rewards.redeem, account, "COUPON", now=later)
    await uow(db, ledger.award, account, "bonus", "pays-debt", cfg=CFG, now=later)
    view = await uow(db, ledger.balance, account, cfg=CFG)
    assert (view.available, view.debt) == (0, 0)  # future earnings pay the debt first
    await _reconciled(db)


async def test_cancelled_before_maturing_reverses_pending_only(db: Database) -> None:
    account = await uow(db, _setup)
    order = await uow(db, _delivered_order, account)
    await uow(db, ledger.apply_order_changes, [order], cfg=CFG, now=T0)
    await uow(db, _set_status, order, "cancelled")
    await uow(db, ledger.apply_order_changes, [order], cfg=CFG, now=T0)
    # The return window passes: nothing matures after a reversal.
    await uow(db, ledger.mature_due, now=T0 + dt.timedelta(days=30), cfg=CFG)
    view = await uow(db, ledger.balance, account, cfg=CFG)
    assert (view.available, view.pending, view.debt) == (0, 0, 0)
    assert [k for k, *_ in await _entries(db, account)] == ["earn", "reverse"]
    await _reconciled(db)


async def test_expiry_is_oldest_first_and_idempotent(db: Database) -> None:
    account = await uow(db, _setup)
    old_day = T0
    new_day = T0 + dt.timedelta(days=100)
    await uow(db, ledger.award, account, "bonus", "old", cfg=CFG, now=old_day)
    await uow(db, ledger.award, account, "bonus", "new", cfg=CFG, now=new_day)
    await uow(db, rewards.upsert_reward, "PEN", kind="gift", name_zh="笔", cost=30,
              needs_approval=False)
    await uow(db, rewards.redeem, account, "PEN", now=new_day)  # takes 30 of the OLD lot

    first_expiry = ledger.local_today(old_day) + dt.timedelta(days=365)
    run = await uow(db, ledger.expire_due, first_expiry, cfg=CFG, now=old_day)
    assert (run.expired_accounts, run.expired_points) == (1, 70)
    rerun = await uow(db, ledger.expire_due, first_expiry, cfg=CFG, now=old_day)
    assert rerun.expired_points == 0
    next_day = await uow(db, ledger.expire_due, first_expiry + dt.timedelta(days=1), cfg=CFG)
    assert next_day.expired_points == 0
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 100  # the new lot

    second = ledger.local_today(new_day) + dt.timedelta(days=365)
    run = await uow(db, ledger.expire_due, second, cfg=CFG)
    assert run.expired_points == 100
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 0
    await _reconciled(db)


async def test_expiry_reminder_queued_once_to_linked_chat(db: Database) -> None:
    async def setup(s) -> int:
        account = await _setup(s)
        s.add(TelegramIdentity(telegram_user_id=5551, customer_id=account, locale="en"))
        await _setup(s, "D002")  # no linked chat: skipped
        return account

    account = await uow(db, setup)
    await uow(db, ledger.award, account, "bonus", "old", cfg=CFG, now=T0)
    soon = ledger.local_today(T0) + dt.timedelta(days=350)
    assert (await uow(db, ledger.expire_due, soon, cfg=CFG)).reminders == 1
    assert (await uow(db, ledger.expire_due, soon, cfg=CFG)).reminders == 0
    async with db.transaction() as s:
        msg = (await s.execute(select(OutboxMessage))).scalars().one()
    assert (msg.chat_id, msg.template, msg.variables["points"]) == (
        5551, "points_expiry_reminder", 100)


async def test_reconcile_detects_tampering(db: Database) -> None:
    account = await uow(db, _setup)
    other = await uow(db, _setup, "D002")
    await uow(db, ledger.award, account, "bonus", "x", cfg=CFG)
    await _reconciled(db)
    async with db.transaction() as s:  # a balance row no ledger entry explains
        await s.execute(insert(PointsBalance).values(account_id=other, available=500,
                                                     pending=0))
        await s.execute(text("UPDATE points_balances SET available = available + 1 "
                             f"WHERE account_id = {account}"))
    report = await uow(db, ledger.reconcile)
    assert not report.ok
    assert {(d.account_id, d.stored_available, d.ledger_available) for d in report.drifts} == {
        (account, 101, 100), (other, 500, 0)}


async def test_ledger_entries_cannot_be_changed(db: Database) -> None:
    account = await uow(db, _setup)
    await uow(db, ledger.award, account, "bonus", "x", cfg=CFG)
    with pytest.raises(Exception, match="append-only"):
        async with db.transaction() as s:
            await s.execute(text("UPDATE points_entries SET amount = 1000"))


async def test_rejection_refunds_once(db: Database) -> None:
    async def setup(s) -> tuple[int, int]:
        return await _setup(s), await _staff(s, "customer_service")

    account, staff = await uow(db, setup)
    await uow(db, ledger.award, account, "bonus", "x", cfg=CFG)
    await uow(db, rewards.upsert_reward, "BIKE", kind="gift", name_zh="自行车", cost=60,
              stock=1)
    req = await uow(db, rewards.redeem, account, "BIKE")
    assert (req.status, req.available_after) == ("pending", 40)
    assert [r.id for r in await uow(db, rewards.requests)] == [req.id]
    await uow(db, rewards.reject, req.id, staff, "out of season", cfg=CFG)
    again = await uow(db, rewards.reject, req.id, staff, "clicked twice", cfg=CFG)
    assert again.status == "rejected"
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 100
    assert [k for k, *_ in await _entries(db, account)] == ["earn", "spend", "refund"]
    assert (await uow(db, rewards.catalogue))[0].stock == 1
    with pytest.raises(AlreadyDecided):
        await uow(db, rewards.approve, req.id, staff, cfg=CFG)
    await _reconciled(db)


async def test_adjustments_need_a_role_and_a_reason(db: Database) -> None:
    async def setup(s) -> tuple[int, int, int]:
        return await _setup(s), await _staff(s, "admin"), await _staff(s, "trainer")

    account, admin, trainer = await uow(db, setup)
    with pytest.raises(PermissionDenied):
        await uow(db, ledger.adjust, account, 10, "goodwill", trainer, cfg=CFG)
    with pytest.raises(PermissionDenied):
        await uow(db, ledger.adjust, account, 10, "goodwill", 9999, cfg=CFG)
    with pytest.raises(ReasonRequired):
        await uow(db, ledger.adjust, account, 10, "  ", admin, cfg=CFG)
    with pytest.raises(NotEnoughPoints):
        await uow(db, ledger.adjust, account, -10, "typo", admin, cfg=CFG)
    assert await uow(db, ledger.adjust, account, 10, "goodwill", admin, source_key="T-1",
                     cfg=CFG)
    assert await uow(db, ledger.adjust, account, 10, "goodwill", admin, source_key="T-1",
                     cfg=CFG) is None
    assert (await uow(db, ledger.balance, account, cfg=CFG)).available == 10
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "points.adjust")) == 1


async def test_participation_daily_cap(db: Database) -> None:
    account = await uow(db, _setup)
    day = dt.date(2026, 3, 2)
    got = [await uow(db, ledger.award_participation, account, day, f"msg-{i}", cfg=CFG)
           for i in range(4)]
    assert [g.points for g in got] == [5, 5, 2, 0]  # cap 12
    nxt = await uow(db, ledger.award_participation, account, day + dt.timedelta(days=1),
                    "msg-0", cfg=CFG)
    assert nxt.points == 5


async def test_export_is_formula_safe(db: Database) -> None:
    account = await uow(db, _setup, "=HYPERLINK(\"x\")")
    await uow(db, ledger.award, account, "bonus", "+cmd|' /C calc'!A0", cfg=CFG)

    async def both(s) -> tuple[str, str]:
        a, b = io.StringIO(), io.StringIO()
        await reports.export_ledger(s, a)
        await reports.export_balances(s, b)
        return a.getvalue(), b.getvalue()

    ledger_csv, balances_csv = await uow(db, both)
    assert "'=HYPERLINK" in ledger_csv and "'bonus:" not in ledger_csv
    assert ",100," in ledger_csv  # numbers are not prefixed
    rows = list(csv.reader(io.StringIO(balances_csv)))
    assert rows[1][0] == "'=HYPERLINK(\"x\")" and rows[1][5] == "100"
    assert reports.safe_cell("-2+3") == "'-2+3" and reports.safe_cell(-5) == "-5"
    assert reports.safe_cell("\tx") == "'\tx" and reports.safe_cell("@SUM") == "'@SUM"


async def test_statements_and_leaderboards(db: Database) -> None:
    async def setup(s) -> tuple[int, int]:
        a = await _setup(s, "D001", tier="key", region="华东")
        b = await _setup(s, "D002", tier="general", region="华南")
        s.add(TelegramIdentity(telegram_user_id=7001, customer_id=a, locale="zh-Hans"))
        return a, b

    a, b = await uow(db, setup)
    await uow(db, ledger.award, a, "bonus", "x", cfg=CFG, now=T0)
    await uow(db, ledger.award, b, "course_completed", "c1", cfg=CFG, now=T0)
    month = ledger.local_today(T0)
    assert await uow(db, reports.queue_monthly_statements, month) == 1
    assert await uow(db, reports.queue_monthly_statements, month) == 0
    top = await uow(db, reports.leaderboard, "all", "month", month=month)
    assert [(r.rank, r.code, r.points) for r in top] == [(1, "D001", 100), (2, "D002", 50)]
    south = await uow(db, reports.leaderboard, "region", "all", key="华南")
    assert [r.code for r in south] == ["D002"]
    assert [r.code for r in await uow(db, reports.leaderboard, "tier", "all", key="key")] == [
        "D001"]
    (st,) = await uow(db, reports.statements, month, [a])
    assert (st.opening, st.earned, st.closing) == (0, 100, 100)


async def test_order_import_earns_pending_points_once(db: Database, tmp_path) -> None:
    from core.services.importer import import_paths

    demo = "data/demo"
    await import_paths(db, [demo], timezone="Asia/Shanghai")
    first = await uow(db, reports.export_ledger, io.StringIO())
    await import_paths(db, [demo], timezone="Asia/Shanghai")  # a re-import earns nothing
    assert await uow(db, reports.export_ledger, io.StringIO()) == first > 0

    async with db.transaction() as s:
        kinds = set((await s.execute(
            select(Customer.kind).join(PointsEntry, PointsEntry.account_id == Customer.id)
        )).scalars())
        pending = await s.scalar(select(func.sum(PointsBalance.pending)))
    assert kinds == {"dealer"} and pending > 0  # retailers are not in the scheme by default
    await _reconciled(db)

"""Hand-off tickets and back-in-stock subscriptions at the service level."""

import datetime as dt

import pytest
from sqlalchemy import select

from core.db import Database
from core.errors import NotFound
from core.models import AuditLog, Customer, OutboxMessage, Product, StockLevel, Warehouse
from core.services import notifications, tickets
from core.settings import SupportSection
from tests.conftest import uow


async def test_one_open_ticket_per_chat_and_closing_is_audited(db: Database) -> None:
    async with db.transaction() as s:
        c = Customer(code="R1", kind="retailer", name="A店")
        s.add(c)
        await s.flush()
        cid = c.id
    first = await uow(db, tickets.open_ticket, 5, cid, "complaint", "箱子破了")
    again = await uow(db, tickets.open_ticket, 5, cid, "handoff", "人呢")
    assert first.created and not again.created and again.id == first.id
    assert first.kind == "complaint" and first.customer_code == "R1"
    await uow(db, tickets.remember_staff_message, first.id, -100, 42)
    assert (await uow(db, tickets.ticket_for_staff_message, -100, 42)).id == first.id
    assert await uow(db, tickets.ticket_for_staff_message, -100, 43) is None
    closed = await uow(db, tickets.close_ticket, first.id, "staff:李")
    assert closed.status == "closed"
    assert await uow(db, tickets.open_ticket_for, 5) is None
    async with db.transaction() as s:
        actions = set((await s.scalars(select(AuditLog.action))).all())
    assert {"ticket.open.complaint", "ticket.close"} <= actions
    with pytest.raises(NotFound):
        await uow(db, tickets.close_ticket, 999, "x")


def test_business_hours() -> None:
    support = SupportSection(opens_at="09:00", closes_at="18:00", days="mon,tue,wed,thu,fri")
    shanghai = dt.timezone(dt.timedelta(hours=8))
    monday_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=shanghai)
    saturday_10 = dt.datetime(2026, 11, 28, 10, 0, tzinfo=shanghai)
    monday_20 = dt.datetime(2026, 11, 23, 20, 0, tzinfo=shanghai)
    assert tickets.staffed_now(support, "Asia/Shanghai", monday_10) == (True, "")
    assert tickets.staffed_now(support, "Asia/Shanghai", saturday_10) == (
        False, "2026-11-30 09:00")
    assert tickets.staffed_now(support, "Asia/Shanghai", monday_20) == (False, "2026-11-24 09:00")


async def test_restock_notice_is_queued_once_when_stock_returns(db: Database) -> None:
    async with db.transaction() as s:
        p = Product(sku="BV-1", name_zh="冰红茶", name_en="Iced tea")
        w = Warehouse(code="上海仓")
        s.add_all([p, w])
        await s.flush()
        s.add(StockLevel(product_id=p.id, warehouse_id=w.id, quantity=0))
        pid, wid = p.id, w.id
    assert await uow(db, notifications.subscribe, 9, "BV-1") is True
    assert await uow(db, notifications.subscribe, 9, "BV-1") is False
    with pytest.raises(NotFound):
        await uow(db, notifications.subscribe, 9, "NOPE")
    assert await uow(db, notifications.queue_restock_notices) == 0  # still out of stock
    async with db.transaction() as s:
        level = await s.scalar(select(StockLevel).where(StockLevel.product_id == pid,
                                                        StockLevel.warehouse_id == wid))
        level.quantity = 12
    assert await uow(db, notifications.queue_restock_notices) == 1
    assert await uow(db, notifications.queue_restock_notices) == 0  # never twice
    async with db.transaction() as s:
        queued = (await s.scalars(select(OutboxMessage))).all()
    assert [(m.chat_id, m.template, m.variables["total"]) for m in queued] == [
        (9, "back_in_stock", 12)]

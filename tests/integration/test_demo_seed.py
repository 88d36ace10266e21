"""The bundled demo data imports cleanly, idempotently, and tells a coherent story."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from core.db import Database
from core.models import Customer, Order, Product, Promotion, StockLevel
from core.services.demo import DEMO_ANCHOR, demo_data_dir, promotion_shift, seed_demo
from core.services.importer import check_paths, import_paths
from core.settings import Settings

SETTINGS = Settings()


def active(promotions: list[Promotion], day: dt.date) -> list[str]:
    return sorted(p.code for p in promotions if p.starts_on <= day <= p.ends_on)


async def test_demo_data_has_no_problems() -> None:
    assert check_paths([demo_data_dir(SETTINGS)]) == []


async def test_seed_demo_imports_a_coherent_demo_world(db: Database) -> None:
    summary = await seed_demo(db, SETTINGS, today=DEMO_ANCHOR)

    assert "products" in summary and "created" in summary
    async with db.transaction() as s:
        products = (await s.scalars(select(Product))).all()
        customers = (await s.scalars(select(Customer))).all()
        orders = (await s.scalars(select(Order))).all()
        promotions = (await s.scalars(select(Promotion))).all()
        totals = dict((await s.execute(
            select(Product.sku, func.coalesce(func.sum(StockLevel.quantity), 0))
            .outerjoin(StockLevel, StockLevel.product_id == Product.id)
            .group_by(Product.sku))).tuples().all())
        r001 = await s.scalar(select(Customer).where(Customer.code == "R001"))
    assert 20 <= len(products) <= 30
    assert all(p.name_en and p.aliases for p in products)
    assert any(p.sku.startswith("BV-") for p in products)
    assert any(p.sku.startswith("NO-") for p in products)
    assert "康师傅冰红茶" in next(p.aliases for p in products if p.sku == "BV-4001")
    out = [sku for sku, qty in totals.items() if qty == 0]
    low = [sku for sku, qty in totals.items() if 0 < qty < 30]
    assert len(out) >= 3 and len(low) >= 2
    retailers = [c for c in customers if c.kind == "retailer"]
    dealers = [c for c in customers if c.kind == "dealer"]
    assert 6 <= len(retailers) <= 10 and 6 <= len(dealers) <= 10
    assert {d.tier for d in dealers} == {"key", "potential", "advantage", "general"}
    assert {r.channel for r in retailers} >= {"便利店", "超市", "餐饮"}
    assert 15 <= len(orders) <= 25
    assert {o.status for o in orders} == {
        "pending", "confirmed", "picking", "shipped", "delivered", "cancelled"}
    assert all(o.carrier and o.tracking_no for o in orders if o.status in {"shipped", "delivered"})
    assert sum(o.customer_id == r001.id for o in orders) >= 3
    assert 5 <= len(promotions) <= 8
    assert len(active(promotions, DEMO_ANCHOR)) >= 3
    assert any(p.ends_on < DEMO_ANCHOR for p in promotions)  # one expired
    assert any(p.starts_on > DEMO_ANCHOR for p in promotions)  # one still to come
    assert any(p.min_quantity >= 10 and "送" in p.benefit_zh for p in promotions)


async def test_seed_demo_twice_changes_nothing(db: Database) -> None:
    await seed_demo(db, SETTINGS, today=DEMO_ANCHOR)
    again = await seed_demo(db, SETTINGS, today=DEMO_ANCHOR)
    assert "nothing changed" in again
    # In the anchor week the shift is zero, so a plain import of the folder agrees too.
    report = await import_paths(db, [demo_data_dir(SETTINGS)])
    assert not report.changed


async def test_promotions_follow_the_calendar(db: Database) -> None:
    later = DEMO_ANCHOR + dt.timedelta(days=200)
    summary = await seed_demo(db, SETTINGS, today=later)
    assert f"moved by {promotion_shift(later).days} days" in summary
    async with db.transaction() as s:
        promotions = (await s.scalars(select(Promotion))).all()
    assert active(promotions, later) == active(
        [_unshifted(p, promotion_shift(later)) for p in promotions], DEMO_ANCHOR)
    assert len(active(promotions, later)) >= 3
    assert "nothing changed" in await seed_demo(db, SETTINGS, today=later + dt.timedelta(days=1))


def _unshifted(p: Promotion, shift: dt.timedelta) -> Promotion:
    return Promotion(code=p.code, title_zh=p.title_zh, starts_on=p.starts_on - shift,
                     ends_on=p.ends_on - shift)

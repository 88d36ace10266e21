"""Back-in-stock notifications: subscribe while out of stock, notify once it is available."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from core.db import Database
from core.errors import NotFound
from core.models import AuditLog, Product, StockLevel, StockSubscription, utcnow


@dataclass(frozen=True)
class DueNotification:
    subscription_id: int
    telegram_user_id: int
    sku: str
    name_zh: str
    name_en: str
    total: int


async def subscribe(db: Database, telegram_user_id: int, sku: str) -> bool:
    """Ask to be told when `sku` is back; False if already waiting for it."""
    async with db.transaction() as s:
        product = await s.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            raise NotFound(f"no product {sku!r}")
        existing = await s.scalar(select(StockSubscription.id).where(
            StockSubscription.telegram_user_id == telegram_user_id,
            StockSubscription.product_id == product.id,
            StockSubscription.notified_at.is_(None)))
        if existing:
            return False
        s.add(StockSubscription(telegram_user_id=telegram_user_id, product_id=product.id))
        s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="stock.subscribe", subject=sku))
        return True


async def claim_due(db: Database, limit: int = 100) -> list[DueNotification]:
    """Mark waiting subscriptions whose product is in stock again as notified, and return them.

    Claiming before sending means two gateways never notify twice; `release` puts one back if
    the message could not be sent.
    """
    totals = (select(StockLevel.product_id, func.sum(StockLevel.quantity).label("total"))
              .group_by(StockLevel.product_id).subquery())
    async with db.transaction() as s:
        query = (
            select(StockSubscription, Product, totals.c.total)
            .join(Product, Product.id == StockSubscription.product_id)
            .join(totals, totals.c.product_id == Product.id)
            .where(StockSubscription.notified_at.is_(None), totals.c.total > 0)
            .order_by(StockSubscription.id).limit(limit)
        )
        if not db.is_sqlite:
            query = query.with_for_update(of=StockSubscription, skip_locked=True)
        rows = (await s.execute(query)).all()
        now = utcnow()
        due = []
        for sub, product, total in rows:
            sub.notified_at = now
            due.append(DueNotification(sub.id, sub.telegram_user_id, product.sku,
                                       product.name_zh, product.name_en, int(total)))
        return due


async def release(db: Database, subscription_id: int) -> None:
    """Un-claim a notification that could not be delivered, so it is tried again."""
    async with db.transaction() as s:
        await s.execute(update(StockSubscription)
                        .where(StockSubscription.id == subscription_id)
                        .values(notified_at=None))

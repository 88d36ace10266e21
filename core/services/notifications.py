"""Back-in-stock notifications: subscribe while out of stock; a notice is queued once it is
available again (in the same transaction as the stock import that made it so)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from core.models import (
    AuditLog,
    Product,
    StockLevel,
    StockSubscription,
    TelegramIdentity,
    utcnow,
)
from core.services import outbox


async def subscribe(s: AsyncSession, telegram_user_id: int, sku: str) -> bool:
    """Ask to be told when `sku` is back; False if already waiting for it."""
    product = await s.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise NotFound(f"no product {sku!r}")
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # The partial unique index keeps one waiting subscription per chat and product: of two
    # taps at once, one inserts and the other finds it there.
    new_id = await s.scalar(
        insert(StockSubscription)
        .values(telegram_user_id=telegram_user_id, product_id=product.id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["telegram_user_id", "product_id"],
                                index_where=StockSubscription.notified_at.is_(None))
        .returning(StockSubscription.id))
    if new_id is None:
        return False
    s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="stock.subscribe", subject=sku))
    return True


async def queue_restock_notices(s: AsyncSession, default_locale: str = "zh-Hans") -> int:
    """Queue a notice for every waiting subscription whose product is in stock again.

    Each subscription is marked notified and its message queued in the caller's transaction;
    the outbox's dedupe key makes the notice one-time even if this runs twice.
    """
    totals = (select(StockLevel.product_id, func.sum(StockLevel.quantity).label("total"))
              .group_by(StockLevel.product_id).subquery())
    rows = (await s.execute(
        select(StockSubscription, Product, totals.c.total, TelegramIdentity.locale)
        .join(Product, Product.id == StockSubscription.product_id)
        .join(totals, totals.c.product_id == Product.id)
        .outerjoin(TelegramIdentity,
                   TelegramIdentity.telegram_user_id == StockSubscription.telegram_user_id)
        .where(StockSubscription.notified_at.is_(None), totals.c.total > 0)
        .order_by(StockSubscription.id)
    )).all()
    now = utcnow()
    for sub, product, total, locale in rows:
        sub.notified_at = now
        await outbox.enqueue(
            s, sub.telegram_user_id, template="back_in_stock", locale=locale or default_locale,
            variables={"sku": product.sku, "name_zh": product.name_zh,
                       "name_en": product.name_en, "total": int(total)},
            dedupe_key=f"restock:{sub.id}", kind="restock", ref=f"subscription:{sub.id}")
    return len(rows)

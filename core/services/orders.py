"""Order look-ups for a linked customer; another customer's order looks exactly like none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core import order_numbers
from core.db import Database
from core.models import OPEN_ORDER_STATUSES, Order, OrderLine


@dataclass(frozen=True)
class OrderItem:
    sku: str
    name_zh: str
    name_en: str
    quantity: int
    unit: str


@dataclass(frozen=True)
class OrderView:
    order_no: str
    status: str
    created_at: dt.datetime
    promised_date: dt.date | None
    carrier: str
    tracking_no: str
    items: list[OrderItem] = field(default_factory=list)

    def as_vars(self) -> dict:
        """Plain values for templates and JSON."""
        return {
            "order_no": self.order_no,
            "status": self.status,
            "created_at": self.created_at.date().isoformat(),
            "promised_date": self.promised_date.isoformat() if self.promised_date else "",
            "carrier": self.carrier,
            "tracking_no": self.tracking_no,
            "shipped": self.status in ("shipped", "delivered"),
            "items": [i.__dict__ for i in self.items],
        }


def normalize_order_no(raw: str) -> str | None:
    """Canonical order number from what people type: 'so 20261115 0123' → 'SO20261115-0123'."""
    return order_numbers.normalize(raw)


def _view(order: Order) -> OrderView:
    return OrderView(
        order_no=order.order_no,
        status=order.status,
        created_at=order.created_at,
        promised_date=order.promised_date,
        carrier=order.carrier,
        tracking_no=order.tracking_no,
        items=[
            OrderItem(sku=line.product.sku, name_zh=line.product.name_zh,
                      name_en=line.product.name_en, quantity=line.quantity, unit=line.product.unit)
            for line in order.lines
        ],
    )


def _with_lines():  # type: ignore[no-untyped-def]
    return selectinload(Order.lines).selectinload(OrderLine.product)


async def find_order(db: Database, customer_id: int, raw_order_no: str) -> OrderView | None:
    """The customer's own order with that number, or None (also for other customers' orders)."""
    order_no = normalize_order_no(raw_order_no)
    if order_no is None:
        return None
    async with db.transaction() as s:
        order = await s.scalar(
            select(Order).options(_with_lines())
            .where(Order.order_no == order_no, Order.customer_id == customer_id)
        )
        return _view(order) if order else None


async def recent_orders(
    db: Database, customer_id: int, *, open_only: bool = False, limit: int = 5
) -> list[OrderView]:
    """The customer's newest orders, optionally only those not yet delivered or cancelled."""
    async with db.transaction() as s:
        query = select(Order).options(_with_lines()).where(Order.customer_id == customer_id)
        if open_only:
            query = query.where(Order.status.in_(OPEN_ORDER_STATUSES))
        rows = await s.scalars(query.order_by(Order.created_at.desc()).limit(limit))
        return [_view(o) for o in rows]

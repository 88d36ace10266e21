"""Order look-ups for a linked customer; another customer's order looks exactly like none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core import order_numbers
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


async def find_order(s: AsyncSession, customer_id: int, raw_order_no: str) -> OrderView | None:
    """The customer's own order with that number, or None (also for other customers' orders)."""
    order_no = normalize_order_no(raw_order_no)
    if order_no is None:
        return None
    order = await s.scalar(
        select(Order).options(_with_lines())
        .where(Order.order_no == order_no, Order.customer_id == customer_id)
    )
    return _view(order) if order else None


async def recent_orders(
    s: AsyncSession, customer_id: int, *, open_only: bool = False, limit: int = 5
) -> list[OrderView]:
    """The customer's newest orders, optionally only those not yet delivered or cancelled."""
    query = select(Order).options(_with_lines()).where(Order.customer_id == customer_id)
    if open_only:
        query = query.where(Order.status.in_(OPEN_ORDER_STATUSES))
    rows = await s.scalars(query.order_by(Order.created_at.desc()).limit(limit))
    return [_view(o) for o in rows]


@dataclass(frozen=True)
class OrderAnswer:
    """What to say about a customer's order question: a template, its variables, and the
    order numbers to offer as buttons when there are several to pick from."""

    template: str
    vars: dict = field(default_factory=dict)
    choices: list[str] = field(default_factory=list)


async def answer_order_question(s: AsyncSession, customer_id: int, raw_order_no: str | None
                                ) -> OrderAnswer:
    """The status of the named order, else of the one open order, a pick of several open
    orders, or the latest order when none is open."""
    if raw_order_no:
        order_no = normalize_order_no(raw_order_no)
        if order_no is None:
            return OrderAnswer("order_id_invalid", {"given": raw_order_no[:40]})
        view = await find_order(s, customer_id, raw_order_no)
        if view is None:
            return OrderAnswer("order_not_found", {"order_no": order_no,
                                                   "given": raw_order_no[:40]})
        return OrderAnswer("order_status", view.as_vars())
    open_orders = await recent_orders(s, customer_id, open_only=True)
    if len(open_orders) == 1:
        return OrderAnswer("order_status", open_orders[0].as_vars())
    if open_orders:
        return OrderAnswer("order_pick", {"count": len(open_orders)},
                           [o.order_no for o in open_orders])
    latest = await recent_orders(s, customer_id, limit=1)
    if latest:
        return OrderAnswer("orders_none_open_latest", latest[0].as_vars())
    return OrderAnswer("orders_none")

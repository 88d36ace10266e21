"""Promotions that apply to a customer today (dates, region, channel, products)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Promotion


@dataclass(frozen=True)
class PromotionView:
    code: str
    title_zh: str
    title_en: str
    ends_on: dt.date
    skus: list[str]
    min_quantity: int
    benefit_zh: str
    benefit_en: str

    def as_vars(self) -> dict:
        """Plain values for templates."""
        return {**self.__dict__, "ends_on": self.ends_on.isoformat()}


def today_in(timezone: str) -> dt.date:
    """The operator's calendar date (promotions run on local dates)."""
    return dt.datetime.now(ZoneInfo(timezone)).date()


async def active_promotions(
    s: AsyncSession, *, today: dt.date, region: str | None = None, channel: str | None = None,
    sku: str | None = None, limit: int = 10,
) -> list[PromotionView]:
    """Promotions running today that apply to this region, channel and (optionally) product."""
    rows = (await s.scalars(
        select(Promotion)
        .where(Promotion.starts_on <= today, Promotion.ends_on >= today)
        .order_by(Promotion.ends_on, Promotion.code)
    )).all()
    out = []
    for p in rows:
        if p.regions and (not region or region not in p.regions):
            continue
        if p.channels and (not channel or channel not in p.channels):
            continue
        if sku and p.skus and sku not in p.skus:
            continue
        out.append(PromotionView(p.code, p.title_zh, p.title_en, p.ends_on, list(p.skus or []),
                                 p.min_quantity, p.benefit_zh, p.benefit_en))
    return out[:limit]

"""Earning rules, read from the `points:` section of config.yml — no figures live in code.

Order points: line value x points_per_yuan x the best matching campaign multiplier, summed per
order, x the dealer's tier multiplier, rounded down once. Campaigns do not stack: a line gets
the highest multiplier among the campaigns it matches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from core.settings import PointsCampaign, PointsSection


@dataclass(frozen=True)
class LineFacts:
    """What a rule needs to know about one order line."""

    sku: str
    category: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class AccountFacts:
    """What a rule needs to know about the account."""

    kind: str
    tier: str | None
    region: str


def eligible(cfg: PointsSection, account: AccountFacts) -> bool:
    """True if accounts of this kind take part in the scheme."""
    return account.kind in cfg.enabled_kinds


def tier_multiplier(cfg: PointsSection, tier: str | None) -> Decimal:
    """The multiplier for a dealer tier (1 for unknown tiers and retailers)."""
    return cfg.tier_multipliers.get(tier or "", Decimal(1))


def _matches(c: PointsCampaign, line: LineFacts, account: AccountFacts, day: dt.date) -> bool:
    return (c.starts_on <= day <= c.ends_on
            and (not c.skus or line.sku in c.skus)
            and (not c.categories or line.category in c.categories)
            and (not c.regions or account.region in c.regions)
            and (not c.tiers or (account.tier or "") in c.tiers))


def campaign_multiplier(cfg: PointsSection, line: LineFacts, account: AccountFacts,
                        day: dt.date) -> Decimal:
    """The highest multiplier of the campaigns running on `day` that match the line."""
    return max((c.multiplier for c in cfg.campaigns if _matches(c, line, account, day)),
               default=Decimal(1))


def order_points(cfg: PointsSection, lines: Iterable[LineFacts], account: AccountFacts,
                 day: dt.date) -> int:
    """Points a delivered order earns (0 when the account is not in the scheme)."""
    if not eligible(cfg, account):
        return 0
    total = sum((line.unit_price * line.quantity * campaign_multiplier(cfg, line, account, day)
                 for line in lines), Decimal(0))
    total *= cfg.points_per_yuan * tier_multiplier(cfg, account.tier)
    return max(0, int(total.to_integral_value(rounding=ROUND_DOWN)))


def rule_points(cfg: PointsSection, rule: str, account: AccountFacts) -> int:
    """Points a named rule (course_completed, quiz_passed, …) awards this account."""
    if rule not in cfg.rules:
        raise ValueError(f"unknown points rule {rule!r}; configured: {sorted(cfg.rules)}")
    base = Decimal(cfg.rules[rule]) * tier_multiplier(cfg, account.tier)
    return int(base.to_integral_value(rounding=ROUND_DOWN))

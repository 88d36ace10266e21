"""Points earning rules and templates: figures come from config, text from every locale."""

import datetime as dt
from decimal import Decimal

import pytest

from community.points import rules
from core.i18n import LOCALES, Renderer
from core.settings import PointsCampaign, PointsSection

NOODLES_DEC = PointsCampaign(code="NOODLE-DEC", starts_on=dt.date(2026, 12, 1),
                             ends_on=dt.date(2026, 12, 31), multiplier=Decimal(2),
                             categories=["方便面"])
CFG = PointsSection(points_per_yuan=Decimal(1), campaigns=[NOODLES_DEC],
                    tier_multipliers={"key": Decimal("1.5")})
NOODLE = rules.LineFacts("NO-2001", "方便面", 2, Decimal("10.50"))
TEA = rules.LineFacts("TE-3001", "茶饮料", 1, Decimal("9.99"))
KEY = rules.AccountFacts("dealer", "key", "华东")
GENERAL = rules.AccountFacts("dealer", "general", "华东")


def test_campaign_doubles_matching_lines_inside_its_dates_only() -> None:
    assert rules.order_points(CFG, [NOODLE, TEA], GENERAL, dt.date(2026, 12, 5)) == 51  # 42+9.99
    assert rules.order_points(CFG, [NOODLE, TEA], GENERAL, dt.date(2026, 11, 30)) == 30
    assert rules.order_points(CFG, [NOODLE, TEA], GENERAL, dt.date(2027, 1, 1)) == 30


def test_tier_multiplier_and_eligibility() -> None:
    assert rules.order_points(CFG, [TEA], KEY, dt.date(2026, 11, 1)) == 14  # 9.99*1.5 down
    assert rules.rule_points(CFG, "course_completed", KEY) == 75
    retailer = rules.AccountFacts("retailer", None, "华东")
    assert rules.order_points(CFG, [TEA], retailer, dt.date(2026, 11, 1)) == 0
    with pytest.raises(ValueError, match="unknown points rule"):
        rules.rule_points(CFG, "no_such_rule", KEY)


SAMPLES = {
    "points_balance": dict(available=5, pending=3, debt=0, expiring_points=2,
                           expiring_on="2027-01-01"),
    "points_statement": dict(month="2026-11", opening=1, earned=2, spent=3, expired=0, other=1,
                             closing=1, pending=0),
    "points_expiry_reminder": dict(points=5, date="2027-01-01", days=3),
    "points_redemption_approved": dict(reward_zh="水杯", reward_en="Cup", quantity=1, points=2,
                                       note="", request=1),
    "points_redemption_rejected": dict(reward_zh="水杯", reward_en="", quantity=1, points=2,
                                       note="no", request=1),
    "points_not_enough": dict(available=1, needed=2, reward="水杯"),
    "points_out_of_stock": {},
    "points_reward_unavailable": {},
    "points_reason_required": {},
    "points_not_eligible": {},
    "points_request_decided": {},
}


@pytest.mark.parametrize("locale", LOCALES)
def test_points_templates_render_in_every_locale(locale: str) -> None:
    r = Renderer()
    for key, variables in SAMPLES.items():
        assert key in r.envs[locale].loader.mapping()  # type: ignore[union-attr]
        assert r.render(key, locale, **variables).strip()

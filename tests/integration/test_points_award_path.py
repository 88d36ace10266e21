"""ledger.award's one-statement PostgreSQL path gives exactly what the two-step path gives
(both backends run these): tier multipliers, eligibility, missing accounts, duplicates."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from community.points import ledger
from community.points.errors import NotEligible
from community.points.models import PointsEntry
from core.db import Database
from core.errors import NotFound
from core.models import Customer
from core.settings import PointsSection
from tests.conftest import uow

CFG = PointsSection(rules={"quiz": 33}, enabled_kinds=["dealer"],
                    tier_multipliers={"key": Decimal("1.5"), "potential": Decimal("1.2"),
                                      "general": Decimal("1")})


async def _accounts(s) -> dict[str, int]:  # type: ignore[no-untyped-def]
    for code, kind, tier in (("K", "dealer", "key"), ("P", "dealer", "potential"),
                             ("X", "dealer", "unknown-tier"), ("N", "dealer", None),
                             ("R", "retailer", None)):
        s.add(Customer(code=code, kind=kind, name=code, region="华东", tier=tier))
    await s.flush()
    return {c.code: c.id for c in (await s.scalars(select(Customer))).all()}


async def test_award_points_by_tier_once(db: Database) -> None:
    ids = await uow(db, _accounts)
    got = {code: await uow(db, ledger.award, ids[code], "quiz", "q1", cfg=CFG)
           for code in ("K", "P", "X", "N")}
    assert {c: (v.points, v.created) for c, v in got.items()} == {
        "K": (49, True), "P": (39, True), "X": (33, True), "N": (33, True)}  # rounded down
    again = await uow(db, ledger.award, ids["K"], "quiz", "q1", cfg=CFG)
    assert (again.points, again.created, again.source_key) == (0, False, "quiz:q1")
    assert (await uow(db, ledger.balance, ids["K"], cfg=CFG)).available == 49
    assert (await uow(db, ledger.reconcile)).ok


async def test_award_refusals_write_nothing(db: Database) -> None:
    ids = await uow(db, _accounts)
    async with db.transaction() as s:  # a caller that goes on after a refusal (a group
        with pytest.raises(NotEligible):  # rewarding members, retailers among them)
            await ledger.award(s, ids["R"], "quiz", "q1", cfg=CFG)
        assert await s.scalar(select(func.count()).select_from(PointsEntry)) == 0
        await ledger.award(s, ids["K"], "quiz", "in-same-transaction", cfg=CFG)
    with pytest.raises(NotFound):
        await uow(db, ledger.award, 999_999, "quiz", "q1", cfg=CFG)
    with pytest.raises(ValueError, match="unknown points rule"):
        await uow(db, ledger.award, ids["K"], "nope", "q1", cfg=CFG)
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(PointsEntry)) == 1
    retailers = CFG.model_copy(update={"enabled_kinds": ["dealer", "retailer"]})
    assert (await uow(db, ledger.award, ids["R"], "quiz", "q1", cfg=retailers)).points == 33

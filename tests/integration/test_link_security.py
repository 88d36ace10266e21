"""Link codes under concurrency, keyed hashes, per-user and global throttling (both backends)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.errors import LinkCodeInvalid, LinkThrottled
from core.models import AuditLog, Customer, LinkCode, LinkFailureWindow, TelegramIdentity
from core.services import accounts
from core.settings import LinkingSection
from tests.conftest import uow

PEPPER = "test-pepper-not-secret"
LINKING = LinkingSection(code_ttl_hours=1, code_length=8, max_failed_attempts=5,
                         lockout_minutes=15, max_failed_global_per_hour=500)


@pytest.fixture(autouse=True)
def _pepper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINK_CODE_PEPPER", PEPPER)


async def add_retailer(db: Database, code: str = "R100") -> None:
    async with db.transaction() as s:
        s.add(Customer(code=code, kind="retailer", name="福满多便利店", region="华东"))


async def attempt(db: Database, user_id: int, code: str,
                  linking: LinkingSection = LINKING) -> accounts.LinkOutcome:
    """One redemption in its own unit of work (its own connection), as the gateway does."""
    async with db.transaction() as s:
        return await accounts.redeem_link_code(s, linking, user_id, code)


async def audit_count(db: Database, action: str) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count(AuditLog.id))
                                  .where(AuditLog.action == action)) or 0)


async def test_ten_concurrent_redemptions_of_one_code_have_one_winner(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    outcomes = await asyncio.gather(*(attempt(db, 500 + i, issued.code) for i in range(10)))
    winners = [o for o in outcomes if o.identity is not None]
    assert len(winners) == 1, [o.error for o in outcomes]
    assert all(isinstance(o.error, LinkCodeInvalid) for o in outcomes if o.identity is None)
    async with db.transaction() as s:
        linked = (await s.scalars(select(TelegramIdentity.telegram_user_id)
                                  .where(TelegramIdentity.customer_id.is_not(None)))).all()
        used_by = await s.scalar(select(LinkCode.used_by))
    assert linked == [winners[0].identity.telegram_user_id] == [used_by]
    assert await audit_count(db, "account.link") == 1
    # The nine losers named a used code: counted on the code, with an audit trail.
    async with db.transaction() as s:
        assert await s.scalar(select(LinkCode.failed_attempts)) == 9
    assert await audit_count(db, "link_code.stale_attempt") == 9


async def test_forty_concurrent_wrong_guesses_evaluate_at_most_the_limit(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    guesses = [f"WXYZ{n:04d}".replace("0", "2").replace("1", "3") for n in range(40)]
    outcomes = await asyncio.gather(*(attempt(db, 77, g) for g in guesses))
    invalid = [o for o in outcomes if isinstance(o.error, LinkCodeInvalid)]
    throttled = [o for o in outcomes if isinstance(o.error, LinkThrottled)]
    assert len(invalid) == LINKING.max_failed_attempts - 1, len(invalid)
    assert len(throttled) == 40 - len(invalid)
    assert sorted(o.error.vars["remaining"] for o in invalid) == [1, 2, 3, 4]
    # Exactly max_failed_attempts guesses were evaluated (the global budget counts them).
    async with db.transaction() as s:
        assert await s.scalar(select(func.sum(LinkFailureWindow.failures))) == 5
    assert await audit_count(db, "account.link_locked") == 1
    # Locked: even the right code is refused without being looked at, and stays unused.
    late = await attempt(db, 77, issued.code)
    assert isinstance(late.error, LinkThrottled) and late.error.vars["minutes"] >= 14
    async with db.transaction() as s:
        assert await s.scalar(select(LinkCode.used_at)) is None


async def test_codes_are_stored_as_a_keyed_hash(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    async with db.transaction() as s:
        stored = await s.scalar(select(LinkCode.code_hash))
    assert stored != hashlib.sha256(issued.code.encode()).hexdigest()
    assert stored == hmac.new(PEPPER.encode(), issued.code.encode(), hashlib.sha256).hexdigest()
    # Without the pepper (another one) the stored hash matches nothing.
    async with db.transaction() as s:
        wrong = await accounts.redeem_link_code(s, LINKING, 5, issued.code, pepper="other")
    assert isinstance(wrong.error, LinkCodeInvalid)
    assert (await attempt(db, 5, issued.code)).identity is not None


async def test_global_budget_pauses_linking_for_everyone(db: Database) -> None:
    linking = LINKING.model_copy(update={"max_failed_global_per_hour": 3})
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, linking, customer_code="R100")
    for user in (1, 2, 3):
        assert isinstance((await attempt(db, user, "QQQQ2222", linking)).error, LinkCodeInvalid)
    paused = await attempt(db, 4, issued.code, linking)
    assert isinstance(paused.error, LinkThrottled) and 1 <= paused.error.vars["minutes"] <= 60
    assert await audit_count(db, "account.link_paused") == 1
    async with db.transaction() as s:
        assert await s.scalar(select(LinkCode.used_at)) is None


async def test_success_gives_the_attempt_back(db: Database) -> None:
    linking = LINKING.model_copy(update={"max_failed_global_per_hour": 2})
    await add_retailer(db)
    await add_retailer(db, "R200")
    a = await uow(db, accounts.issue_link_code, linking, customer_code="R100")
    b = await uow(db, accounts.issue_link_code, linking, customer_code="R200")
    assert (await attempt(db, 1, a.code, linking)).identity is not None
    assert (await attempt(db, 2, b.code, linking)).identity is not None
    assert isinstance((await attempt(db, 3, "QQQQ2222", linking)).error, LinkCodeInvalid)


async def test_a_spent_code_tried_by_many_is_flagged(db: Database) -> None:
    linking = LINKING.model_copy(update={"max_failed_per_code": 3})
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, linking, customer_code="R100")
    assert (await attempt(db, 1, issued.code, linking)).identity is not None
    for user in (2, 3, 4, 5):
        assert isinstance((await attempt(db, user, issued.code, linking)).error,
                          LinkCodeInvalid)
    assert await audit_count(db, "link_code.stale_attempt") == 4
    assert await audit_count(db, "link_code.leak_suspected") == 1

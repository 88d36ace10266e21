"""Linking a Telegram chat to an account with one-time codes."""

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from core.db import Database
from core.errors import LinkCodeInvalid, LinkThrottled, NotFound
from core.models import AuditLog, Customer, LinkCode
from core.services import accounts
from core.settings import LinkingSection
from tests.conftest import uow

LINKING = LinkingSection(code_ttl_hours=1, code_length=8, max_failed_attempts=3,
                         lockout_minutes=15)


async def redeem(db: Database, telegram_user_id: int, code: str) -> accounts.IdentityView:
    """Redeem in one unit of work; a failure (committed with its count) is raised here."""
    async with db.transaction() as s:
        outcome = await accounts.redeem_link_code(s, LINKING, telegram_user_id, code)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.identity is not None
    return outcome.identity


async def add_retailer(db: Database, code: str = "R100", name: str = "福满多便利店") -> None:
    async with db.transaction() as s:
        s.add(Customer(code=code, kind="retailer", name=name, region="华东", channel="便利店"))


async def test_code_links_once(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    assert accounts.looks_like_link_code(issued.code, 8)
    view = await redeem(db, 42, issued.code.lower())
    assert view.customer_code == "R100" and view.is_linked
    with pytest.raises(LinkCodeInvalid):
        await redeem(db, 43, issued.code)
    async with db.transaction() as s:
        actions = set((await s.scalars(select(AuditLog.action))).all())
    assert {"link_code.issue", "account.link"} <= actions


async def test_expired_code_is_refused(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    async with db.transaction() as s:
        await s.execute(update(LinkCode).values(
            expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    with pytest.raises(LinkCodeInvalid):
        await redeem(db, 42, issued.code)


async def test_wrong_guesses_lock_the_chat_even_for_a_right_code(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    with pytest.raises(LinkCodeInvalid) as first:
        await redeem(db, 7, "AAAA2222")
    assert first.value.vars["remaining"] == 2
    with pytest.raises(LinkCodeInvalid):
        await redeem(db, 7, "AAAA3333")
    with pytest.raises(LinkThrottled):
        await redeem(db, 7, "AAAA4444")
    with pytest.raises(LinkThrottled):
        await redeem(db, 7, issued.code)
    # Another chat is not affected, and the code is still unused.
    view = await redeem(db, 8, issued.code)
    assert view.customer_code == "R100"


async def test_unknown_customer_code_names_the_fix(db: Database) -> None:
    with pytest.raises(NotFound, match="import it first"):
        await uow(db, accounts.issue_link_code, LINKING, customer_code="NOPE")


async def test_codes_are_stored_hashed(db: Database) -> None:
    await add_retailer(db)
    issued = await uow(db, accounts.issue_link_code, LINKING, customer_code="R100")
    async with db.transaction() as s:
        stored = (await s.scalars(select(LinkCode.code_hash))).one()
        assert await s.scalar(select(func.count(LinkCode.id))) == 1
    assert issued.code not in stored


async def test_locale_follows_writing_until_pinned(db: Database) -> None:
    v = await uow(db, accounts.touch_identity, 9, "A", language_code="en")
    assert v.locale == "en"
    v = await uow(db, accounts.touch_identity, 9, "A", detected_locale="zh-Hant")
    assert v.locale == "zh-Hant"
    await uow(db, accounts.set_locale, 9, "en")
    v = await uow(db, accounts.touch_identity, 9, "A", detected_locale="zh-Hans")
    assert v.locale == "en" and v.locale_locked

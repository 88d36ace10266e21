"""Points in chat (community/points/chat.py): the screens, one-time confirm, owner checks,
staff decisions in the staff group only, refund once, leaderboards."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from community.points import chat, ledger, rewards
from community.points.errors import AlreadyDecided, NotEnoughPoints, ReasonRequired
from community.points.models import PointsEntry, RedemptionChoice, RedemptionRequest, Reward
from core.db import Database
from core.errors import PermissionDenied
from core.models import AuditLog, Customer, OutboxMessage, StaffMember
from core.services.accounts import get_identity, link_identity_directly
from core.settings import PointsSection
from tests.conftest import uow

CFG = PointsSection(rules={"bonus": 1000, "small": 100}, tier_multipliers={},
                    remind_days_before=30)
STAFF_CHAT = -100200
DEALER_TG, OTHER_TG, CS_TG, TRAINER_TG = 5001, 5002, 5003, 5004


async def _world(s) -> dict[str, int]:  # type: ignore[no-untyped-def]
    for code, kind, region, tier in (("D1", "dealer", "华东", "key"),
                                     ("D2", "dealer", "华东", "general"),
                                     ("D3", "dealer", "华南", "key"),
                                     ("R1", "retailer", "华东", None)):
        s.add(Customer(code=code, kind=kind, name=f"Name {code}", region=region, tier=tier))
    await s.flush()
    await link_identity_directly(s, DEALER_TG, "Dealer", customer_code="D1")
    await link_identity_directly(s, OTHER_TG, "Other", customer_code="D2")
    await link_identity_directly(s, 5005, "Retailer", customer_code="R1")
    await link_identity_directly(s, CS_TG, "CS", staff_name="cs", staff_role="customer_service")
    await link_identity_directly(s, TRAINER_TG, "Tr", staff_name="tr", staff_role="trainer")
    for code, cost, stock, approval in (
            ("A", 300, 5, True), ("B", 500, None, False), ("C", 600, 1, True),
            ("D", 800, 5, True), ("E", 1800, None, True), ("F", 5000, 2, True)):
        await rewards.upsert_reward(s, code, kind="gift", name_zh=f"礼品{code}",
                                    name_en=f"Gift {code}", cost=cost, stock=stock,
                                    needs_approval=approval)
    ids = {c.code: c.id for c in (await s.scalars(select(Customer))).all()}
    ids.update({f"reward:{r.code}": r.id for r in (await s.scalars(select(Reward))).all()})
    return ids


async def _setup(db: Database, points: int = 1000) -> dict[str, int]:
    ids = await uow(db, _world)
    if points:
        await uow(db, ledger.award, ids["D1"], "bonus", "start", cfg=CFG)
    return ids


async def _ident(db: Database, tg: int):  # type: ignore[no-untyped-def]
    return await uow(db, get_identity, tg)


async def _count(db: Database, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)))


async def test_balance_screen_shows_balance_pending_and_history(db: Database) -> None:
    ids = await _setup(db)
    screen = await uow(db, chat.balance_screen, ids["D1"], cfg=CFG)
    assert screen.template == "points_summary"
    assert screen.vars["available"] == 1000 and screen.vars["debt"] == 0
    assert [h["amount"] for h in screen.vars["history"]] == [1000]
    assert screen.vars["expiring_points"] == 0
    assert {b["payload"] for b in screen.buttons} == {"pts:cat:0", "pts:top:region:month"}


async def test_only_linked_dealers_have_points(db: Database) -> None:
    ids = await _setup(db)
    assert chat.account_of(await _ident(db, DEALER_TG), CFG) == ids["D1"]
    with pytest.raises(chat.PointsLinkRequired) as unlinked:
        chat.account_of(None, CFG)
    assert unlinked.value.vars == {"linked": False}
    with pytest.raises(chat.PointsLinkRequired) as retailer:
        chat.account_of(await _ident(db, 5005), CFG)
    assert retailer.value.vars == {"linked": True}
    with pytest.raises(chat.PointsLinkRequired):  # staff have no points
        chat.account_of(await _ident(db, CS_TG), CFG)


async def test_catalogue_is_paginated_with_a_button_per_reward(db: Database) -> None:
    ids = await _setup(db)
    first = await uow(db, chat.catalogue_screen, ids["D1"], 0)
    assert first.vars["pages"] == 2 and len(first.vars["rewards"]) == chat.PAGE_SIZE
    payloads = [b["payload"] for b in first.buttons]
    assert payloads[0] == f"pts:pick:{ids['reward:A']}" and payloads[-1] == "pts:cat:1"
    assert all(len(p.encode()) <= 64 for p in payloads)
    second = await uow(db, chat.catalogue_screen, ids["D1"], 1)
    assert [r["cost"] for r in second.vars["rewards"]] == [5000]
    assert [b["payload"] for b in second.buttons][-1] == "pts:cat:0"
    assert (await uow(db, chat.catalogue_screen, ids["D1"], 99)).vars["page"] == 2


async def _choose(db: Database, ids: dict[str, int], reward: str = "C",
                  tg: int = DEALER_TG) -> int:
    screen = await uow(db, chat.choose, tg, ids["D1"], ids[f"reward:{reward}"])
    assert screen.template == "points_confirm"
    ok = next(b["payload"] for b in screen.buttons if b["payload"].startswith("pts:ok:"))
    return int(ok.rsplit(":", 1)[1])


async def _confirm(db: Database, ids: dict[str, int], choice: int, tg: int = DEALER_TG,
                   account: str = "D1") -> chat.Screen:
    return await uow(db, chat.confirm, choice, tg, ids[account], staff_chat_id=STAFF_CHAT,
                     staff_locale="zh-Hans")


async def test_confirm_redeems_once_and_posts_the_request_to_staff(db: Database) -> None:
    ids = await _setup(db)
    choice = await _choose(db, ids)
    done = await _confirm(db, ids, choice)
    assert done.template == "points_redeemed"
    assert (done.vars["status"], done.vars["cost"], done.vars["after"]) == ("pending", 600, 400)
    with pytest.raises(chat.ChoiceDone) as again:  # the double tap
        await _confirm(db, ids, choice)
    assert again.value.vars["request"] == done.vars["request"]
    assert await _count(db, RedemptionRequest) == 1
    assert (await uow(db, ledger.balance, ids["D1"], cfg=CFG)).available == 400
    async with db.transaction() as s:
        post = (await s.scalars(select(OutboxMessage)
                                .where(OutboxMessage.chat_id == STAFF_CHAT))).one()
    assert post.template == "points_staff_request"
    assert [b["payload"] for b in post.buttons] == [f"pts:approve:{done.vars['request']}",
                                                    f"pts:reject:{done.vars['request']}"]


async def test_concurrent_double_tap_redeems_once(db: Database) -> None:
    ids = await _setup(db)
    choice = await _choose(db, ids, "A")
    results = await asyncio.gather(*(_confirm(db, ids, choice) for _ in range(4)),
                                   return_exceptions=True)
    assert sum(isinstance(r, chat.Screen) for r in results) == 1, results
    assert all(isinstance(r, chat.Screen | chat.ChoiceDone) for r in results), results
    assert await _count(db, RedemptionRequest) == 1
    assert await _count(db, PointsEntry, PointsEntry.kind == "spend") == 1
    assert (await uow(db, ledger.balance, ids["D1"], cfg=CFG)).available == 700


async def test_someone_elses_confirm_button_does_nothing(db: Database) -> None:
    ids = await _setup(db)
    choice = await _choose(db, ids)
    with pytest.raises(chat.ChoiceGone):  # another dealer pressing a forged pts:ok:<id>
        await _confirm(db, ids, choice, tg=OTHER_TG, account="D2")
    with pytest.raises(chat.ChoiceGone):  # right account, another Telegram user
        await _confirm(db, ids, choice, tg=OTHER_TG)
    with pytest.raises(chat.ChoiceGone):  # an id that does not exist
        await _confirm(db, ids, choice + 1000)
    assert await _count(db, RedemptionRequest) == 0
    assert (await _confirm(db, ids, choice)).vars["status"] == "pending"  # still the owner's


async def test_cancel_is_one_time_and_spends_nothing(db: Database) -> None:
    ids = await _setup(db)
    choice = await _choose(db, ids)
    assert (await uow(db, chat.cancel, choice, DEALER_TG, ids["D1"])).template == \
        "points_choice_cancelled"
    with pytest.raises(chat.ChoiceGone):
        await _confirm(db, ids, choice)
    assert (await uow(db, ledger.balance, ids["D1"], cfg=CFG)).available == 1000


async def test_not_enough_points_and_out_of_stock_are_told_and_change_nothing(
        db: Database) -> None:
    ids = await _setup(db)
    with pytest.raises(NotEnoughPoints) as poor:
        await _choose(db, ids, "F")
    assert poor.value.vars["needed"] == 5000 and poor.value.vars["available"] == 1000
    # Points spent elsewhere between choosing and confirming: refused at confirm, rolled back.
    choice = await _choose(db, ids, "D")
    await uow(db, rewards.redeem, ids["D1"], "B")  # 500 → 500 left, D costs 800
    with pytest.raises(NotEnoughPoints):
        await _confirm(db, ids, choice)
    async with db.transaction() as s:
        assert (await s.get(RedemptionChoice, choice)).status == "open"
    assert (await uow(db, ledger.balance, ids["D1"], cfg=CFG)).available == 500
    # The last one in stock goes to the first confirm; the second is told it is out of stock.
    await uow(db, ledger.award, ids["D1"], "bonus", "more", cfg=CFG)
    first, second = await _choose(db, ids, "C"), await _choose(db, ids, "C")
    await _confirm(db, ids, first)
    with pytest.raises(rewards.OutOfStock):
        await _confirm(db, ids, second)
    with pytest.raises(rewards.OutOfStock):
        await _choose(db, ids, "C")


async def _request(db: Database, ids: dict[str, int]) -> int:
    return int((await _confirm(db, ids, await _choose(db, ids))).vars["request"])


async def _staff_id(db: Database, tg: int, chat_id: int | None = STAFF_CHAT) -> int:
    return await uow(db, chat.staff_member, tg, chat_id, staff_chat_id=STAFF_CHAT,
                     action="test", cfg=CFG)


async def test_only_customer_service_in_the_staff_group_may_decide(db: Database) -> None:
    ids = await _setup(db)
    await _request(db, ids)
    for tg, where in ((CS_TG, DEALER_TG), (CS_TG, -999), (TRAINER_TG, STAFF_CHAT),
                      (DEALER_TG, STAFF_CHAT)):
        async with db.transaction() as s:  # caught inside: the refusal's audit row commits
            with pytest.raises(PermissionDenied):
                await chat.staff_member(s, tg, where, staff_chat_id=STAFF_CHAT,
                                        action="redemption:1:approve", cfg=CFG)
    assert await _count(db, AuditLog, AuditLog.action == "permission.denied") == 4
    async with db.transaction() as s:
        cs = await s.scalar(select(StaffMember.id).where(StaffMember.name == "cs"))
    assert await _staff_id(db, CS_TG) == cs


async def test_approve_tells_the_dealer_once(db: Database) -> None:
    ids = await _setup(db)
    await uow(db, link_identity_directly, DEALER_TG, "Dealer", customer_code="D1")
    request = await _request(db, ids)
    staff = await _staff_id(db, CS_TG)
    screen = await uow(db, chat.approve, request, staff, "客服")
    assert (screen.template, screen.vars["status"]) == ("points_staff_decided", "approved")
    with pytest.raises(AlreadyDecided):  # a second tap: said in words, nothing happens
        await uow(db, chat.approve, request, staff, "客服")
    with pytest.raises(AlreadyDecided):
        await uow(db, chat.reject, request, staff, "客服", "too late")
    assert await _count(db, OutboxMessage, OutboxMessage.chat_id == DEALER_TG,
                        OutboxMessage.template == "points_redemption_approved") == 1


async def test_reject_needs_a_reason_and_refunds_once(db: Database) -> None:
    ids = await _setup(db)
    request = await _request(db, ids)
    staff = await _staff_id(db, CS_TG)
    with pytest.raises(ReasonRequired):
        await uow(db, chat.reject, request, staff, "客服", "  ")
    assert (await uow(db, chat.ask_reason, request)).vars == {"request": request}
    await uow(db, chat.remember_prompt, STAFF_CHAT, 77, request, CS_TG, 70)
    assert await uow(db, chat.prompt_request, STAFF_CHAT, 77) == (request, 70)
    assert await uow(db, chat.prompt_request, STAFF_CHAT, 78) is None
    results = await asyncio.gather(
        *(uow(db, chat.reject, request, staff, "客服", "地址不全") for _ in range(3)),
        return_exceptions=True)
    assert all(isinstance(r, chat.Screen | AlreadyDecided) for r in results), results
    assert await _count(db, PointsEntry, PointsEntry.kind == "refund") == 1
    assert (await uow(db, ledger.balance, ids["D1"], cfg=CFG)).available == 1000
    async with db.transaction() as s:
        assert (await s.get(RedemptionRequest, request)).note == "地址不全"
        assert (await s.scalar(select(Reward.stock).where(Reward.code == "C"))) == 1
    assert await _count(db, OutboxMessage, OutboxMessage.chat_id == DEALER_TG,
                        OutboxMessage.template == "points_redemption_rejected") == 1
    with pytest.raises(AlreadyDecided):
        await uow(db, chat.ask_reason, request)
    report = await uow(db, ledger.reconcile)
    assert report.ok, report.drifts


async def test_leaderboard_of_the_dealers_region_and_tier(db: Database) -> None:
    ids = await _setup(db)
    await uow(db, ledger.award, ids["D2"], "small", "x", cfg=CFG)
    await uow(db, ledger.award, ids["D3"], "bonus", "x", cfg=CFG)
    region = await uow(db, chat.leaderboard_screen, ids["D2"], "region", "month")
    assert region.vars["where"] == "华东"  # D3 is in 华南
    assert [(r["code"], r["points"], r["me"]) for r in region.vars["rows"]] == [
        ("D1", 1000, False), ("D2", 100, True)]
    assert region.vars["my_rank"] == 2
    assert {b["payload"] for b in region.buttons} == {
        "pts:top:region:all", "pts:top:tier:month", "pts:top:tier:all"}
    tier = await uow(db, chat.leaderboard_screen, ids["D1"], "tier", "all")
    assert [r["code"] for r in tier.vars["rows"]] == ["D1", "D3"]  # both key tier
    odd = await uow(db, chat.leaderboard_screen, ids["D1"], "nonsense", "forever")
    assert (odd.vars["scope"], odd.vars["period"]) == ("region", "month")


def test_payloads_are_parsed_strictly() -> None:
    assert chat.parse("pts:ok:12", chat_verbs := ("ok",)) == ("ok", ["12"])
    assert chat.parse("pts:approve:12", chat_verbs) is None
    assert chat.parse("xpts:ok:12", chat_verbs) is None
    assert chat.int_arg(["12"]) == 12
    for bad in (["-1"], ["1e3"], [""], ["9" * 13], []):
        assert chat.int_arg(bad) is None

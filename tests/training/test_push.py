"""Trainers push lessons and courses to segments of dealers, now or on a schedule, exactly once
(SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from community import groups
from community.models import GroupMember
from core.db import Database
from core.errors import NotFound, PermissionDenied
from core.models import AuditLog, Customer, OutboxMessage
from core.services.accounts import link_identity_directly
from tests.conftest import uow
from training import courses, push
from training.models import Enrollment, ItemProgress, Push, PushRun
from training.spec import CourseSpec, ItemSpec, QuestionSpec

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
GROUP = -100123
TRAINER, CS = 1003, 1005
# code, tier, region, linked Telegram user (None: not linked)
DEALERS = [("D001", "key", "华东", 2001), ("D002", "potential", "华东", 2002),
           ("D003", "key", "华南", 2003), ("D004", "key", "华东", None),
           ("D005", "general", "华北", 2005), ("D006", "general", "华北", 2006)]


def course_spec() -> CourseSpec:
    """Three items: two lessons and a quiz."""
    return CourseSpec(code="basics", title="产品基础", items=[
        ItemSpec(key="intro", kind="lesson", title="认识产品", body="<b>红烧牛肉面</b>"),
        ItemSpec(key="shelf", kind="lesson", title="陈列", body="货架"),
        ItemSpec(key="quiz", kind="quiz", title="小测验", pass_mark=80, questions=[
            QuestionSpec("哪款是经典口味？", ["红烧牛肉面", "雪峰"], [0])]),
    ])


async def setup(db: Database) -> None:
    """Six dealers (one not linked), a trainer, customer service, a group with D005 in it."""
    await uow(db, courses.save_course, course_spec(), actor="t")
    async with db.transaction() as s:
        for code, tier, region, _ in DEALERS:
            s.add(Customer(code=code, kind="dealer", name=f"{code} Co", tier=tier, region=region))
        s.add(Customer(code="R001", kind="retailer", name="店", region="华东"))
        await s.flush()
        for code, _, _, uid in DEALERS:
            if uid:
                await link_identity_directly(s, uid, f"u{uid}", customer_code=code)
        await link_identity_directly(s, TRAINER, "Zhao", staff_name="Zhao", staff_role="trainer")
        await link_identity_directly(s, CS, "CS", staff_name="CS", staff_role="customer_service")
        await groups.register(s, GROUP, "华北经销商群", actor="t", options={"regions": "华北"})
        g = await groups.get(s, GROUP)
        d5 = await s.scalar(select(Customer.id).where(Customer.code == "D005"))
        d6 = await s.scalar(select(Customer.id).where(Customer.code == "D006"))
        s.add(GroupMember(group_id=g.id, telegram_user_id=2005, customer_id=d5, status="member"))
        s.add(GroupMember(group_id=g.id, telegram_user_id=2006, customer_id=d6, status="left"))
        s.add(GroupMember(group_id=g.id, telegram_user_id=9999, customer_id=None))


async def codes(db: Database, text: str) -> tuple[list[str], push.Audience]:
    """The dealer codes a segment resolves to, and the audience."""
    async with db.transaction() as s:
        audience = await push.resolve(s, push.parse_segment(text))
    return sorted(r.code for r in audience.recipients), audience


async def outbox_chats(db: Database) -> list[int]:
    """Chat ids of the queued outbox rows, sorted."""
    async with db.transaction() as s:
        return sorted((await s.scalars(select(OutboxMessage.chat_id))).all())


# --------------------------------------------------------------------------- segments


async def test_segment_resolution(db: Database) -> None:
    await setup(db)
    assert (await codes(db, "tiers=key regions=华东"))[0] == ["D001", "D004"]  # AND
    assert (await codes(db, "tiers=key,potential"))[0] == ["D001", "D002", "D003", "D004"]
    assert (await codes(db, "regions=华南,华北"))[0] == ["D003", "D005", "D006"]
    # groups: members only (D006 left, the unlinked member is nobody's)
    assert (await codes(db, f"groups={GROUP}"))[0] == ["D005"]
    assert (await codes(db, "groups=华北经销商群"))[0] == ["D005"]
    found, audience = await codes(db, "dealers=D002,D404,R001 tiers=key regions=华南")
    assert found == ["D002", "D003"]  # tiers×regions plus the named dealers
    assert audience.unknown_dealers == ["D404", "R001"]  # a retailer is no dealer either
    found, audience = await codes(db, "all")
    assert found == [c for c, *_ in DEALERS]
    assert (audience.dealers, audience.reachable, audience.unreachable) == (6, 5, 1)
    with pytest.raises(push.PushInvalid):
        push.parse_segment("colour=red")
    with pytest.raises(push.PushInvalid):
        push.parse_segment("lesson=intro")  # options but no segment


# --------------------------------------------------------------------------- now


async def test_push_now_queues_once_per_reachable_dealer(db: Database) -> None:
    await setup(db)
    view = await uow(db, push.create_push, course_code="basics", item_key="intro",
                     segment="regions=华东 dealers=D009", actor="tg:1003", report_chat_id=1003)
    assert (view.dealers, view.reachable, view.unreachable) == (3, 2, 1)
    assert view.unknown_dealers == ["D009"]
    assert view.fired is not None and view.fired.queued == 2 and view.status == "done"
    assert await outbox_chats(db) == [2001, 2002]
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Enrollment)) == 3  # D004 too
        row = await s.get(Push, view.id)
        assert row is not None and row.status == "done"
        again = await push.fire(s, row, "now", push.utcnow())
        assert again is None  # the same slot: nothing more
    assert await outbox_chats(db) == [2001, 2002]


async def test_push_validation_names_the_fix(db: Database) -> None:
    await setup(db)
    with pytest.raises(NotFound):
        await uow(db, push.create_push, course_code="nope", segment="all", actor="t")
    with pytest.raises(push.PushInvalid) as info:
        await uow(db, push.create_push, course_code="basics", item_key="x", segment="all",
                  actor="t")
    assert "intro, shelf, quiz" in info.value.vars["problem"]
    with pytest.raises(push.PushInvalid) as info:
        await uow(db, push.create_push, course_code="basics", segment="dealers=D404", actor="t")
    assert "D404" in info.value.vars["problem"]
    with pytest.raises(push.PushInvalid) as info:
        await uow(db, push.create_push, course_code="basics", segment="all", actor="t",
                  at="2020-01-01T09:00")
    assert "in the past" in info.value.vars["problem"]
    with pytest.raises(push.PushInvalid):
        await uow(db, push.create_push, course_code="basics", segment="all", actor="t",
                  weekly="someday@9:00")
    with pytest.raises(push.PushInvalid):
        await uow(db, push.create_push, course_code="basics", segment="all", actor="t",
                  weekly="mon@09:00", timezone="Mars/Olympus")
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Push)) == 0


async def test_non_trainer_is_refused(db: Database) -> None:
    await setup(db)
    async with db.transaction() as s:
        assert await push.require_pusher(s, TRAINER, ["admin", "trainer"]) == "trainer"
    for user in (CS, 2001, 424242):
        async with db.transaction() as s:
            with pytest.raises(PermissionDenied):
                await push.require_pusher(s, user, ["admin", "trainer"])
    async with db.transaction() as s:
        denied = await s.scalar(select(func.count()).select_from(AuditLog)
                                .where(AuditLog.action == "permission.denied"))
        assert denied == 3


# --------------------------------------------------------------------------- once


async def test_once_during_a_restart_fires_once(db: Database) -> None:
    """A slot that falls while the scheduler is down fires once when it is back."""
    await setup(db)
    created = dt.datetime(2026, 11, 30, 8, 0, tzinfo=SH)
    view = await uow(db, push.create_push, course_code="basics", segment="tiers=key",
                     actor="t", at="2026-11-30T09:00", now=created)
    assert view.schedule == "once" and view.due_in("Asia/Shanghai") == created.replace(hour=9)
    assert await uow(db, push.fire_due, created + dt.timedelta(minutes=59)) == []
    # 09:00 passes while the scheduler is down; it is back at 09:40
    fired = await uow(db, push.fire_due, created + dt.timedelta(minutes=100))
    assert [(f.slot, f.queued, f.unreachable) for f in fired] == \
        [("2026-11-30T09:00+08:00", 2, 1)]
    assert await uow(db, push.fire_due, created + dt.timedelta(minutes=110)) == []
    assert await outbox_chats(db) == [2001, 2003]


async def test_crash_before_commit_fires_later_once(db: Database) -> None:
    await setup(db)
    created = dt.datetime(2026, 11, 30, 8, 0, tzinfo=SH)
    await uow(db, push.create_push, course_code="basics", segment="tiers=key", actor="t",
              at="2026-11-30T09:00", now=created)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with db.transaction() as s:
            assert len(await push.fire_due(s, created + dt.timedelta(hours=2))) == 1
            raise Crash
    assert await outbox_chats(db) == []
    assert len(await uow(db, push.fire_due, created + dt.timedelta(hours=3))) == 1
    assert await outbox_chats(db) == [2001, 2003]
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(PushRun)) == 1


# --------------------------------------------------------------------------- weekly


def test_weekly_next_slot_in_zones() -> None:
    mon = 0
    shanghai_now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=SH)  # a Wednesday
    assert push.weekly_next(mon, "09:00", SH, shanghai_now) == \
        dt.datetime(2026, 11, 30, 9, 0, tzinfo=SH)
    # a trainer in Berlin: Monday 09:00 Berlin (CET, +1) = Monday 16:00 Shanghai
    berlin = push.weekly_next(mon, "09:00", BERLIN, shanghai_now)
    assert berlin.astimezone(SH) == dt.datetime(2026, 11, 30, 16, 0, tzinfo=SH)
    ny = push.weekly_next(mon, "09:00", ZoneInfo("America/New_York"), shanghai_now)
    assert ny.astimezone(SH) == dt.datetime(2026, 11, 30, 22, 0, tzinfo=SH)  # EST -5
    # across Berlin's autumn change (Sun 2026-10-25): 15:00 Shanghai before, 16:00 after
    before = push.weekly_next(mon, "09:00", BERLIN, dt.datetime(2026, 10, 15, tzinfo=SH))
    assert before.astimezone(SH) == dt.datetime(2026, 10, 19, 15, 0, tzinfo=SH)
    after = push.weekly_next(mon, "09:00", BERLIN, before)
    assert after.astimezone(SH) == dt.datetime(2026, 10, 26, 16, 0, tzinfo=SH)
    assert after.astimezone(dt.UTC) - before.astimezone(dt.UTC) == dt.timedelta(days=7, hours=1)
    # and the spring change (Sun 2027-03-28): back to 15:00 Shanghai, a 7-day-minus-1h gap
    spring = push.weekly_next(mon, "09:00", BERLIN, dt.datetime(2027, 3, 23, tzinfo=SH))
    assert spring.astimezone(SH) == dt.datetime(2027, 3, 29, 15, 0, tzinfo=SH)
    prev = push.weekly_latest(mon, "09:00", BERLIN, spring - dt.timedelta(minutes=1))
    assert spring.astimezone(dt.UTC) - prev.astimezone(dt.UTC) == dt.timedelta(days=7, hours=-1)
    assert push.parse_weekly("周一@9:00") == (0, "09:00")
    assert push.parse_weekly("Sunday 21:30") == (6, "21:30")


async def test_weekly_sends_next_lesson_and_missed_weeks_fire_once(db: Database) -> None:
    await setup(db)
    created = dt.datetime(2026, 11, 25, 12, 0, tzinfo=SH)  # Wednesday
    view = await uow(db, push.create_push, course_code="basics", segment="dealers=D001,D004",
                     actor="t", weekly="mon@09:00", timezone="Europe/Berlin", now=created)
    first = dt.datetime(2026, 11, 30, 16, 0, tzinfo=SH)
    assert view.due_in("Asia/Shanghai") == first and view.weekly_text == "mon@09:00"
    assert await uow(db, push.fire_due, first - dt.timedelta(minutes=1)) == []
    fired = await uow(db, push.fire_due, first)
    assert [(f.slot, f.queued) for f in fired] == [("2026-11-30T09:00+01:00", 1)]
    # D001 reads lesson 1
    async with db.transaction() as s:
        e = await s.scalar(select(Enrollment).join(Customer, Customer.id == Enrollment.customer_id)
                           .where(Customer.code == "D001"))
        progress = await s.scalar(select(ItemProgress).where(ItemProgress.enrollment_id == e.id))
        progress.done_at = push.utcnow()
    # the scheduler is down for three Mondays; back on Tuesday 2026-12-22: one slot fires
    fired = await uow(db, push.fire_due, dt.datetime(2026, 12, 22, 10, 0, tzinfo=SH))
    assert [(f.slot, f.skipped_slots) for f in fired] == [
        ("2026-12-21T09:00+01:00", ["2026-12-07T09:00+01:00", "2026-12-14T09:00+01:00"])]
    assert await uow(db, push.fire_due, dt.datetime(2026, 12, 22, 11, 0, tzinfo=SH)) == []
    async with db.transaction() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        assert [(r.chat_id, r.variables["title"]) for r in rows] == [(2001, "认识产品"),
                                                                     (2001, "陈列")]
        row = await s.get(Push, view.id)
        assert row is not None and row.status == "active"
        assert push._aware(row.next_due_at) == dt.datetime(2026, 12, 28, 16, 0, tzinfo=SH)
        skipped = await s.scalar(select(AuditLog.details)
                                 .where(AuditLog.action == "training.push_slots_skipped"))
        assert skipped["skipped"] == ["2026-12-07T09:00+01:00", "2026-12-14T09:00+01:00"]


async def test_draft_confirm_once_and_cancel(db: Database) -> None:
    await setup(db)
    draft = await uow(db, push.create_push, course_code="basics", segment="tiers=key",
                      actor="t", draft=True)
    assert draft.status == "draft" and draft.fired is None and await outbox_chats(db) == []
    assert [v.id for v in await uow(db, push.list_pushes)] == []  # drafts are not listed
    first = await uow(db, push.confirm, draft.id, "t")
    assert first is not None and first.fired is not None and first.fired.queued == 2
    assert await uow(db, push.confirm, draft.id, "t") is None
    assert await outbox_chats(db) == [2001, 2003]
    weekly = await uow(db, push.create_push, course_code="basics", segment="all", actor="t",
                       weekly="fri@18:00")
    assert [v.id for v in await uow(db, push.list_pushes)] == [weekly.id]
    cancelled = await uow(db, push.cancel, weekly.id, "t")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert await uow(db, push.cancel, weekly.id, "t") is None
    assert await uow(db, push.list_pushes) == []
    assert await uow(db, push.fire_due, push.utcnow() + dt.timedelta(days=8)) == []

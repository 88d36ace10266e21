"""Reminders: an idle dealer gets one nudge with a working "continue" button, not another
within remind_every_days; finished or unreachable dealers get none; the daily job runs once
a day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.scheduler import run_due
from bot.scheduler.jobs import default_jobs
from core.i18n import renderer
from core.models import Customer, OutboxMessage, TelegramIdentity
from tests.conftest import uow
from tests.training.progress_fixture import build, settings_for
from training import content, reminders
from training.models import Enrollment

SH = ZoneInfo("Asia/Shanghai")


async def _reminders(db) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        return list((await s.scalars(select(OutboxMessage)
                                     .where(OutboxMessage.template == "training_reminder")
                                     .order_by(OutboxMessage.id))).all())


async def test_idle_dealer_reminded_once(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    world = await build(db, now=now)
    cfg = settings_for(tmp_path).training  # remind after 3 idle days, every 7 days
    async with db.transaction() as s:  # D5: active yesterday (not idle yet)
        fresh = Customer(code="D5", kind="dealer", name="戊商贸", tier="key", region="华东")
        s.add(fresh)
        await s.flush()
        s.add(TelegramIdentity(telegram_user_id=2005, first_name="赵六", customer_id=fresh.id,
                               linked_at=now))
        e, _ = await content.enroll(s, world.course_id, fresh.id)
        e.enrolled_at = e.last_activity_at = now - dt.timedelta(days=1)
    got = await uow(db, reminders.queue_reminders, now, cfg)
    # D2 is idle and linked; D3 is idle but nobody is linked; D1, D4 completed; D5 active.
    assert got == {"due": 2, "queued": 1, "unlinked": 1}
    sent = await _reminders(db)
    assert [m.chat_id for m in sent] == [2002]
    text = renderer().render(sent[0].template, "en", **sent[0].variables)
    assert "1/3 through <b>产品基础</b>" in text, text
    assert content.parse_payload(sent[0].buttons[0]["payload"]) == \
        ("next", [world.enrollments["D2"]])
    # D2: the same day again, and 6 days later: nothing new; 7 days later: one more.
    # (D5, quiet since yesterday, is idle 3 days later and gets its first one then.)
    for later, expected in ((dt.timedelta(hours=1), [2002]),
                            (dt.timedelta(days=2, hours=1), [2002, 2005]),
                            (dt.timedelta(days=6), [2002, 2005]),
                            (dt.timedelta(days=7), [2002, 2005, 2002])):
        await uow(db, reminders.queue_reminders, now + later, cfg)
        assert [m.chat_id for m in await _reminders(db)] == expected, later
    async with db.transaction() as s:
        reminded = await s.scalar(select(Enrollment.reminded_at)
                                  .where(Enrollment.id == world.enrollments["D2"]))
    assert reminded is not None and reminded.replace(tzinfo=dt.UTC) >= now + dt.timedelta(days=7)


async def test_activity_resets_the_idle_clock(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    world = await build(db, now=now)
    async with db.transaction() as s:
        e = await s.get(Enrollment, world.enrollments["D2"])
        e.last_activity_at = now - dt.timedelta(days=2)
    got = await uow(db, reminders.queue_reminders, now, settings_for(tmp_path).training)
    assert got["queued"] == 0 and await _reminders(db) == []


async def test_daily_job_runs_once_per_day(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(tmp_path)
    at = settings.training.remind_at
    first = dt.datetime.combine(dt.date(2026, 11, 24), at, tzinfo=SH).astimezone(dt.UTC)
    await build(db, now=first)
    jobs = [j for j in default_jobs(settings) if j.name == "training.reminders"]
    assert len(jobs) == 1
    out = await run_due(db, settings, jobs, now=first + dt.timedelta(minutes=5))
    assert (out[0].status, out[0].slot) == ("ran", "2026-11-24")
    assert out[0].result == {"due": 2, "queued": 1, "unlinked": 1}
    again = await run_due(db, settings, jobs, now=first + dt.timedelta(hours=3))
    assert again[0].status == "done_before"
    tomorrow = await run_due(db, settings, jobs, now=first + dt.timedelta(days=1, minutes=5))
    assert (tomorrow[0].status, tomorrow[0].slot) == ("ran", "2026-11-25")
    assert tomorrow[0].result["queued"] == 0  # reminded yesterday: not again this week
    assert [m.chat_id for m in await _reminders(db)] == [2002]

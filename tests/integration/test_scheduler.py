"""The scheduler (bot/scheduler): each slot runs once across instances and restarts,
catches up after downtime, retries a failed run, and the points jobs do their work."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text

from bot.scheduler import Daily, Job, JobRun, Monthly, run_due
from bot.scheduler.jobs import default_jobs
from community.points import jobs as points_jobs
from community.points import ledger
from community.points.jobs import LeaderboardGroup
from community.points.models import PointsEntry
from core.db import Database
from core.models import AuditLog, Customer, OutboxMessage, ScheduledRun, TelegramIdentity
from core.settings import Settings, load_settings
from tests.conftest import uow

SH = ZoneInfo("Asia/Shanghai")
SETTINGS = load_settings(env={})


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    """A moment given in Shanghai time, as UTC (what the scheduler's clock gives)."""
    return dt.datetime(y, m, d, hh, mm, tzinfo=SH).astimezone(dt.UTC)


def counting_job(name: str = "test.daily", schedule=None, delay: float = 0.0,  # type: ignore[no-untyped-def]
                 fail_first: int = 0) -> tuple[Job, list[str]]:
    """A job that writes an audit row per run (in the run's transaction) and records slots."""
    ran: list[str] = []
    failures = [fail_first]

    async def work(s, run: JobRun):  # type: ignore[no-untyped-def]
        await s.execute(insert(AuditLog).values(actor="scheduler", action=name,
                                                subject=run.slot, details={}))
        if delay:
            await asyncio.sleep(delay)
        if failures[0] > 0:
            failures[0] -= 1
            raise RuntimeError("the job failed")
        ran.append(run.slot)
        return {"slot": run.slot}

    return Job(name, schedule or Daily(dt.time(2, 30)), work), ran


async def _audit_rows(db: Database, action: str) -> list[str]:
    async with db.transaction() as s:
        return list((await s.scalars(select(AuditLog.subject).where(AuditLog.action == action)
                                     .order_by(AuditLog.id))).all())


def test_slots_are_local_days_and_months() -> None:
    daily = Daily(dt.time(2, 30))
    assert daily.latest(dt.datetime(2026, 11, 24, 2, 29, tzinfo=SH))[0] == "2026-11-23"
    assert daily.latest(dt.datetime(2026, 11, 24, 2, 30, tzinfo=SH))[0] == "2026-11-24"
    monthly = Monthly(dt.time(9, 0), day=1)
    assert monthly.latest(dt.datetime(2026, 12, 1, 8, 59, tzinfo=SH))[0] == "2026-11"
    assert monthly.latest(dt.datetime(2026, 12, 1, 9, 0, tzinfo=SH))[0] == "2026-12"
    assert monthly.latest(dt.datetime(2027, 1, 1, 0, 0, tzinfo=SH))[0] == "2026-12"
    assert Monthly(dt.time(9), day=31).latest(dt.datetime(2027, 2, 28, 10, tzinfo=SH))[1].day == 28
    # 18:30 UTC on the 23rd is 02:30 on the 24th in Shanghai: the job time is local.
    utc = dt.datetime(2026, 11, 23, 18, 30, tzinfo=dt.UTC).astimezone(SH)
    assert daily.latest(utc)[0] == "2026-11-24"


async def test_a_slot_runs_once_when_two_schedulers_race(db: Database) -> None:
    job, ran = counting_job(delay=0.3)
    other = Database(db.url, search_path=await _search_path(db))  # "another scheduler"
    try:
        now = local(2026, 11, 24, 3)
        outcomes = await asyncio.gather(
            run_due(db, SETTINGS, [job], now=now, instance="a"),
            run_due(other, SETTINGS, [job], now=now, instance="b"),
            run_due(db, SETTINGS, [job], now=now, instance="c"))
    finally:
        await other.dispose()
    statuses = sorted(o[0].status for o in outcomes)
    assert statuses.count("ran") == 1, statuses
    assert set(statuses) <= {"ran", "taken", "done_before"}
    assert ran == ["2026-11-24"]
    assert await _audit_rows(db, "test.daily") == ["2026-11-24"]
    async with db.transaction() as s:
        row = (await s.scalars(select(ScheduledRun))).one()
    assert (row.job, row.slot, row.result) == ("test.daily", "2026-11-24",
                                               {"slot": "2026-11-24"})
    assert row.finished_at is not None


async def _search_path(db: Database) -> str | None:
    if db.is_sqlite:
        return None
    async with db.transaction() as s:
        return await s.scalar(text("SHOW search_path"))


async def test_restart_spanning_the_slot_catches_up_and_never_runs_twice(db: Database) -> None:
    job, ran = counting_job()
    # Monday 03:00: Monday's slot runs; later ticks that day find it done.
    assert (await run_due(db, SETTINGS, [job], now=local(2026, 11, 23, 3)))[0].status == "ran"
    assert (await run_due(db, SETTINGS, [job], now=local(2026, 11, 23, 23)))[0].status == \
        "done_before"
    # Tuesday 02:00 is before Tuesday's 02:30: still Monday's slot, done.
    assert (await run_due(db, SETTINGS, [job], now=local(2026, 11, 24, 2)))[0].status == \
        "done_before"
    # Down from Tuesday 02:10 to 09:00 (a fresh process, a fresh job object): it catches up.
    job2, ran2 = counting_job()
    outcome = (await run_due(db, SETTINGS, [job2], now=local(2026, 11, 24, 9)))[0]
    assert (outcome.status, outcome.slot) == ("ran", "2026-11-24")
    for later in (local(2026, 11, 24, 9, 1), local(2026, 11, 25, 1)):
        assert (await run_due(db, SETTINGS, [job2], now=later))[0].status == "done_before"
    assert ran + ran2 == ["2026-11-23", "2026-11-24"]
    assert await _audit_rows(db, "test.daily") == ["2026-11-23", "2026-11-24"]


async def test_a_failed_run_leaves_nothing_and_is_retried(db: Database) -> None:
    job, ran = counting_job(fail_first=1)
    now = local(2026, 11, 24, 3)
    assert (await run_due(db, SETTINGS, [job], now=now))[0].status == "failed"
    assert await _audit_rows(db, "test.daily") == []  # the work rolled back with the claim
    assert (await run_due(db, SETTINGS, [job], now=now))[0].status == "ran"
    assert (await run_due(db, SETTINGS, [job], now=now))[0].status == "done_before"
    assert ran == ["2026-11-24"] and await _audit_rows(db, "test.daily") == ["2026-11-24"]


async def test_a_slot_missed_for_longer_than_its_catch_up_is_skipped(db: Database) -> None:
    job, ran = counting_job("test.monthly", Monthly(dt.time(9), day=1))
    late = Job(job.name, job.schedule, job.run, catch_up=dt.timedelta(days=2))
    assert (await run_due(db, SETTINGS, [late], now=local(2026, 12, 5, 9)))[0].status == \
        "too_late"
    assert (await run_due(db, SETTINGS, [late], now=local(2027, 1, 2, 9)))[0].status == "ran"
    assert ran == ["2027-01"]


async def _dealer(s, code: str = "D1", chat: int | None = 4242) -> int:  # type: ignore[no-untyped-def]
    c = Customer(code=code, kind="dealer", name=f"Dealer {code}", region="华东", tier="key")
    s.add(c)
    await s.flush()
    if chat is not None:
        s.add(TelegramIdentity(telegram_user_id=chat, first_name="x", customer_id=c.id,
                               locale="en"))
    return c.id


async def test_points_jobs_mature_expire_remind_and_send_statements_once(
        db: Database) -> None:
    cfg = SETTINGS.points
    account = await uow(db, _dealer)
    earned_at = local(2025, 11, 10, 10)
    # A pending order earning (matures 14 days later) and points credited a year ago.
    await uow(db, ledger.post, account, "earn", "order:1", pending=300,
              matures_on=dt.date(2025, 11, 24), now=earned_at)
    await uow(db, ledger.award, account, "course_completed", "c1", now=earned_at, cfg=cfg)
    jobs = [j for j in default_jobs(SETTINGS) if j.name.startswith("points.")]
    assert [j.name for j in jobs] == ["points.daily", "points.statements",
                                      "points.leaderboards"]
    # 2025-12-01 09:30: daily (matures the order) and November's statements.
    out = {o.job: o for o in await run_due(db, SETTINGS, jobs, now=local(2025, 12, 1, 9, 30))}
    assert out["points.daily"].status == "ran" and out["points.daily"].result["matured"] == 1
    assert out["points.statements"].result == {"month": "2025-11", "queued": 1}
    assert out["points.leaderboards"].status == "disabled"  # off by default
    again = await run_due(db, SETTINGS, jobs, now=local(2025, 12, 1, 10))
    assert [o.status for o in again] == ["done_before", "done_before", "disabled"]
    # A year after the course points were credited they expire (the 300 matured later stay).
    out = {o.job: o for o in await run_due(db, SETTINGS, jobs, now=local(2026, 11, 10, 3))}
    assert out["points.daily"].result["expired_points"] == 75  # 50 x 1.5 (key tier)
    assert (await uow(db, ledger.balance, account, cfg=cfg,
                      today=dt.date(2026, 11, 10))).available == 300
    async with db.transaction() as s:
        templates = (await s.scalars(select(OutboxMessage.template)
                                     .where(OutboxMessage.chat_id == 4242)
                                     .order_by(OutboxMessage.id))).all()
        expired = await s.scalar(select(func.count()).select_from(PointsEntry)
                                 .where(PointsEntry.kind == "expire"))
    assert list(templates).count("points_statement") == 1
    assert "points_expiry_reminder" in templates
    assert expired == 1


async def test_monthly_leaderboard_posts_go_to_registered_groups_once(db: Database) -> None:
    account = await uow(db, _dealer)
    await uow(db, ledger.award, account, "course_completed", "c1", now=local(2026, 11, 5, 10),
              cfg=SETTINGS.points)

    async def groups(s):  # type: ignore[no-untyped-def]
        return [LeaderboardGroup(-500, "region", "华东", "zh-Hans"),
                LeaderboardGroup(-501, "region", "华南")]  # nobody earned in 华南: no post

    points_jobs.leaderboard_groups(groups)
    try:
        on = Settings(**{**SETTINGS.model_dump(by_alias=True),
                         "points": {**SETTINGS.points.model_dump(), "leaderboard_posts": True}})
        job = next(j for j in default_jobs(on) if j.name == "points.leaderboards")
        first = await run_due(db, on, [job], now=local(2026, 12, 1, 9, 5))
        assert first[0].result == {"month": "2026-11", "queued": 1}
        assert (await run_due(db, on, [job], now=local(2026, 12, 1, 9, 6)))[0].status == \
            "done_before"
    finally:
        points_jobs._group_sources.remove(groups)
    async with db.transaction() as s:
        posts = (await s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id < 0))).all()
    assert [(p.chat_id, p.template) for p in posts] == [(-500, "points_leaderboard_post")]
    assert posts[0].variables["rows"][0]["points"] == 75


async def test_registered_dealer_groups_get_their_region_board(db: Database) -> None:
    from community.leaderboards import community_groups
    from community.models import CommunityGroup

    account = await uow(db, _dealer)
    await uow(db, ledger.award, account, "course_completed", "c1", now=local(2026, 11, 5, 10),
              cfg=SETTINGS.points)
    async with db.transaction() as s:
        s.add_all([CommunityGroup(chat_id=-700, title="华东群", regions=["华东"], tiers=[]),
                   CommunityGroup(chat_id=-701, title="old", regions=["华东"], active=False)])
    assert [(g.chat_id, g.scope, g.key) for g in await uow(db, community_groups)] == [
        (-700, "region", "华东")]
    on = Settings(**{**SETTINGS.model_dump(by_alias=True),
                     "points": {**SETTINGS.points.model_dump(), "leaderboard_posts": True}})
    job = next(j for j in default_jobs(on) if j.name == "points.leaderboards")
    assert (await run_due(db, on, [job], now=local(2026, 12, 1, 9, 5)))[0].result == {
        "month": "2026-11", "queued": 1}
    async with db.transaction() as s:
        posts = (await s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id < 0))).all()
    assert [p.chat_id for p in posts] == [-700]


async def test_two_scheduler_processes_run_each_slot_once(sqlite_db: Database,
                                                          tmp_path) -> None:
    """`python -m bot.scheduler --once`, twice at the same moment, on one database (the CLI
    end to end; the tight race inside one slot is test_a_slot_runs_once_when_two_schedulers_race,
    where the job holds its transaction open while the others try)."""
    import sys

    account = await uow(sqlite_db, _dealer)
    await uow(sqlite_db, ledger.post, account, "earn", "order:1", pending=300,
              matures_on=dt.date(2026, 11, 20), now=local(2026, 11, 5, 10))
    env = {**os.environ, "DATABASE_URL": sqlite_db.url, "APP_DATA_DIR": str(tmp_path)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    now = local(2026, 12, 1, 9, 30).isoformat()
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.scheduler", "--once", "--now", now, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT) for _ in range(2)]
    outputs = [(await p.communicate())[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ran = [line for out in outputs for line in out.splitlines() if ": ran" in line]
    assert sum("points.daily 2026-12-01: ran" in line for line in ran) == 1, outputs
    assert sum("points.statements 2026-12: ran" in line for line in ran) == 1, outputs
    async with sqlite_db.transaction() as s:
        runs = (await s.execute(select(ScheduledRun.job, ScheduledRun.slot)
                                .where(ScheduledRun.job.like("points.%"))
                                .order_by(ScheduledRun.job))).tuples().all()
        statements = await s.scalar(select(func.count()).select_from(OutboxMessage)
                                    .where(OutboxMessage.template == "points_statement"))
        matured = await s.scalar(select(func.count()).select_from(PointsEntry)
                                 .where(PointsEntry.kind == "mature"))
    assert runs == [("points.daily", "2026-12-01"), ("points.statements", "2026-12")]
    assert (statements, matured) == (1, 1)

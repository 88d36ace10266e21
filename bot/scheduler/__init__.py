"""The scheduler: runs each slot of each registered job exactly once, across restarts and
instances (`python -m bot.scheduler`, the `scheduler:` line of the Procfile).

- A **job** is a name, a schedule (`Daily(at)`, `Monthly(day, at)`, in app.timezone) and an
  async function `run(session, JobRun) -> dict` calling services. Jobs are registered in
  `bot/scheduler/jobs.py` (points today; training's lesson schedules next).
- A **slot** is one due time of a schedule, named by its local date (`2026-11-24`) or month
  (`2026-11`). At every tick the scheduler looks at each job's latest slot that is due.
- **Exactly once**: the run inserts `scheduled_runs(job, slot)` — unique — *in the same
  transaction as the job's work*. Two schedulers racing for a slot: the second one's insert
  waits on the first's transaction and then finds the key taken (PostgreSQL), or waits for
  SQLite's write lock and then finds it; a failed run rolls back its row with its work, so the
  slot is tried again at the next tick. Nothing is ever half-done or done twice.
- **Every tick** (`EveryTick()`): a job that runs at each tick with no scheduled_runs row
  (one row per tick would be noise). Only for work that is one-time by its own unique keys —
  training pushes fire a slot by inserting `PushRun(push, slot)` with their messages. The job
  still runs in one transaction; a failure rolls back and the next tick tries again.
- **Catch-up**: a scheduler that was down when a slot fell due runs it when it comes back, as
  long as the slot is at most `catch_up` old (older missed slots are skipped: the next slot
  of a daily job does their work anyway — expiry and maturing are "everything due by today").
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.models import ScheduledRun, utcnow
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Daily:
    """Every day at a local time."""

    at: dt.time

    def latest(self, now: dt.datetime) -> tuple[str, dt.datetime]:
        """(slot name, due time) of the latest slot at or before local `now`."""
        due = dt.datetime.combine(now.date(), self.at, tzinfo=now.tzinfo)
        if due > now:
            due = dt.datetime.combine(now.date() - dt.timedelta(days=1), self.at,
                                      tzinfo=now.tzinfo)
        return due.date().isoformat(), due


@dataclass(frozen=True)
class Monthly:
    """Every month on a day (clamped to the month's length) at a local time."""

    at: dt.time
    day: int = 1

    def _due(self, year: int, month: int, tz: Any) -> dt.datetime:
        day = min(self.day, calendar.monthrange(year, month)[1])
        return dt.datetime.combine(dt.date(year, month, day), self.at, tzinfo=tz)

    def latest(self, now: dt.datetime) -> tuple[str, dt.datetime]:
        """(slot name, due time) of the latest slot at or before local `now`."""
        due = self._due(now.year, now.month, now.tzinfo)
        if due > now:
            year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
            due = self._due(year, month, now.tzinfo)
        return f"{due:%Y-%m}", due


@dataclass(frozen=True)
class EveryTick:
    """Every tick of the scheduler (slot "tick"); no scheduled_runs row: the job's own unique
    keys make its work one-time."""

    def latest(self, now: dt.datetime) -> tuple[str, dt.datetime]:
        """The slot is now."""
        return "tick", now


@dataclass(frozen=True)
class JobRun:
    """What a job's function gets: its slot, when it fell due, now, and the settings."""

    job: str
    slot: str
    due_at: dt.datetime  # local (app.timezone)
    now: dt.datetime  # UTC
    settings: Settings


JobFn = Callable[[AsyncSession, JobRun], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Job:
    """A named schedule and the work of one slot."""

    name: str
    schedule: Daily | Monthly | EveryTick
    run: JobFn
    catch_up: dt.timedelta = dt.timedelta(days=1)
    enabled: Callable[[Settings], bool] = field(default=lambda _settings: True)


@dataclass(frozen=True)
class Outcome:
    """What happened to one job at one tick."""

    job: str
    slot: str
    status: str  # ran | done_before | taken | too_late | disabled | failed
    result: dict[str, Any] | None = None


def _insert(s: AsyncSession):  # type: ignore[no-untyped-def]
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(ScheduledRun)


async def claim(s: AsyncSession, job: str, slot: str, instance: str) -> bool:
    """Take (job, slot) in this transaction; False if another run has (or had) it."""
    stmt = (_insert(s).values(job=job, slot=slot, instance=instance[:100], started_at=utcnow(),
                              result={})
            .on_conflict_do_nothing(index_elements=["job", "slot"])
            .returning(ScheduledRun.id))
    return await s.scalar(stmt) is not None


async def run_job(db: Database, settings: Settings, job: Job, now: dt.datetime, *,
                  instance: str = "") -> Outcome:
    """Run the job's latest due slot if nobody has: claim + work + result, one transaction."""
    tz = ZoneInfo(settings.app.timezone)
    slot, due = job.schedule.latest(now.astimezone(tz))
    if not job.enabled(settings):
        return Outcome(job.name, slot, "disabled")
    if isinstance(job.schedule, EveryTick):
        return await _run_tick(db, settings, job, now)
    if now - due > job.catch_up:
        return Outcome(job.name, slot, "too_late")
    async with db.transaction() as s:  # a cheap look first: no write lock for done slots
        if await s.scalar(select(ScheduledRun.id).where(ScheduledRun.job == job.name,
                                                        ScheduledRun.slot == slot)):
            return Outcome(job.name, slot, "done_before")
    try:
        async with db.transaction() as s:
            if not await claim(s, job.name, slot, instance):
                return Outcome(job.name, slot, "taken")
            result = await job.run(s, JobRun(job.name, slot, due, now, settings)) or {}
            await s.execute(update(ScheduledRun)
                            .where(ScheduledRun.job == job.name, ScheduledRun.slot == slot)
                            .values(finished_at=utcnow(), result=result))
    except Exception:  # rolled back with its row: the slot is tried again next tick
        log.exception("job %s slot %s failed; will retry", job.name, slot)
        return Outcome(job.name, slot, "failed")
    log.info("job %s slot %s done: %s", job.name, slot, result)
    return Outcome(job.name, slot, "ran", result)


async def _run_tick(db: Database, settings: Settings, job: Job, now: dt.datetime) -> Outcome:
    try:
        async with db.transaction() as s:
            result = await job.run(s, JobRun(job.name, "tick", now, now, settings)) or {}
    except Exception:  # rolled back: the next tick tries again
        log.exception("job %s failed; will retry next tick", job.name)
        return Outcome(job.name, "tick", "failed")
    if result:
        log.info("job %s: %s", job.name, result)
    return Outcome(job.name, "tick", "ran", result)


async def run_due(db: Database, settings: Settings, jobs: list[Job], *,
                  now: dt.datetime | None = None, instance: str = "") -> list[Outcome]:
    """One tick: every job's latest due slot, each at most once across all schedulers."""
    now = now or utcnow()
    return [await run_job(db, settings, job, now, instance=instance) for job in jobs]


async def loop(db: Database, settings: Settings, jobs: list[Job], stop: asyncio.Event, *,
               instance: str = "") -> None:
    """Tick every scheduler.tick_seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await run_due(db, settings, jobs, instance=instance)
        except Exception:  # the database is down: try again next tick
            log.exception("scheduler tick failed")
        try:
            await asyncio.wait_for(stop.wait(), settings.scheduler.tick_seconds)
        except TimeoutError:
            pass

"""Every scheduled job of the system, in one list (add a module's jobs here)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.scheduler import Daily, Job, JobRun, Monthly
from community import leaderboards as _community_boards  # noqa: F401 (registers the groups)
from community.points import jobs as points_jobs
from core.settings import Settings
from training import reminders as training_reminders


async def _points_daily(s: AsyncSession, run: JobRun) -> dict[str, Any]:
    return await points_jobs.daily(s, run.now, run.settings.points)


async def _points_statements(s: AsyncSession, run: JobRun) -> dict[str, Any]:
    return await points_jobs.monthly_statements(s, run.due_at.date())


async def _points_leaderboards(s: AsyncSession, run: JobRun) -> dict[str, Any]:
    return await points_jobs.monthly_leaderboards(s, run.due_at.date())


async def _training_reminders(s: AsyncSession, run: JobRun) -> dict[str, Any]:
    return await training_reminders.queue_reminders(s, run.now, run.settings.training,
                                                    timezone=run.settings.app.timezone)


def default_jobs(settings: Settings) -> list[Job]:
    """The jobs `python -m bot.scheduler` runs (times from config.yml, in app.timezone)."""
    p = settings.points
    return [
        Job("points.daily", Daily(p.daily_at), _points_daily),
        Job("points.statements", Monthly(p.statements_at, day=1), _points_statements,
            catch_up=dt.timedelta(days=7)),
        Job("points.leaderboards", Monthly(p.statements_at, day=1), _points_leaderboards,
            catch_up=dt.timedelta(days=3), enabled=lambda st: st.points.leaderboard_posts),
        Job("training.reminders", Daily(settings.training.remind_at), _training_reminders),
    ]

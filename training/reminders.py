"""Reminders for unfinished courses (the scheduler's `training.reminders`, daily at
training.remind_at).

An enrolment is reminded when it is not completed, its dealer has a linked private chat, it
has been idle for remind_after_days (since last_activity_at, or enrolled_at if the dealer
never did anything) and it was not reminded in the last remind_every_days. Each reminder is
one outbox row ("you're 2/5 through X — tap to continue", button `trn:next:<enrolment>`);
`reminded_at` is set by a conditional UPDATE (only if still due), so two runs — or a run and
a retry — remind once; the outbox dedupe key (enrolment, local day) backs that up.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import TelegramIdentity
from core.screens import button
from core.services.outbox import enqueue
from core.settings import TrainingSection
from training.content import payload
from training.models import Course, CourseItem, Enrollment, ItemProgress

BATCH = 500  # enrolments per query; a run goes through every due one


def _due(now: dt.datetime, cfg: TrainingSection):  # type: ignore[no-untyped-def]
    idle_since = now - dt.timedelta(days=cfg.remind_after_days)
    quiet_since = now - dt.timedelta(days=cfg.remind_every_days)
    return and_(
        Enrollment.completed_at.is_(None),
        func.coalesce(Enrollment.last_activity_at, Enrollment.enrolled_at) <= idle_since,
        or_(Enrollment.reminded_at.is_(None), Enrollment.reminded_at <= quiet_since))


async def queue_reminders(s: AsyncSession, now: dt.datetime, cfg: TrainingSection, *,
                          timezone: str = "Asia/Shanghai") -> dict[str, int]:
    """Queue one reminder per due enrolment (see the module doc); returns
    {"due": …, "queued": …, "unlinked": …}. `now` is UTC; `timezone` names the day in the
    dedupe key."""
    day = now.astimezone(ZoneInfo(timezone)).date().isoformat()
    due = _due(now, cfg)
    # The dealer's private chat: their earliest-linked identity (a private chat id is the
    # user id).
    chat = (select(TelegramIdentity.telegram_user_id)
            .where(TelegramIdentity.customer_id == Enrollment.customer_id)
            .order_by(TelegramIdentity.linked_at, TelegramIdentity.telegram_user_id)
            .limit(1).correlate(Enrollment).scalar_subquery())
    locale = (select(TelegramIdentity.locale)
              .where(TelegramIdentity.telegram_user_id == chat).scalar_subquery())
    counts = {"due": 0, "queued": 0, "unlinked": 0}
    after = 0
    while True:
        batch = (await s.execute(
            select(Enrollment.id, Course.title, Course.id, chat.label("chat"),
                   locale.label("locale"))
            .join(Course, Course.id == Enrollment.course_id)
            .where(due, Course.status == "published", Enrollment.id > after)
            .order_by(Enrollment.id).limit(BATCH))).all()
        if not batch:
            return counts
        after = batch[-1][0]
        counts["due"] += len(batch)
        linked = [r for r in batch if r.chat is not None]
        counts["unlinked"] += len(batch) - len(linked)
        totals, done = await _progress(s, [r[0] for r in linked], {r[2] for r in linked})
        for enrollment_id, title, course_id, chat_id, user_locale in linked:
            claimed = await s.execute(
                update(Enrollment).where(Enrollment.id == enrollment_id, due)
                .values(reminded_at=now).execution_options(synchronize_session=False))
            if not claimed.rowcount:
                continue  # another run reminded it a moment ago
            if await enqueue(
                    s, int(chat_id), template="training_reminder", locale=user_locale,
                    variables={"course": title, "done": done.get(enrollment_id, 0),
                               "total": totals.get(course_id, 0)},
                    buttons=[button("training_btn_continue", payload("next", enrollment_id))],
                    dedupe_key=f"trn:remind:{enrollment_id}:{day}",
                    ref=f"training:reminder:{enrollment_id}"):
                counts["queued"] += 1


async def _progress(s: AsyncSession, enrollment_ids: list[int], course_ids: set[int]
                    ) -> tuple[dict[int, int], dict[int, int]]:
    """(active items per course, items done per enrolment)."""
    if not enrollment_ids:
        return {}, {}
    totals = dict((await s.execute(
        select(CourseItem.course_id, func.count()).where(CourseItem.course_id.in_(course_ids),
                                                         CourseItem.active)
        .group_by(CourseItem.course_id))).tuples().all())
    done = dict((await s.execute(
        select(ItemProgress.enrollment_id, func.count())
        .join(CourseItem, CourseItem.id == ItemProgress.item_id)
        .where(ItemProgress.enrollment_id.in_(enrollment_ids), CourseItem.active,
               ItemProgress.done_at.is_not(None))
        .group_by(ItemProgress.enrollment_id))).tuples().all())
    return totals, done

"""Training progress: per course (optionally only the dealers of a community group) and per
dealer, as Screens for chat and as CSV for Excel.

One row per (dealer, course) — `DealerRow` — is the unit of every view; the course summary
counts rows, so the chat, the CSV and the CLI always agree:

- enrolled: every enrolment;
- started: the dealer began (started_at) or finished an item;
- completed / passed: the enrolment's completed_at / passed_at (set by learning);
- quiz scores: each dealer's best score per quiz; the average and best are over those.

Group view: dealers who are members (status "member") of the registered group, named by
chat id or title. CSV: UTF-8 with a BOM (Excel opens Chinese right), every text cell made
formula-safe by the points export's `safe_cell`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shlex
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from community.announcements import resolve
from community.models import GroupMember
from community.points.reports import safe_cell
from core.errors import NotFound, PermissionDenied
from core.models import Customer
from core.screens import Screen
from core.services.staff import require_linked_role, require_role
from training.courses import by_code
from training.models import Certificate, Course, CourseItem, Enrollment, ItemProgress

CHAT_ROWS = 30  # dealers listed in a chat report; the CSV has them all


@dataclass(frozen=True)
class DealerRow:
    """One dealer in one course."""

    course_code: str
    course_title: str
    dealer_code: str
    dealer_name: str
    region: str
    tier: str
    enrolled_at: dt.datetime
    started: bool
    done: int
    total: int
    scores: list[int | None]  # best score per quiz, in course order (None: not tried)
    completed_at: dt.datetime | None
    passed_at: dt.datetime | None
    last_activity_at: dt.datetime | None
    certificate: str | None


@dataclass(frozen=True)
class CourseSummary:
    """The counts of a course's report (over the rows it was made from)."""

    code: str
    title: str
    items: int
    enrolled: int
    started: int
    completed: int
    passed: int
    avg_score: float | None
    best_score: int | None
    rows: list[DealerRow] = field(default_factory=list)


async def rows(s: AsyncSession, *, course_ids: list[int] | None = None,
               customer_ids: list[int] | None = None) -> list[DealerRow]:
    """Every (dealer, course) row, narrowed to some courses and/or dealers, by course then
    dealer code."""
    q = (select(Enrollment, Course, Customer)
         .join(Course, Course.id == Enrollment.course_id)
         .join(Customer, Customer.id == Enrollment.customer_id))
    if course_ids is not None:
        q = q.where(Enrollment.course_id.in_(course_ids))
    if customer_ids is not None:
        q = q.where(Enrollment.customer_id.in_(customer_ids))
    found = (await s.execute(q.order_by(Course.code, Customer.code))).all()
    if not found:
        return []
    enrollment_ids = [e.id for e, _, _ in found]
    courses = {c.id for _, c, _ in found}
    items = (await s.execute(
        select(CourseItem.id, CourseItem.course_id, CourseItem.kind)
        .where(CourseItem.course_id.in_(courses), CourseItem.active)
        .order_by(CourseItem.course_id, CourseItem.position))).all()
    total = {cid: sum(1 for _, c, _ in items if c == cid) for cid in courses}
    quizzes = {cid: [i for i, c, k in items if c == cid and k == "quiz"] for cid in courses}
    active = [i for i, _, _ in items]
    done = dict((await s.execute(
        select(ItemProgress.enrollment_id, func.count())
        .where(ItemProgress.enrollment_id.in_(enrollment_ids),
               ItemProgress.item_id.in_(active), ItemProgress.done_at.is_not(None))
        .group_by(ItemProgress.enrollment_id))).tuples().all())
    best = {(e, i): score for e, i, score in (await s.execute(
        select(ItemProgress.enrollment_id, ItemProgress.item_id, ItemProgress.best_score)
        .where(ItemProgress.enrollment_id.in_(enrollment_ids),
               ItemProgress.best_score.is_not(None)))).tuples().all()}
    codes = dict((await s.execute(
        select(Certificate.enrollment_id, Certificate.code)
        .where(Certificate.enrollment_id.in_(enrollment_ids)))).tuples().all())
    out = []
    for e, course, customer in found:
        n = int(done.get(e.id, 0))
        out.append(DealerRow(
            course_code=course.code, course_title=course.title, dealer_code=customer.code,
            dealer_name=customer.name, region=customer.region or "", tier=customer.tier or "",
            enrolled_at=e.enrolled_at, started=e.started_at is not None or n > 0,
            done=n, total=total[course.id],
            scores=[best.get((e.id, q)) for q in quizzes[course.id]],
            completed_at=e.completed_at, passed_at=e.passed_at,
            last_activity_at=e.last_activity_at, certificate=codes.get(e.id)))
    return out


def summarise(course: Course, items: int, found: list[DealerRow]) -> CourseSummary:
    """Counts over the rows of one course."""
    scores = [x for r in found for x in r.scores if x is not None]
    return CourseSummary(
        code=course.code, title=course.title, items=items, enrolled=len(found),
        started=sum(r.started for r in found),
        completed=sum(r.completed_at is not None for r in found),
        passed=sum(r.passed_at is not None for r in found),
        avg_score=round(sum(scores) / len(scores), 1) if scores else None,
        best_score=max(scores) if scores else None, rows=found)


async def group_customers(s: AsyncSession, group: str) -> tuple[str, list[int]]:
    """(title, dealer ids) of the members of a registered group named by chat id or title;
    NotFound naming it if no active group matches."""
    groups = await resolve(s, {"groups": [group.strip()]})
    if not groups:
        raise NotFound(f"no registered group {group!r}", what="group", ref=group)
    members = (await s.scalars(
        select(GroupMember.customer_id.distinct())
        .join(Customer, Customer.id == GroupMember.customer_id)
        .where(GroupMember.group_id.in_([g.id for g in groups]),
               GroupMember.status == "member", Customer.kind == "dealer"))).all()
    return ", ".join(g.title or str(g.chat_id) for g in groups), [int(m) for m in members]


async def course_report(s: AsyncSession, course_code: str, *,
                        group: str | None = None) -> tuple[CourseSummary, str | None]:
    """The course's summary (and rows), narrowed to a group's dealers; (summary, group title).
    NotFound for an unknown course or group."""
    course = await by_code(s, course_code)
    title, members = (await group_customers(s, group)) if group else (None, None)
    found = await rows(s, course_ids=[course.id], customer_ids=members)
    items = await s.scalar(select(func.count()).select_from(CourseItem)
                           .where(CourseItem.course_id == course.id, CourseItem.active))
    return summarise(course, int(items or 0), found), title


async def dealer_report(s: AsyncSession, dealer_code: str) -> tuple[Customer, list[DealerRow]]:
    """A dealer and their row in each course; NotFound naming the code."""
    customer = await s.scalar(select(Customer).where(Customer.code == dealer_code.strip(),
                                                     Customer.kind == "dealer"))
    if customer is None:
        raise NotFound(f"no dealer {dealer_code!r}", what="dealer", ref=dealer_code)
    return customer, await rows(s, customer_ids=[customer.id])


def _row_vars(r: DealerRow) -> dict[str, object]:
    return {"code": r.dealer_code, "name": r.dealer_name, "course": r.course_title,
            "course_code": r.course_code, "done": r.done, "total": r.total,
            "scores": " / ".join("–" if x is None else f"{x}%" for x in r.scores),
            "completed": r.completed_at is not None, "passed": r.passed_at is not None,
            "certificate": r.certificate or ""}


async def course_screen(s: AsyncSession, course_code: str, *, group: str | None = None
                        ) -> Screen:
    """The course (or group) report for chat: counts, then up to CHAT_ROWS dealers."""
    summary, title = await course_report(s, course_code, group=group)
    listed = summary.rows[:CHAT_ROWS]
    return Screen("training_progress_course", {
        "course": summary.title, "code": summary.code, "group": title,
        "items": summary.items, "enrolled": summary.enrolled, "started": summary.started,
        "completed": summary.completed, "passed": summary.passed,
        "avg": summary.avg_score, "best": summary.best_score,
        "dealers": [_row_vars(r) for r in listed],
        "more": len(summary.rows) - len(listed)})


async def dealer_screen(s: AsyncSession, dealer_code: str) -> Screen:
    """One dealer's courses for chat: items done/total, scores, passed, certificate code."""
    customer, found = await dealer_report(s, dealer_code)
    return Screen("training_progress_dealer", {
        "code": customer.code, "name": customer.name,
        "courses": [_row_vars(r) for r in found]})


CSV_COLUMNS = ("course_code", "course_title", "dealer_code", "dealer_name", "region", "tier",
               "enrolled_at", "started", "items_done", "items_total", "quiz_scores",
               "completed_at", "passed_at", "last_activity_at", "certificate_code")


def _when(value: dt.datetime | None, tz: ZoneInfo) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # SQLite gives back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(tz).replace(microsecond=0, tzinfo=None).isoformat(sep=" ")


def to_csv(found: list[DealerRow], *, timezone: str = "UTC") -> bytes:
    """The rows as CSV for Excel: UTF-8 with a BOM, formula-safe text cells, times local to
    `timezone` (app.timezone)."""
    tz = ZoneInfo(timezone)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in found:
        w.writerow([safe_cell(v) for v in (
            r.course_code, r.course_title, r.dealer_code, r.dealer_name, r.region, r.tier,
            _when(r.enrolled_at, tz), "yes" if r.started else "no", r.done, r.total,
            " ".join("–" if x is None else str(x) for x in r.scores),
            _when(r.completed_at, tz), _when(r.passed_at, tz), _when(r.last_activity_at, tz),
            r.certificate or "")])
    return out.getvalue().encode("utf-8-sig")


async def csv_for(s: AsyncSession, *, course: str | None = None, group: str | None = None,
                  dealer: str | None = None, timezone: str = "UTC"
                  ) -> tuple[str, bytes, int]:
    """(file name, CSV bytes, rows) of a course/group report or a dealer's report."""
    if dealer:
        customer, found = await dealer_report(s, dealer)
        return (f"training-{_file_part(customer.code)}.csv", to_csv(found, timezone=timezone),
                len(found))
    if not course:
        raise ValueError("name a course or a dealer")
    summary, _title = await course_report(s, course, group=group)
    suffix = f"-group-{_file_part(group)}" if group else ""
    return (f"training-{_file_part(summary.code)}{suffix}.csv",
            to_csv(summary.rows, timezone=timezone), len(summary.rows))


def _file_part(text: str) -> str:
    kept = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text.strip())
    return kept[:40] or "report"


@dataclass(frozen=True)
class ProgressQuery:
    """What `/progress …` asked for (None: the words did not make a question)."""

    course: str | None = None
    group: str | None = None
    dealer: str | None = None
    csv: bool = False


def parse_query(text: str) -> ProgressQuery | None:
    """`<course> [group=<chat id|title>] [csv]` or `dealer=<code> [csv]`; a title with
    spaces goes in quotes. Full-width characters (＝) are read as their plain forms."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    course = group = dealer = None
    want_csv = False
    for word in words:
        key, eq, value = word.partition("=")
        if word.lower() == "csv":
            want_csv = True
        elif eq and key.lower() == "group" and value:
            group = value
        elif eq and key.lower() == "dealer" and value:
            dealer = value
        elif not eq and course is None:
            course = word
        else:
            return None
    if dealer and (course or group) or not (dealer or course):
        return None
    return ProgressQuery(course=course, group=group, dealer=dealer, csv=want_csv)


async def query_screen(s: AsyncSession, q: ProgressQuery) -> Screen:
    """The chat report a parsed query asks for."""
    if q.dealer:
        return await dealer_screen(s, q.dealer)
    assert q.course is not None
    return await course_screen(s, q.course, group=q.group)


async def require_reporter(s: AsyncSession, telegram_user_id: int, chat_id: int, *,
                           roles: Iterable[str], staff_chat_id: int | None) -> None:
    """Allow a progress report — in the staff group, or in the asker's private chat with the
    bot — to staff whose role is in training.report_roles; else PermissionDenied with the
    words to show (the refusal's audit row is added to `s`)."""
    allowed = list(roles)
    try:
        if chat_id == telegram_user_id:  # a private chat: the staff member's own screen
            await require_linked_role(s, telegram_user_id, allowed, action="training:progress")
        else:
            await require_role(s, telegram_user_id, allowed, chat_id,
                               staff_chat_id=staff_chat_id, action="training:progress")
    except PermissionDenied as exc:
        exc.template = "training_progress_refused"
        exc.vars = {"roles": ", ".join(allowed)}
        raise

"""Trainers push a lesson or a whole course to a segment of dealers: now, once at a time, or
weekly ("one lesson every Monday 09:00 Asia/Shanghai"), through the outbox.

Segment (`parse_segment`): `tiers=key,potential regions=华东 groups=-100123,华东经销商群
dealers=D001,D002 all`. It resolves to dealers (Customer.kind == "dealer"):

- `tiers` and `regions` filter dealers together (AND: a key-tier dealer of 华东);
- `groups` adds the members of those registered community groups (chat id or exact title;
  GroupMember status "member" linked to a dealer);
- `dealers` adds dealers by code; a code that is no dealer is reported by name;
- `all` is every dealer.

The parts given are added up (OR): `tiers=key dealers=D009` is every key dealer plus D009.
A dealer's private chat is their linked TelegramIdentity (the most recently linked one); a
dealer with no linked chat is still enrolled (they find the course in /courses once linked)
and counted `unreachable`.

Exactly once: a slot of a push fires by inserting `PushRun(push, slot)` (unique) in the same
transaction as its campaign, enrolments and outbox rows (dedupe key
`trn:push:<push>:<slot>:<enrollment>`); `fire_due` claims a due push by a conditional UPDATE
of its `next_due_at` (PostgreSQL: also `FOR UPDATE SKIP LOCKED`, so two schedulers split the
work instead of waiting). A crash before the commit rolls all of it back; the slot fires at
the next tick, once. Weekly slots missed while the scheduler was down are not all sent when
it returns: the latest one fires and the others are recorded as skipped (audit log).

Services only: the caller's session, never a commit; adapters check the role
(`require_pusher`) and render the views.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community import announcements
from community.groups import BadOptions, parse_options
from community.models import CommunityGroup, GroupMember
from core.db import insert_for
from core.errors import DomainError, NotFound, PermissionDenied
from core.models import PRIORITY_BULK, AuditLog, Customer, TelegramIdentity, utcnow
from core.screens import Screen, button
from core.services import outbox
from core.services.staff import require_linked_role
from training import content, courses
from training.models import Course, CourseItem, Enrollment, ItemProgress, Push, PushRun

DEFAULT_TIMEZONE = "Asia/Shanghai"
SEGMENT_PARTS = ("tiers", "regions", "groups", "dealers")
COMMAND_OPTIONS = ("lesson", "at", "every", "tz")
WEEKDAYS = {
    **{d: n for n, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{d: n for n, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday",
                                   "saturday", "sunday"))},
    **{f"周{d}": n for n, d in enumerate("一二三四五六日")},
    **{f"星期{d}": n for n, d in enumerate("一二三四五六日")},
    "周天": 6, "星期天": 6,
}
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKLY = re.compile(r"^\s*(\S+?)\s*[@ ]\s*(\d{1,2}):(\d{2})\s*$")
OPEN_STATUSES = ("draft", "active")


class PushInvalid(DomainError):
    """The push cannot be made as asked; `problem` says what to fix."""

    code = "training_push_invalid"
    template = "training_push_invalid"


# --------------------------------------------------------------------------- parsing


def parse_segment(text: str) -> dict[str, Any]:
    """`tiers=… regions=… groups=… dealers=… all` → a segment dict (command options such as
    `lesson=`, `at=`, `every=`, `tz=` may stand on the same line and are ignored here)."""
    try:
        return announcements.parse_segment(text, lists=("dealers",), options=COMMAND_OPTIONS)
    except BadOptions as exc:
        raise PushInvalid(str(exc), problem=exc.vars.get("problem", str(exc))) from None


def zone(name: str | None, default: str = DEFAULT_TIMEZONE) -> ZoneInfo:
    """The IANA zone `name` (e.g. Europe/Berlin), or PushInvalid naming it."""
    try:
        return ZoneInfo((name or default).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise PushInvalid(f"unknown time zone {name!r}",
                          problem=f"tz={name} (e.g. tz=Asia/Shanghai, tz=Europe/Berlin)") from None


def parse_weekly(value: str) -> tuple[int, str]:
    """`mon@09:00` (or `monday 9:00`, `周一@09:00`) → (weekday 0=Monday, "09:00")."""
    m = _WEEKLY.match(value or "")
    day = WEEKDAYS.get(m.group(1).lower()) if m else None
    if m is None or day is None or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        raise PushInvalid(f"bad weekly time {value!r}",
                          problem=f"every={value} (e.g. every=mon@09:00)")
    return day, f"{int(m.group(2)):02d}:{m.group(3)}"


def parse_at(value: str | dt.datetime, timezone: str) -> dt.datetime:
    """`2026-12-01T09:00` in `timezone` (or with an offset), or an aware datetime → UTC."""
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=zone(timezone))
        return when.astimezone(dt.UTC)
    try:
        when = announcements.parse_at(value, timezone)
    except BadOptions:
        when = None
    if when is None:
        raise PushInvalid(f"bad time {value!r}", problem=f"at={value} (e.g. at=2026-12-01T09:00)")
    return when


# --------------------------------------------------------------------------- weekly slots


def _local_slot(day: dt.date, at_time: str, tz: ZoneInfo) -> dt.datetime:
    hour, minute = (int(x) for x in at_time.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)


def weekly_latest(weekday: int, at_time: str, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The latest weekly slot at or before `now` (aware, in `tz`). A local time that does not
    exist that day (a DST gap) is read with the offset before the change."""
    local = now.astimezone(tz)
    day = local.date() - dt.timedelta(days=(local.weekday() - weekday) % 7)
    due = _local_slot(day, at_time, tz)
    if due > local:
        due = _local_slot(day - dt.timedelta(days=7), at_time, tz)
    return due


def weekly_next(weekday: int, at_time: str, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first weekly slot strictly after `after` (aware, in `tz`)."""
    due = weekly_latest(weekday, at_time, tz, after)
    while due <= after:
        due = _local_slot(due.date() + dt.timedelta(days=7), at_time, tz)
    return due


def slot_name(due: dt.datetime, timezone: str) -> str:
    """The name of a slot: its local due time in the push's zone, e.g. 2026-11-30T09:00+08:00."""
    return due.astimezone(zone(timezone)).isoformat(timespec="minutes")


# --------------------------------------------------------------------------- audience


@dataclass(frozen=True)
class Recipient:
    """One dealer of a segment and their private chat (None: not linked yet)."""

    customer_id: int
    code: str
    chat_id: int | None
    locale: str | None


@dataclass(frozen=True)
class Audience:
    """What a segment resolves to now."""

    recipients: list[Recipient]
    unknown_dealers: list[str] = field(default_factory=list)
    unknown_groups: list[str] = field(default_factory=list)

    @property
    def dealers(self) -> int:
        """How many dealers."""
        return len(self.recipients)

    @property
    def reachable(self) -> int:
        """How many of them have a linked private chat."""
        return sum(1 for r in self.recipients if r.chat_id is not None)

    @property
    def unreachable(self) -> int:
        """How many are enrolled but cannot be messaged (no linked chat)."""
        return self.dealers - self.reachable


async def resolve(s: AsyncSession, segment: dict[str, Any]) -> Audience:
    """The dealers of a segment (see the module doc for how the parts combine)."""
    dealer = Customer.kind == "dealer"
    parts = []
    if segment.get("all"):
        parts.append(select(Customer.id).where(dealer))
    elif segment.get("tiers") or segment.get("regions"):
        q = select(Customer.id).where(dealer)
        if segment.get("tiers"):
            q = q.where(Customer.tier.in_(segment["tiers"]))
        if segment.get("regions"):
            q = q.where(Customer.region.in_(segment["regions"]))
        parts.append(q)
    unknown_groups: list[str] = []
    if segment.get("groups"):
        wanted = list(segment["groups"])
        groups = [g for g in (await s.scalars(select(CommunityGroup)
                                              .where(CommunityGroup.active.is_(True)))).all()
                  if announcements.matches(g, {"groups": wanted})]
        found = {str(g.chat_id) for g in groups} | {g.title for g in groups}
        unknown_groups = [w for w in wanted if w not in found]
        if groups:
            parts.append(select(GroupMember.customer_id)
                         .join(Customer, Customer.id == GroupMember.customer_id)
                         .where(dealer, GroupMember.status == "member",
                                GroupMember.group_id.in_([g.id for g in groups])))
    unknown_dealers: list[str] = []
    if segment.get("dealers"):
        codes = list(segment["dealers"])
        known = set((await s.scalars(select(Customer.code)
                                     .where(dealer, Customer.code.in_(codes)))).all())
        unknown_dealers = [c for c in codes if c not in known]
        parts.append(select(Customer.id).where(dealer, Customer.code.in_(codes)))
    if not parts:
        return Audience([], unknown_dealers, unknown_groups)
    ids = parts[0].union(*parts[1:]).subquery() if len(parts) > 1 else parts[0].subquery()
    rows = (await s.execute(
        select(Customer.id, Customer.code, TelegramIdentity.telegram_user_id,
               TelegramIdentity.locale)
        .join(ids, ids.c[0] == Customer.id)
        .outerjoin(TelegramIdentity, TelegramIdentity.customer_id == Customer.id)
        .order_by(Customer.id, TelegramIdentity.linked_at.desc(),
                  TelegramIdentity.telegram_user_id.desc()))).all()
    recipients: dict[int, Recipient] = {}
    for customer_id, code, chat_id, locale in rows:
        recipients.setdefault(customer_id, Recipient(customer_id, code, chat_id, locale))
    return Audience(list(recipients.values()), unknown_dealers, unknown_groups)


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class FireResult:
    """What one fired slot did."""

    push_id: int
    slot: str
    campaign_id: int | None
    dealers: int
    reachable: int
    unreachable: int
    queued: int  # dealers sent an item this slot
    already_done: int  # dealers who had finished the lesson (or the whole course)
    skipped_slots: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For the scheduler's result and the audit log."""
        return {"push": self.push_id, "slot": self.slot, "campaign": self.campaign_id,
                "dealers": self.dealers, "reachable": self.reachable,
                "unreachable": self.unreachable, "queued": self.queued,
                "already_done": self.already_done, "skipped_slots": self.skipped_slots}


@dataclass(frozen=True)
class PushView:
    """A push as adapters and the CLI show it."""

    id: int
    status: str
    course_code: str
    course_title: str
    item_key: str | None
    item_title: str | None
    segment: dict[str, Any]
    schedule: str  # now | once | weekly
    weekday: int | None
    at_time: str | None
    timezone: str
    next_due_at: dt.datetime | None  # UTC
    created_by: str
    dealers: int = 0
    reachable: int = 0
    unreachable: int = 0
    unknown_dealers: list[str] = field(default_factory=list)
    unknown_groups: list[str] = field(default_factory=list)
    runs: int = 0
    fired: FireResult | None = None

    def due_in(self, timezone: str) -> dt.datetime | None:
        """The next due time in a zone (for "when: … Asia/Shanghai / … Europe/Berlin")."""
        return self.next_due_at.astimezone(zone(timezone)) if self.next_due_at else None

    @property
    def segment_text(self) -> str:
        """The segment as the trainer would type it."""
        return segment_text(self.segment)

    @property
    def weekly_text(self) -> str | None:
        """`mon@09:00` for a weekly push."""
        if self.schedule != "weekly" or self.weekday is None:
            return None
        return f"{WEEKDAY_NAMES[self.weekday]}@{self.at_time}"


def segment_text(segment: dict[str, Any]) -> str:
    """`tiers=key regions=华东 …` back from a segment dict."""
    words = [f"{k}={','.join(segment[k])}" for k in SEGMENT_PARTS if segment.get(k)]
    return " ".join((["all"] if segment.get("all") else []) + words)


async def _view(s: AsyncSession, push: Push, audience: Audience | None = None,
                fired: FireResult | None = None) -> PushView:
    course = await s.get(Course, push.course_id)
    item = await s.get(CourseItem, push.item_id) if push.item_id else None
    runs = await s.scalar(select(func.count()).select_from(PushRun)
                          .where(PushRun.push_id == push.id)) or 0
    a = audience or Audience([])
    return PushView(
        push.id, push.status, course.code if course else "?", course.title if course else "?",
        item.key if item else None, item.title if item else None, dict(push.segment or {}),
        push.schedule, push.weekday, push.at_time, push.timezone, _aware(push.next_due_at),
        push.created_by, a.dealers, a.reachable, a.unreachable, list(a.unknown_dealers),
        list(a.unknown_groups), runs, fired)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite returns naive UTC
        return value.replace(tzinfo=dt.UTC)
    return value


# --------------------------------------------------------------------------- who may


async def require_pusher(s: AsyncSession, telegram_user_id: int, roles: Iterable[str]) -> str:
    """The staff role of a Telegram user allowed to push (settings.training.push_roles), or
    PermissionDenied after an audit row (catch it inside the unit of work so it commits)."""
    try:
        return await require_linked_role(s, telegram_user_id, roles, action="training.push")
    except PermissionDenied as exc:
        exc.vars = {"reason": "not_trainer"}
        raise


# --------------------------------------------------------------------------- create


async def create_push(s: AsyncSession, *, course_code: str, item_key: str | None = None,
                      segment: dict[str, Any] | str, actor: str,
                      report_chat_id: int | None = None,
                      at: dt.datetime | str | None = None,
                      weekly: tuple[int, str] | str | None = None,
                      timezone: str | None = None, draft: bool = False,
                      app_timezone: str = DEFAULT_TIMEZONE,
                      now: dt.datetime | None = None) -> PushView:
    """Validate and create a push; PushInvalid / NotFound say what to fix.

    - no `at`, no `weekly`: "now" — fires in this transaction (unless `draft`);
    - `at` (ISO, read in `timezone`, default `app_timezone`): "once", must be in the future;
    - `weekly` (`mon@09:00` or (weekday, "HH:MM")) in `timezone`: every week, each slot sends
      each dealer their next unfinished item (the course one lesson at a time).

    `draft=True` stores it as status "draft" for a preview; `confirm` makes it active. The view
    carries the audience as it is now (dealers, reachable, unknown codes) and, for a push sent
    now, what the firing did (`fired`).
    """
    now = (now or utcnow()).astimezone(dt.UTC)
    tzname = (timezone or app_timezone).strip()
    tz = zone(tzname)
    if isinstance(segment, str):
        segment = parse_segment(segment)
    if not segment.get("all") and not any(segment.get(k) for k in SEGMENT_PARTS):
        raise PushInvalid("empty segment", problem="tiers=… regions=… groups=… dealers=… or all")
    try:
        course = await courses.by_code(s, course_code)
    except NotFound:
        known = ", ".join(c.code for c in await courses.published(s)) or "none yet"
        raise PushInvalid(f"no course {course_code!r}",
                          problem=f"no course {course_code} (courses: {known})") from None
    item = None
    if item_key:
        item = await s.scalar(select(CourseItem).where(
            CourseItem.course_id == course.id, CourseItem.key == item_key.strip(),
            CourseItem.active))
        if item is None:
            keys = ", ".join(i.key for i in await courses.items(s, course.id))
            raise PushInvalid(f"no lesson {item_key!r}",
                              problem=f"lesson={item_key} (lessons of {course.code}: {keys})")
    elif not await courses.items(s, course.id):
        raise PushInvalid("course has no items", problem=f"{course.code} has no lessons")
    if at is not None and weekly is not None:
        raise PushInvalid("at and every", problem="at=… or every=…, not both")
    audience = await resolve(s, segment)
    if audience.dealers == 0:
        missing = audience.unknown_dealers + audience.unknown_groups
        raise PushInvalid("segment has no dealers", problem="no dealer in this segment"
                          + (f" (unknown: {', '.join(missing)})" if missing else ""))
    push = Push(course_id=course.id, item_id=item.id if item else None, segment=segment,
                timezone=tzname, created_by=actor[:100], report_chat_id=report_chat_id,
                status="draft" if draft else "active")
    if weekly is not None:
        push.schedule = "weekly"
        push.weekday, push.at_time = parse_weekly(weekly) if isinstance(weekly, str) else weekly
        push.next_due_at = weekly_next(push.weekday, push.at_time, tz, now).astimezone(dt.UTC)
    elif at is not None:
        push.schedule = "once"
        push.next_due_at = parse_at(at, tzname)
        if push.next_due_at <= now:
            local_now = f"{now.astimezone(tz):%Y-%m-%d %H:%M} {tzname}"
            raise PushInvalid("time in the past",
                              problem=f"at={at} is in the past (now {local_now})")
    else:
        push.schedule = "now"
    s.add(push)
    await s.flush()
    s.add(AuditLog(actor=actor[:100], action="training.push_created", subject=f"push:{push.id}",
                   details={"course": course.code, "item": item.key if item else None,
                            "segment": segment, "schedule": push.schedule,
                            "status": push.status, "dealers": audience.dealers,
                            "unknown_dealers": audience.unknown_dealers}))
    fired = None
    if push.schedule == "now" and not draft:
        fired = await fire(s, push, "now", now, audience=audience)
    return await _view(s, push, audience, fired)


async def confirm(s: AsyncSession, push_id: int, actor: str, *,
                  now: dt.datetime | None = None) -> PushView | None:
    """Make the actor's own draft active, once (a conditional UPDATE: a double tap, or a
    payload naming someone else's draft, changes nothing → None); a push for now fires in this
    transaction. A once/weekly push whose preview waited past its time fires at the next tick."""
    won = await s.execute(update(Push).where(Push.id == push_id, Push.status == "draft",
                                             Push.created_by == actor[:100])
                          .values(status="active").execution_options(synchronize_session=False))
    if won.rowcount != 1:
        return None
    push = await s.get(Push, push_id, populate_existing=True)
    assert push is not None
    now = (now or utcnow()).astimezone(dt.UTC)
    due = _aware(push.next_due_at)
    if push.schedule == "weekly" and due is not None and due <= now and push.weekday is not None:
        # the preview waited past a weekly slot: start with the next one, not a catch-up
        push.next_due_at = weekly_next(push.weekday, push.at_time or "09:00",
                                       zone(push.timezone), now).astimezone(dt.UTC)
    s.add(AuditLog(actor=actor[:100], action="training.push_confirmed", subject=f"push:{push.id}",
                   details={}))
    fired = await fire(s, push, "now", now) if push.schedule == "now" else None
    return await _view(s, push, await resolve(s, push.segment), fired)


# --------------------------------------------------------------------------- fire



async def fire(s: AsyncSession, push: Push, slot: str, now: dt.datetime, *,
               audience: Audience | None = None) -> FireResult | None:
    """Fire one slot of a push, once: `PushRun(push, slot)` is inserted in this transaction
    with one campaign, the enrolments and one outbox item per reachable dealer (PRIORITY_BULK).
    A lesson push sends that lesson (not to dealers who finished it); a course or weekly push
    sends each dealer their next unfinished item (none once they finished the course).
    None when this slot fired before. `audience`: the segment just resolved (else resolved
    here)."""
    run_id = await s.scalar(
        insert_for(s, PushRun).values(push_id=push.id, slot=slot[:40], fired_at=now)
        .on_conflict_do_nothing(index_elements=["push_id", "slot"]).returning(PushRun.id))
    if run_id is None:
        return None
    course = await s.get(Course, push.course_id)
    if course is None:
        raise NotFound(f"course of push {push.id} is gone", what="course", ref=str(push.id))
    items = {i.id: i for i in await courses.items(s, course.id)}
    fixed = items.get(push.item_id) if push.item_id else None
    audience = audience or await resolve(s, push.segment or {})
    campaign = await outbox.start_campaign(
        s, "training_push", f"{course.title}" + (f" · {fixed.title}" if fixed else ""),
        push.created_by, push.report_chat_id)
    enrollments = await _enroll_all(s, course.id, [r.customer_id for r in audience.recipients],
                                    push.id)
    done = await _done_items(s, [e.id for e in enrollments.values()])
    ordered = list(items.values())
    queued = already_done = 0
    for r in audience.recipients:
        enrollment = enrollments[r.customer_id]
        finished = done.get(enrollment.id, set())
        if push.item_id is not None:  # a lesson removed from the course since: nothing
            item = fixed if fixed is not None and fixed.id not in finished else None
        else:  # the first active item not done: content.next_item, for all dealers at once
            item = next((i for i in ordered if i.id not in finished), None)
        if item is None:
            already_done += 1
            continue
        if r.chat_id is None:
            continue
        if await content.queue_item(
                s, enrollment, item, course, content.Target(r.chat_id, r.locale),
                total=len(items), priority=PRIORITY_BULK, campaign_id=campaign,
                dedupe_key=f"trn:push:{push.id}:{slot}:{enrollment.id}",
                ref=f"training:push:{push.id}:{item.key}"):
            queued += 1
    await s.execute(update(PushRun).where(PushRun.id == run_id)
                    .values(campaign_id=campaign, dealers=audience.dealers, queued=queued)
                    .execution_options(synchronize_session=False))
    result = FireResult(push.id, slot, campaign, audience.dealers, audience.reachable,
                        audience.unreachable, queued, already_done)
    s.add(AuditLog(actor="training.push", action="training.push_fired", subject=f"push:{push.id}",
                   details=result.as_dict()))
    if push.schedule in ("now", "once"):
        push.status, push.next_due_at = "done", None
    return result


BATCH = 500


async def _enroll_all(s: AsyncSession, course_id: int, customer_ids: list[int],
                      push_id: int) -> dict[int, Enrollment]:
    """content.enroll for many dealers in a few statements (the same unique key: an existing
    enrolment is kept as it is); customer id → enrolment."""
    out: dict[int, Enrollment] = {}
    for start in range(0, len(customer_ids), BATCH):
        chunk = customer_ids[start:start + BATCH]
        await s.execute(insert_for(s, Enrollment)
                        .values([{"course_id": course_id, "customer_id": c, "push_id": push_id,
                                  "enrolled_at": utcnow()} for c in chunk])
                        .on_conflict_do_nothing(index_elements=["course_id", "customer_id"]))
        out.update({e.customer_id: e for e in (await s.scalars(
            select(Enrollment).where(Enrollment.course_id == course_id,
                                     Enrollment.customer_id.in_(chunk)))).all()})
    return out


async def _done_items(s: AsyncSession, enrollment_ids: list[int]) -> dict[int, set[int]]:
    """Enrolment id → the items it has done."""
    done: dict[int, set[int]] = {}
    for start in range(0, len(enrollment_ids), BATCH):
        rows = await s.execute(select(ItemProgress.enrollment_id, ItemProgress.item_id).where(
            ItemProgress.enrollment_id.in_(enrollment_ids[start:start + BATCH]),
            ItemProgress.done_at.is_not(None)))
        for enrollment_id, item_id in rows.all():
            done.setdefault(enrollment_id, set()).add(item_id)
    return done


async def fire_due(s: AsyncSession, now: dt.datetime | None = None, *,
                   limit: int = 20) -> list[FireResult]:
    """Fire every active push due at `now` (at most `limit` per call; the rest next tick).

    Each push is claimed by a conditional UPDATE of `next_due_at` (and, on PostgreSQL, taken
    with `FOR UPDATE SKIP LOCKED`), so of two schedulers one fires it. A weekly push fires its
    latest due slot only; earlier slots missed while nobody ran are recorded as skipped."""
    now = (now or utcnow()).astimezone(dt.UTC)
    q = (select(Push).where(Push.status == "active", Push.next_due_at.is_not(None),
                            Push.next_due_at <= now)
         .order_by(Push.next_due_at, Push.id).limit(limit))
    if s.bind is not None and s.bind.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    results = []
    for push in (await s.scalars(q)).all():
        due = _aware(push.next_due_at)
        assert due is not None
        skipped: list[str] = []
        if push.schedule == "weekly" and push.weekday is not None and push.at_time:
            tz = zone(push.timezone)
            latest = weekly_latest(push.weekday, push.at_time, tz, now)
            missed = due.astimezone(tz)
            while missed < latest:
                skipped.append(slot_name(missed, push.timezone))
                missed = _local_slot(missed.date() + dt.timedelta(days=7), push.at_time, tz)
            fire_at = latest
            following = weekly_next(push.weekday, push.at_time, tz, now).astimezone(dt.UTC)
            new_status = "active"
        else:
            fire_at, following, new_status = due, None, "done"
        claimed = await s.execute(
            update(Push).where(Push.id == push.id, Push.status == "active",
                               Push.next_due_at == push.next_due_at)
            .values(next_due_at=following, status=new_status)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            continue
        await s.refresh(push)
        fired = await fire(s, push, slot_name(fire_at, push.timezone), now)
        if skipped:
            s.add(AuditLog(actor="training.push", action="training.push_slots_skipped",
                           subject=f"push:{push.id}",
                           details={"skipped": skipped, "fired": slot_name(fire_at,
                                                                            push.timezone)}))
        if fired is not None:
            results.append(FireResult(**{**fired.__dict__, "skipped_slots": skipped}))
    return results


# --------------------------------------------------------------------------- list, cancel


async def drop_draft(s: AsyncSession, push_id: int, actor: str) -> bool:
    """The author taps Cancel under the preview: the draft is cancelled (False if it was
    confirmed or dropped before, or is not theirs)."""
    won = await s.execute(update(Push).where(Push.id == push_id, Push.status == "draft",
                                             Push.created_by == actor[:100])
                          .values(status="cancelled")
                          .execution_options(synchronize_session=False))
    return won.rowcount == 1


async def cancel(s: AsyncSession, push_id: int, actor: str) -> PushView | None:
    """Cancel a draft or an active push (its queued messages are not recalled: see
    `outbox.cancel_campaign`); None when it was already done/cancelled. NotFound if no push."""
    push = await s.get(Push, push_id)
    if push is None:
        raise NotFound(f"no push {push_id}", what="push", ref=str(push_id))
    won = await s.execute(update(Push).where(Push.id == push_id, Push.status.in_(OPEN_STATUSES))
                          .values(status="cancelled", next_due_at=None)
                          .execution_options(synchronize_session=False))
    if won.rowcount != 1:
        return None
    s.add(AuditLog(actor=actor[:100], action="training.push_cancelled",
                   subject=f"push:{push_id}", details={}))
    await s.refresh(push)
    return await _view(s, push)


async def get(s: AsyncSession, push_id: int) -> PushView:
    """One push; NotFound naming its id."""
    push = await s.get(Push, push_id)
    if push is None:
        raise NotFound(f"no push {push_id}", what="push", ref=str(push_id))
    return await _view(s, push)


async def list_pushes(s: AsyncSession, *, include_finished: bool = False,
                      limit: int = 50) -> list[PushView]:
    """Active (scheduled) pushes, soonest first; with `include_finished` also done/cancelled
    ones (newest first after them)."""
    q = select(Push).where(Push.status != "draft")
    if not include_finished:
        q = q.where(Push.status == "active")
    pushes = (await s.scalars(q.order_by(Push.status, Push.next_due_at, Push.id.desc())
                              .limit(limit))).all()
    return [await _view(s, p) for p in pushes]


# --------------------------------------------------------------------------- screens

PAYLOAD = re.compile(r"^trnp:(ok|no|cancel):(\d{1,15})$")


def parse_payload(data: str | None) -> tuple[str, int] | None:
    """(verb, push id) of a `trnp:ok|no|cancel:<id>` button, or None if we never sent it."""
    m = PAYLOAD.match(data or "")
    return (m.group(1), int(m.group(2))) if m else None


def _local(value: dt.datetime | None, timezone: str) -> str | None:
    return f"{value.astimezone(zone(timezone)):%Y-%m-%d %H:%M} {timezone}" if value else None


def when_vars(view: PushView, app_timezone: str = DEFAULT_TIMEZONE,
              trainer_timezone: str | None = None) -> dict[str, Any]:
    """The variables of `training_push_when`: the next time in app.timezone and, when the
    trainer named another zone, in theirs."""
    other = trainer_timezone if trainer_timezone and trainer_timezone != app_timezone else None
    return {"schedule": view.schedule, "weekday": view.weekday, "at_time": view.at_time,
            "timezone": view.timezone, "when_app": _local(view.next_due_at, app_timezone),
            "when_trainer": _local(view.next_due_at, other) if other else None}


def preview_screen(view: PushView, app_timezone: str = DEFAULT_TIMEZONE,
                   trainer_timezone: str | None = None) -> Screen:
    """The preview of a draft with Send / Cancel."""
    return Screen("training_push_preview", {
        "id": view.id, "course": view.course_title, "course_code": view.course_code,
        "lesson": view.item_title, "lesson_key": view.item_key, "segment": view.segment_text,
        "dealers": view.dealers, "reachable": view.reachable, "unreachable": view.unreachable,
        "unknown_dealers": ", ".join(view.unknown_dealers),
        "unknown_groups": ", ".join(view.unknown_groups),
        **when_vars(view, app_timezone, trainer_timezone)},
        [button("training_btn_push_send", f"trnp:ok:{view.id}"),
         button("training_btn_push_cancel", f"trnp:no:{view.id}")])


def result_screen(view: PushView, app_timezone: str = DEFAULT_TIMEZONE) -> Screen:
    """After Send: what was queued now, or when it will go."""
    if view.fired is not None:
        f = view.fired
        return Screen("training_push_sent", {
            "id": view.id, "queued": f.queued, "course": view.course_title,
            "lesson": view.item_title, "campaign": f.campaign_id, "unreachable": f.unreachable,
            "already_done": f.already_done})
    return Screen("training_push_scheduled", {
        "id": view.id, **when_vars(view, app_timezone, view.timezone)})


def list_screen(views: list[PushView], app_timezone: str = DEFAULT_TIMEZONE) -> Screen:
    """/pushes: the active pushes, a cancel button each."""
    if not views:
        return Screen("training_push_none")
    rows = [{"id": v.id, "course": v.course_title, "lesson": v.item_title,
             "segment": v.segment_text, "runs": v.runs, **when_vars(v, app_timezone)}
            for v in views]
    return Screen("training_push_list", {"pushes": rows},
                  [button("training_btn_push_cancel_one", f"trnp:cancel:{v.id}", id=v.id)
                   for v in views])


def command_options(text: str) -> dict[str, str]:
    """The non-segment options of a /push line (lesson, at, every, tz)."""
    return {k: v for k, v in parse_options(text).items() if k in COMMAND_OPTIONS}

"""Enrolling dealers and sending them course items through the outbox.

Every lesson a dealer receives — pushed by a trainer to thousands, or asked for with "next
lesson" — is queued here, as outbox rows in the caller's transaction:

- the lesson row: the first photo/document of the lesson (if any) with the text as caption
  or followed by it, and its buttons: the lesson's links as URL buttons, then "✅ Done" (or
  "📝 Start the quiz" for a quiz item);
- one more row per further photo/document (sent a moment later, in order).

Button payloads (callback data; attacker-controlled — training/learning.py parses each one and
checks the enrolment belongs to the presser):

- `trn:done:<enrollment>:<item>`      lesson read → progress, then the next item
- `trn:quiz:<enrollment>:<item>`      start (or resume) the quiz
- `trn:ans:<attempt>:<question>:<n>`  choose option n (single: answers; multi: toggles)
- `trn:sub:<attempt>:<question>`      submit a multiple-choice answer
- `trn:retry:<enrollment>:<item>`     another attempt, if the quiz allows one
- `trn:next:<enrollment>`             the next unfinished item of the course
- `trn:cert:<enrollment>`             the certificate PDF again
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import insert_for
from core.models import PRIORITY_NOTICE, utcnow
from core.screens import button
from core.services.outbox import enqueue
from training.models import Course, CourseItem, Enrollment, ItemProgress

PREFIX = "trn:"
EXTRA_ATTACHMENT_GAP = dt.timedelta(seconds=2)


def payload(verb: str, *ids: int) -> str:
    """`trn:<verb>:<id>:<id>…` (every id an int: nothing the user typed goes in)."""
    return PREFIX + ":".join([verb, *(str(int(i)) for i in ids)])


def parse_payload(data: str | None) -> tuple[str, list[int]] | None:
    """(verb, ids) of a `trn:` payload, or None if it is not one we could have sent."""
    if not data or not data.startswith(PREFIX) or len(data) > 64:
        return None
    verb, *rest = data[len(PREFIX):].split(":")
    if verb not in ("done", "quiz", "ans", "sub", "retry", "next", "cert") or not rest:
        return None
    try:
        ids = [int(x) for x in rest]
    except ValueError:
        return None
    if any(i < 0 or i > 2**53 for i in ids) or len(ids) > 3:
        return None
    return verb, ids



async def enroll(s: AsyncSession, course_id: int, customer_id: int, *,
                 push_id: int | None = None) -> tuple[Enrollment, bool]:
    """The dealer's enrolment in the course, created once (unique key); (row, created)."""
    created = await s.scalar(
        insert_for(s, Enrollment)
        .values(course_id=course_id, customer_id=customer_id, push_id=push_id,
                enrolled_at=utcnow())
        .on_conflict_do_nothing(index_elements=["course_id", "customer_id"])
        .returning(Enrollment.id))
    row = await s.scalar(select(Enrollment).where(Enrollment.course_id == course_id,
                                                  Enrollment.customer_id == customer_id))
    assert row is not None
    return row, created is not None


async def next_item(s: AsyncSession, enrollment: Enrollment) -> CourseItem | None:
    """The first active item of the course the dealer has not finished (None: all done)."""
    done = select(ItemProgress.item_id).where(ItemProgress.enrollment_id == enrollment.id,
                                              ItemProgress.done_at.is_not(None))
    return await s.scalar(
        select(CourseItem).where(CourseItem.course_id == enrollment.course_id,
                                 CourseItem.active, CourseItem.id.not_in(done))
        .order_by(CourseItem.position).limit(1))


async def mark_delivered(s: AsyncSession, enrollment_id: int, item_id: int) -> None:
    """Record that the item was sent to the dealer (once; later sends keep the first time)."""
    await s.execute(insert_for(s, ItemProgress)
                    .values(enrollment_id=enrollment_id, item_id=item_id, delivered_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["enrollment_id", "item_id"]))


@dataclass(frozen=True)
class Target:
    """Where an item goes: the dealer's private chat and the locale they read."""

    chat_id: int
    locale: str | None = None


@dataclass(frozen=True)
class ItemMessage:
    """One outbox message of an item: template, variables, buttons and an optional file."""

    template: str
    variables: dict[str, Any]
    buttons: list[dict[str, Any]]
    media: dict[str, Any] | None = None


def item_messages(*, course_title: str, kind: str, title: str, body: str,
                  attachments: list[dict[str, Any]], position: int, total: int,
                  pass_mark: int | None, draw: int | None, action: str) -> list[ItemMessage]:
    """The messages a dealer gets for an item (see the module doc); `action` is the payload
    of its Done / Start-the-quiz button. The trainer's preview shows exactly these."""
    files = [a for a in attachments if a.get("kind") in ("photo", "document")]
    buttons: list[dict[str, Any]] = [{"label": (a.get("name") or a["ref"])[:60], "url": a["ref"]}
                                     for a in attachments if a.get("kind") == "link"]
    quiz = kind == "quiz"
    buttons.append(button("training_btn_start_quiz" if quiz else "training_btn_done", action))
    first = files[0] if files else None
    variables = {"course": course_title, "title": title, "body": body or "",
                 "position": position, "total": total, "pass_mark": pass_mark if quiz else None,
                 "questions": draw, "caption": (first or {}).get("caption", "")}
    out = [ItemMessage("training_quiz_intro" if quiz else "training_lesson", variables, buttons,
                       first)]
    out.extend(ItemMessage("training_attachment", {"name": extra.get("name") or "",
                                                   "caption": extra.get("caption") or ""},
                           [], extra) for extra in files[1:])
    return out


async def queue_item(s: AsyncSession, enrollment: Enrollment, item: CourseItem, course: Course,
                     target: Target, *, total: int, priority: int = PRIORITY_NOTICE,
                     dedupe_key: str | None = None, campaign_id: int | None = None,
                     not_before: dt.datetime | None = None, ref: str | None = None) -> int:
    """Queue the item for the dealer (see the module doc); returns how many rows were queued
    (0 when `dedupe_key` was queued before). Records the item as delivered."""
    verb = "quiz" if item.kind == "quiz" else "done"
    messages = item_messages(
        course_title=course.title, kind=item.kind, title=item.title, body=item.body,
        attachments=list(item.attachments or []), position=item.position, total=total,
        pass_mark=item.pass_mark, draw=item.draw, action=payload(verb, enrollment.id, item.id))
    common = dict(locale=target.locale, priority=priority, campaign_id=campaign_id,
                  ref=ref or f"training:{course.code}:{item.key}")
    when = not_before or utcnow()
    queued = 0
    for n, m in enumerate(messages):
        message_id = await enqueue(
            s, target.chat_id, template=m.template, variables=m.variables, buttons=m.buttons,
            media_kind=m.media["kind"] if m.media else None,
            media_ref=m.media["ref"] if m.media else None,
            dedupe_key=(f"{dedupe_key}:a{n}" if n else dedupe_key) if dedupe_key else None,
            not_before=when + EXTRA_ATTACHMENT_GAP * n, **common)
        if message_id is None and n == 0:
            return 0  # queued before (same dedupe key): nothing more to do
        queued += message_id is not None
    await mark_delivered(s, enrollment.id, item.id)
    return queued

"""Training tables: courses and their items (lessons, quizzes), enrolments, progress, quiz
attempts and answers, pushes (now, once, weekly) and certificates.

Everything one-time is one-time by a unique key, never by a check-then-write:
- a dealer is enrolled in a course once (course, customer);
- a lesson is marked done once (enrolment, item);
- a quiz question is answered once per attempt (attempt, question): a second press of the
  same or an old button finds the answer taken;
- a push fires a slot once (push, slot), in the same transaction as the messages it queues;
- a certificate is issued once per enrolment, its code unique.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, utcnow

ITEM_KINDS = ("lesson", "quiz")
# A lesson's attachments: {"kind": "photo"|"document"|"link", "ref": file path, Telegram
# file_id or URL, "name": shown name, "caption": optional}.
ATTACHMENT_KINDS = ("photo", "document", "link")


class Course(Base):
    """A course: an ordered list of items. `code` is the trainer's name for it (the bundle's
    folder name or what they typed); re-importing a code replaces the course's content and
    bumps `version` (enrolments and progress are kept where the items still exist)."""

    __tablename__ = "training_courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")  # Telegram HTML
    locale: Mapped[str] = mapped_column(String(8), default="zh-Hans")
    status: Mapped[str] = mapped_column(String(16), default="published")  # draft|published|archived
    source: Mapped[str] = mapped_column(String(16), default="bundle")  # bundle | telegram
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100), default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CourseItem(Base):
    """One lesson or quiz of a course, at a position (1, 2, …).

    Lesson: `body` (Telegram HTML, rendered from Markdown on import) and `attachments`.
    Quiz: its questions (training_questions), `pass_mark` (percent, 0–100), `draw` (how many
    questions an attempt draws from the pool; None = all), `max_attempts` (None = unlimited
    retries, 1 = no retry)."""

    __tablename__ = "training_items"
    __table_args__ = (UniqueConstraint("course_id", "position", name="uq_training_items_position"),
                      UniqueConstraint("course_id", "key", name="uq_training_items_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("training_courses.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))  # stable name within the course (file stem)
    kind: Mapped[str] = mapped_column(String(8))  # lesson | quiz
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    pass_mark: Mapped[int | None] = mapped_column(Integer, default=None)
    draw: Mapped[int | None] = mapped_column(Integer, default=None)
    max_attempts: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: removed by a re-import


class Question(Base):
    """A quiz question: single choice (one correct option) or multiple choice (`multi`)."""

    __tablename__ = "training_questions"
    __table_args__ = (UniqueConstraint("item_id", "position", name="uq_training_questions_pos"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("training_items.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    multi: Mapped[bool] = mapped_column(Boolean, default=False)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    correct: Mapped[list[int]] = mapped_column(JSON, default=list)  # option indexes, 0-based
    explanation: Mapped[str] = mapped_column(Text, default="")


class Enrollment(Base):
    """A dealer in a course. Created by a push (or when a dealer opens a course offered to
    them); one per (course, customer)."""

    __tablename__ = "training_enrollments"
    __table_args__ = (UniqueConstraint("course_id", "customer_id",
                                       name="uq_training_enrollments_course_customer"),
                      Index("ix_training_enrollments_customer", "customer_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("training_courses.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    push_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_pushes.id", ondelete="SET NULL"), default=None)
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    completed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    passed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_activity_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ItemProgress(Base):
    """What a dealer did with one item: delivered (sent to them), done (lesson read / quiz
    finished), best score and passed for quizzes."""

    __tablename__ = "training_progress"
    __table_args__ = (UniqueConstraint("enrollment_id", "item_id",
                                       name="uq_training_progress_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("training_enrollments.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("training_items.id", ondelete="CASCADE"))
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    done_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    best_score: Mapped[int | None] = mapped_column(Integer, default=None)  # percent
    passed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Attempt(Base):
    """One try at a quiz: the questions drawn (ids, in order) and, when finished, the score."""

    __tablename__ = "training_attempts"
    __table_args__ = (UniqueConstraint("enrollment_id", "item_id", "number",
                                       name="uq_training_attempts_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("training_enrollments.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("training_items.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, …
    question_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    score: Mapped[int | None] = mapped_column(Integer, default=None)  # percent
    passed: Mapped[bool | None] = mapped_column(Boolean, default=None)


class Answer(Base):
    """A question answered in an attempt; a multi-choice answer is chosen option by option
    (`chosen` grows) and `submitted_at` closes it."""

    __tablename__ = "training_answers"
    __table_args__ = (UniqueConstraint("attempt_id", "question_id",
                                       name="uq_training_answers_question"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("training_attempts.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(
        ForeignKey("training_questions.id", ondelete="CASCADE"))
    chosen: Mapped[list[int]] = mapped_column(JSON, default=list)
    correct: Mapped[bool | None] = mapped_column(Boolean, default=None)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Push(Base):
    """A trainer's push of a lesson (item) or a whole course (item_id None: one lesson after
    the other) to a segment, now, once at `next_due_at`, or weekly (`weekday` 0=Monday,
    `at_time` "09:00", in `timezone`). `next_due_at` (UTC) is the next slot to fire; None
    when done or cancelled."""

    __tablename__ = "training_pushes"
    __table_args__ = (Index("ix_training_pushes_due", "status", "next_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("training_courses.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_items.id", ondelete="SET NULL"), default=None)
    # {"tiers": [...], "regions": [...], "groups": [...], "dealers": [codes], "all": bool}
    segment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    schedule: Mapped[str] = mapped_column(String(8), default="now")  # now | once | weekly
    weekday: Mapped[int | None] = mapped_column(Integer, default=None)
    at_time: Mapped[str | None] = mapped_column(String(5), default=None)  # "HH:MM" local
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    next_due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|done|cancelled
    created_by: Mapped[str] = mapped_column(String(100), default="cli")
    report_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PushRun(Base):
    """One fired slot of a push (its local due time, ISO): unique, written in the same
    transaction as the enrolments and outbox rows it causes, so a slot fires once."""

    __tablename__ = "training_push_runs"
    __table_args__ = (UniqueConstraint("push_id", "slot", name="uq_training_push_runs_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    push_id: Mapped[int] = mapped_column(ForeignKey("training_pushes.id", ondelete="CASCADE"))
    slot: Mapped[str] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(default=None)
    fired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dealers: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)


class Certificate(Base):
    """Issued once when an enrolment passes its course; the PDF is rendered from this row."""

    __tablename__ = "training_certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("training_enrollments.id", ondelete="CASCADE"), unique=True)
    holder_name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200), default="")
    course_title: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[dt.date] = mapped_column()
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuthoringDraft(Base):
    """A trainer's course being written in Telegram (guided flow); state in the database so a
    restart or a second gateway loses nothing. `spec` holds the course as the bundle format's
    dict; `step` is where the guided flow is."""

    __tablename__ = "training_drafts"
    __table_args__ = (
        Index("ix_training_drafts_author", "telegram_user_id", "status"),
        # One open draft per trainer, by the database (a second /newcourse finds it taken).
        Index("uq_training_drafts_open", "telegram_user_id", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|saved|cancelled
    step: Mapped[str] = mapped_column(String(32), default="title")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    course_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

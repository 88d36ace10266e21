"""A dealer learning in private chat: my courses, the next lesson, lessons marked read,
quizzes answered with buttons, scores with explanations, retries, points and completion.

Both the gateway (`/courses`, `/next`, every `trn:` button — training/telegram/learning.py)
and the action server (intents my_courses and next_lesson — bot/actions/training.py) call
these. Each function takes the caller's session (never commits) and returns what to show:
a `Screen`, or for a button an `Outcome` (edit the pressed message, send new ones, or just
a short notice). Lessons reach the dealer through the outbox (`training.content.queue_item`
at PRIORITY_INTERACTIVE, so the worker sends them at once); quiz questions are answered by
the gateway directly (a person is waiting on each tap).

Button payloads are attacker-controlled: each is parsed (`training.content.parse_payload`),
every id is looked up, and the enrolment it leads to must be the presser's linked dealer's;
anything else is `ButtonExpired` and changes nothing. One-time things are one-time in the
database: a lesson is done once (insert … on conflict / conditional UPDATE), a question is
answered once per attempt (unique (attempt, question)), an attempt is scored once and a
course completed once (conditional UPDATEs), points once per quiz / course (the ledger's
source key), a certificate once per enrolment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.points import ledger
from community.points.errors import NotEligible
from core.db import insert_for
from core.errors import DomainError, NotLinked
from core.models import PRIORITY_INTERACTIVE, utcnow
from core.screens import Screen, button
from core.services.accounts import IdentityView
from core.settings import Settings
from training import certificates, courses
from training.content import Target, next_item, parse_payload, payload, queue_item
from training.models import (
    Answer,
    Attempt,
    Certificate,
    Course,
    CourseItem,
    Enrollment,
    ItemProgress,
    Question,
)

LETTERS = "ABCDEFGHIJ"
MY_COURSES_LIMIT = 20
_rng = random.SystemRandom()


class LearningLinkRequired(NotLinked):
    """Courses are for chats linked to a dealer account."""

    code = "training_link_required"
    template = "training_link_required"


class ButtonExpired(DomainError):
    """A `trn:` button that is malformed, stale, or not the presser's: nothing changed."""

    code = "training_button_expired"
    template = "training_button_expired"


@dataclass(frozen=True)
class Outcome:
    """What a button press shows: `edit` replaces the pressed message (None: leave it),
    `send` are new messages in order, `notice` a short pop-up (a template key) instead."""

    edit: Screen | None = None
    send: tuple[Screen, ...] = ()
    notice: str | None = None


@dataclass(frozen=True)
class _Press:
    s: AsyncSession
    customer_id: int
    user_id: int
    target: Target
    settings: Settings


def dealer_of(ident: IdentityView | None) -> int:
    """The dealer account a chat learns for; LearningLinkRequired if it is not linked to one."""
    if ident is None or ident.customer_id is None or ident.customer_kind != "dealer":
        raise LearningLinkRequired("courses need a linked dealer account",
                                   linked=ident is not None and ident.is_linked)
    return ident.customer_id


def _activity():  # type: ignore[no-untyped-def]
    return func.coalesce(Enrollment.last_activity_at, Enrollment.enrolled_at)


async def _touch(s: AsyncSession, enrollment: Enrollment) -> None:
    """The dealer did something in this course now (started_at keeps the first time)."""
    now = utcnow()
    await s.execute(update(Enrollment).where(Enrollment.id == enrollment.id)
                    .values(last_activity_at=now,
                            started_at=func.coalesce(Enrollment.started_at, now))
                    .execution_options(synchronize_session="fetch"))


async def _total(s: AsyncSession, course_id: int) -> int:
    return int(await s.scalar(select(func.count()).select_from(CourseItem).where(
        CourseItem.course_id == course_id, CourseItem.active)) or 0)


# --------------------------------------------------------------------------- my courses


async def my_courses(s: AsyncSession, ident: IdentityView | None) -> Screen:
    """The dealer's courses, most recently active first: "3/5 done", best quiz score,
    passed ✓, certificate code; a Continue button per unfinished course."""
    customer = dealer_of(ident)
    rows = (await s.execute(
        select(Enrollment, Course).join(Course, Course.id == Enrollment.course_id)
        .where(Enrollment.customer_id == customer, Course.status != "archived")
        .order_by(_activity().desc(), Enrollment.id.desc()).limit(MY_COURSES_LIMIT))).all()
    if not rows:
        return Screen("training_my_courses", {"courses": []})
    ids = [e.id for e, _ in rows]
    totals = dict((await s.execute(
        select(CourseItem.course_id, func.count()).where(
            CourseItem.course_id.in_([c.id for _, c in rows]), CourseItem.active)
        .group_by(CourseItem.course_id))).all())
    done = dict((await s.execute(
        select(ItemProgress.enrollment_id, func.count())
        .join(CourseItem, CourseItem.id == ItemProgress.item_id)
        .where(ItemProgress.enrollment_id.in_(ids), ItemProgress.done_at.is_not(None),
               CourseItem.active)
        .group_by(ItemProgress.enrollment_id))).all())
    scores = dict((await s.execute(
        select(ItemProgress.enrollment_id, func.avg(ItemProgress.best_score))
        .join(CourseItem, CourseItem.id == ItemProgress.item_id)
        .where(ItemProgress.enrollment_id.in_(ids), ItemProgress.best_score.is_not(None),
               CourseItem.active, CourseItem.kind == "quiz")
        .group_by(ItemProgress.enrollment_id))).all())
    certs = dict((await s.execute(select(Certificate.enrollment_id, Certificate.code)
                                  .where(Certificate.enrollment_id.in_(ids)))).all())
    listed, buttons = [], []
    for e, course in rows:
        score = scores.get(e.id)
        listed.append({"title": course.title, "done": int(done.get(e.id, 0)),
                       "total": int(totals.get(course.id, 0)),
                       "score": None if score is None else int(score),
                       "passed": e.passed_at is not None, "certificate": certs.get(e.id, "")})
        if e.completed_at is None:
            buttons.append(button("training_btn_continue_course", payload("next", e.id),
                                  course=course.title))
        elif e.id in certs:
            buttons.append(button("training_btn_certificate", payload("cert", e.id),
                                  course=course.title))
    return Screen("training_my_courses", {"courses": listed}, buttons)


# --------------------------------------------------------------------------- next lesson


async def _deliver(s: AsyncSession, enrollment: Enrollment, item: CourseItem, target: Target,
                   *, dedupe_key: str | None = None) -> Course:
    """Queue the item to the dealer now (interactive priority); the course it belongs to."""
    course = await s.get(Course, enrollment.course_id)
    assert course is not None
    await queue_item(s, enrollment, item, course, target, total=await _total(s, course.id),
                     priority=PRIORITY_INTERACTIVE, dedupe_key=dedupe_key)
    await _touch(s, enrollment)
    return course


async def next_lesson(s: AsyncSession, ident: IdentityView | None, target: Target) -> Screen:
    """Queue the next unfinished item of the most recently active unfinished course.

    Returns what to say now: the item is coming, everything is finished, or no course yet."""
    customer = dealer_of(ident)
    open_ones = (await s.scalars(
        select(Enrollment).join(Course, Course.id == Enrollment.course_id)
        .where(Enrollment.customer_id == customer, Enrollment.completed_at.is_(None),
               Course.status == "published")
        .order_by(_activity().desc(), Enrollment.id.desc()))).all()
    for enrollment in open_ones:
        item = await next_item(s, enrollment)
        if item is not None:
            course = await _deliver(s, enrollment, item, target)
            return Screen("training_next_coming", {"course": course.title, "title": item.title})
    enrolled = await s.scalar(select(func.count()).select_from(Enrollment)
                              .where(Enrollment.customer_id == customer))
    if not enrolled:
        return Screen("training_no_courses")
    return Screen("training_all_done", {"open": len(open_ones)})


# --------------------------------------------------------------------------- buttons


async def press(s: AsyncSession, ident: IdentityView | None, data: str | None, target: Target,
                *, settings: Settings) -> Outcome:
    """One `trn:` button pressed by `ident` in its private chat (`target`): see the module
    doc. LearningLinkRequired for an unlinked chat, ButtonExpired for anything not theirs."""
    customer = dealer_of(ident)
    assert ident is not None
    parsed = parse_payload(data)
    if parsed is None:
        raise ButtonExpired(f"not a training payload: {data!r}")
    verb, ids = parsed
    handler, arity = _VERBS[verb]
    if len(ids) != arity:
        raise ButtonExpired(f"{verb} takes {arity} ids")
    ctx = _Press(s, customer, ident.telegram_user_id, target, settings)
    return await handler(ctx, *ids)


async def _enrollment(p: _Press, enrollment_id: int) -> Enrollment:
    enrollment = await p.s.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.customer_id != p.customer_id:
        raise ButtonExpired(f"enrolment {enrollment_id} is not the presser's")
    return enrollment


async def _item(p: _Press, enrollment: Enrollment, item_id: int, kind: str) -> CourseItem:
    item = await p.s.get(CourseItem, item_id)
    if (item is None or item.course_id != enrollment.course_id or not item.active
            or item.kind != kind):
        raise ButtonExpired(f"item {item_id} is not an active {kind} of the course")
    return item


async def _attempt(p: _Press, attempt_id: int, question_id: int
                   ) -> tuple[Attempt, Enrollment, Question]:
    attempt = await p.s.get(Attempt, attempt_id)
    if attempt is None:
        raise ButtonExpired(f"no attempt {attempt_id}")
    enrollment = await _enrollment(p, attempt.enrollment_id)
    question = await p.s.get(Question, question_id)
    if (question is None or question.item_id != attempt.item_id
            or question_id not in (attempt.question_ids or [])):
        raise ButtonExpired(f"question {question_id} is not in attempt {attempt_id}")
    return attempt, enrollment, question


# --- lessons -----------------------------------------------------------------------------


async def _done(p: _Press, enrollment_id: int, item_id: int) -> Outcome:
    """Lesson read: done once; then the next item is queued (once) or the course finishes."""
    enrollment = await _enrollment(p, enrollment_id)
    item = await _item(p, enrollment, item_id, "lesson")
    now = utcnow()
    created = await p.s.scalar(
        insert_for(p.s, ItemProgress)
        .values(enrollment_id=enrollment.id, item_id=item.id, delivered_at=now, done_at=now)
        .on_conflict_do_nothing(index_elements=["enrollment_id", "item_id"])
        .returning(ItemProgress.id))
    changed = created is not None or (await p.s.execute(
        update(ItemProgress).where(ItemProgress.enrollment_id == enrollment.id,
                                   ItemProgress.item_id == item.id,
                                   ItemProgress.done_at.is_(None))
        .values(done_at=now).execution_options(synchronize_session=False))).rowcount == 1
    await _touch(p.s, enrollment)
    if not changed:
        return Outcome(notice="training_already_done")
    said = Screen("training_lesson_done", {"title": item.title})
    return Outcome(send=(said, *await _advance(p, enrollment,
                                               dedupe_key=f"trn:after:{enrollment.id}:{item.id}")))


async def _advance(p: _Press, enrollment: Enrollment, *, dedupe_key: str | None = None
                   ) -> list[Screen]:
    """Queue the enrolment's next item, or complete the course when nothing is left."""
    item = await next_item(p.s, enrollment)
    if item is not None:
        course = await _deliver(p.s, enrollment, item, p.target, dedupe_key=dedupe_key)
        return [Screen("training_next_coming", {"course": course.title, "title": item.title})]
    return [await _course_end(p, enrollment)]


async def _course_end(p: _Press, enrollment: Enrollment) -> Screen:
    course = await p.s.get(Course, enrollment.course_id)
    assert course is not None
    state, points = await _complete(p, enrollment)
    return Screen("training_course_end", {"course": course.title, "state": state,
                                          "points": points},
                  [button("training_btn_certificate", payload("cert", enrollment.id),
                          course=course.title)] if state == "already" else [])


async def _award(p: _Press, customer_id: int, rule: str, source_key: str) -> int:
    """Points for a rule, once per source (the ledger's key); 0 outside the scheme."""
    if rule not in p.settings.points.rules:
        return 0
    try:
        view = await ledger.award(p.s, customer_id, rule, source_key, actor="training",
                                  cfg=p.settings.points)
    except NotEligible:
        return 0
    return view.points


async def _complete(p: _Press, enrollment: Enrollment) -> tuple[str, int]:
    """("new", points) when this call completed the course (every active item done, every
    quiz passed): completion set once, points, certificate issued and queued; ("already", 0)
    if it was completed before; ("open", 0) if something is not done or not passed."""
    finished = exists().where(
        ItemProgress.enrollment_id == enrollment.id, ItemProgress.item_id == CourseItem.id,
        ItemProgress.done_at.is_not(None),
        or_(CourseItem.kind != "quiz", ItemProgress.passed_at.is_not(None)))
    missing = await p.s.scalar(select(func.count()).select_from(CourseItem).where(
        CourseItem.course_id == enrollment.course_id, CourseItem.active, ~finished))
    if missing:
        return ("already" if enrollment.completed_at else "open"), 0
    now = utcnow()
    won = (await p.s.execute(
        update(Enrollment).where(Enrollment.id == enrollment.id,
                                 Enrollment.completed_at.is_(None))
        .values(completed_at=now, passed_at=now, last_activity_at=now)
        .execution_options(synchronize_session="fetch"))).rowcount == 1
    if not won:
        return "already", 0
    points = await _award(p, enrollment.customer_id, "course_completed",
                          f"course:{enrollment.course_id}")
    cert = await certificates.issue(p.s, enrollment.id, settings=p.settings,
                                    holder_user_id=p.user_id)
    await certificates.queue_certificate(p.s, cert, p.target, settings=p.settings)
    return "new", points


async def _next(p: _Press, enrollment_id: int) -> Outcome:
    """The next unfinished item of this course (again, if it was lost), or its end."""
    enrollment = await _enrollment(p, enrollment_id)
    await _touch(p.s, enrollment)
    return Outcome(send=tuple(await _advance(p, enrollment)))


async def _cert(p: _Press, enrollment_id: int) -> Outcome:
    """The certificate PDF again (a double tap within a minute sends it once)."""
    enrollment = await _enrollment(p, enrollment_id)
    cert = await p.s.scalar(select(Certificate)
                            .where(Certificate.enrollment_id == enrollment.id))
    if cert is None:
        return Outcome(notice="training_no_certificate")
    minute = int(utcnow().timestamp()) // 60
    await certificates.queue_certificate(p.s, cert, p.target, settings=p.settings,
                                         dedupe_key=f"trn:cert:{cert.id}:again:{minute}")
    return Outcome(send=(Screen("training_certificate_coming", {"course": cert.course_title,
                                                                "code": cert.code}),))


# --- quizzes -----------------------------------------------------------------------------


async def _progress(s: AsyncSession, enrollment_id: int, item_id: int) -> Any:
    return (await s.execute(select(ItemProgress.done_at, ItemProgress.passed_at,
                                   ItemProgress.best_score)
                            .where(ItemProgress.enrollment_id == enrollment_id,
                                   ItemProgress.item_id == item_id))).first()


async def _open_attempt(s: AsyncSession, enrollment_id: int, item_id: int) -> Attempt | None:
    return await s.scalar(select(Attempt).where(
        Attempt.enrollment_id == enrollment_id, Attempt.item_id == item_id,
        Attempt.finished_at.is_(None)).order_by(Attempt.number.desc()).limit(1))


async def _submitted(s: AsyncSession, attempt_id: int) -> dict[int, Answer]:
    rows = (await s.scalars(select(Answer).where(Answer.attempt_id == attempt_id,
                                                 Answer.submitted_at.is_not(None)))).all()
    return {a.question_id: a for a in rows}


async def _current(s: AsyncSession, attempt: Attempt) -> Screen | None:
    """The attempt's first question not answered yet, as a Screen (None: all answered)."""
    answered = await _submitted(s, attempt.id)
    for qid in attempt.question_ids:
        if qid not in answered:
            question = await s.get(Question, qid)
            if question is not None:
                chosen = await s.scalar(select(Answer.chosen).where(
                    Answer.attempt_id == attempt.id, Answer.question_id == qid))
                return await _question_screen(s, attempt, question, chosen or [])
    return None


async def _question_screen(s: AsyncSession, attempt: Attempt, question: Question,
                           chosen: list[int]) -> Screen:
    item = await s.get(CourseItem, attempt.item_id)
    assert item is not None
    buttons = [button("training_btn_option", payload("ans", attempt.id, question.id, n),
                      letter=LETTERS[n], text=option, multi=question.multi,
                      chosen=n in chosen)
               for n, option in enumerate(question.options)]
    if question.multi:
        buttons.append(button("training_btn_submit", payload("sub", attempt.id, question.id)))
    return Screen("training_question", {
        "quiz": item.title, "number": attempt.question_ids.index(question.id) + 1,
        "total": len(attempt.question_ids), "text": question.text, "multi": question.multi,
        "options": [{"letter": LETTERS[n], "text": o} for n, o in enumerate(question.options)],
    }, buttons)


def _marked(question: Question, chosen: list[int]) -> list[dict[str, Any]]:
    return [{"letter": LETTERS[n], "text": o, "chosen": n in chosen,
             "right": n in question.correct} for n, o in enumerate(question.options)]


async def _quiz(p: _Press, enrollment_id: int, item_id: int) -> Outcome:
    """Start the quiz (or resume the attempt under way); a passed quiz says so."""
    enrollment = await _enrollment(p, enrollment_id)
    item = await _item(p, enrollment, item_id, "quiz")
    attempt = await _open_attempt(p.s, enrollment.id, item.id)
    if attempt is not None:
        return await _resume(p, enrollment, attempt)
    progress = await _progress(p.s, enrollment.id, item.id)
    if progress is not None and progress.passed_at is not None:
        return Outcome(send=(Screen("training_quiz_passed_before", {
            "title": item.title, "best": progress.best_score},
            [button("training_btn_next", payload("next", enrollment.id))]),))
    return await _start(p, enrollment, item)


async def _retry(p: _Press, enrollment_id: int, item_id: int) -> Outcome:
    """Another attempt, if the quiz allows one (resumes an attempt under way)."""
    enrollment = await _enrollment(p, enrollment_id)
    item = await _item(p, enrollment, item_id, "quiz")
    attempt = await _open_attempt(p.s, enrollment.id, item.id)
    if attempt is not None:
        return await _resume(p, enrollment, attempt)
    return await _start(p, enrollment, item)


async def _resume(p: _Press, enrollment: Enrollment, attempt: Attempt) -> Outcome:
    await _touch(p.s, enrollment)
    screen = await _current(p.s, attempt)
    if screen is None:  # every question answered but not scored (cannot normally happen)
        return Outcome(send=tuple(await _finish(p, enrollment, attempt)))
    return Outcome(send=(screen,))


async def _start(p: _Press, enrollment: Enrollment, item: CourseItem) -> Outcome:
    """A new attempt: number n+1 (unique), `item.draw` questions drawn from the pool."""
    used, last = (await p.s.execute(
        select(func.count(), func.max(Attempt.number)).where(
            Attempt.enrollment_id == enrollment.id, Attempt.item_id == item.id))).one()
    if item.max_attempts is not None and used >= item.max_attempts:
        progress = await _progress(p.s, enrollment.id, item.id)
        return Outcome(send=(Screen("training_no_attempts_left", {
            "title": item.title, "best": progress.best_score if progress else None},
            [button("training_btn_next", payload("next", enrollment.id))]),))
    pool = await courses.questions(p.s, item.id)
    if not pool:
        raise ButtonExpired(f"quiz {item.id} has no questions")
    drawn = _rng.sample(pool, min(item.draw or len(pool), len(pool)))
    number = (last or 0) + 1
    new_id = await p.s.scalar(
        insert_for(p.s, Attempt)
        .values(enrollment_id=enrollment.id, item_id=item.id, number=number,
                question_ids=[q.id for q in drawn], started_at=utcnow())
        .on_conflict_do_nothing(index_elements=["enrollment_id", "item_id", "number"])
        .returning(Attempt.id))
    # A concurrent press took this number first: that attempt is the one to answer.
    attempt = await p.s.scalar(select(Attempt).where(
        Attempt.enrollment_id == enrollment.id, Attempt.item_id == item.id,
        Attempt.number == number)) if new_id is None else await p.s.get(Attempt, new_id)
    assert attempt is not None
    return await _resume(p, enrollment, attempt)


async def _ans(p: _Press, attempt_id: int, question_id: int, option: int) -> Outcome:
    """Choose an option: a single-choice question is answered (once); a multiple-choice
    one toggles the option until submitted."""
    attempt, enrollment, question = await _attempt(p, attempt_id, question_id)
    if option >= len(question.options):
        raise ButtonExpired(f"question {question_id} has no option {option}")
    answer = await p.s.scalar(select(Answer).where(Answer.attempt_id == attempt.id,
                                                   Answer.question_id == question.id))
    if answer is not None and answer.submitted_at is not None:
        return Outcome(notice="training_already_answered")
    if attempt.finished_at is not None:
        raise ButtonExpired(f"attempt {attempt_id} is over")
    now = utcnow()
    if not question.multi:
        right = [option] == sorted(question.correct)
        created = await p.s.scalar(
            insert_for(p.s, Answer)
            .values(attempt_id=attempt.id, question_id=question.id, chosen=[option],
                    correct=right, submitted_at=now)
            .on_conflict_do_nothing(index_elements=["attempt_id", "question_id"])
            .returning(Answer.id))
        if created is None:
            return Outcome(notice="training_already_answered")
        return await _answered(p, enrollment, attempt, question, [option], right)
    if answer is None:
        await p.s.execute(insert_for(p.s, Answer)
                          .values(attempt_id=attempt.id, question_id=question.id, chosen=[])
                          .on_conflict_do_nothing(index_elements=["attempt_id", "question_id"]))
        answer = await p.s.scalar(select(Answer).where(Answer.attempt_id == attempt.id,
                                                       Answer.question_id == question.id))
        assert answer is not None
    chosen = sorted(set(answer.chosen or []) ^ {option})
    toggled = (await p.s.execute(
        update(Answer).where(Answer.id == answer.id, Answer.submitted_at.is_(None))
        .values(chosen=chosen).execution_options(synchronize_session="fetch"))).rowcount
    if not toggled:
        return Outcome(notice="training_already_answered")
    await _touch(p.s, enrollment)
    return Outcome(edit=await _question_screen(p.s, attempt, question, chosen))


async def _sub(p: _Press, attempt_id: int, question_id: int) -> Outcome:
    """Submit a multiple-choice answer (once; at least one option chosen)."""
    attempt, enrollment, question = await _attempt(p, attempt_id, question_id)
    answer = await p.s.scalar(select(Answer).where(Answer.attempt_id == attempt.id,
                                                   Answer.question_id == question.id))
    if answer is not None and answer.submitted_at is not None:
        return Outcome(notice="training_already_answered")
    if attempt.finished_at is not None:
        raise ButtonExpired(f"attempt {attempt_id} is over")
    if answer is None or not answer.chosen:
        return Outcome(notice="training_choose_first")
    chosen = sorted(answer.chosen)
    right = chosen == sorted(question.correct)
    submitted = (await p.s.execute(
        update(Answer).where(Answer.id == answer.id, Answer.submitted_at.is_(None))
        .values(submitted_at=utcnow(), correct=right)
        .execution_options(synchronize_session="fetch"))).rowcount
    if not submitted:
        return Outcome(notice="training_already_answered")
    return await _answered(p, enrollment, attempt, question, chosen, right)


async def _answered(p: _Press, enrollment: Enrollment, attempt: Attempt, question: Question,
                    chosen: list[int], right: bool) -> Outcome:
    """The question shown answered (✓/✗, the explanation), then the next one or the score."""
    await _touch(p.s, enrollment)
    edit = Screen("training_question_answered", {
        "number": attempt.question_ids.index(question.id) + 1,
        "total": len(attempt.question_ids), "text": question.text, "right": right,
        "options": _marked(question, chosen), "explanation": question.explanation})
    following = await _current(p.s, attempt)
    if following is not None:
        return Outcome(edit=edit, send=(following,))
    return Outcome(edit=edit, send=tuple(await _finish(p, enrollment, attempt)))


async def _finish(p: _Press, enrollment: Enrollment, attempt: Attempt) -> list[Screen]:
    """Score the attempt once; progress, first-pass points, and the course's completion."""
    answers = await _submitted(p.s, attempt.id)
    total = len(attempt.question_ids)
    score = (100 * sum(bool(a.correct) for a in answers.values()) // total) if total else 0
    item = await p.s.get(CourseItem, attempt.item_id)
    assert item is not None
    pass_mark = (item.pass_mark if item.pass_mark is not None
                 else p.settings.training.default_pass_mark)
    passed = score >= pass_mark
    now = utcnow()
    scored = (await p.s.execute(
        update(Attempt).where(Attempt.id == attempt.id, Attempt.finished_at.is_(None))
        .values(finished_at=now, score=score, passed=passed)
        .execution_options(synchronize_session="fetch"))).rowcount
    if not scored:  # a concurrent tap scored it: it shows the result
        return []
    used = int(await p.s.scalar(select(func.count()).select_from(Attempt).where(
        Attempt.enrollment_id == enrollment.id, Attempt.item_id == item.id)) or 0)
    left = None if item.max_attempts is None else max(0, item.max_attempts - used)
    done = passed or left == 0
    await p.s.execute(insert_for(p.s, ItemProgress)
                      .values(enrollment_id=enrollment.id, item_id=item.id, delivered_at=now)
                      .on_conflict_do_nothing(index_elements=["enrollment_id", "item_id"]))
    values: dict[str, Any] = {"best_score": case(
        (or_(ItemProgress.best_score.is_(None), ItemProgress.best_score < score), score),
        else_=ItemProgress.best_score)}
    if passed:
        values["passed_at"] = func.coalesce(ItemProgress.passed_at, now)
    if done:
        values["done_at"] = func.coalesce(ItemProgress.done_at, now)
    await p.s.execute(update(ItemProgress).where(
        and_(ItemProgress.enrollment_id == enrollment.id, ItemProgress.item_id == item.id))
        .values(**values).execution_options(synchronize_session=False))
    points = await _award(p, enrollment.customer_id, "quiz_passed", f"quiz:{item.id}") \
        if passed else 0
    review = []
    for n, qid in enumerate(attempt.question_ids, 1):
        question = await p.s.get(Question, qid)
        if question is None:
            continue
        answer = answers.get(qid)
        review.append({"number": n, "text": question.text, "right": bool(answer and answer.correct),
                       "answer": ", ".join(f"{LETTERS[i]}. {question.options[i]}"
                                           for i in question.correct
                                           if i < len(question.options)),
                       "explanation": question.explanation})
    buttons = []
    if not passed and left != 0:
        buttons.append(button("training_btn_retry", payload("retry", enrollment.id, item.id)))
    more = done and await next_item(p.s, enrollment) is not None
    if more:
        buttons.append(button("training_btn_next", payload("next", enrollment.id)))
    result = Screen("training_quiz_result", {
        "title": item.title, "score": score, "pass_mark": pass_mark, "passed": passed,
        "attempts_left": left, "points": points, "review": review}, buttons)
    if passed and not more:
        return [result, await _course_end(p, enrollment)]
    return [result]


_VERBS: dict[str, tuple[Any, int]] = {
    "done": (_done, 2), "quiz": (_quiz, 2), "retry": (_retry, 2), "ans": (_ans, 3),
    "sub": (_sub, 2), "next": (_next, 1), "cert": (_cert, 1),
}

"""Courses in the database: save a validated `CourseSpec`, find courses and their items.

`save_course` creates a course or replaces its content (same code): items are matched by key,
so a lesson that is edited keeps its id and everyone's progress on it; an item left out of
the new version is deactivated (not deleted: history stays). Quiz questions are matched by
position. The caller's transaction holds it all: nothing is half-saved.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError, NotFound
from core.models import AuditLog
from training.models import Course, CourseItem, Question
from training.spec import CourseSpec, ItemSpec, problems


class CourseInvalid(DomainError):
    """The course breaks a rule; `problems` lists every one (nothing was saved)."""

    code = "training_course_invalid"
    template = "training_course_invalid"

    def __init__(self, found: list[str]) -> None:
        super().__init__("; ".join(found), problems="\n".join(f"• {p}" for p in found[:20]))
        self.problems = found


async def save_course(s: AsyncSession, spec: CourseSpec, *, actor: str,
                      source: str = "bundle", default_pass_mark: int = 60) -> Course:
    """Create or replace the course `spec.code`; CourseInvalid (nothing saved) if it breaks a
    rule. Returns the course (flushed: it has an id)."""
    found = problems(spec)
    if found:
        raise CourseInvalid(found)
    course = await s.scalar(select(Course).where(Course.code == spec.code))
    if course is None:
        course = Course(code=spec.code, title=spec.title, description=spec.description,
                        locale=spec.locale, source=source, created_by=actor[:100], version=1)
        s.add(course)
        await s.flush()
        existing: dict[str, CourseItem] = {}
    else:
        course.title, course.description, course.locale = spec.title, spec.description, spec.locale
        course.source, course.version, course.status = source, course.version + 1, "published"
        existing = {i.key: i for i in (await s.scalars(
            select(CourseItem).where(CourseItem.course_id == course.id))).all()}
        # Positions are unique per course: park them out of the way before renumbering.
        await s.execute(update(CourseItem).where(CourseItem.course_id == course.id)
                        .values(position=-CourseItem.id))
    for position, item_spec in enumerate(spec.items, 1):
        item = existing.pop(item_spec.key, None)
        if item is None:
            item = CourseItem(course_id=course.id, key=item_spec.key)
            s.add(item)
        _fill(item, item_spec, position, default_pass_mark)
        await s.flush()
        await _save_questions(s, item, item_spec)
    for gone in existing.values():
        gone.active = False
    s.add(AuditLog(actor=actor[:100], action="training.course_saved", subject=spec.code,
                   details={"course_id": course.id, "version": course.version,
                            "items": len(spec.items), "source": source}))
    await s.flush()
    return course


def _fill(item: CourseItem, spec: ItemSpec, position: int, default_pass_mark: int) -> None:
    item.position, item.kind, item.title, item.active = position, spec.kind, spec.title, True
    item.body = spec.body
    item.attachments = [a.as_dict() for a in spec.attachments]
    if spec.kind == "quiz":
        item.pass_mark = default_pass_mark if spec.pass_mark is None else spec.pass_mark
        item.draw, item.max_attempts = spec.draw, spec.max_attempts
    else:
        item.pass_mark = item.draw = item.max_attempts = None


async def _save_questions(s: AsyncSession, item: CourseItem, spec: ItemSpec) -> None:
    current = {q.position: q for q in (await s.scalars(
        select(Question).where(Question.item_id == item.id))).all()}
    for position, q_spec in enumerate(spec.questions, 1):
        q = current.pop(position, None)
        if q is None:
            q = Question(item_id=item.id, position=position)
            s.add(q)
        q.text, q.options, q.correct = q_spec.text, list(q_spec.options), sorted(q_spec.correct)
        q.multi, q.explanation = q_spec.multi or len(q_spec.correct) > 1, q_spec.explanation
    if current:
        await s.execute(delete(Question).where(Question.id.in_([q.id for q in current.values()])))


async def by_code(s: AsyncSession, code: str) -> Course:
    """The course with this code; NotFound (naming the code) if there is none."""
    course = await s.scalar(select(Course).where(Course.code == code.strip()))
    if course is None:
        raise NotFound(f"no course {code!r}", what="course", ref=code)
    return course


async def items(s: AsyncSession, course_id: int) -> list[CourseItem]:
    """The course's active items in order."""
    return list((await s.scalars(
        select(CourseItem).where(CourseItem.course_id == course_id, CourseItem.active)
        .order_by(CourseItem.position))).all())


async def questions(s: AsyncSession, item_id: int) -> list[Question]:
    """A quiz's question pool in order."""
    return list((await s.scalars(select(Question).where(Question.item_id == item_id)
                                 .order_by(Question.position))).all())


async def published(s: AsyncSession) -> list[Course]:
    """Every published course, newest first."""
    return list((await s.scalars(select(Course).where(Course.status == "published")
                                 .order_by(Course.id.desc()))).all())

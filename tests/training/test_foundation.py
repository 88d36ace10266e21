"""Courses are saved whole or not at all; enrolments and deliveries are one-time by the DB."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.models import Customer, OutboxMessage
from tests.conftest import uow
from training import content, courses
from training.models import Course, CourseItem, Enrollment, ItemProgress, Question
from training.spec import AttachmentSpec, CourseSpec, ItemSpec, QuestionSpec, problems


def spec(**over) -> CourseSpec:  # type: ignore[no-untyped-def]
    items = [
        ItemSpec(key="intro", kind="lesson", title="认识产品", body="<b>红烧牛肉面</b>",
                 attachments=[AttachmentSpec("link", "https://example.com/a", "资料")]),
        ItemSpec(key="quiz", kind="quiz", title="小测验", pass_mark=80, questions=[
            QuestionSpec("哪款是经典口味？", ["红烧牛肉面", "雪峰"], [0], explanation="红烧")]),
    ]
    values = {"code": "basics", "title": "产品基础", "items": items} | over
    return CourseSpec(**values)


def test_rules_name_each_problem() -> None:
    bad = spec(items=[ItemSpec(key="q", kind="quiz", title="Q", pass_mark=120, questions=[
        QuestionSpec("?", ["a", "b"], [])])])
    found = problems(bad)
    assert any("pass mark 120%" in p for p in found), found
    assert any("no correct answer" in p for p in found), found
    assert problems(spec()) == []


async def test_invalid_course_leaves_nothing(db) -> None:  # type: ignore[no-untyped-def]
    bad = spec(items=[*spec().items, ItemSpec(key="q2", kind="quiz", title="Q", questions=[
        QuestionSpec("?", ["a", "b"], [5])])])
    with pytest.raises(courses.CourseInvalid) as info:
        await uow(db, courses.save_course, bad, actor="t")
    assert "points at no option" in info.value.vars["problems"]
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Course)) == 0
        assert await s.scalar(select(func.count()).select_from(CourseItem)) == 0


async def test_reimport_keeps_item_ids_and_deactivates_removed(db) -> None:  # type: ignore[no-untyped-def]
    first = await uow(db, courses.save_course, spec(), actor="t")
    async with db.transaction() as s:
        before = {i.key: i.id for i in await courses.items(s, first.id)}
    changed = spec(items=[ItemSpec(key="new", kind="lesson", title="新课", body="x"),
                          spec().items[0]])
    again = await uow(db, courses.save_course, changed, actor="t")
    assert again.id == first.id and again.version == 2
    async with db.transaction() as s:
        now = await courses.items(s, first.id)
        assert [i.key for i in now] == ["new", "intro"]
        assert {i.key: i.id for i in now}["intro"] == before["intro"]
        assert await s.scalar(select(func.count()).select_from(Question)) == 1  # kept, inactive


async def test_enrol_and_queue_once(db) -> None:  # type: ignore[no-untyped-def]
    course = await uow(db, courses.save_course, spec(), actor="t")
    async with db.transaction() as s:
        s.add(Customer(code="D1", kind="dealer", name="甲", tier="key", region="华东"))
    async with db.transaction() as s:
        customer = await s.scalar(select(Customer.id))
        e1, created1 = await content.enroll(s, course.id, customer)
        e2, created2 = await content.enroll(s, course.id, customer)
        assert (e1.id, created1, created2) == (e2.id, True, False)
        item = await content.next_item(s, e1)
        assert item is not None and item.key == "intro"
        for _ in range(2):
            await content.queue_item(s, e1, item, course, content.Target(555), total=2,
                                     dedupe_key=f"t:{e1.id}:{item.id}")
    async with db.transaction() as s:
        rows = (await s.scalars(select(OutboxMessage))).all()
        assert len(rows) == 1
        assert rows[0].buttons[0]["url"] == "https://example.com/a"
        assert content.parse_payload(rows[0].buttons[-1]["payload"]) == ("done", [e1.id, item.id])
        assert await s.scalar(select(func.count()).select_from(ItemProgress)) == 1
        assert await s.scalar(select(func.count()).select_from(Enrollment)) == 1


@pytest.mark.parametrize("data", ["trn:done:1", "trn:x:1:2", "trn:done:1:a", "pts:ok:1",
                                  "trn:ans:1:2:3:4", "trn:done:-1:2", "trn:" + "1" * 70, None])
def test_hostile_payloads_are_refused(data) -> None:  # type: ignore[no-untyped-def]
    parsed = content.parse_payload(data)
    assert parsed is None or parsed == ("done", [1]), parsed

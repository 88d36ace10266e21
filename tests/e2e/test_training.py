"""Training through the whole system (Rasa included): the demo dealer, enrolled in a course,
says "下一课" in chat and the lesson arrives; "我的课程" lists the course with its progress."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import Database
from core.models import Customer
from sandbox.harness import Harness, texts
from training import content, courses
from training.spec import CourseSpec, ItemSpec

pytestmark = pytest.mark.asyncio(loop_scope="session")

COURSE = CourseSpec(code="e2e-next", title="陈列入门", items=[
    ItemSpec(key="shelf", kind="lesson", title="黄金陈列位", body="视线高度的货架卖得最好。"),
    ItemSpec(key="cold", kind="lesson", title="冰柜陈列", body="冰红茶放冰柜第一层。"),
])


async def enrol_demo_dealer(system: Harness) -> None:
    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            course = await courses.save_course(s, COURSE, actor="e2e")
            dealer = await s.scalar(select(Customer.id).where(Customer.code == "D001"))
            assert dealer is not None
            await content.enroll(s, course.id, dealer)
    finally:
        await db.dispose()


async def test_next_lesson_in_chat_brings_the_lesson(system: Harness) -> None:
    await enrol_demo_dealer(system)
    got = texts(await system.say("dealer", "下一课", expect=2))
    assert any("黄金陈列位" in t and "视线高度的货架卖得最好" in t for t in got), got
    listed = texts(await system.say("dealer", "我的课程"))
    assert any("陈列入门" in t and "0/2" in t for t in listed), listed

"""A small training world for the certificates, reports and reminders tests.

Course `basics` 产品基础 (lesson, lesson, quiz with pass mark 60) and four dealers:

- D1 甲商贸 — linked user 2001 "张三", all 3 items done, quiz 90, completed and passed;
- D2 乙商贸 — linked user 2002, 1/3 done, last active 10 days ago;
- D3 丙商贸 — enrolled 10 days ago, not started, no linked identity;
- D4 `=HYPERLINK(…)` — linked user 2004, 3/3 done, quiz 40 (failed), completed, not passed.

Registered group -100500 "华东经销商群": D1 and D2 are members, D3 left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from community.models import CommunityGroup, GroupMember
from core.db import Database
from core.models import Customer, TelegramIdentity, utcnow
from core.settings import Settings, load_settings
from training import content, courses
from training.models import Enrollment, ItemProgress
from training.spec import CourseSpec, ItemSpec, QuestionSpec

EVIL = '=HYPERLINK("http://evil.example","click")'
GROUP_CHAT = -100500
GROUP_TITLE = "华东经销商群"


def settings_for(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    """Settings whose data directory is the test's own."""
    return load_settings(env={"APP_DATA_DIR": str(tmp_path / "data")})


def course_spec(code: str = "basics", title: str = "产品基础") -> CourseSpec:
    """Two lessons and a quiz."""
    return CourseSpec(code=code, title=title, items=[
        ItemSpec(key="l1", kind="lesson", title="认识产品", body="一"),
        ItemSpec(key="l2", kind="lesson", title="陈列", body="二"),
        ItemSpec(key="q", kind="quiz", title="小测验", pass_mark=60, questions=[
            QuestionSpec("哪款是经典口味？", ["红烧牛肉面", "雪峰"], [0])]),
    ])


@dataclass
class World:
    """Ids of what `build` made."""

    course_id: int
    item_ids: list[int]
    enrollments: dict[str, int]  # dealer code → enrolment id
    customers: dict[str, int]


async def build(db: Database, now: dt.datetime | None = None) -> World:
    """Create the course, dealers, identities, enrolments, progress and the group."""
    now = now or utcnow()
    ago = now - dt.timedelta(days=10)
    course = await _save(db)
    async with db.transaction() as s:
        item_ids = [i.id for i in await courses.items(s, course)]
        customers: dict[str, int] = {}
        for code, name in (("D1", "甲商贸"), ("D2", "乙商贸"), ("D3", "丙商贸"), ("D4", EVIL)):
            c = Customer(code=code, kind="dealer", name=name, tier="key", region="华东")
            s.add(c)
            await s.flush()
            customers[code] = c.id
        for user, code, first in ((2001, "D1", "张三"), (2002, "D2", "李四"),
                                  (2004, "D4", "王五")):
            s.add(TelegramIdentity(telegram_user_id=user, first_name=first, locale="zh-Hans",
                                   customer_id=customers[code], linked_at=ago))
        enrollments: dict[str, int] = {}
        for code in customers:
            e, _ = await content.enroll(s, course, customers[code])
            e.enrolled_at = ago
            enrollments[code] = e.id
        await s.flush()
        lesson1, lesson2, quiz = item_ids

        def done(code: str, item: int, score: int | None = None, passed: bool = False) -> None:
            s.add(ItemProgress(enrollment_id=enrollments[code], item_id=item,
                               delivered_at=ago, done_at=ago, best_score=score,
                               passed_at=ago if passed else None))

        for item in (lesson1, lesson2):
            done("D1", item)
            done("D4", item)
        done("D1", quiz, 90, passed=True)
        done("D4", quiz, 40)
        done("D2", lesson1)
        rows = {code: await s.get(Enrollment, eid) for code, eid in enrollments.items()}
        for code in ("D1", "D2", "D4"):
            rows[code].started_at = rows[code].last_activity_at = ago
        rows["D1"].completed_at = rows["D1"].passed_at = ago
        rows["D4"].completed_at = ago
        group = CommunityGroup(chat_id=GROUP_CHAT, title=GROUP_TITLE, tiers=["key"])
        s.add(group)
        await s.flush()
        for user, code, status in ((2001, "D1", "member"), (2002, "D2", "member"),
                                   (2003, "D3", "left")):
            s.add(GroupMember(group_id=group.id, telegram_user_id=user,
                              customer_id=customers[code], status=status))
    return World(course, item_ids, enrollments, customers)


async def _save(db: Database) -> int:
    async with db.transaction() as s:
        return (await courses.save_course(s, course_spec(), actor="test")).id

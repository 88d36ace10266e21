"""A dealer learning in chat (training/learning.py), on SQLite and PostgreSQL: my courses,
the next lesson, lessons done once, quizzes answered once with buttons, scores, retries,
points once, completion with a real certificate, and every forged or foreign button refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.actions.sdk import ActionContext
from bot.actions.server import create_app
from community.points.models import PointsEntry
from core import identity
from core.i18n import renderer
from core.models import PRIORITY_INTERACTIVE, Customer, OutboxMessage, TelegramIdentity
from core.screens import Screen
from core.services.accounts import IdentityView
from core.settings import load_settings
from tests.conftest import uow
from tests.training.progress_fixture import settings_for
from training import content, courses, learning
from training.content import Target, parse_payload
from training.models import (
    Answer,
    Attempt,
    Certificate,
    CourseItem,
    Enrollment,
    ItemProgress,
    Question,
)
from training.spec import CourseSpec, ItemSpec, QuestionSpec

ME, OTHER, SHOP = 3001, 3002, 3003


def spec(code: str = "c1", title: str = "产品基础", *, draw: int | None = 2,
         max_attempts: int | None = 2, pass_mark: int = 100,
         questions: list[QuestionSpec] | None = None) -> CourseSpec:
    """Two lessons and a quiz drawing `draw` of three questions."""
    pool = questions or [
        QuestionSpec("Q1 哪款是经典口味？", ["红烧牛肉面", "雪峰"], [0], explanation="E1"),
        QuestionSpec("Q2 冰红茶几度最好喝？", ["60度", "4度"], [1], explanation="E2"),
        QuestionSpec("Q3 陈列放哪一层？", ["顶层", "视线高度", "底层"], [1], explanation="E3")]
    return CourseSpec(code=code, title=title, items=[
        ItemSpec(key="l1", kind="lesson", title="认识产品", body="一"),
        ItemSpec(key="l2", kind="lesson", title="陈列", body="二"),
        ItemSpec(key="q", kind="quiz", title="小测验", pass_mark=pass_mark, draw=draw,
                 max_attempts=max_attempts, questions=pool)])


@dataclass
class World:
    course_id: int
    enrollment_id: int
    items: dict[str, int]
    me: IdentityView
    other: IdentityView
    shop: IdentityView


def ident(user: int, customer: Customer | None) -> IdentityView:
    return IdentityView(
        telegram_user_id=user, first_name=f"u{user}", locale="en", locale_locked=False,
        customer_id=customer.id if customer else None,
        customer_code=customer.code if customer else None,
        customer_kind=customer.kind if customer else None,
        customer_tier=customer.tier if customer else None,
        customer_region=customer.region if customer else None)


async def build(db, **spec_args) -> World:  # type: ignore[no-untyped-def]
    course = await uow(db, courses.save_course, spec(**spec_args), actor="t")
    async with db.transaction() as s:
        people = [Customer(code="D1", kind="dealer", name="甲商贸", tier="key", region="华东"),
                  Customer(code="D2", kind="dealer", name="乙商贸", tier="key", region="华东"),
                  Customer(code="R1", kind="retailer", name="丙店", region="华东")]
        s.add_all(people)
        await s.flush()
        enrollment, _ = await content.enroll(s, course.id, people[0].id)
        await content.enroll(s, course.id, people[1].id)
        items = {i.key: i.id for i in await courses.items(s, course.id)}
        return World(course.id, enrollment.id, items, ident(ME, people[0]),
                     ident(OTHER, people[1]), ident(SHOP, people[2]))


async def press(db, who: IdentityView, data: str, tmp_path) -> learning.Outcome:  # type: ignore[no-untyped-def]
    return await uow(db, learning.press, who, data, Target(who.telegram_user_id, "en"),
                     settings=settings_for(tmp_path))


def payloads(screen: Screen) -> list[str]:
    return [b["payload"] for b in screen.buttons]


async def correct_payload(db, screen: Screen, right: bool = True) -> str:  # type: ignore[no-untyped-def]
    """The option button of a question screen that is (or is not) the right answer."""
    _, (attempt, question, _n) = parse_payload(payloads(screen)[0])  # type: ignore[misc]
    async with db.transaction() as s:
        q = await s.get(Question, question)
        assert q is not None
        n = q.correct[0] if right else next(i for i in range(len(q.options))
                                            if i not in q.correct)
    return content.payload("ans", attempt, question, n)


async def take_quiz(db, world: World, tmp_path, *, right: list[bool], verb: str = "quiz"  # type: ignore[no-untyped-def]
                    ) -> learning.Outcome:
    """Start (or retry) the quiz and answer each question right or wrong; the last outcome."""
    outcome = await press(db, world.me, content.payload(verb, world.enrollment_id,
                                                        world.items["q"]), tmp_path)
    for ok in right:
        question = outcome.send[-1]
        assert question.template == "training_question", outcome
        outcome = await press(db, world.me, await correct_payload(db, question, ok), tmp_path)
        assert outcome.edit is not None and outcome.edit.vars["right"] is ok
    return outcome


async def count(db, model, *where) -> int:  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --------------------------------------------------------------------------- my courses


async def test_my_courses_lists_progress_and_continue(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    await press(db, world.me, content.payload("done", world.enrollment_id, world.items["l1"]),
                tmp_path)
    screen = await uow(db, learning.my_courses, world.me)
    (course,) = screen.vars["courses"]
    assert (course["title"], course["done"], course["total"], course["passed"]) == \
        ("产品基础", 1, 3, False)
    assert payloads(screen) == [f"trn:next:{world.enrollment_id}"]
    text = renderer().render(screen.template, "en", **screen.vars)
    assert "1/3 done" in text and "产品基础" in text


async def test_my_courses_needs_a_linked_dealer(db) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    with pytest.raises(learning.LearningLinkRequired) as unlinked:
        await uow(db, learning.my_courses, ident(4242, None))
    assert unlinked.value.vars["linked"] is False
    with pytest.raises(learning.LearningLinkRequired) as retailer:
        await uow(db, learning.my_courses, world.shop)
    assert retailer.value.vars["linked"] is True
    async with db.transaction() as s:
        lonely = Customer(code="D9", kind="dealer", name="无课", tier="key", region="华东")
        s.add(lonely)
        await s.flush()
        assert (await learning.my_courses(s, ident(9, lonely))).vars["courses"] == []
        nothing = await learning.next_lesson(s, ident(9, lonely), Target(9, "en"))
        assert nothing.template == "training_no_courses"


# --------------------------------------------------------------------------- next lesson


async def test_next_lesson_queues_the_right_item_of_the_latest_course(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    first = await uow(db, learning.next_lesson, world.me, Target(ME, "en"))
    assert first.template == "training_next_coming" and first.vars["title"] == "认识产品"
    async with db.transaction() as s:
        row = await s.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
        assert row is not None and row.chat_id == ME and row.priority == PRIORITY_INTERACTIVE
        assert row.template == "training_lesson"
        assert parse_payload(row.buttons[-1]["payload"]) == \
            ("done", [world.enrollment_id, world.items["l1"]])
        e = await s.get(Enrollment, world.enrollment_id)
        assert e is not None and e.started_at is not None and e.last_activity_at is not None
    # A second course the dealer touched later is the one /next continues.
    other = await uow(db, courses.save_course, spec("c2", "饮料陈列"), actor="t")
    async with db.transaction() as s:
        e2, _ = await content.enroll(s, other.id, world.me.customer_id)
    await press(db, world.me, f"trn:next:{e2.id}", tmp_path)
    again = await uow(db, learning.next_lesson, world.me, Target(ME, "en"))
    assert again.vars["course"] == "饮料陈列"


async def test_done_twice_one_progress_next_queued_once(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    done = content.payload("done", world.enrollment_id, world.items["l1"])
    before = await count(db, OutboxMessage)
    first = await press(db, world.me, done, tmp_path)
    assert [s.template for s in first.send] == ["training_lesson_done", "training_next_coming"]
    second = await press(db, world.me, done, tmp_path)
    assert second.notice == "training_already_done" and not second.send
    assert await count(db, ItemProgress, ItemProgress.done_at.is_not(None)) == 1
    assert await count(db, OutboxMessage) == before + 1  # l2, once
    async with db.transaction() as s:
        row = await s.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
        assert row is not None
        assert parse_payload(row.buttons[-1]["payload"]) == \
            ("done", [world.enrollment_id, world.items["l2"]])


# --------------------------------------------------------------------------- quizzes


async def test_quiz_draws_from_the_pool_answers_once_and_scores(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db, draw=2)
    started = await press(db, world.me, content.payload("quiz", world.enrollment_id,
                                                        world.items["q"]), tmp_path)
    question = started.send[0]
    assert question.template == "training_question" and question.vars["total"] == 2
    async with db.transaction() as s:
        (attempt,) = (await s.scalars(select(Attempt))).all()
        pool = {q.id for q in await courses.questions(s, world.items["q"])}
        assert len(set(attempt.question_ids)) == 2 and set(attempt.question_ids) <= pool
    right = await correct_payload(db, question)
    answered = await press(db, world.me, right, tmp_path)
    assert answered.edit is not None and answered.edit.vars["right"] is True
    assert answered.edit.vars["explanation"].startswith("E") and not answered.edit.buttons
    # The same button again, another option of the answered question: nothing changes.
    wrong = await correct_payload(db, question, right=False)
    for again in (right, wrong):
        assert (await press(db, world.me, again, tmp_path)).notice == "training_already_answered"
    assert await count(db, Answer) == 1
    result = await press(db, world.me, await correct_payload(db, answered.send[0], False),
                         tmp_path)
    (screen,) = result.send
    assert screen.template == "training_quiz_result"
    assert (screen.vars["score"], screen.vars["passed"], screen.vars["attempts_left"]) == \
        (50, False, 1)
    assert [r["right"] for r in screen.vars["review"]] == [True, False]
    assert all(r["explanation"] and r["answer"] for r in screen.vars["review"])
    assert payloads(screen) == [f"trn:retry:{world.enrollment_id}:{world.items['q']}"]
    # The scored attempt's buttons change nothing: its answers and score stay.
    late = await press(db, world.me, await correct_payload(db, answered.send[0]), tmp_path)
    assert late.notice == "training_already_answered" and not late.send
    async with db.transaction() as s:
        assert await s.scalar(select(Attempt.score)) == 50
        assert await s.scalar(select(func.count()).select_from(Answer)) == 2


async def test_draw_larger_than_the_pool_takes_the_pool(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db, draw=None)
    await press(db, world.me, content.payload("quiz", world.enrollment_id, world.items["q"]),
                tmp_path)
    async with db.transaction() as s:
        item = await s.get(CourseItem, world.items["q"])
        assert item is not None
        item.draw = 7  # more than the three questions there are
    await press(db, world.me, content.payload("retry", world.enrollment_id, world.items["q"]),
                tmp_path)  # resumes the attempt under way: still one
    assert await count(db, Attempt) == 1
    async with db.transaction() as s:
        (attempt,) = (await s.scalars(select(Attempt))).all()
        assert sorted(attempt.question_ids) == sorted(
            q.id for q in await courses.questions(s, world.items["q"]))


async def test_multiple_choice_toggles_then_submits(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db, draw=None, pass_mark=100, questions=[
        QuestionSpec("哪些是饮料？", ["冰红茶", "方便面", "矿泉水"], [0, 2], multi=True,
                     explanation="面不是饮料")])
    started = await press(db, world.me, content.payload("quiz", world.enrollment_id,
                                                        world.items["q"]), tmp_path)
    options = payloads(started.send[0])
    assert options[-1].startswith("trn:sub:") and len(options) == 4
    empty = await press(db, world.me, options[-1], tmp_path)
    assert empty.notice == "training_choose_first"
    for n in (0, 1, 2, 1):  # 方便面 chosen then un-chosen
        toggled = await press(db, world.me, options[n], tmp_path)
        assert toggled.edit is not None and toggled.edit.template == "training_question"
    assert [b["vars"]["chosen"] for b in toggled.edit.buttons[:3]] == [True, False, True]
    submitted = await press(db, world.me, options[-1], tmp_path)
    assert submitted.edit is not None and submitted.edit.vars["right"] is True
    assert submitted.send[0].vars["score"] == 100 and submitted.send[0].vars["passed"]
    for late in (options[-1], options[1]):
        assert (await press(db, world.me, late, tmp_path)).notice == "training_already_answered"
    async with db.transaction() as s:
        (answer,) = (await s.scalars(select(Answer))).all()
        assert answer.chosen == [0, 2] and answer.correct is True


async def test_retry_until_max_attempts_then_done_but_not_passed(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db, max_attempts=2)
    first = await take_quiz(db, world, tmp_path, right=[False, False])
    assert first.send[0].vars["attempts_left"] == 1 and payloads(first.send[0])
    second = await take_quiz(db, world, tmp_path, right=[True, False], verb="retry")
    result = second.send[0]
    assert result.vars["attempts_left"] == 0 and result.vars["score"] == 50
    assert not any(p.startswith("trn:retry") for p in payloads(result))
    refused = await press(db, world.me, content.payload("retry", world.enrollment_id,
                                                        world.items["q"]), tmp_path)
    assert refused.send[0].template == "training_no_attempts_left"
    assert await count(db, Attempt) == 2
    async with db.transaction() as s:
        progress = await s.scalar(select(ItemProgress).where(
            ItemProgress.item_id == world.items["q"]))
        assert progress is not None and progress.done_at is not None
        assert progress.passed_at is None and progress.best_score == 50
        assert await s.scalar(select(Attempt.number).order_by(Attempt.number.desc())) == 2
    assert await count(db, PointsEntry) == 0


async def test_first_pass_awards_points_once_and_completes_the_course(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The real certificates module (training/certificates.py): a completed course issues
    and queues one certificate PDF."""
    world = await build(db, max_attempts=None)
    for key in ("l1", "l2"):
        await press(db, world.me, content.payload("done", world.enrollment_id,
                                                  world.items[key]), tmp_path)
    passed = await take_quiz(db, world, tmp_path, right=[True, True])
    result, end = passed.send
    assert result.vars["passed"] and result.vars["points"] == 30  # 20, key tier × 1.5
    assert end.template == "training_course_end" and end.vars["state"] == "new"
    again = await take_quiz(db, world, tmp_path, right=[True, True], verb="retry")
    assert again.send[0].vars["passed"] and again.send[0].vars["points"] == 0
    assert [s.template for s in again.send] == ["training_quiz_result", "training_course_end"]
    assert again.send[1].vars["state"] == "already"
    async with db.transaction() as s:
        keys = sorted((await s.scalars(select(PointsEntry.source_key))).all())
        assert keys == [f"course_completed:course:{world.course_id}",
                        f"quiz_passed:quiz:{world.items['q']}"]
        e = await s.get(Enrollment, world.enrollment_id)
        assert e is not None and e.completed_at is not None and e.passed_at is not None
        cert = await s.scalar(select(Certificate))
        assert cert is not None and cert.enrollment_id == world.enrollment_id
        docs = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.media_kind == "document"))).all()
        assert len(docs) == 1 and docs[0].chat_id == ME
    listed = await uow(db, learning.my_courses, world.me)
    assert listed.vars["courses"][0]["passed"] and listed.vars["courses"][0]["certificate"]
    assert payloads(listed) == [f"trn:cert:{world.enrollment_id}"]
    resent = await press(db, world.me, f"trn:cert:{world.enrollment_id}", tmp_path)
    assert resent.send[0].template == "training_certificate_coming"
    assert await count(db, OutboxMessage, OutboxMessage.media_kind == "document") == 2


# --------------------------------------------------------------------------- forged buttons


async def test_foreign_presser_is_refused_and_nothing_changes(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    started = await press(db, world.me, content.payload("quiz", world.enrollment_id,
                                                        world.items["q"]), tmp_path)
    mine = [content.payload("done", world.enrollment_id, world.items["l1"]),
            content.payload("quiz", world.enrollment_id, world.items["q"]),
            content.payload("retry", world.enrollment_id, world.items["q"]),
            content.payload("next", world.enrollment_id),
            content.payload("cert", world.enrollment_id),
            *payloads(started.send[0])]
    rows = await count(db, OutboxMessage)
    for data in mine:
        with pytest.raises(learning.ButtonExpired):
            await press(db, world.other, data, tmp_path)
    with pytest.raises(learning.LearningLinkRequired):
        await press(db, world.shop, mine[0], tmp_path)
    assert await count(db, ItemProgress, ItemProgress.done_at.is_not(None)) == 0
    assert (await count(db, Answer), await count(db, Attempt)) == (0, 1)
    assert await count(db, OutboxMessage) == rows


async def test_hostile_payloads_change_nothing(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    e, items = world.enrollment_id, world.items
    started = await press(db, world.me, content.payload("quiz", e, items["q"]), tmp_path)
    _, (attempt, question, _n) = parse_payload(payloads(started.send[0])[0])  # type: ignore[misc]
    async with db.transaction() as s:
        unused = await s.scalar(select(Question.id).where(Question.id.not_in(
            (await s.get(Attempt, attempt)).question_ids)))  # type: ignore[union-attr]
    hostile = [None, "", "trn:", "trn:done", "trn:done:1", f"trn:done:{e}", f"trn:done:{e}:x",
               f"trn:done:{e}:{items['q']}",           # a quiz is not a lesson
               f"trn:quiz:{e}:{items['l1']}",          # a lesson is not a quiz
               f"trn:done:{e}:999999", "trn:next:999999", f"trn:ans:{attempt}:{question}",
               f"trn:ans:{attempt}:{question}:99",     # no such option
               f"trn:ans:{attempt}:{unused}:0",        # a question not drawn in this attempt
               f"trn:ans:999999:{question}:0", f"trn:sub:{attempt}:999999",
               f"trn:next:{e}:{e}", "trn:cert:-1", "pts:ok:1", "trn:done:1:2:3:4",
               "trn:" + "9" * 70]
    rows = await count(db, OutboxMessage)
    for data in hostile:
        with pytest.raises(learning.ButtonExpired):
            await press(db, world.me, data, tmp_path)
    assert await count(db, ItemProgress, ItemProgress.done_at.is_not(None)) == 0
    assert (await count(db, Answer), await count(db, Attempt)) == (0, 1)
    assert await count(db, OutboxMessage) == rows


# --------------------------------------------------------------------------- actions


def _call(action: str, sender: str, metadata: dict) -> dict:
    return {"next_action": action, "sender_id": sender, "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": sender, "slots": {}, "events": [],
                        "latest_message": {"text": "下一课", "intent": {"name": "next_lesson"},
                                           "metadata": metadata}}}


async def test_actions_answer_the_proven_dealer_only(db) -> None:  # type: ignore[no-untyped-def]
    """action_next_lesson / action_my_courses through the action server: the proven sender's
    lesson is queued to their chat; a forged proof gets the link prompt and nothing queued."""
    world = await build(db)
    async with db.transaction() as s:
        s.add(TelegramIdentity(telegram_user_id=ME, customer_id=world.me.customer_id))
    app = create_app(ActionContext(db=db, settings=load_settings(
        env={"IDENTITY_SIGNING_KEY": "k"})), "tok")
    async with TestClient(TestServer(app)) as client:
        async def run(action: str, key: str) -> dict:
            proof = {identity.METADATA_KEY: identity.sign(key, str(ME))}
            body = await (await client.post("/webhook?token=tok",
                                            json=_call(action, str(ME), proof))).json()
            return body["responses"][0]["custom"]
        forged = await run("action_next_lesson", "guess")
        assert forged["template"] == "training_link_required"
        assert await count(db, OutboxMessage) == 0
        queued = await run("action_next_lesson", "k")
        assert queued["template"] == "training_next_coming"
        assert queued["vars"]["title"] == "认识产品"
        async with db.transaction() as s:
            row = await s.scalar(select(OutboxMessage))
            assert row is not None and row.chat_id == ME and row.template == "training_lesson"
        listed = await run("action_my_courses", "k")
        assert listed["template"] == "training_my_courses"
        assert listed["vars"]["courses"][0]["title"] == "产品基础"
        assert listed["buttons"][0]["payload"] == f"trn:next:{world.enrollment_id}"

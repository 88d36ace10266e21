"""A trainer writes a course in Telegram: the guided flow, its preview and its save.

Service tests on both backends (a trainer's steps as the adapter calls them), and one test
through the real gateway and delivery worker on the emulator, without Rasa.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from bot.gateway.render import plain, render
from core.db import Database
from core.models import AuditLog, Customer, OutboxMessage
from core.services.accounts import link_identity_directly
from core.settings import TrainingSection
from sandbox.harness import Harness, pick, texts
from tests.conftest import uow
from tests.training.gateway import training_system
from training import authoring, courses
from training.authoring import Author, Incoming
from training.models import AuthoringDraft, Course, CourseItem
from training.spec import MAX_BODY

CFG = TrainingSection()
TRAINER = Author(user_id=3001, chat_id=3001, locale="en")
OTHER_TRAINER = Author(user_id=3002, chat_id=3002, locale="en")
DEALER = Author(user_id=3003, chat_id=3003, locale="en")
SERVICE = Author(user_id=3004, chat_id=3004, locale="en")


async def people(db: Database) -> None:
    """Two trainers, a dealer and a customer-service member, linked as the sandbox does."""
    async with db.transaction() as s:
        s.add(Customer(code="D1", kind="dealer", name="甲商行", tier="key", region="华东"))
    async with db.transaction() as s:
        await link_identity_directly(s, TRAINER.user_id, "Zhao", staff_name="Zhao",
                                     staff_role="trainer", locale="en")
        await link_identity_directly(s, OTHER_TRAINER.user_id, "Qian", staff_name="Qian",
                                     staff_role="trainer", locale="en")
        await link_identity_directly(s, DEALER.user_id, "Li", customer_code="D1", locale="en")
        await link_identity_directly(s, SERVICE.user_id, "Sun", staff_name="Sun",
                                     staff_role="customer_service", locale="en")


def text(plain_text: str, html: str | None = None) -> Incoming:
    return Incoming("text", text=plain_text, html=html if html is not None else plain_text)


async def send(db: Database, who: Author, message: Incoming):  # type: ignore[no-untyped-def]
    return await uow(db, authoring.receive, who, message, cfg=CFG)


async def tap(db: Database, who: Author, verb: str, draft_id: int):  # type: ignore[no-untyped-def]
    return await uow(db, authoring.press, who, authoring.payload(verb, draft_id), cfg=CFG)


async def draft_of(db: Database, who: Author) -> AuthoringDraft:
    async with db.transaction() as s:
        draft = await s.scalar(select(AuthoringDraft).where(
            AuthoringDraft.telegram_user_id == who.user_id).order_by(AuthoringDraft.id.desc()))
    assert draft is not None
    return draft


async def count(db: Database, model) -> int:  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def start(db: Database, who: Author = TRAINER, code: str = "basics",
                title: str = "Product basics") -> int:
    screen = await uow(db, authoring.new_course, who, code, cfg=CFG)
    assert screen.template == "training_author_ask_title", screen
    assert (await send(db, who, text(title))).template == "training_author_title_set"
    return (await draft_of(db, who)).id


async def test_full_flow_saves_lessons_files_and_a_quiz_once(db) -> None:  # type: ignore[no-untyped-def]
    await people(db)
    draft_id = await start(db)
    added = await send(db, TRAINER, text(
        "Braised beef, see https://example.com/beef",
        '<b>Braised beef</b>, see <a href="https://example.com/beef">https://example.com/beef'
        '</a> <tg-emoji emoji-id="5">🙂</tg-emoji><a href="javascript:alert(1)">x</a>'))
    assert added.template == "training_author_added" and added.vars["chars"] > 0
    assert [b["payload"] for b in added.buttons] == [
        authoring.payload(v, draft_id) for v in ("lesson", "quiz", "preview", "save", "cancel")]
    await send(db, TRAINER, Incoming("photo", text="The new cup", file_id="AgAC-photo-big"))
    await send(db, TRAINER, Incoming("document", file_id="BQAC-doc", file_name="sheet.pdf"))
    assert (await tap(db, TRAINER, "lesson", draft_id)).template == \
        "training_author_ask_lesson_title"
    await send(db, TRAINER, text("Selling tips"))
    await send(db, TRAINER, text("Put it at eye level."))
    assert (await tap(db, TRAINER, "quiz", draft_id)).template == "training_author_ask_pass_mark"
    assert (await send(db, TRAINER, text("80"))).template == "training_author_ask_questions"
    single = await send(db, TRAINER,
                        text("Classic flavour?\n* Braised beef\nSeafood\n? Since 1996"))
    assert single.template == "training_author_question_added" and not single.vars["multi"]
    multi = await send(db, TRAINER, text("Which are cup noodles?\n*Cup A\n＊Cup B\nBag C"))
    assert multi.vars["multi"] and multi.vars["options"][1] == ("Cup B", True)

    preview = await tap(db, TRAINER, "preview", draft_id)
    assert preview.template == "training_author_preview" and preview.vars["problems"] == ""
    assert [i["kind"] for i in preview.vars["items"]] == ["lesson", "lesson", "quiz"]
    async with db.transaction() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [r.template for r in rows] == ["training_lesson", "training_attachment",
                                          "training_lesson", "training_quiz_intro",
                                          "training_author_preview_end"]
    assert {r.chat_id for r in rows} == {TRAINER.chat_id}
    assert (rows[0].media_kind, rows[0].media_ref) == ("photo", "AgAC-photo-big")
    assert rows[0].variables["caption"] == "The new cup"
    assert (rows[1].media_kind, rows[1].media_ref) == ("document", "BQAC-doc")
    assert rows[3].variables["pass_mark"] == 80
    # The dealer's own buttons are there but inert; the flow's buttons come last.
    assert authoring.parse_payload(rows[0].buttons[-1]["payload"]) == ("pv", draft_id)
    assert rows[-1].buttons[3]["payload"] == authoring.payload("save", draft_id)
    again = await tap(db, TRAINER, "preview", draft_id)
    assert again.template == "training_author_preview_again"
    assert await count(db, OutboxMessage) == len(rows)

    saved = await tap(db, TRAINER, "save", draft_id)
    assert saved.template == "training_author_saved", saved
    assert (saved.vars["lessons"], saved.vars["quizzes"], saved.vars["version"]) == (2, 1, 1)
    twice = await tap(db, TRAINER, "save", draft_id)
    assert twice.template == "training_author_already_saved"
    async with db.transaction() as s:
        course = await courses.by_code(s, "basics")
        assert (course.version, course.source, course.title) == (1, "telegram", "Product basics")
        items = await courses.items(s, course.id)
        assert [(i.kind, i.title) for i in items] == [
            ("lesson", "Product basics"), ("lesson", "Selling tips"), ("quiz", "Quiz 1")]
        body = items[0].body
        assert '<b>Braised beef</b>' in body and '<a href="https://example.com/beef">' in body
        assert "tg-emoji" not in body and "javascript" not in body and "🙂" in body
        assert [(a["kind"], a["ref"], a["name"]) for a in items[0].attachments] == [
            ("photo", "AgAC-photo-big", ""), ("document", "BQAC-doc", "sheet.pdf")]
        assert items[2].pass_mark == 80
        qs = await courses.questions(s, items[2].id)
        assert [(q.options, q.correct, q.multi) for q in qs] == [
            (["Braised beef", "Seafood"], [0], False), (["Cup A", "Cup B", "Bag C"], [0, 1], True)]
        assert qs[0].explanation == "Since 1996"
    assert await count(db, Course) == 1
    assert (await draft_of(db, TRAINER)).status == "saved"
    # The draft is closed: messages from the trainer go on to the assistant again.
    assert await send(db, TRAINER, text("hello")) is None


async def test_two_taps_racing_save_once(db) -> None:  # type: ignore[no-untyped-def]
    """Both taps read the open draft before either saved: the conditional UPDATE lets one
    through."""
    await people(db)
    draft_id = await start(db)
    await send(db, TRAINER, text("Some text"))
    async with db.transaction() as s:
        seen = await s.get(AuthoringDraft, draft_id)
    assert seen is not None and seen.status == "open"
    first = await uow(db, authoring.save, TRAINER, seen, cfg=CFG)
    second = await uow(db, authoring.save, TRAINER, seen, cfg=CFG)
    assert (first.template, second.template) == ("training_author_saved",
                                                 "training_author_already_saved")
    async with db.transaction() as s:
        assert (await courses.by_code(s, "basics")).version == 1


async def test_invalid_quiz_shows_the_problem_and_saves_nothing(db) -> None:  # type: ignore[no-untyped-def]
    await people(db)
    draft_id = await start(db)
    await send(db, TRAINER, text("Some text"))
    await tap(db, TRAINER, "quiz", draft_id)
    assert (await send(db, TRAINER, text("120"))).template == "training_author_pass_mark_bad"
    await send(db, TRAINER, text("60"))
    bad = await send(db, TRAINER, text("Classic flavour?\nBraised beef\nSeafood"))
    assert bad.template == "training_author_question_bad"
    assert "no correct answer is marked" in bad.vars["problems"]
    refused = await tap(db, TRAINER, "save", draft_id)
    assert refused.template == "training_course_invalid"
    assert "the quiz has no questions" in refused.vars["problems"]
    assert refused.buttons  # the flow goes on: the trainer can fix it and save
    assert await count(db, Course) == 0 and await count(db, CourseItem) == 0
    assert (await draft_of(db, TRAINER)).status == "open"
    # Fixed: the same draft saves.
    await send(db, TRAINER, text("Classic flavour?\n*Braised beef\nSeafood"))
    assert (await tap(db, TRAINER, "save", draft_id)).template == "training_author_saved"


async def test_only_author_roles_may_write(db) -> None:  # type: ignore[no-untyped-def]
    await people(db)
    for who in (DEALER, SERVICE, Author(9999, 9999, "en")):  # dealer, customer service, stranger
        screen = await uow(db, authoring.new_course, who, "x", cfg=CFG)
        assert screen.template == "training_author_only", (who, screen)
        assert render(screen.template, "en").startswith("Only trainers can write courses")
    assert await count(db, AuthoringDraft) == 0
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "permission.denied")) == 3
    # The roles are the setting's: customer service may write once it lists them.
    wider = TrainingSection(author_roles=["trainer", "customer_service"])
    screen = await uow(db, authoring.new_course, SERVICE, "x", cfg=wider)
    assert screen.template == "training_author_ask_title"


async def test_someone_elses_or_forged_buttons_do_nothing(db) -> None:  # type: ignore[no-untyped-def]
    await people(db)
    draft_id = await start(db)
    await send(db, TRAINER, text("Some text"))
    for verb in ("save", "cancel", "lesson", "preview"):
        screen = await tap(db, OTHER_TRAINER, verb, draft_id)
        assert screen.template == "training_author_not_yours", (verb, screen)
    assert (await tap(db, DEALER, "save", draft_id)).template == "training_author_not_yours"
    for forged in ("trna:save:abc", "trna:save:-1", "trna:drop:1", "trna:save:1:2",
                   f"trna:save:{draft_id}x", "trn:done:1:1", "", None):
        screen = await uow(db, authoring.press, TRAINER, forged, cfg=CFG)
        assert screen.template == "button_expired", forged
    assert await count(db, Course) == 0 and await count(db, OutboxMessage) == 0
    draft = await draft_of(db, TRAINER)
    assert (draft.status, draft.step) == ("open", "content")


async def test_one_open_draft_cancel_and_limits(db) -> None:  # type: ignore[no-untyped-def]
    await people(db)
    draft_id = await start(db)
    second = await uow(db, authoring.new_course, TRAINER, None, cfg=CFG)
    assert second.template == "training_author_has_draft"
    assert await count(db, AuthoringDraft) == 1
    for kind in ("other",):  # a sticker, a voice note, a location …
        got = await send(db, TRAINER, Incoming(kind))
        assert render(got.template, "en") == \
            "That is not supported here: send text, a photo or a document."
    await send(db, TRAINER, text("x" * (MAX_BODY - 10)))
    too_long = await send(db, TRAINER, text("more words here"))
    assert too_long.template == "training_author_too_long"
    for n in range(authoring.MAX_ATTACHMENTS):
        await send(db, TRAINER, Incoming("photo", file_id=f"AgAC-{n}"))
    too_many = await send(db, TRAINER, Incoming("photo", file_id="AgAC-11"))
    assert too_many.template == "training_author_too_many_files"
    lesson = (await draft_of(db, TRAINER)).spec["items"][0]
    assert len(lesson["body"]) == MAX_BODY - 10 and len(lesson["attachments"]) == 10
    cancelled = await uow(db, authoring.cancel_open, TRAINER)
    assert cancelled is not None and cancelled.template == "training_author_cancelled"
    assert await uow(db, authoring.cancel_open, TRAINER) is None  # /cancel is the hand-off's
    assert (await tap(db, TRAINER, "save", draft_id)).template == "training_author_closed"
    assert await count(db, Course) == 0
    # A new draft with an automatic code once the old one is closed.
    fresh = await uow(db, authoring.new_course, TRAINER, None, cfg=CFG)
    assert fresh.template == "training_author_ask_title" and fresh.vars["code"].startswith(
        "course-")


async def test_edit_course_adds_a_lesson_as_a_new_version(db) -> None:  # type: ignore[no-untyped-def]
    await people(db)
    draft_id = await start(db)
    await send(db, TRAINER, text("First"))
    await tap(db, TRAINER, "save", draft_id)
    taken = await uow(db, authoring.new_course, TRAINER, "basics", cfg=CFG)
    assert taken.template == "training_author_code_taken"
    editing = await uow(db, authoring.edit_course, TRAINER, "basics", cfg=CFG)
    assert editing.template == "training_author_editing" and editing.vars["items"] == 1
    edit_id = (await draft_of(db, TRAINER)).id
    await tap(db, TRAINER, "lesson", edit_id)
    await send(db, TRAINER, text("Second"))
    await send(db, TRAINER, text("More"))
    saved = await tap(db, TRAINER, "save", edit_id)
    assert saved.template == "training_author_saved" and saved.vars["version"] == 2
    async with db.transaction() as s:
        course = await courses.by_code(s, "basics")
        assert [i.title for i in await courses.items(s, course.id)] == ["Product basics",
                                                                       "Second"]


def test_question_format_and_html_rules() -> None:
    q = authoring.parse_question("  Q?  \n* a \n b\n\n* c\n？ because ")
    assert (q.text, q.options, q.correct, q.multi, q.explanation) == (
        "Q?", ["a", "b", "c"], [0, 2], True, "because")
    assert authoring.question_problems(authoring.parse_question("Q?\n*a")) == [
        "it needs at least two options"]
    assert authoring.telegram_html(
        '<b>x<span class="x">y</span></b><pre><code class="language-py">1 &lt; 2</code></pre>'
        '<a href="tg://user?id=5">me</a><blockquote expandable>q</blockquote>') == (
        '<b>xy</b><pre><code class="language-py">1 &lt; 2</code></pre>'
        '<a href="tg://user?id=5">me</a><blockquote>q</blockquote>')


# --- Through the gateway, on the emulator, without Rasa ------------------------------------

PERSONA_TRAINER = {"id": 1003, "first_name": "Trainer Zhao", "is_bot": False}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway, worker and scheduler on the demo data (actions and Rasa left out)."""
    async with training_system(tmp_path_factory, "authoring-gateway") as h:
        yield h


def said(key: str, locale: str, **variables) -> str:  # type: ignore[no-untyped-def]
    return plain(render(key, locale, **variables)).strip()


@pytest.mark.asyncio(loop_scope="module")
async def test_trainer_writes_a_course_in_the_chat(bot: Harness) -> None:
    unavailable = said("assistant_unavailable", "zh-Hans")
    # No draft: free text and /cancel are not the flow's (the assistant, the hand-off).
    assert texts(await bot.say("trainer", "你好"))[0].strip() == unavailable
    assert texts(await bot.say("trainer", "/cancel"))[0].strip() == \
        said("handoff_nothing_to_cancel", "zh-Hans")
    # A dealer is refused in words (the persona writes English: replies in English).
    await bot.say("dealer", "hello")
    assert texts(await bot.say("dealer", "/newcourse x"))[0].startswith(
        "Only trainers can write courses")

    assert "新课程" in texts(await bot.say("trainer", "/newcourse gw-basics"))[0]
    assert "网关课程" in texts(await bot.say("trainer", "网关课程"))[0]
    assert "已把文字加入第 1 课" in texts(await bot.say(
        "trainer", "第一课：看 https://example.com/cup"))[0]
    assert "这里不支持" in texts(await bot.say("trainer", kind="sticker"))[0]
    photo = await bot.say("trainer", "新包装", kind="photo")
    assert "已把图片加入第 1 课" in texts(photo)[0]

    message, preview = pick(photo, "预览")
    shown = await bot.click("trainer", message, preview, expect=3)
    assert "没有问题，可以保存" in texts(shown)[0], texts(shown)
    lesson = next(e["message"] for e in shown if (e.get("message") or {}).get("photo"))
    assert "网关课程" in lesson["caption"] and "新包装" in lesson["caption"]
    assert any("预览结束" in t for t in texts(shown))

    message, save = pick(shown, "保存")
    saved = texts(await bot.click("trainer", message, save))
    assert "已保存" in saved[0] and "gw-basics" in saved[0], saved
    again = texts(await bot.click("trainer", message, save))
    assert "已经保存过了" in again[0], again

    db = Database(bot.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            course = await courses.by_code(s, "gw-basics")
            (item,) = await courses.items(s, course.id)
    finally:
        await db.dispose()
    assert (course.title, course.version, course.source) == ("网关课程", 1, "telegram")
    assert 'href="https://example.com/cup"' in item.body
    assert [(a["kind"], a["caption"]) for a in item.attachments] == [("photo", "新包装")]
    assert item.attachments[0]["ref"] == lesson["photo"][-1]["file_id"]
    # The draft is closed: free text is the assistant's again.
    assert texts(await bot.say("trainer", "还有问题"))[0].strip() == unavailable
    # With an open draft, /cancel is the draft's (before the hand-off's /cancel).
    assert "新课程" in texts(await bot.say("trainer", "/newcourse"))[0]
    assert "已取消" in texts(await bot.say("trainer", "/cancel"))[0]
    assert texts(await bot.say("trainer", "再见"))[0].strip() == unavailable

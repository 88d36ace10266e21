"""A dealer learns through the real gateway and worker, on the emulator — no Rasa needed
(/courses, /next and the trn: buttons never go through NLU): a lesson arrives, "Done" brings
the quiz, each answer edits its question (✓/✗ and the explanation) and the next question
follows, a double tap changes nothing, the score and the certificate arrive, and another
dealer's tap on the same buttons is refused."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.launcher import (
    Stack,
    link_sandbox_personas,
    process_env,
    register_sandbox_chats,
    standard_procs,
)
from core.cli import cmd_migrate, cmd_seed_demo
from core.db import Database
from core.models import Customer
from core.services.accounts import link_identity_directly
from core.settings import load_settings
from sandbox.harness import Harness, TcpSwitch, buttons, free_port, texts
from training import content, courses
from training.models import Answer
from training.spec import CourseSpec, ItemSpec, QuestionSpec

pytestmark = pytest.mark.asyncio(loop_scope="module")

OTHER = {"id": 778003, "first_name": "Other Dealer", "language_code": "en", "is_bot": False}
RIGHT = {"Which noodles are the classic flavour?": "Braised beef",
         "How cold should iced tea be served?": "4 °C"}
COURSE = CourseSpec(code="gw-basics", title="Gateway Basics", locale="en", items=[
    ItemSpec(key="intro", kind="lesson", title="Meet the range", body="<b>Our best sellers</b>"),
    ItemSpec(key="quiz", kind="quiz", title="Quick check", pass_mark=100, max_attempts=3,
             questions=[QuestionSpec("Which noodles are the classic flavour?",
                                     ["Braised beef", "Snow peak"], [0],
                                     explanation="Braised beef is the 1992 original."),
                        QuestionSpec("How cold should iced tea be served?",
                                     ["60 °C", "4 °C"], [1], explanation="Chilled sells.")]),
])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway, worker and scheduler on the demo data, the demo dealer D001
    enrolled in a two-item course (actions and Rasa left out)."""
    data: Path = tmp_path_factory.mktemp("learning-gateway")
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env.update({"APP_DATA_DIR": str(data), "DATABASE_URL": f"sqlite+aiosqlite:///{data/'g.db'}",
                "RASA_PORT": str(free_port()), "ACTIONS_PORT": str(free_port()),
                "SANDBOX_PORT": str(free_port()), "APP__RASA__TIMEOUT_SECONDS": "1"})
    settings = load_settings(env=env)
    await cmd_migrate(settings, argparse.Namespace())
    await cmd_seed_demo(settings, argparse.Namespace())
    await link_sandbox_personas(settings)
    db = Database(settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            await link_identity_directly(s, OTHER["id"], OTHER["first_name"],
                                         customer_code="D002", locale="en")
            course = await courses.save_course(s, COURSE, actor="test")
            dealer = await s.scalar(select(Customer.id).where(Customer.code == "D001"))
            assert dealer is not None
            await content.enroll(s, course.id, dealer)
    finally:
        await db.dispose()
    full = process_env(settings, None, base=env)
    stack = Stack(full, echo=False, log_dir=data / "logs")
    harness = Harness(settings=settings, env=full, stack=stack, switch=TcpSwitch(free_port()),
                      data_dir=data)
    try:
        for proc in standard_procs(settings):
            if proc.name in ("rasa", "actions"):
                continue
            await stack.start(proc, timeout=60)
            if proc.name == "emulator":
                await register_sandbox_chats(settings)
        harness.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        yield harness
    finally:
        if harness.http is not None:
            await harness.http.close()
        await stack.stop()


def pick(sent: list[dict], label_part: str) -> tuple[dict, str]:
    """(message, callback_data) of the first button whose label contains `label_part`."""
    for e in sent:
        message = e.get("message") or {}
        for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
            for b in row:
                if label_part in b.get("text", ""):
                    return message, b["callback_data"]
    raise AssertionError(f"no {label_part!r} in {buttons(sent)}")


async def press(h: Harness, user: dict, message: dict, data: str, *, force: bool = False,
                expect: int = 1) -> list[dict]:
    """Tap a button under `message` (force: a tap Telegram would not offer, e.g. a forgery)."""
    chat_id = user["id"]
    after = await h.last_seq()
    await h.control("POST", "updates/callback", {"user": user, "chat_id": chat_id,
                                                 "message_id": message["message_id"],
                                                 "data": data, "force": force})
    return await h.replies(chat_id, after, expect=expect)


def method(sent: list[dict], name: str) -> list[dict]:
    return [e for e in sent if e.get("method") == name]


async def answer(bot: Harness, sent: list[dict],
                 expect: int = 2) -> tuple[list[dict], dict, str]:
    """Answer the question in `sent` right; (what came back, question message, its data)."""
    question = next(e["message"] for e in reversed(sent)
                    if "question" in ((e.get("message") or {}).get("text") or ""))
    text = next(q for q in RIGHT if q in question["text"])
    message, data = pick([{"message": question}], RIGHT[text])
    return await press(bot, bot.user("dealer"), message, data, expect=expect), message, data


async def test_dealer_learns_a_course_with_buttons(bot: Harness) -> None:
    await bot.say("dealer", "hello")  # the persona writes English: replies in English
    listed = await bot.say("dealer", "/courses")
    assert any("Gateway Basics" in t and "0/2 done" in t for t in texts(listed)), texts(listed)
    message, cont = pick(listed, "Continue: Gateway Basics")
    lesson = await press(bot, bot.user("dealer"), message, cont, expect=2)
    assert any("Meet the range" in t and "Our best sellers" in t for t in texts(lesson)), \
        texts(lesson)
    message, done = pick(lesson, "Done")
    quiz = await press(bot, bot.user("dealer"), message, done, expect=3)
    assert any("marked as read" in t for t in texts(quiz)), texts(quiz)
    message, start = pick(quiz, "Start the quiz")
    first = await press(bot, bot.user("dealer"), message, start)
    assert any("question 1/2" in t for t in texts(first)), texts(first)

    second, q1, q1_data = await answer(bot, first)
    edited = method(second, "editMessageText")
    assert edited and "(right)" in texts(edited)[0] and "💡" in texts(edited)[0], second
    assert not edited[0]["message"].get("reply_markup"), "the answered question keeps no buttons"
    assert any("question 2/2" in t for t in texts(method(second, "sendMessage"))), texts(second)
    # The same button again (the keyboard is gone, so it is an old tap): nothing is sent or
    # edited (a pop-up says it was answered), and one answer stays recorded.
    again = await press(bot, bot.user("dealer"), q1, q1_data, force=True, expect=0)
    assert not method(again, "sendMessage") and not method(again, "editMessageText"), again

    result, _, _ = await answer(bot, second, expect=4)
    said = texts(method(result, "sendMessage"))
    assert any("Quick check: 100% — passed" in t for t in said), said
    assert any("Chilled sells." in t for t in said), said
    assert any("completed Gateway Basics" in t for t in said), said
    assert method(result, "sendDocument"), [e.get("method") for e in result]  # the certificate
    db = Database(bot.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            assert len((await s.scalars(select(Answer))).all()) == 2
    finally:
        await db.dispose()

    # Another dealer forging this dealer's buttons from their own chat gets "expired".
    own = (await bot.say(OTHER, "/courses"))[0]["message"]
    forged = await press(bot, OTHER, own, cont, force=True)
    assert any("expired or isn't yours" in t for t in texts(forged)), texts(forged)
    assert not any("Meet the range" in t for t in texts(forged))

"""A dealer learns through the real gateway and worker, on the emulator — no Rasa needed
(/courses, /next and the trn: buttons never go through NLU): a lesson arrives, "Done" brings
the quiz, each answer edits its question (✓/✗ and the explanation) and the next question
follows, a double tap changes nothing, the score and the certificate arrive, and another
dealer's tap on the same buttons is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.models import Customer
from core.services.accounts import link_identity_directly
from core.settings import Settings
from sandbox.harness import Harness, pick, texts
from tests.training.gateway import training_system
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


async def enroll_d001(s: AsyncSession, settings: Settings) -> None:
    """A second dealer linked to D002; the demo dealer D001 enrolled in COURSE."""
    await link_identity_directly(s, OTHER["id"], OTHER["first_name"], customer_code="D002",
                                 locale="en")
    course = await courses.save_course(s, COURSE, actor="test")
    dealer = await s.scalar(select(Customer.id).where(Customer.code == "D001"))
    assert dealer is not None
    await content.enroll(s, course.id, dealer)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway, worker and scheduler on the demo data, the demo dealer D001
    enrolled in a two-item course (actions and Rasa left out)."""
    async with training_system(tmp_path_factory, "learning-gateway", enroll_d001) as h:
        yield h


def method(sent: list[dict], name: str) -> list[dict]:
    return [e for e in sent if e.get("method") == name]


async def answer(bot: Harness, sent: list[dict],
                 expect: int = 2) -> tuple[list[dict], dict, str]:
    """Answer the question in `sent` right; (what came back, question message, its data)."""
    question = next(e["message"] for e in reversed(sent)
                    if "question" in ((e.get("message") or {}).get("text") or ""))
    text = next(q for q in RIGHT if q in question["text"])
    message, data = pick([{"message": question}], RIGHT[text])
    return await bot.click("dealer", message, data, expect=expect), message, data


async def test_dealer_learns_a_course_with_buttons(bot: Harness) -> None:
    await bot.say("dealer", "hello")  # the persona writes English: replies in English
    listed = await bot.say("dealer", "/courses")
    assert any("Gateway Basics" in t and "0/2 done" in t for t in texts(listed)), texts(listed)
    message, cont = pick(listed, "Continue: Gateway Basics")
    lesson = await bot.click("dealer", message, cont, expect=2)
    assert any("Meet the range" in t and "Our best sellers" in t for t in texts(lesson)), \
        texts(lesson)
    message, done = pick(lesson, "Done")
    quiz = await bot.click("dealer", message, done, expect=3)
    assert any("marked as read" in t for t in texts(quiz)), texts(quiz)
    message, start = pick(quiz, "Start the quiz")
    first = await bot.click("dealer", message, start)
    assert any("question 1/2" in t for t in texts(first)), texts(first)

    second, q1, q1_data = await answer(bot, first)
    edited = method(second, "editMessageText")
    assert edited and "(right)" in texts(edited)[0] and "💡" in texts(edited)[0], second
    assert not edited[0]["message"].get("reply_markup"), "the answered question keeps no buttons"
    assert any("question 2/2" in t for t in texts(method(second, "sendMessage"))), texts(second)
    # The same button again (the keyboard is gone, so it is an old tap): nothing is sent or
    # edited (a pop-up says it was answered), and one answer stays recorded.
    again = await bot.click("dealer", q1, q1_data, force=True, expect=0)
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
    forged = await bot.click(OTHER, own, cont, force=True)
    assert any("expired or isn't yours" in t for t in texts(forged)), texts(forged)
    assert not any("Meet the range" in t for t in texts(forged))

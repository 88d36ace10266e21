"""The README's sandbox story, on the demo data exactly as `make run` seeds it (the course
product-basics from data/demo/training/product-basics), through the real gateway, delivery
worker and scheduler on the emulator (no Rasa: no step goes through NLU):

the trainer pushes the course to D001 and presses Send; the dealer gets lesson 1 (a photo),
Done, lesson 2 (a document), Done, lesson 3 (a link button), Done, the quiz, answers every
drawn question right, passes and gets the certificate; the trainer's /progress shows one
pass; the retailer's /verify confirms the certificate."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox.harness import Harness, buttons, pick
from tests.training.gateway import training_system
from training import bundle
from training.learning import LETTERS
from training.spec import QuestionSpec

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "training" / "product-basics"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """The demo data only; emulator, gateway, worker and scheduler (no actions, no Rasa)."""
    async with training_system(tmp_path_factory, "sandbox-flow") as h:
        yield h


def shown(sent: list[dict]) -> list[str]:
    """What the user reads: each message's text or caption."""
    return [str(m.get("text") or m.get("caption") or "")
            for m in ((e.get("message") or {}) for e in sent)]


async def until(h: Harness, persona: str, after: int, label: str,
                timeout: float = 30) -> list[dict]:
    """Everything the bot sends the persona after seq `after` until a message with a button
    labelled `…label…` has arrived (and the chat went quiet)."""
    chat = h.user(persona)["id"]
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        got += await h.replies(chat, after, timeout=left)
        if got:
            after = max(int(e["seq"]) for e in got)
        if any(label in text for text, _ in buttons(got)):
            return got
    raise AssertionError(f"no {label!r} button for {persona} within {timeout:.0f} s: "
                         f"{shown(got)} {buttons(got)}")


async def press_until(h: Harness, persona: str, sent: list[dict], press: str,
                      label: str) -> list[dict]:
    """Press the button `…press…` among `sent`, then wait for a `…label…` button."""
    message, data = pick(sent, press)
    after = await h.last_seq()
    await h.click(persona, message, data, expect=0)
    return await until(h, persona, after, label)


async def answer_right(h: Harness, sent: list[dict],
                       right: dict[str, QuestionSpec]) -> list[dict]:
    """Answer the newest question in `sent` with the bundle's right option(s); what follows
    (up to the next question or, after the last one, the certificate)."""
    question = next(e["message"] for e in reversed(sent)
                    if "· question" in ((e.get("message") or {}).get("text") or ""))
    spec = next(q for text, q in right.items() if text in question["text"])
    after = await h.last_seq()
    for n in spec.correct:
        message, data = pick([{"message": question}], f"{LETTERS[n]}. {spec.options[n]}")
        edited = await h.click("dealer", message, data, expect=1 if spec.multi else 0)
        if spec.multi:  # ticked, not yet answered: the edited keyboard is the one to use
            question = next(e["message"] for e in reversed(edited)
                            if (e.get("message") or {}).get("message_id")
                            == question["message_id"])
    if spec.multi:
        message, data = pick([{"message": question}], "Submit")
        await h.click("dealer", message, data, expect=0)
    number = re.search(r"question (\d+)/(\d+)", question["text"])
    assert number, question["text"]
    last = number.group(1) == number.group(2)
    return await (until_document(h, after) if last else until(h, "dealer", after, "A. "))


async def until_document(h: Harness, after: int, timeout: float = 30) -> list[dict]:
    """Everything sent to the dealer after `after` until a PDF document arrived."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and not any(
            str((m.get("document") or {}).get("file_name", "")).endswith(".pdf")
            for m in (e.get("message") or {} for e in got)):
        got += await h.replies(h.user("dealer")["id"], after, timeout=left)
        if got:
            after = max(int(e["seq"]) for e in got)
    return got


async def test_the_readme_sandbox_story(bot: Harness) -> None:
    course = bundle.load(DEMO)
    assert course.ok, course.problems
    quiz = course.spec.items[-1]
    right = {q.text: q for q in quiz.questions}
    assert (len(course.spec.items), quiz.kind, len(right), quiz.draw, quiz.pass_mark) == \
        (4, "quiz", 5, 3, 60)

    # The dealer has not written yet: the sandbox registers each persona's private chat (as if
    # they had started the bot) and links them in their own language (the dealer's is English).
    # The trainer, in their private chat with the bot: the preview, then Send.
    preview = await bot.say("trainer", "/push product-basics dealers=D001")
    assert "推送预览" in shown(preview)[0] and course.spec.title in shown(preview)[0], \
        shown(preview)
    after = await bot.last_seq()
    message, send = pick(preview, "发送")
    sent = shown(await bot.click("trainer", message, send))
    assert any("已发出：1 位经销商" in t for t in sent), sent

    # The dealer: lesson 1 from the delivery worker, a photo with its caption.
    lesson = await until(bot, "dealer", after, "Done")
    photos = [e["message"] for e in lesson if (e.get("message") or {}).get("photo")]
    assert photos and "方便面主力产品" in photos[0]["caption"], shown(lesson)
    # Lesson 2: the drinks, with the product sheet as a document.
    lesson = await press_until(bot, "dealer", lesson, "Done", "Done")
    docs = [e["message"]["document"] for e in lesson
            if (e.get("message") or {}).get("document")]
    assert any("饮料与包装水" in t for t in shown(lesson)), shown(lesson)
    assert [d["file_name"] for d in docs] == ["饮料产品资料卡.pdf"], lesson
    # Lesson 3: display tips, with the guide as a link button.
    lesson = await press_until(bot, "dealer", lesson, "Done", "Done")
    assert any("终端陈列小技巧" in t for t in shown(lesson)), shown(lesson)
    links = [b.get("url") for e in lesson
             for row in ((e.get("message") or {}).get("reply_markup") or {})
             .get("inline_keyboard") or [] for b in row]
    assert "https://example.com/training/display-guide" in links, lesson
    # The quiz: its intro, Start, three drawn questions answered right.
    intro = await press_until(bot, "dealer", lesson, "Done", "Start")
    assert any(quiz.title in t for t in shown(intro)), shown(intro)
    sent = await press_until(bot, "dealer", intro, "Start", "A. ")
    asked = []
    for _ in range(quiz.draw):
        asked += [t for t in shown(sent) if "· question" in t]
        sent = await answer_right(bot, sent, right)
    assert len({next(q for q in right if q in t) for t in asked}) == quiz.draw, asked
    said = shown(sent)
    assert any(f"{quiz.title}: 100% — passed (pass mark 60%)" in t for t in said), said
    certificate = [e["message"] for e in sent if (e.get("message") or {}).get("document")]
    assert certificate and certificate[0]["document"]["file_name"].endswith(".pdf"), sent
    code = re.search(r"/verify ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})", " ".join(said))
    assert code, said

    # The trainer's progress report, in their private chat: D001 passed.
    report = " ".join(shown(await bot.say("trainer", "/progress product-basics")))
    assert "报名 1" in report and "已通过 1" in report and "D001" in report, report

    # Anyone can verify the certificate: the retailer does.
    verified = " ".join(shown(await bot.say("retailer", f"/verify {code.group(1)}")))
    assert "证书有效" in verified and course.spec.title in verified, verified
    assert "Li Dealer" in verified or "D001" in verified or "经销商" in verified, verified

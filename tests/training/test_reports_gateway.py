"""/progress and /verify through the real gateway on the emulator (no Rasa): what staff,
a dealer and a retailer see, including the CSV document staff receive."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Customer, TelegramIdentity
from core.settings import Settings
from sandbox.harness import Harness, texts
from tests.training.gateway import training_system
from tests.training.progress_fixture import course_spec
from training import certificates, content, courses

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRAINER = {"id": 1003, "first_name": "Trainer Zhao", "is_bot": False}
STAFF = {"id": 1005, "first_name": "客服小李", "is_bot": False}


async def passed_d001(s: AsyncSession, settings: Settings) -> tuple[str, str]:
    """A course D001 passed with a certificate: (certificate code, the holder's name)."""
    course = await courses.save_course(s, course_spec("rpt", "陈列课"), actor="test")
    dealer = await s.scalar(select(Customer.id).where(Customer.code == "D001"))
    e, _ = await content.enroll(s, course.id, dealer)
    e.passed_at = e.completed_at = e.started_at = e.enrolled_at
    cert = await certificates.issue(s, e.id, settings=settings)
    name = await s.scalar(select(TelegramIdentity.first_name)
                          .where(TelegramIdentity.telegram_user_id == 1002))
    return cert.code, name


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway and worker on the demo data plus a course D001 passed."""
    async with training_system(tmp_path_factory, "training-reports", passed_d001,
                               skip=("rasa", "actions", "scheduler")) as h:
        h.code, h.holder = h.prepared  # type: ignore[attr-defined]
        yield h


async def in_staff_chat(h: Harness, user: dict, text: str) -> list[dict]:
    chat = {"id": h.settings.staff_chat_id, "type": "supergroup", "title": "客服组 Staff desk"}
    after = await h.last_seq()
    await h.control("POST", "updates/message", {"user": user, "chat": chat, "text": text})
    return await h.replies(chat["id"], after)


async def download(h: Harness, file_id: str) -> bytes:
    token = h.settings.bot_token
    async with h.http.post(f"{h.settings.bot_api_base_url}{token}/getFile",
                           json={"file_id": file_id}) as resp:
        path = (await resp.json())["result"]["file_path"]
    async with h.http.get(f"{h.settings.bot_file_base_url}{token}/{path}") as resp:
        return await resp.read()


async def test_trainer_gets_the_report_and_the_csv(bot: Harness) -> None:
    got = texts(await in_staff_chat(bot, TRAINER, "/progress rpt"))
    assert any("陈列课" in t and "报名 1" in t and "已通过 1" in t for t in got), got
    sent = await in_staff_chat(bot, TRAINER, "/progress dealer=D001 csv")
    docs = [e["message"] for e in sent if (e.get("message") or {}).get("document")]
    assert docs and docs[0]["document"]["file_name"] == "training-D001.csv", sent
    table = list(csv.DictReader(io.StringIO((await download(
        bot, docs[0]["document"]["file_id"])).decode("utf-8-sig"))))
    assert [(r["course_code"], r["certificate_code"]) for r in table] == \
        [("rpt", bot.code)]  # type: ignore[attr-defined]
    got = texts(await in_staff_chat(bot, TRAINER, "/progress nosuchcourse"))
    assert any("nosuchcourse" in t for t in got), got


async def test_trainer_gets_the_report_in_a_private_chat_too(bot: Harness) -> None:
    got = texts(await bot.say("trainer", "/progress rpt"))
    assert any("陈列课" in t and "报名 1" in t and "已通过 1" in t for t in got), got


async def test_dealer_is_refused_in_words(bot: Harness) -> None:
    got = texts(await bot.say("dealer", "/progress rpt"))
    refusal = ("Progress reports are for training staff", "学习进度报告仅限培训相关员工")
    assert any(words in t for t in got for words in refusal), got
    assert not any("rpt" in t for t in got)


async def test_anyone_verifies(bot: Harness) -> None:
    code = bot.code.lower().replace("-", " ")  # type: ignore[attr-defined]
    for persona in ("dealer", "retailer"):
        got = " ".join(texts(await bot.say(persona, f"/verify {code}")))
        assert "陈列课" in got and bot.holder in got, got  # type: ignore[attr-defined]
    got = " ".join(texts(await bot.say("retailer", "/verify ABCD-EFGH-JKMN")))
    assert "❌" in got and "陈列课" not in got, got

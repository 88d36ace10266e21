"""Pushes through the real gateway, worker and emulator (no Rasa: /push, /pushes and the
trnp: buttons never go through NLU): the trainer's preview → Send (a double tap fires once),
the dealer gets the lesson from the worker, a non-trainer is refused in words."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.settings import Settings
from sandbox.harness import Harness, pick, texts
from tests.training.gateway import training_system
from tests.training.test_push import course_spec
from training import courses
from training.models import PushRun

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRAINER = {"id": 1003, "first_name": "Trainer Zhao", "language_code": "zh-hans",
           "is_bot": False}  # writes Chinese: the bot answers in Chinese
DEALER = {"id": 1002, "first_name": "Li Dealer", "language_code": "en", "is_bot": False}


async def add_course(s: AsyncSession, settings: Settings) -> None:
    """The test course `basics` next to the demo data."""
    await courses.save_course(s, course_spec(), actor="test")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway, worker and scheduler on the demo data plus a course."""
    async with training_system(tmp_path_factory, "push-gateway", add_course) as h:
        yield h


async def runs(h: Harness) -> int:
    """PushRun rows in the system's database."""
    db = Database(h.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            return int(await s.scalar(select(func.count()).select_from(PushRun)) or 0)
    finally:
        await db.dispose()


async def test_preview_send_double_tap_fires_once_and_the_dealer_gets_the_lesson(
        bot: Harness) -> None:
    await bot.say(DEALER, "hello")  # the dealer's chat exists (the bot may write to them)
    preview = await bot.say(TRAINER, "/push basics lesson=intro dealers=D001,D404 "
                                     "tz=Europe/Berlin")
    shown = texts(preview)[0]
    assert "推送预览" in shown and "认识产品" in shown, shown
    assert "经销商：1 位" in shown and "可在 Telegram 收到 1" in shown, shown
    assert "未知的经销商代码（未包含）：D404" in shown and "时间：立即" in shown
    message, send = pick(preview, "发送")
    after_dealer = await bot.last_seq()
    first = texts(await bot.click(TRAINER, message, send, force=True))
    second = texts(await bot.click(TRAINER, message, send, force=True))
    assert any("已发出：1 位经销商" in t for t in first), first
    assert any("已经发出或已取消" in t for t in second), second
    lesson = await bot.replies(DEALER["id"], after_dealer, timeout=30)
    got = [t for t in texts(lesson) if "认识产品" in t]
    assert len(got) == 1, texts(lesson)
    _, done = pick(lesson, "Done")
    assert done.startswith("trn:done:")
    assert await runs(bot) == 1


async def test_scheduled_push_is_listed_and_cancelled(bot: Harness) -> None:
    preview = await bot.say(TRAINER, "/push basics tiers=key every=mon@09:00 tz=Europe/Berlin")
    shown = texts(preview)[0]
    assert "整门课程" in shown and "每周一 09:00（Europe/Berlin）" in shown, shown
    assert "Asia/Shanghai = " in shown, shown  # the next time in both zones
    message, send = pick(preview, "发送")
    scheduled = texts(await bot.click(TRAINER, message, send, force=True))
    assert any("已排期：每周一 09:00" in t for t in scheduled), scheduled
    listed = await bot.say(TRAINER, "/pushes")
    assert "已排期的推送" in texts(listed)[0]
    message, cancel = pick(listed, "取消 #")
    assert any("已取消" in t for t in texts(await bot.click(TRAINER, message, cancel, force=True)))
    assert "没有已排期的推送" in texts(await bot.say(TRAINER, "/pushes"))[0]


async def test_a_dealer_cannot_push_or_press_a_trainers_button(bot: Harness) -> None:
    said = await bot.say(DEALER, "/push basics all")
    refused = texts(said)
    assert any("Only trainers can push" in t for t in refused), refused
    own = said[0]["message"]  # a message in the dealer's chat to "press" forged data on
    assert any("Only trainers" in t for t in texts(await bot.say(DEALER, "/pushes")))
    preview = await bot.say(TRAINER, "/push basics lesson=shelf dealers=D001")
    message, send = pick(preview, "发送")
    before = await runs(bot)
    forged = texts(await bot.click(DEALER, own, send, force=True))  # the trainer's payload
    assert any("Only trainers" in t for t in forged), forged
    for bad in ("trnp:ok:abc", "trnp:ok:99999999", "trnp:cancel:-1"):
        await bot.click(TRAINER, message, bad, force=True)
    assert await runs(bot) == before  # nothing fired
    message, cancel = pick(preview, "取消")
    assert any("已放弃" in t for t in texts(await bot.click(TRAINER, message, cancel, force=True)))
    assert any("已经发出或已取消" in t
               for t in texts(await bot.click(TRAINER, message, send, force=True)))

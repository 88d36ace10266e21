"""Pushes through the real gateway, worker and emulator (no Rasa: /push, /pushes and the
trnp: buttons never go through NLU): the trainer's preview → Send (a double tap fires once),
the dealer gets the lesson from the worker, a non-trainer is refused in words."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from bot.launcher import (
    Stack,
    link_sandbox_personas,
    process_env,
    register_sandbox_chats,
    standard_procs,
)
from core.cli import cmd_migrate, cmd_seed_demo
from core.db import Database
from core.settings import load_settings
from sandbox.harness import Harness, TcpSwitch, buttons, free_port, texts
from tests.training.test_push import course_spec
from training import courses
from training.models import PushRun

pytestmark = pytest.mark.asyncio(loop_scope="module")

TRAINER = {"id": 1003, "first_name": "Trainer Zhao", "language_code": "zh-hans",
           "is_bot": False}  # writes Chinese: the bot answers in Chinese
DEALER = {"id": 1002, "first_name": "Li Dealer", "language_code": "en", "is_bot": False}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway, worker and scheduler on the demo data plus a course."""
    data: Path = tmp_path_factory.mktemp("push-gateway")
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
            if await s.scalar(select(func.count()).select_from(courses.Course)
                              .where(courses.Course.code == "basics")) == 0:
                await courses.save_course(s, course_spec(), actor="test")
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
    """The message and callback data of the first button whose label has `label_part`."""
    for e in sent:
        message = e.get("message") or {}
        for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
            for b in row:
                if label_part in b["text"]:
                    return message, b["callback_data"]
    raise AssertionError(f"no {label_part!r} in {buttons(sent)}")


async def press(h: Harness, user: dict, message: dict, data: str) -> list[dict]:
    """Press a button (even one whose keyboard is gone, like a fast double tap)."""
    after = await h.last_seq()
    await h.control("POST", "updates/callback", {"user": user, "chat_id": user["id"],
                                                 "message_id": message["message_id"],
                                                 "data": data, "force": True})
    return await h.replies(user["id"], after)


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
    first = texts(await press(bot, TRAINER, message, send))
    second = texts(await press(bot, TRAINER, message, send))
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
    scheduled = texts(await press(bot, TRAINER, message, send))
    assert any("已排期：每周一 09:00" in t for t in scheduled), scheduled
    listed = await bot.say(TRAINER, "/pushes")
    assert "已排期的推送" in texts(listed)[0]
    message, cancel = pick(listed, "取消 #")
    assert any("已取消" in t for t in texts(await press(bot, TRAINER, message, cancel)))
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
    forged = texts(await press(bot, DEALER, own, send))  # the trainer's payload
    assert any("Only trainers" in t for t in forged), forged
    for bad in ("trnp:ok:abc", "trnp:ok:99999999", "trnp:cancel:-1"):
        await press(bot, TRAINER, message, bad)
    assert await runs(bot) == before  # nothing fired
    message, cancel = pick(preview, "取消")
    assert any("已放弃" in t for t in texts(await press(bot, TRAINER, message, cancel)))
    assert any("已经发出或已取消" in t
               for t in texts(await press(bot, TRAINER, message, send)))

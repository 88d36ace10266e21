"""The points commands and buttons through the real gateway and worker, on the emulator —
no Rasa needed (/points, /redeem, /top and the pts: buttons never go through NLU)."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from bot.launcher import (
    Stack,
    link_sandbox_personas,
    process_env,
    register_sandbox_chats,
    standard_procs,
)
from core.cli import cmd_migrate, cmd_seed_demo
from core.db import Database
from core.services.accounts import link_identity_directly
from core.settings import load_settings
from sandbox.harness import Harness, TcpSwitch, buttons, free_port, texts

pytestmark = pytest.mark.asyncio(loop_scope="module")

STAFF = {"id": 1005, "first_name": "客服小李", "is_bot": False}
TRAINER = {"id": 1003, "first_name": "Trainer Zhao", "is_bot": False}
OTHER = {"id": 778002, "first_name": "Other Dealer", "language_code": "en", "is_bot": False}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """Emulator, gateway, worker and scheduler on the demo data (actions and Rasa left out)."""
    data: Path = tmp_path_factory.mktemp("points-gateway")
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
        async with db.transaction() as s:  # a second dealer (D002) chatting with the bot
            await link_identity_directly(s, OTHER["id"], OTHER["first_name"],
                                         customer_code="D002", locale="en")
    finally:
        await db.dispose()
    full = process_env(settings, None, base=env)
    stack = Stack(full, echo=False, log_dir=data / "logs")
    switch = TcpSwitch(free_port())
    harness = Harness(settings=settings, env=full, stack=stack, switch=switch, data_dir=data)
    try:
        for proc in standard_procs(settings):
            if proc.name in ("rasa", "actions"):
                continue
            await stack.start(proc, timeout=60)
            if proc.name == "emulator":
                await register_sandbox_chats(settings)
        harness.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        await harness.control("POST", "updates/message", {  # the trainer is in the staff group
            "user": TRAINER, "chat": staff_chat(harness), "text": "hi all"})
        yield harness
    finally:
        if harness.http is not None:
            await harness.http.close()
        await stack.stop()


def staff_chat(h: Harness) -> dict:
    return {"id": h.settings.staff_chat_id, "type": "supergroup", "title": "客服组 Staff desk"}


def pick(sent: list[dict], label_part: str) -> tuple[dict, str]:
    for e in sent:
        message = e.get("message") or {}
        for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
            for b in row:
                if label_part in b["text"] or label_part == b["callback_data"]:
                    return message, b["callback_data"]
    raise AssertionError(f"no {label_part!r} in {buttons(sent)}")


async def press(h: Harness, user: dict, message: dict, data: str, *, chat_id: int | None = None,
                force: bool = False, timeout: float = 10) -> list[dict]:
    chat_id = chat_id if chat_id is not None else message["chat"]["id"]
    after = await h.last_seq()
    await h.control("POST", "updates/callback", {"user": user, "chat_id": chat_id,
                                                 "message_id": message["message_id"],
                                                 "data": data, "force": force})
    return await h.replies(chat_id, after, timeout=timeout)


async def test_commands_show_balance_catalogue_pages_and_leaderboard(bot: Harness) -> None:
    await bot.say("dealer", "hello")  # the persona writes English: replies in English
    balance = texts(await bot.say("dealer", "/points"))
    assert "Your points: 2000 available, 50291 pending" in balance[0], balance
    top = await bot.say("dealer", "/top")
    assert "region 华东, this month" in texts(top)[0] and "(you)" in texts(top)[0]
    message, data = pick(top, "pts:top:tier:all")
    tier = await press(bot, bot.user("dealer"), message, data)
    assert any("tier key, all time" in t for t in texts(tier)), texts(tier)
    catalogue = await bot.say("dealer", "/redeem")
    message, data = pick(catalogue, "Next")
    page2 = await press(bot, bot.user("dealer"), message, data)
    assert any("page 2/2" in t and "fridge" in t for t in texts(page2)), texts(page2)


async def test_forged_and_foreign_buttons_do_nothing(bot: Harness) -> None:
    catalogue = await bot.say("dealer", "/redeem")
    message, data = pick(catalogue, "mug")
    confirm = await press(bot, bot.user("dealer"), message, data)
    message, ok = pick(confirm, "Confirm")
    # Forged payloads: not a number, an id that is not the presser's, a staff verb in private.
    for forged in ("pts:ok:abc", "pts:ok:999999", "pts:approve:1", "pts:pick:-1"):
        got = texts(await press(bot, bot.user("dealer"), message, forged, force=True))
        assert not any("✅" in t for t in got), (forged, got)
    # Another dealer sending this dealer's confirm payload from their own chat.
    other_chat = await bot.say(OTHER, "/points")
    own = other_chat[0]["message"]
    got = texts(await press(bot, OTHER, own, ok, force=True))
    assert any("isn't yours" in t for t in got), got
    assert "0 available" in texts(await bot.say(OTHER, "/points"))[0]
    balance = texts(await bot.say("dealer", "/points"))
    assert "2000 available" in balance[0], balance  # nothing was spent


async def test_confirm_twice_and_staff_roles(bot: Harness) -> None:
    catalogue = await bot.say("dealer", "/redeem")
    message, data = pick(catalogue, "apron")
    confirm = await press(bot, bot.user("dealer"), message, data)
    message, ok = pick(confirm, "Confirm")
    after = await bot.last_seq()
    done = texts(await press(bot, bot.user("dealer"), message, ok))
    assert any("1700 points left" in t for t in done), done
    again = texts(await press(bot, bot.user("dealer"), message, ok, force=True))
    assert any("Already done" in t for t in again), again
    posted = await bot.replies(bot.settings.staff_chat_id, after, timeout=15)
    post, approve = pick(posted, "通过")
    # The trainer (a staff role, but not one that decides redemptions) is refused, with an
    # alert and nothing posted; the request stays pending.
    refused = await press(bot, TRAINER, post, approve)
    assert not [t for t in texts(refused) if t], texts(refused)
    decided = texts(await press(bot, STAFF, post, approve))
    assert any("审核通过" in t for t in decided), decided
    twice = texts(await press(bot, STAFF, post, approve, force=True))
    assert not any("审核通过" in t for t in twice[1:]), twice
    balance = texts(await bot.say("dealer", "/points"))
    assert "1700 available" in balance[0], balance


async def test_reject_by_command_needs_a_reason_and_refunds(bot: Harness) -> None:
    catalogue = await bot.say("dealer", "/redeem")
    message, data = pick(catalogue, "umbrella")
    confirm = await press(bot, bot.user("dealer"), message, data)
    message, ok = pick(confirm, "Confirm")
    done = texts(await press(bot, bot.user("dealer"), message, ok))
    request = next(t for t in done if "request #" in t).split("request #")[1].split(")")[0]
    async def staff_says(text: str) -> list[str]:
        after = await bot.last_seq()
        await bot.control("POST", "updates/message", {"user": STAFF, "chat": staff_chat(bot),
                                                      "text": text})
        return texts(await bot.replies(bot.settings.staff_chat_id, after, timeout=10))

    assert any("reason" in t.lower() or "原因" in t for t in await staff_says(
        f"/reject {request}")), "an empty reason is refused"
    after = await bot.last_seq()
    assert any("拒绝" in t and "没货了" in t for t in await staff_says(
        f"/reject {request} 没货了"))
    told = texts(await bot.replies(bot.user("dealer")["id"], after, timeout=15))
    assert any("not approved" in t and "没货了" in t for t in told), told
    assert any("already" in t.lower() or "已处理" in t for t in await staff_says(
        f"/reject {request} again"))
    balance = texts(await bot.say("dealer", "/points"))
    assert "1700 available" in balance[0], balance

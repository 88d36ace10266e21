"""Telegram's flood limits: 30 msg/s per bot, 20 msg/min per group, ~1 msg/s per private chat."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
from telegram import Bot
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

from sandbox.emulator import RunningEmulator, running_emulator
from sandbox.emulator.__main__ import parse_args
from sandbox.emulator.limits import (
    GLOBAL_MAX,
    GROUP_MAX,
    PRIVATE_BURST,
    LimitConfig,
    RateLimiter,
)
from tests.emulator.conftest import DAN, GROUP, RITA, TESS, Control, FakeClock, make_bot

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after as seconds (int, or timedelta with PTB_TIMEDELTA=1)."""
    value = error.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


async def test_private_chat_allows_a_short_burst_then_one_per_second(
    bot: Bot, ctl: Control, clock: FakeClock
) -> None:
    await ctl.say(RITA, "hi")
    for i in range(PRIVATE_BURST):
        await bot.send_message(RITA["id"], f"burst {i}")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(RITA["id"], "one too many")
    assert seconds(info.value) == 1
    clock.advance(0.5)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(RITA["id"], "still too early")
    assert seconds(info.value) == 1  # whole seconds, rounded up
    clock.advance(0.5)
    await bot.send_message(RITA["id"], "a second later")
    with pytest.raises(RetryAfter):
        await bot.send_message(RITA["id"], "and again too fast")
    # another private chat has its own bucket
    await ctl.say(DAN, "hello")
    await bot.send_message(DAN["id"], "dan is not limited by rita's chat")
    # refused calls created nothing and did not count
    history = await ctl.get(f"chats/{RITA['id']}/history")
    assert [m["text"] for m in history["messages"][1:]] == [
        *(f"burst {i}" for i in range(PRIVATE_BURST)), "a second later"]
    stats = await ctl.get("stats")
    assert stats["accepted"]["per_chat"] == {str(RITA["id"]): PRIVATE_BURST + 1,
                                             str(DAN["id"]): 1}
    assert stats["refused"]["private"] == 3 and stats["refused"]["total"] == 3
    assert stats["refused"]["per_chat"] == {str(RITA["id"]): 3}


async def test_group_allows_20_per_minute(bot: Bot, ctl: Control, clock: FakeClock) -> None:
    await ctl.group()
    other = {"id": -1009999999999, "type": "supergroup", "title": "Other"}
    await ctl.group(other)
    for i in range(GROUP_MAX):
        await bot.send_message(GROUP["id"], f"news {i}")
        clock.advance(0.5)  # 20 messages over 10 s: fine for the 30/s limit, not for a group
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(GROUP["id"], "21st within a minute")
    assert seconds(info.value) == 50  # the first message leaves the window at t=60
    assert (await bot.send_message(other["id"], "other group")).chat.id == other["id"]
    clock.advance(49.5)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(GROUP["id"], "half a second early")
    assert seconds(info.value) == 1
    clock.advance(0.5)
    await bot.send_message(GROUP["id"], "a minute after the first")
    stats = await ctl.get("stats")
    assert stats["accepted"]["per_chat"][str(GROUP["id"])] == GROUP_MAX + 1
    assert stats["refused"]["group"] == 2


async def test_bot_wide_limit_of_30_per_second(bot: Bot, ctl: Control,
                                               clock: FakeClock) -> None:
    groups = [{"id": -1000000000100 - i, "type": "supergroup", "title": f"G{i}"}
              for i in range(2)]
    for group in groups:
        await ctl.group(group)
    for i in range(GLOBAL_MAX):
        await bot.send_message(groups[i % 2]["id"], f"blast {i}")
    for chat in (groups[0], groups[1]):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(chat["id"], "31st in one second")
        assert seconds(info.value) == 1
    # forwardMessage and copyMessage are messages too
    with pytest.raises(RetryAfter):
        await bot.copy_message(groups[0]["id"], groups[1]["id"], 1)
    # another bot (token) has its own allowance
    other = make_bot_with_token(bot, "987654321:other-bot")
    async with other:
        assert (await other.send_message(groups[0]["id"], "other bot")).text == "other bot"
    clock.advance(1.0)
    await bot.send_message(groups[0]["id"], "next second")
    stats = await ctl.get("stats")
    assert stats["refused"]["global"] == 3
    assert stats["accepted"]["total"] == GLOBAL_MAX + 2


def make_bot_with_token(bot: Bot, token: str) -> Bot:
    """A second Bot on the same emulator with another token."""
    return Bot(token, base_url=bot.base_url.rsplit("/bot", 1)[0] + "/bot",
               base_file_url=bot.base_file_url.rsplit("/file/bot", 1)[0] + "/file/bot")


async def test_edits_and_chat_actions_are_not_limited(bot: Bot, ctl: Control,
                                                      clock: FakeClock) -> None:
    await ctl.say(RITA, "hi")
    sent = await bot.send_message(RITA["id"], "v0")
    for i in range(1, 6):
        await bot.edit_message_text(f"v{i}", RITA["id"], sent.message_id)
        await bot.send_chat_action(RITA["id"], "typing")
    assert (await ctl.get("stats"))["refused"]["total"] == 0


async def test_limits_can_be_changed_and_switched_off(bot: Bot, ctl: Control,
                                                      clock: FakeClock) -> None:
    assert await ctl.get("limits") == {
        "enabled": True, "global_max": 30, "global_period": 1.0, "group_max": 20,
        "group_period": 60.0, "private_burst": PRIVATE_BURST, "private_rate": 1.0}
    await ctl.say(RITA, "hi")
    changed = await ctl.post("limits", {"private_burst": 1})
    assert changed["private_burst"] == 1 and changed["enabled"] is True
    await bot.send_message(RITA["id"], "one")
    with pytest.raises(RetryAfter):
        await bot.send_message(RITA["id"], "two")
    # this test is about the switch itself, so switching off is the point here
    assert (await ctl.post("limits", {"enabled": False}))["enabled"] is False
    for i in range(10):
        await bot.send_message(RITA["id"], f"unlimited {i}")
    health = await ctl.get("health")
    assert health["rate_limits"] is False and health["rate_limited"] == 1
    await ctl.post("limits", {"enabled": "no"}, expect=400)
    await ctl.post("limits", {"group_max": 0}, expect=400)
    await ctl.post("limits", {"per_hour": 5}, expect=400)
    # reset forgets windows and counters but keeps the configuration
    await ctl.post("reset", {})
    assert (await ctl.get("limits"))["enabled"] is False
    assert (await ctl.get("stats"))["accepted"]["total"] == 0


async def test_accepted_messages_carry_their_time(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    before = time.time()
    await bot.send_message(RITA["id"], "a")
    await bot.send_message(RITA["id"], "b")
    sent = await ctl.get(f"sent?chat_id={RITA['id']}")
    assert [e["method"] for e in sent] == ["sendMessage", "sendMessage"]
    assert before <= sent[0]["time"] <= sent[1]["time"] <= time.time()
    stats = await ctl.get("stats")
    assert before <= stats["first_accepted_at"] <= stats["last_accepted_at"] <= time.time()
    assert stats["span_seconds"] == pytest.approx(
        stats["last_accepted_at"] - stats["first_accepted_at"], abs=1e-5)


async def test_ptb_rate_limiter_copes_like_the_gateway(emu: RunningEmulator,
                                                       ctl: Control) -> None:
    # The gateway uses AIORateLimiter(max_retries=3): it waits out each 429 and retries.
    await ctl.say(TESS, "hi")
    bot = make_bot(emu, rate_limiter=AIORateLimiter(max_retries=3))
    async with bot:
        started = time.monotonic()
        for i in range(PRIVATE_BURST + 1):
            await bot.send_message(TESS["id"], f"part {i}")
        elapsed = time.monotonic() - started
    history = await ctl.get(f"chats/{TESS['id']}/history")
    assert [m["text"] for m in history["messages"][1:]] == [
        f"part {i}" for i in range(PRIVATE_BURST + 1)]
    stats = await ctl.get("stats")
    assert stats["refused"]["private"] == 1  # one 429, waited out, then delivered
    assert elapsed >= 1.0


def test_window_arithmetic() -> None:
    now = [0.0]
    limiter = RateLimiter(LimitConfig(global_max=3, global_period=1.0, group_max=2,
                                      group_period=10.0, private_burst=2, private_rate=0.5),
                          clock=lambda: now[0])
    for _ in range(2):
        assert limiter.check(1, -5, "supergroup") is None
        limiter.accept(1, -5, "supergroup")
    refusal = limiter.check(1, -5, "supergroup")
    assert refusal is not None and (refusal.kind, refusal.retry_after) == ("group", 10)
    assert limiter.check(1, 7, "private") is None
    limiter.accept(1, 7, "private")
    # global window full (3 in 1 s) and the private bucket still has a token: global binds
    refusal = limiter.check(1, 7, "private")
    assert refusal is not None and (refusal.kind, refusal.retry_after) == ("global", 1)
    now[0] = 1.0
    assert limiter.check(1, 7, "private") is None
    limiter.accept(1, 7, "private")
    # bucket: 2 - 1 + 0.5 refill - 1 = 0.5 tokens; 0.5 more take 1 s at 0.5/s
    refusal = limiter.check(1, 7, "private")
    assert refusal is not None and (refusal.kind, refusal.retry_after) == ("private", 1)
    assert limiter.check(2, 7, "private") is None  # another bot
    assert limiter.check(1, None, None) is None  # unknown chat: only the bot-wide limit
    assert limiter.refused == {"global": 1, "group": 1, "private": 1}


def test_cli_flag_switches_limits_off() -> None:
    assert parse_args([]).rate_limits is True
    assert parse_args(["--no-rate-limits"]).rate_limits is False
    done = subprocess.run([sys.executable, "-m", "sandbox.emulator", "--help"], cwd=PROJECT,
                          capture_output=True, text=True, timeout=30, check=True)
    assert "--no-rate-limits" in done.stdout


async def test_emulator_started_without_limits(http) -> None:
    async with running_emulator(rate_limits=False) as emu:
        async with http.get(f"{emu.url}/_emulator/limits") as resp:
            assert (await resp.json())["enabled"] is False

"""Failure modes: injected 429/500/502/drop/slow faults, redelivery, webhook delivery, reset."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, Conflict, NetworkError, RetryAfter

from tests.emulator.conftest import RITA, Control


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_raises_retry_after_with_the_value(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    faults = await ctl.post("faults", {"method": "sendMessage", "kind": "429", "times": 2,
                                       "retry_after": 7})
    assert faults == [{"method": "sendmessage", "kind": "429", "times": 2, "retry_after": 7,
                       "delay": 0.0, "process": False}]
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(RITA["id"], "flood")
        retry_after = info.value.retry_after  # int, or timedelta with PTB_TIMEDELTA=1
        seconds = retry_after.total_seconds() if isinstance(retry_after, dt.timedelta) \
            else retry_after
        assert seconds == 7
    assert (await bot.send_message(RITA["id"], "now it works")).text == "now it works"
    assert await ctl.get("faults") == []
    statuses = [c["status"] for c in await ctl.get("calls?method=sendmessage")]
    assert statuses == [429, 429, 200]
    assert await ctl.get(f"sent?chat_id={RITA['id']}") != []  # only the successful send


async def test_429_json_matches_telegram(emu, ctl: Control, http) -> None:
    await ctl.post("faults", {"method": "*", "kind": "429", "retry_after": 3})
    async with http.get(f"{emu.url}/bot1:x/getMe") as resp:
        assert resp.status == 429
        assert await resp.json() == {"ok": False, "error_code": 429,
                                     "description": "Too Many Requests: retry after 3",
                                     "parameters": {"retry_after": 3}}


async def test_500_and_502_are_network_errors(bot: Bot, ctl: Control) -> None:
    await ctl.post("faults", {"method": "getMe", "kind": "500"})
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.get_me()
    await ctl.post("faults", {"method": "getMe", "kind": "502"})
    with pytest.raises(NetworkError, match=r"Bad Gateway \(502\)"):
        await bot.get_me()  # an nginx HTML page, not JSON, like the real 502
    assert (await bot.get_me()).username == "sandbox_bot"


async def test_dropped_connection(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    await ctl.post("faults", {"method": "sendMessage", "kind": "drop"})
    with pytest.raises(NetworkError):
        await bot.send_message(RITA["id"], "lost")
    assert await ctl.get(f"sent?chat_id={RITA['id']}") == []  # never processed
    # "process": the call takes effect but the answer is lost - the duplicate-send trap
    await ctl.post("faults", {"method": "sendMessage", "kind": "drop", "process": True})
    with pytest.raises(NetworkError):
        await bot.send_message(RITA["id"], "delivered but unanswered")
    sent = await ctl.get(f"sent?chat_id={RITA['id']}")
    assert [e["message"]["text"] for e in sent] == ["delivered but unanswered"]


async def test_slow_fault_delays_then_answers(bot: Bot, ctl: Control) -> None:
    await ctl.post("faults", {"method": "*", "kind": "slow", "delay": 0.6})
    started = time.monotonic()
    assert (await bot.get_me()).is_bot
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started < 0.5  # used up


async def test_fault_validation_and_clear(ctl: Control) -> None:
    await ctl.post("faults", {"kind": "boom"}, expect=400)
    await ctl.post("faults", {"kind": "429", "times": 0}, expect=400)
    await ctl.post("faults", {"kind": "500", "times": 3})
    assert len(await ctl.get("faults")) == 1
    assert await ctl.request("DELETE", "faults") == []
    assert await ctl.get("faults") == []


async def test_redelivery_repeats_the_same_update_id(bot: Bot, ctl: Control) -> None:
    injected = await ctl.say(RITA, "order 10 boxes")
    first = await bot.get_updates(timeout=0)
    assert await bot.get_updates(offset=first[-1].update_id + 1, timeout=0) == ()
    await ctl.post("updates/redeliver", {"update_id": injected["update_id"]})
    # delivered again although the bot's offset is already past it, like after a crash
    again = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert [u.update_id for u in again] == [injected["update_id"]]
    assert again[0].message.text == "order 10 boxes"
    assert await bot.get_updates(offset=again[-1].update_id + 1, timeout=0) == ()


async def test_reset_clears_everything(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    await bot.send_message(RITA["id"], "hello")
    await ctl.post("faults", {"kind": "500"})
    assert await ctl.post("reset", {}) == {"reset": True}
    assert await ctl.get("faults") == [] and await ctl.get("sent") == []
    assert await ctl.get("calls") == []
    await ctl.get(f"chats/{RITA['id']}", expect=404)
    assert (await ctl.get("updates"))["pending"] == []


async def test_control_api_requires_json(emu, http) -> None:
    # a form post from another web page must not be able to drive the emulator
    async with http.post(f"{emu.url}/_emulator/updates/message",
                         data="user=1&text=hi") as resp:
        assert resp.status == 415


async def test_sent_long_poll_wakes_on_new_message(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    waiter = asyncio.create_task(ctl.get(f"sent?chat_id={RITA['id']}&after=0&timeout=5"))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    started = time.monotonic()
    await bot.send_message(RITA["id"], "answer")
    entries = await waiter
    assert [e["message"]["text"] for e in entries] == ["answer"]
    assert time.monotonic() - started < 1.5
    after = entries[-1]["seq"]
    assert await ctl.get(f"sent?chat_id={RITA['id']}&after={after}&timeout=0.2") == []


class Receiver:
    """A local webhook endpoint that answers with scripted statuses."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.statuses = [500, 200]
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        """Record the POST and reply with the next scripted status."""
        self.received.append((dict(request.headers), await request.json()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.got.set()
        return web.Response(status=status)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """Receiver served on a free port; yields it and its URL."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield rec, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_webhook_delivery_with_secret_and_retry(
    bot: Bot, ctl: Control, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    assert await bot.set_webhook(url, secret_token="s3cr3t-Token_1")
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)
    injected = await ctl.say(RITA, "via webhook")
    await asyncio.wait_for(rec.got.wait(), 5)
    assert len(rec.received) == 2  # first answered 500, then retried
    for headers, body in rec.received:
        assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t-Token_1"
        assert body["update_id"] == injected["update_id"]
        assert body["message"]["text"] == "via webhook"
    info = await bot.get_webhook_info()
    assert info.url == url and info.pending_update_count == 0
    assert "500" in info.last_error_message
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == ()


async def test_webhook_rejects_bad_secret_and_drop_pending(bot: Bot, ctl: Control) -> None:
    with pytest.raises(BadRequest, match="Secret token contains unallowed characters"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="no spaces!")
    await ctl.say(RITA, "pending")
    # unreachable URL: the update stays pending and the error is reported
    assert await bot.set_webhook("http://127.0.0.1:9/hook")
    await asyncio.sleep(0.3)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1 and info.last_error_message
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == ()


async def test_reset_under_a_running_bot_keeps_ids_increasing(bot: Bot, ctl: Control) -> None:
    before = await ctl.say(RITA, "before")
    await bot.send_message(RITA["id"], "reply before")
    old_seq = (await ctl.get("sent"))[-1]["seq"]
    offset = before["update_id"] + 1
    poll = asyncio.create_task(bot.get_updates(offset=offset, timeout=3))
    await asyncio.sleep(0.2)
    await ctl.post("reset", {})
    after = await ctl.say(RITA, "after")
    # the waiting poll neither conflicts nor loses the new update to its old offset
    assert [u.message.text for u in await poll] == ["after"]
    assert after["update_id"] > before["update_id"]
    await bot.send_message(RITA["id"], "reply after")
    new = await ctl.get(f"sent?after={old_seq}")
    assert [e["message"]["text"] for e in new] == ["reply after"]
    health = await ctl.get("health")
    assert health["last_seq"] == new[-1]["seq"] and health["pending_updates"] == 1

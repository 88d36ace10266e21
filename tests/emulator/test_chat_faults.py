"""Failures a delivery worker meets per chat: blocked, kicked, not found, migrated, deleted,
5xx and timeouts — as injected faults and as state, raised as PTB's real exceptions."""

from __future__ import annotations

import pytest
from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, TimedOut

from sandbox.emulator import RunningEmulator
from tests.emulator.conftest import DAN, GROUP, RITA, Control

BASIC = {"id": -4567, "type": "group", "title": "Dealers (basic group)"}
OWNER = {"id": 2001, "first_name": "Olga"}


async def raw_send(http, emu: RunningEmulator, chat_id: int) -> tuple[int, dict]:
    """sendMessage without PTB: the exact JSON Telegram would answer."""
    async with http.post(f"{emu.url}/bot1:x/sendMessage",
                         json={"chat_id": chat_id, "text": "x"}) as resp:
        return resp.status, await resp.json()


async def test_blocked_fault_until_removed_for_one_chat(bot: Bot, ctl: Control, emu,
                                                        http) -> None:
    await ctl.say(RITA, "hi")
    await ctl.say(DAN, "hi")
    faults = await ctl.post("faults", {"kind": "blocked", "chat_id": RITA["id"], "times": None})
    assert faults[0]["times"] is None and faults[0]["chat_id"] == RITA["id"]
    for _ in range(3):
        with pytest.raises(Forbidden) as info:
            await bot.send_message(RITA["id"], "promo")
        assert info.value.message == "Forbidden: bot was blocked by the user"
    assert (await bot.send_message(DAN["id"], "dan still gets it")).text  # other chats fine
    assert await raw_send(http, emu, RITA["id"]) == (403, {
        "ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    assert len(await ctl.get("faults")) == 1  # still there
    assert await ctl.request("DELETE", f"faults?chat_id={RITA['id']}") == []
    assert (await bot.send_message(RITA["id"], "back")).text == "back"


async def test_user_blocks_and_unblocks_the_bot(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    first = await bot.get_updates(timeout=0)
    offset = first[-1].update_id + 1
    blocked = await ctl.post(f"users/{RITA['id']}/block", {})
    assert blocked["blocked"] is True and blocked["queued"] is True
    for _ in range(2):  # state, not a one-off fault
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(RITA["id"], "are you there?")
    updates = await bot.get_updates(offset=offset, timeout=0)
    change = updates[-1].my_chat_member
    assert (change.old_chat_member.status, change.new_chat_member.status) == ("member",
                                                                              "kicked")
    assert (await ctl.post(f"users/{RITA['id']}/block", {}))["queued"] is False  # no-op
    await ctl.post(f"users/{RITA['id']}/unblock", {})
    assert (await bot.send_message(RITA["id"], "welcome back")).text == "welcome back"
    await ctl.post("users/424242/block", {}, expect=404)  # never wrote to the bot


async def test_chat_not_found(bot: Bot, ctl: Control, emu, http) -> None:
    # a chat the bot never saw is "chat not found", like Telegram
    with pytest.raises(BadRequest) as info:
        await bot.send_message(-1005555555555, "hello?")
    assert info.value.message == "Chat not found"  # PTB strips "Bad Request: "
    assert await raw_send(http, emu, 777) == (400, {
        "ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    # and as a fault on a chat that exists
    await ctl.say(RITA, "hi")
    await ctl.post("faults", {"kind": "chat_not_found", "chat_id": RITA["id"]})
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(RITA["id"], "x")
    assert (await bot.send_message(RITA["id"], "times=1 used up")).text


async def test_bot_kicked_from_a_group(bot: Bot, ctl: Control, emu, http) -> None:
    await ctl.group(members=[{"user": OWNER, "status": "creator"}])
    await bot.send_message(GROUP["id"], "hello group")
    # an admin removes (bans) the bot through the control API
    await ctl.post("updates/my_chat_member", {"user": OWNER, "chat": {"id": GROUP["id"]},
                                              "status": "kicked"})
    with pytest.raises(Forbidden) as info:
        await bot.send_message(GROUP["id"], "still here?")
    assert info.value.message == "Forbidden: bot was kicked from the supergroup chat"
    # the fault words the error for the chat's type
    await ctl.post("chats", {**BASIC, "members": [{"user": OWNER, "status": "creator"}]})
    await ctl.post("faults", {"kind": "kicked", "chat_id": BASIC["id"]})
    assert await raw_send(http, emu, BASIC["id"]) == (403, {
        "ok": False, "error_code": 403,
        "description": "Forbidden: bot was kicked from the group chat"})


async def test_group_migrates_to_a_supergroup(bot: Bot, ctl: Control, emu, http) -> None:
    await ctl.post("chats", {**BASIC, "members": [{"user": OWNER, "status": "creator"},
                                                  {"user": DAN, "status": "member"}]})
    await ctl.post("updates/message", {"user": DAN, "chat": {"id": BASIC["id"]},
                                       "text": "/start"})
    await bot.get_updates(timeout=0)
    done = await ctl.post(f"chats/{BASIC['id']}/migrate", {})
    new_id = done["new_chat_id"]
    assert new_id == -1000000004567 and done["old_chat_id"] == BASIC["id"]
    updates = await bot.get_updates(offset=-2, timeout=0)
    old_msg, new_msg = updates[0].message, updates[1].message
    assert (old_msg.chat.id, old_msg.migrate_to_chat_id) == (BASIC["id"], new_id)
    assert (new_msg.chat.id, new_msg.migrate_from_chat_id) == (new_id, BASIC["id"])
    assert new_msg.chat.type == "supergroup" and new_msg.from_user.id == OWNER["id"]
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(BASIC["id"], "to the old id")
    assert info.value.new_chat_id == new_id
    assert await raw_send(http, emu, BASIC["id"]) == (400, {
        "ok": False, "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": new_id}})
    # members and the bot's rights moved along
    assert (await bot.send_message(new_id, "to the new id")).chat.id == new_id
    assert (await bot.get_chat_member(new_id, DAN["id"])).status == "member"
    assert (await bot.get_chat(new_id)).title == BASIC["title"]
    # nobody can write in the old group any more; the page no longer offers it
    await ctl.post("updates/message", {"user": DAN, "chat": {"id": BASIC["id"]}, "text": "x"},
                   expect=409)
    assert [c["chat"]["id"] for c in await ctl.get("chats?type=group,supergroup")] == [new_id]
    await ctl.post(f"chats/{BASIC['id']}/migrate", {}, expect=409)
    await ctl.post(f"chats/{GROUP['id']}/migrate", {}, expect=404)
    await ctl.group()
    await ctl.post(f"chats/{GROUP['id']}/migrate", {}, expect=400)  # already a supergroup


async def test_migrated_fault(bot: Bot, ctl: Control) -> None:
    await ctl.post("chats", BASIC)
    await ctl.post("faults", {"kind": "migrated", "chat_id": BASIC["id"],
                              "migrate_to_chat_id": -1001112223334})
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(BASIC["id"], "x")
    assert info.value.new_chat_id == -1001112223334


async def test_deleted_groups(bot: Bot, ctl: Control) -> None:
    await ctl.post("chats", BASIC)
    await ctl.group()
    assert await ctl.request("DELETE", f"chats/{BASIC['id']}") == {"chat_id": BASIC["id"],
                                                                   "deleted": True}
    with pytest.raises(Forbidden) as info:
        await bot.send_message(BASIC["id"], "anyone?")
    assert info.value.message == "Forbidden: the group chat was deleted"
    await ctl.request("DELETE", f"chats/{GROUP['id']}")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(GROUP["id"], "anyone?")
    await ctl.post("faults", {"kind": "deleted", "chat_id": -999})
    with pytest.raises(Forbidden, match="the group chat was deleted"):
        await bot.send_message(-999, "x")  # unknown chat: worded for a basic group


async def test_server_errors_for_one_chat(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    await ctl.say(DAN, "hi")
    await ctl.post("faults", {"kind": "500", "chat_id": RITA["id"], "times": 2})
    assert (await bot.send_message(DAN["id"], "unaffected")).text
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(RITA["id"], "x")
    await ctl.post("faults", {"kind": "502", "chat_id": RITA["id"]})
    with pytest.raises(NetworkError, match=r"Bad Gateway \(502\)"):
        await bot.send_message(RITA["id"], "x")
    assert (await bot.send_message(RITA["id"], "recovered")).text == "recovered"


async def test_timeout_longer_than_the_read_timeout(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    await ctl.post("faults", {"kind": "slow", "delay": 1.0, "chat_id": RITA["id"]})
    with pytest.raises(TimedOut):
        await bot.send_message(RITA["id"], "slow", read_timeout=0.3)
    # Telegram may still deliver a message whose answer timed out: retrying blindly duplicates
    sent = await ctl.get(f"sent?chat_id={RITA['id']}&timeout=3")
    assert [e["message"]["text"] for e in sent] == ["slow"]


async def test_fault_body_validation(ctl: Control) -> None:
    await ctl.post("faults", {"kind": "blocked", "chat_id": "abc"}, expect=400)
    await ctl.post("faults", {"kind": "migrated", "migrate_to_chat_id": [1]}, expect=400)
    await ctl.post("faults", {"kind": "blocked", "times": None})
    await ctl.post("faults", {"kind": "blocked", "chat_id": "@shop_channel"})
    assert [f.get("chat_id") for f in await ctl.get("faults")] == [None, "@shop_channel"]

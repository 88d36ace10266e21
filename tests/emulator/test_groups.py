"""Groups through PTB: join requests, bans, pins, restrictions, admins, invite links, blocking."""

from __future__ import annotations

import pytest
from telegram import Bot, ChatPermissions
from telegram.error import BadRequest, Forbidden

from tests.emulator.conftest import BOT_ID, DAN, GROUP, RITA, TESS, Control

GID = GROUP["id"]
ALL_UPDATES = ["message", "callback_query", "chat_join_request", "chat_member", "my_chat_member"]


async def test_join_request_approve_and_decline(bot: Bot, ctl: Control) -> None:
    await ctl.group(members=[{"user": TESS, "status": "creator"}])
    await bot.get_updates(timeout=0, allowed_updates=ALL_UPDATES)
    link = await bot.create_chat_invite_link(GID, name="dealers", creates_join_request=True)
    assert link.invite_link.startswith("https://t.me/+") and link.creates_join_request
    await ctl.post("updates/join_request", {"user": RITA, "chat": GROUP,
                                            "invite_link": link.invite_link, "bio": "Shop R001"})
    await ctl.post("updates/join_request", {"user": DAN, "chat": GROUP})
    updates = await bot.get_updates(timeout=0)
    requests = [u.chat_join_request for u in updates]
    assert [r.from_user.id for r in requests] == [RITA["id"], DAN["id"]]
    assert requests[0].invite_link.name == "dealers" and requests[0].bio == "Shop R001"
    assert requests[0].user_chat_id == RITA["id"]
    # the bot may DM the requester straight away (user_chat_id), like on Telegram
    await bot.send_message(requests[0].user_chat_id, "Welcome! Checking your account…")

    assert await requests[0].approve() is True
    assert await bot.decline_chat_join_request(GID, DAN["id"]) is True
    with pytest.raises(BadRequest, match="Hide_requester_missing"):
        await bot.approve_chat_join_request(GID, DAN["id"])  # no longer pending

    state = await ctl.get(f"chats/{GID}")
    assert state["join_requests"] == {"pending": [], "approved": [RITA["id"]],
                                      "declined": [DAN["id"]]}
    assert state["members"][str(RITA["id"])]["status"] == "member"
    assert (await bot.get_chat_member(GID, RITA["id"])).status == "member"
    assert (await bot.get_chat_member(GID, DAN["id"])).status == "left"
    # approval produced a chat_member update, which the bot asked for
    joined = [u.chat_member for u in await bot.get_updates(offset=updates[-1].update_id + 1,
                                                            timeout=0) if u.chat_member]
    assert joined and joined[0].new_chat_member.status == "member"
    assert joined[0].via_join_request is True
    assert await bot.get_chat_member_count(GID) == 3  # Tess, Rita and the bot


async def test_ban_unban_and_banned_users_cannot_write(bot: Bot, ctl: Control) -> None:
    await ctl.group(members=[{"user": RITA, "status": "member"},
                             {"user": TESS, "status": "creator"},
                             {"user": DAN, "status": "member"}])
    assert await bot.ban_chat_member(GID, RITA["id"]) is True
    state = await ctl.get(f"chats/{GID}")
    assert state["banned"] == [RITA["id"]]
    member = await bot.get_chat_member(GID, RITA["id"])
    assert member.status == "kicked"
    await ctl.post("updates/message", {"user": RITA, "chat": GROUP, "text": "let me in"},
                   expect=403)
    with pytest.raises(BadRequest, match="Can't remove chat owner"):
        await bot.ban_chat_member(GID, TESS["id"])
    with pytest.raises(BadRequest, match="Participant_id_invalid"):
        await bot.ban_chat_member(GID, 55555)
    # only_if_banned protects current members; without it unban REMOVES them (Telegram quirk)
    assert await bot.unban_chat_member(GID, DAN["id"], only_if_banned=True)
    assert (await bot.get_chat_member(GID, DAN["id"])).status == "member"
    assert await bot.unban_chat_member(GID, DAN["id"])
    assert (await bot.get_chat_member(GID, DAN["id"])).status == "left"
    assert await bot.unban_chat_member(GID, RITA["id"])
    assert (await ctl.get(f"chats/{GID}"))["banned"] == []
    sent = await ctl.post("updates/message", {"user": RITA, "chat": GROUP, "text": "back"})
    assert sent["message"]["chat"]["id"] == GID


async def test_rights_are_checked(bot: Bot, ctl: Control) -> None:
    await ctl.group(bot_status="member", members=[{"user": RITA, "status": "member"}])
    with pytest.raises(BadRequest, match="Not enough rights to restrict"):
        await bot.ban_chat_member(GID, RITA["id"])
    msg = await bot.send_message(GID, "hello group")
    with pytest.raises(BadRequest, match="Not enough rights to manage pinned"):
        await bot.pin_chat_message(GID, msg.message_id)
    await ctl.say(RITA, "hi")
    with pytest.raises(BadRequest, match="Chat member status can't be changed in private"):
        await bot.ban_chat_member(RITA["id"], RITA["id"])


async def test_pin_and_unpin(bot: Bot, ctl: Control) -> None:
    await ctl.group()
    first = await bot.send_message(GID, "Rules")
    second = await bot.send_message(GID, "Promo of the week")
    assert await bot.pin_chat_message(GID, first.message_id)
    assert await bot.pin_chat_message(GID, second.message_id, disable_notification=True)
    chat = await bot.get_chat(GID)
    assert chat.pinned_message.text == "Promo of the week"
    assert (await ctl.get(f"chats/{GID}"))["pinned_message_ids"] == [first.message_id,
                                                                      second.message_id]
    assert await bot.unpin_chat_message(GID)  # the most recent pin
    assert (await ctl.get(f"chats/{GID}"))["pinned_message_id"] == first.message_id
    with pytest.raises(BadRequest, match="Message to pin not found"):
        await bot.pin_chat_message(GID, 999)
    assert await bot.unpin_all_chat_messages(GID)
    assert (await ctl.get(f"chats/{GID}"))["pinned_message_ids"] == []


async def test_restrict_and_promote(bot: Bot, ctl: Control) -> None:
    await ctl.group(members=[{"user": RITA, "status": "member"}])
    assert await bot.restrict_chat_member(GID, RITA["id"],
                                          ChatPermissions(can_send_messages=True))
    member = await bot.get_chat_member(GID, RITA["id"])
    assert member.status == "restricted" and member.can_send_messages
    assert not member.can_send_photos and member.is_member
    assert await bot.restrict_chat_member(GID, RITA["id"], ChatPermissions.all_permissions())
    assert (await bot.get_chat_member(GID, RITA["id"])).status == "member"
    assert await bot.promote_chat_member(GID, RITA["id"], can_pin_messages=True)
    admins = await bot.get_chat_administrators(GID)
    assert {a.user.id for a in admins} == {RITA["id"], BOT_ID}
    with pytest.raises(BadRequest, match="User is an administrator"):
        await bot.ban_chat_member(GID, RITA["id"])
    assert await bot.promote_chat_member(GID, RITA["id"])  # no rights = demote
    assert (await bot.get_chat_member(GID, RITA["id"])).status == "member"


async def test_invite_links(bot: Bot, ctl: Control) -> None:
    await ctl.group()
    primary = await bot.export_chat_invite_link(GID)
    assert (await bot.get_chat(GID)).invite_link == primary
    extra = await bot.create_chat_invite_link(GID, member_limit=5)
    revoked = await bot.revoke_chat_invite_link(GID, extra.invite_link)
    assert revoked.is_revoked and revoked.member_limit == 5
    with pytest.raises(BadRequest, match="Invite_hash_expired"):
        await bot.revoke_chat_invite_link(GID, "https://t.me/+nope")
    with pytest.raises(BadRequest, match="Member_limit can't be specified"):
        await bot.create_chat_invite_link(GID, member_limit=5, creates_join_request=True)
    newer = await bot.export_chat_invite_link(GID)
    assert newer != primary
    links = {li["invite_link"]: li for li in (await ctl.get(f"chats/{GID}"))["invite_links"]}
    assert links[primary]["is_revoked"] and not links[newer]["is_revoked"]


async def test_leave_chat_then_sending_is_forbidden(bot: Bot, ctl: Control) -> None:
    await ctl.group()
    await bot.get_updates(timeout=0, allowed_updates=ALL_UPDATES)
    assert await bot.leave_chat(GID)
    with pytest.raises(Forbidden, match="bot is not a member of the supergroup chat"):
        await bot.send_message(GID, "still here?")
    update = (await bot.get_updates(timeout=0))[-1]
    assert update.my_chat_member.new_chat_member.status == "left"


async def test_blocked_user(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    blocked = await ctl.post("updates/my_chat_member", {"user": RITA, "status": "kicked"})
    assert blocked["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(RITA["id"], "promo!")
    # writing again means the user unblocked the bot: my_chat_member(member) comes first
    await ctl.say(RITA, "/start")
    kinds = [("my_chat_member" if u.my_chat_member else "message")
             for u in await bot.get_updates(timeout=0)]
    assert kinds[-2:] == ["my_chat_member", "message"]
    assert (await bot.send_message(RITA["id"], "welcome back")).text == "welcome back"


async def test_get_chat_and_members_of_private_chat(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    chat = await bot.get_chat(RITA["id"])
    assert chat.type == "private" and chat.first_name == "Rita" and chat.username == "rita_shop"
    assert (await bot.get_chat_member(RITA["id"], RITA["id"])).status == "member"
    assert (await bot.get_chat_member(RITA["id"], BOT_ID)).user.is_bot
    with pytest.raises(BadRequest, match="User not found"):
        await bot.get_chat_member(RITA["id"], 4242)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat(-100999)
    with pytest.raises(BadRequest, match="There are no administrators in the private chat"):
        await bot.get_chat_administrators(RITA["id"])


async def test_chat_by_username_and_control_errors(bot: Bot, ctl: Control) -> None:
    await ctl.group(username="dealer_club")
    assert (await bot.send_message("@dealer_club", "hi")).chat.id == GID
    await ctl.get("chats/12345", expect=404)
    await ctl.post("updates/message", {"text": "no user"}, expect=400)
    await ctl.post("updates/nonsense", {}, expect=404)
    await ctl.post("updates/redeliver", {"update_id": 1}, expect=404)
    await ctl.post("updates/raw", {"message": {}, "callback_query": {}}, expect=400)


async def test_group_replies_and_partial_chat_references(bot: Bot, ctl: Control) -> None:
    await ctl.group(members=[{"user": TESS, "status": "administrator"}])
    ticket = await bot.send_message(GID, "Ticket #1 from Rita: boxes damaged")
    # naming the chat by id only must not reset its title or type
    reply = await ctl.post("updates/message", {
        "user": TESS, "chat": {"id": GID}, "text": "on it",
        "reply_to_message_id": ticket.message_id})
    chat = (await ctl.get(f"chats/{GID}"))["chat"]
    assert chat == {"id": GID, "type": "supergroup", "title": "Dealer community"}
    update = (await bot.get_updates(timeout=0))[-1]
    assert update.update_id == reply["update_id"]
    assert update.message.reply_to_message.message_id == ticket.message_id
    assert update.message.reply_to_message.from_user.id == BOT_ID
    assert update.message.chat.title == "Dealer community"
    assert (await bot.get_chat_member(GID, TESS["id"])).status == "administrator"
    await ctl.post("updates/message", {"user": TESS, "chat": {"id": GID}, "text": "x",
                                       "reply_to_message_id": 999}, expect=404)
    listed = await ctl.get("chats?type=group,supergroup")
    assert [c["chat"]["id"] for c in listed] == [GID]
    assert listed[0]["member_ids"] == [TESS["id"]] and listed[0]["bot_status"] == "administrator"


async def test_privacy_mode_and_membership_decide_delivery(bot: Bot, ctl: Control) -> None:
    await ctl.group(bot_status="member")  # a plain member bot has privacy mode on
    await bot.get_updates(timeout=0, allowed_updates=ALL_UPDATES)
    chat = {"id": GID}
    chatter = await ctl.post("updates/message", {"user": RITA, "chat": chat, "text": "hi all"})
    assert chatter["queued"] is False and "privacy mode" in chatter["reason"]
    command = await ctl.post("updates/message", {"user": RITA, "chat": chat, "text": "/stock"})
    mention = await ctl.post("updates/message", {"user": RITA, "chat": chat,
                                                 "text": "hey @sandbox_bot, stock?"})
    post = await bot.send_message(GID, "Weekly promo")
    reply = await ctl.post("updates/message", {"user": RITA, "chat": chat, "text": "nice",
                                               "reply_to_message_id": post.message_id})
    delivered = [u.message.text for u in await bot.get_updates(timeout=0)]
    assert delivered == ["/stock", "hey @sandbox_bot, stock?", "nice"]
    assert all(r["queued"] for r in (command, mention, reply))
    # membership updates go only to admin bots; a bot that left gets nothing at all
    member = await ctl.post("updates/chat_member", {"user": DAN, "chat": chat,
                                                    "status": "member"})
    assert member["queued"] is False and "administrators" in member["reason"]
    assert await bot.leave_chat(GID)
    gone = await ctl.post("updates/message", {"user": RITA, "chat": chat, "text": "/stock"})
    assert gone["queued"] is False and "not a member" in gone["reason"]


async def test_bot_cannot_start_a_private_chat(bot: Bot, ctl: Control) -> None:
    await ctl.group(members=[{"user": DAN, "status": "member"}])
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await bot.send_message(DAN["id"], "hello from the bot")
    await ctl.say(DAN, "/start")
    assert (await bot.send_message(DAN["id"], "hello")).chat.id == DAN["id"]


async def test_raw_updates_make_their_chats_known(bot: Bot, ctl: Control) -> None:
    raw = {"message": {"message_id": 5, "date": 1_700_000_000, "text": "raw hello",
                       "from": {"id": 4242, "is_bot": False, "first_name": "Raw"},
                       "chat": {"id": -100555, "type": "group", "title": "Raw group"}}}
    queued = await ctl.post("updates/raw", raw)
    update = (await bot.get_updates(timeout=0))[-1]
    assert update.update_id == queued["update_id"] and update.message.text == "raw hello"
    assert (await bot.send_message(-100555, "reply")).chat.title == "Raw group"
    explicit = await ctl.post("updates/raw", {"update_id": 900_000_000, **raw})
    assert explicit["update_id"] == 900_000_000
    assert (await ctl.say(RITA, "next"))["update_id"] == 900_000_001  # ids keep increasing

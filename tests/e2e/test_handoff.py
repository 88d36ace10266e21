"""Hand-off: a ticket reaches the staff group, messages flow both ways, staff close it."""

from __future__ import annotations

import pytest

from sandbox.harness import Harness, buttons, texts

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def staff_messages(system: Harness, after: int) -> list[dict]:
    """What the bot posted in the staff group since `after`."""
    return await system.replies(system.settings.staff_chat_id, after, timeout=10)


async def test_handoff_relays_both_ways_until_staff_close(system: Harness) -> None:
    customer = {"id": 777001, "first_name": "赵店长", "language_code": "zh-hans", "is_bot": False}
    staff_user = {"id": 1005, "first_name": "客服小李", "is_bot": False}
    staff_chat = {"id": system.settings.staff_chat_id, "type": "supergroup",
                  "title": "客服组 Staff desk"}
    await system.say(customer, "冰红茶还有货吗")
    after = await system.last_seq()
    sent = await system.say(customer, "我要转人工，找客服")
    assert any("工单" in t for t in texts(sent)), texts(sent)
    posted = await staff_messages(system, after)
    ticket_post = posted[0]["message"]
    assert "赵店长" in ticket_post["text"] and "冰红茶还有货吗" in ticket_post["text"]
    assert any(data.startswith("ticket:close:") for _, data in buttons(posted))

    # While the ticket is open the bot stays quiet and relays to staff.
    after = await system.last_seq()
    await system.control("POST", "updates/message", {"user": customer, "text": "箱子破了三个"})
    relayed = await staff_messages(system, after)
    assert any("箱子破了三个" in t for t in texts(relayed))
    assert await system.replies(customer["id"], after, timeout=2) == []

    # Staff reply to the ticket; the customer gets it.
    after = await system.last_seq()
    await system.control("POST", "updates/message", {
        "user": staff_user, "chat": staff_chat, "text": "您好，马上给您补发",
        "reply_to_message_id": ticket_post["message_id"]})
    got = await system.replies(customer["id"], after)
    assert "马上给您补发" in texts(got)[0] and "客服小李" in texts(got)[0]

    # Staff close it; the assistant answers again.
    after = await system.last_seq()
    await system.control("POST", "updates/message", {
        "user": staff_user, "chat": staff_chat, "text": "/close",
        "reply_to_message_id": ticket_post["message_id"]})
    closed = await system.replies(customer["id"], after)
    assert "结束" in texts(closed)[0]
    back = await system.say(customer, "/help")
    assert "我可以帮您" in texts(back)[0]


async def test_handoff_button_works_when_rasa_is_down(system: Harness) -> None:
    customer = {"id": 777002, "first_name": "Ms Chan", "language_code": "en", "is_bot": False}
    system.switch.mode = "down"
    try:
        sent = await system.say(customer, "hello?")
        assert "unavailable" in texts(sent)[0]
        handoff = next(data for _, data in buttons(sent) if data == "/human_handoff")
        message = next(e["message"] for e in sent if e["message"].get("reply_markup"))
        after = await system.last_seq()
        reply = await system.click(customer, message, handoff)
        assert "ticket #" in texts(reply)[0]
        posted = await staff_messages(system, after)
        assert any("Ms Chan" in t for t in texts(posted))
    finally:
        system.switch.mode = "pass"


STAFF_USER = {"id": 1005, "first_name": "客服小李", "is_bot": False}


def staff_chat(system: Harness) -> dict:
    return {"id": system.settings.staff_chat_id, "type": "supergroup",
            "title": "客服组 Staff desk"}


async def bot_status(system: Harness, user: dict, status: str, chat: dict | None = None) -> None:
    """The bot is removed from / added back to a group, or a user blocks / unblocks it."""
    body = {"user": user, "status": status}
    if chat is not None:
        body["chat"] = chat
    await system.control("POST", "updates/my_chat_member", body)


async def test_unreachable_staff_leave_the_customer_with_the_assistant(system: Harness) -> None:
    customer = {"id": 777003, "first_name": "钱店长", "language_code": "zh-hans", "is_bot": False}
    await bot_status(system, STAFF_USER, "kicked", staff_chat(system))
    try:
        after = await system.last_seq()
        await system.control("POST", "updates/message",
                             {"user": customer, "text": "我要转人工，找客服"})
        # The staff post fails for good (the worker's hook): the customer is told.
        got: list[str] = []
        for _ in range(10):
            got += texts(await system.replies(customer["id"], after, timeout=3))
            after = await system.last_seq()
            if any("联系不上" in t for t in got):
                break
        assert any("联系不上" in t for t in got), got
        # The ticket silences nobody: the assistant answers the next question.
        back = await system.say(customer, "冰红茶还有货吗")
        assert any("冰红茶" in t for t in texts(back)), texts(back)
    finally:
        await bot_status(system, STAFF_USER, "administrator", staff_chat(system))


async def test_a_message_right_after_the_handoff_goes_to_staff(system: Harness) -> None:
    customer = {"id": 777004, "first_name": "孙店长", "language_code": "zh-hans", "is_bot": False}
    after = await system.last_seq()
    for text in ("我要转人工，找客服", "箱子破了五个"):  # the second without waiting
        await system.control("POST", "updates/message", {"user": customer, "text": text})
    posted = await system.replies(system.settings.staff_chat_id, after, timeout=20, expect=2)
    staff_texts = texts(posted)
    assert any("箱子破了五个" in t and "#" in t for t in staff_texts), staff_texts
    got = texts(await system.replies(customer["id"], after, timeout=3))
    assert any("工单" in t for t in got) and len(got) <= 2, got  # no answer from the bot


async def test_long_messages_reach_both_sides_and_failures_reach_staff(system: Harness) -> None:
    customer = {"id": 777005, "first_name": "周店长", "language_code": "zh-hans", "is_bot": False}
    # A long transcript (the harness keeps 20 lines): the staff post is over 4,096 characters.
    for i in range(9):
        await system.say(customer, f"第{i}段：" + "今天天气不错。" * 72)
    after = await system.last_seq()
    await system.say(customer, "我要转人工，找客服")
    posted = await system.replies(system.settings.staff_chat_id, after, timeout=10, expect=2)
    assert len(posted) >= 2 and "周店长" in texts(posted)[0]
    assert any(data.startswith("ticket:close:") for _, data in buttons(posted))
    ticket_post = posted[0]["message"]

    long_text = "".join(f"{i:04d}" for i in range(1000))  # 4,000 characters
    after = await system.last_seq()
    await system.control("POST", "updates/message", {"user": customer, "text": long_text})
    relayed = await system.replies(system.settings.staff_chat_id, after, timeout=10, expect=2)
    assert long_text in "".join(texts(relayed)).replace("\n", "")

    after = await system.last_seq()
    await system.control("POST", "updates/message", {
        "user": STAFF_USER, "chat": staff_chat(system), "text": long_text,
        "reply_to_message_id": ticket_post["message_id"]})
    got = await system.replies(customer["id"], after, expect=2)
    assert long_text in "".join(texts(got)).replace("\n", "")

    await bot_status(system, customer, "kicked")  # the customer blocks the bot
    try:
        after = await system.last_seq()
        await system.control("POST", "updates/message", {
            "user": STAFF_USER, "chat": staff_chat(system), "text": "还在吗？",
            "reply_to_message_id": ticket_post["message_id"]})
        told = await staff_messages(system, after)
        assert any("没有收到" in t for t in texts(told)), texts(told)
    finally:
        await bot_status(system, customer, "member")


async def test_customer_cancels_with_the_button(system: Harness) -> None:
    customer = {"id": 777006, "first_name": "吴店长", "language_code": "zh-hans", "is_bot": False}
    sent = await system.say(customer, "我要转人工，找客服")
    message = next(e["message"] for e in sent if e["message"].get("reply_markup"))
    assert ("取消", "ticket:cancel") in buttons(sent)
    after = await system.last_seq()
    got = await system.click(customer, message, "ticket:cancel")
    assert "已取消" in texts(got)[0]
    cancelled = await staff_messages(system, after)
    assert any("取消" in t for t in texts(cancelled))
    back = await system.say(customer, "冰红茶还有货吗")
    assert any("冰红茶" in t for t in texts(back)), texts(back)


async def test_rasa_keeps_conversations_in_its_tracker_store(system: Harness) -> None:
    import sqlite3

    await system.say("dealer", "is the mineral water in stock?")
    db = sqlite3.connect(system.data_dir / "rasa" / "tracker.db")
    try:
        count = db.execute("SELECT COUNT(*) FROM events WHERE sender_id = ?",
                           (str(system.user("dealer")["id"]),)).fetchone()[0]
    finally:
        db.close()
    assert count > 0

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

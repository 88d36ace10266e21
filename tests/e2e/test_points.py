"""Reward points through the emulator: the demo dealer asks its balance, redeems a gift with
buttons (a double tap redeems once), customer service approves or rejects it in the staff
group, and the dealer is told."""

from __future__ import annotations

import pytest

from sandbox.harness import Harness, buttons, texts
from sandbox.harness import pick as pick_button

pytestmark = pytest.mark.asyncio(loop_scope="session")

STAFF_USER = {"id": 1005, "first_name": "客服小李", "is_bot": False}


def messages(sent: list[dict]) -> list[str]:
    """Texts of the new messages (not edits or callback answers)."""
    return [str(e["message"]["text"]) for e in sent
            if e.get("method") in (None, "sendMessage") and (e.get("message") or {}).get("text")]


async def staff_click(system: Harness, message: dict, data: str, expect: int = 1
                      ) -> list[dict]:
    """Customer service presses a button under a post in the staff group."""
    after = await system.last_seq()
    await system.control("POST", "updates/callback", {
        "user": STAFF_USER, "chat_id": system.settings.staff_chat_id,
        "message_id": message["message_id"], "data": data})
    return await system.replies(system.settings.staff_chat_id, after, expect=expect)


async def redeem(system: Harness, gift: str) -> tuple[int, dict, str]:
    """The dealer redeems `gift` through /redeem; returns (request number, staff post,
    approve data)."""
    catalogue = await system.say("dealer", "/redeem")
    message, pick = pick_button(catalogue, gift)
    confirm = await system.click("dealer", message, pick)
    assert any("Balance" in t for t in messages(confirm)), texts(confirm)
    message, ok = pick_button(confirm, "Confirm")
    after = await system.last_seq()
    done = await system.click("dealer", message, ok)
    redeemed = next(t for t in messages(done) if "request #" in t)
    request = int(redeemed.split("request #", 1)[1].split(")", 1)[0])
    posted = await system.replies(system.settings.staff_chat_id, after, timeout=20)
    post = next(e["message"] for e in posted if f"#{request}" in (e["message"] or {}).get(
        "text", ""))
    return request, post, f"pts:approve:{request}"


async def test_dealer_redeems_a_gift_and_customer_service_approves(system: Harness) -> None:
    # Balance in words and by command: the demo opening balance, pending order points.
    asked = messages(await system.say("dealer", "how many points do I have"))
    assert any("2000 available" in t and "pending" in t for t in asked), asked
    by_command = messages(await system.say("dealer", "/points"))
    assert any("2000 available" in t and "Recent" in t for t in by_command), by_command

    # The redeem intent shows the catalogue (paginated: 7 demo rewards, 5 a page).
    catalogue = await system.say("dealer", "redeem my points")
    assert any("Rewards" in t for t in messages(catalogue)), texts(catalogue)
    assert any(data == "pts:cat:1" for _, data in buttons(catalogue))
    message, pick = pick_button(catalogue, "umbrella")
    confirm = await system.click("dealer", message, pick)
    assert any("600" in t and "2000 → 1400" in t for t in messages(confirm)), texts(confirm)

    # Confirm, then a stale second tap on the same button: redeemed once.
    message, ok = pick_button(confirm, "Confirm")
    after = await system.last_seq()
    done = await system.click("dealer", message, ok)
    redeemed = next(t for t in messages(done) if "request #" in t)
    assert "1400 points left" in redeemed, redeemed
    request = int(redeemed.split("request #", 1)[1].split(")", 1)[0])
    # (Its keyboard is gone after the first tap; "force" sends the stale tap anyway.)
    tapped = await system.last_seq()
    await system.control("POST", "updates/callback", {
        "user": system.user("dealer"), "chat_id": message["chat"]["id"],
        "message_id": message["message_id"], "data": ok, "force": True})
    again = await system.replies(message["chat"]["id"], tapped, timeout=10)
    assert any("Already done" in t for t in messages(again)), texts(again)

    # The request reaches the staff group with Approve / Reject buttons (via the outbox).
    posted = await system.replies(system.settings.staff_chat_id, after, timeout=20)
    post = next(e["message"] for e in posted
                if f"#{request}" in (e["message"] or {}).get("text", ""))
    assert "上海恒通" in post["text"] and "品牌雨伞" in post["text"]
    assert {f"pts:approve:{request}", f"pts:reject:{request}"} <= {
        b["callback_data"] for row in post["reply_markup"]["inline_keyboard"] for b in row}

    # A dealer pressing Approve (forged in the staff group) is refused.
    after = await system.last_seq()
    await system.control("POST", "updates/callback", {
        "user": system.user("dealer"), "chat_id": system.settings.staff_chat_id,
        "message_id": post["message_id"], "data": f"pts:approve:{request}"})
    assert not messages(await system.replies(system.settings.staff_chat_id, after, timeout=3))

    # Customer service approves; the staff group sees it, the dealer is told (outbox).
    after = await system.last_seq()
    decided = await staff_click(system, post, f"pts:approve:{request}")
    assert any(f"#{request}" in t and "审核通过" in t for t in messages(decided)), texts(decided)
    told = await system.replies(system.user("dealer")["id"], after, timeout=20)
    assert any("approved" in t and "umbrella" in t for t in messages(told)), texts(told)
    balance = messages(await system.say("dealer", "/points"))
    assert any("1400 available" in t for t in balance), balance


async def test_customer_service_rejects_with_a_reason_and_the_points_come_back(
        system: Harness) -> None:
    before = messages(await system.say("dealer", "/points"))
    available = int(next(t for t in before if "available" in t)
                    .split("Your points: ", 1)[1].split(" available", 1)[0])
    request, post, _ = await redeem(system, "apron")
    prompt = await staff_click(system, post, f"pts:reject:{request}")
    question = next(e["message"] for e in prompt if f"#{request}" in
                    (e.get("message") or {}).get("text", ""))
    after = await system.last_seq()
    await system.control("POST", "updates/message", {
        "user": STAFF_USER, "chat": {"id": system.settings.staff_chat_id, "type": "supergroup",
                                     "title": "客服组 Staff desk"},
        "text": "本月围裙已发完", "reply_to_message_id": question["message_id"]})
    decided = await system.replies(system.settings.staff_chat_id, after, timeout=10)
    assert any("拒绝" in t and "本月围裙已发完" in t for t in messages(decided)), texts(decided)
    told = await system.replies(system.user("dealer")["id"], after, timeout=20)
    assert any("not approved" in t and "本月围裙已发完" in t for t in messages(told)), \
        texts(told)
    after_reject = messages(await system.say("dealer", "/points"))
    assert any(f"{available} available" in t for t in after_reject), after_reject


async def test_unlinked_users_are_asked_to_link(system: Harness) -> None:
    stranger = {"id": 777301, "first_name": "Sam", "language_code": "en", "is_bot": False}
    asked = messages(await system.say(stranger, "how many points do I have"))
    assert any("link" in t.lower() for t in asked), asked
    by_command = messages(await system.say(stranger, "/redeem"))
    assert any("link" in t.lower() for t in by_command), by_command
    # Cantonese, from a retailer (retailers are not in the points scheme by default).
    retailer = messages(await system.say("retailer_hk", "我有幾多積分"))
    assert any("經銷商" in t for t in retailer), retailer

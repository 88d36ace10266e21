"""A retailer's message travels emulator → PTB gateway → Rasa → action server → DB and back."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from core.db import Database
from core.models import Customer, Order
from core.services import accounts
from sandbox.harness import Harness, buttons, texts

pytestmark = pytest.mark.asyncio(loop_scope="session")

STATUS_ZH = {"pending": "待确认", "confirmed": "已确认", "picking": "拣货中",
             "shipped": "已发货", "delivered": "已签收", "cancelled": "已取消"}


async def orders_of(system: Harness, customer_code: str) -> list[Order]:
    """The customer's orders as imported (what the bot should report)."""
    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            return list((await s.scalars(
                select(Order).join(Customer).where(Customer.code == customer_code)
                .order_by(Order.created_at.desc()))).all())
    finally:
        await db.dispose()


async def test_order_status_is_answered_from_the_database(system: Harness) -> None:
    order = (await orders_of(system, "R001"))[0]
    spaced = order.order_no.lower().replace("-", " ")
    sent = await system.say("retailer", f"帮我查一下订单 {spaced} 到哪了")
    text = "\n".join(texts(sent))
    assert order.order_no in text
    assert STATUS_ZH[order.status][:2] in text


async def test_someone_elses_order_looks_like_a_missing_one(system: Harness) -> None:
    other = (await orders_of(system, "R002"))[0]
    leak = "\n".join(texts(await system.say("retailer", f"订单 {other.order_no} 什么状态")))
    missing = "\n".join(texts(await system.say("retailer", "订单 SO19990101-9999 什么状态")))
    assert other.order_no in leak and "找不到" in leak
    assert leak.replace(other.order_no, "X") == missing.replace("SO19990101-9999", "X")


async def test_traditional_chinese_gets_a_traditional_reply(system: Harness) -> None:
    order = (await orders_of(system, "R002"))[0]
    sent = await system.say("retailer_hk", f"請問我的訂單 {order.order_no} 到哪裡了")
    text = "\n".join(texts(sent))
    assert order.order_no in text
    assert "訂單" in text and "订单" not in text


async def test_english_question_gets_an_english_reply(system: Harness) -> None:
    order = (await orders_of(system, "D001"))[0]
    sent = await system.say("dealer", f"where is my order {order.order_no}?")
    text = "\n".join(texts(sent))
    assert f"Order <b>{order.order_no}</b>" in text or f"Order {order.order_no}" in text


async def test_link_with_a_one_time_code(system: Harness) -> None:
    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            issued = await accounts.issue_link_code(s, system.settings.linking,
                                                    customer_code="R003")
    finally:
        await db.dispose()
    newcomer = {"id": 555001, "first_name": "新店主", "language_code": "zh-hans", "is_bot": False}
    before = "\n".join(texts(await system.say(newcomer, "我的订单到哪了")))
    assert "绑定码" in before  # told how to link
    linked = "\n".join(texts(await system.say(newcomer, f"/start {issued.code}")))
    assert "绑定成功" in linked
    again = "\n".join(texts(await system.say(
        {**newcomer, "id": 555002}, issued.code)))
    assert "已使用" in again  # single use


async def test_wrong_codes_are_throttled(system: Harness) -> None:
    guesser = {"id": 555100, "first_name": "Guess", "language_code": "en", "is_bot": False}
    replies = []
    for i in range(system.settings.linking.max_failed_attempts + 1):
        replies.append("\n".join(texts(await system.say(guesser, f"/start AB{i}CD2E9"))))
    assert "wrong" in replies[0]
    assert "Too many wrong codes" in replies[-2]
    assert "Too many wrong codes" in replies[-1]


async def test_unknown_command(system: Harness) -> None:
    text = "\n".join(texts(await system.say("dealer", "/frobnicate now")))
    assert "/frobnicate" in text and "/help" in text


async def test_too_long_and_empty_messages(system: Harness) -> None:
    long_text = "\n".join(texts(await system.say("dealer", "a" * 5000)))
    assert "too long" in long_text and "5000" in long_text
    # Telegram never delivers an empty text, but a whitespace-only one can come through.
    user = system.user("dealer")
    after = await system.last_seq()
    await system.control("POST", "updates/raw", {"message": {
        "message_id": 990001, "date": int(time.time()), "text": "   ",
        "chat": {"id": user["id"], "type": "private", "first_name": user["first_name"]},
        "from": user}})
    empty = "\n".join(texts(await system.replies(user["id"], after)))
    assert "empty" in empty


async def test_non_text_messages_get_an_answer(system: Harness) -> None:
    for kind in ("sticker", "photo", "voice", "document"):
        sent = await system.say("dealer", kind=kind)
        assert sent, f"no reply to a {kind}"
        assert "text" in texts(sent)[0]
        assert any("/human_handoff" in data for _, data in buttons(sent))


async def test_html_in_user_text_is_escaped(system: Harness) -> None:
    sent = await system.say("dealer", "/<script>alert(1)</script>")
    text = "\n".join(texts(sent))
    assert sent, "the emulator would have rejected unescaped HTML"
    assert "<script>" not in text


async def test_order_buttons_lead_to_the_order(system: Harness) -> None:
    open_orders = [o for o in await orders_of(system, "R001")
                   if o.status in ("pending", "confirmed", "picking", "shipped")]
    sent = await system.say("retailer", "我的订单到哪了")
    if len(open_orders) == 1:
        assert open_orders[0].order_no in "\n".join(texts(sent))
        return
    offered = buttons(sent)
    assert {o.order_no for o in open_orders} <= {label for label, _ in offered}
    label, data = offered[0]
    message = next(e["message"] for e in sent if e["message"].get("reply_markup"))
    clicked = "\n".join(texts(await system.click("retailer", message, data)))
    assert label in clicked


async def test_duplicate_update_is_handled_once(system: Harness) -> None:
    user = system.user("dealer")
    after = await system.last_seq()
    injected = await system.control("POST", "updates/message",
                                    {"user": user, "text": "/help"})
    first = await system.replies(user["id"], after)
    assert len(first) == 1
    after = max(e["seq"] for e in first)
    await system.control("POST", "updates/redeliver", {"update_id": injected["update_id"]})
    second = await system.replies(user["id"], after, timeout=3, expect=1)
    assert second == []


async def test_rate_limited_send_is_retried_after_retry_after(system: Harness) -> None:
    await system.control("POST", "faults", {"method": "sendMessage", "kind": "429",
                                            "times": 1, "retry_after": 2})
    t0 = time.monotonic()
    sent = await system.say("dealer", "/help", timeout=20)
    assert sent and "I can help with" in texts(sent)[0]
    assert time.monotonic() - t0 >= 1.8
    calls = await system.control("GET", "calls?method=sendMessage")
    assert any(c.get("status") == 429 for c in calls)


async def test_rasa_down_then_back(system: Harness) -> None:
    system.switch.mode = "down"
    try:
        t0 = time.monotonic()
        sent = await system.say("dealer", "is the mineral water in stock?")
        assert time.monotonic() - t0 < 6
        assert "unavailable" in texts(sent)[0]
    finally:
        system.switch.mode = "pass"
    sent = await system.say("dealer", "/help")
    assert "I can help with" in texts(sent)[0]
    order = (await orders_of(system, "D001"))[0]
    sent = await system.say("dealer", f"status of order {order.order_no}")
    assert order.order_no in "\n".join(texts(sent))


async def test_rasa_slow_gets_a_timely_apology(system: Harness) -> None:
    system.switch.mode = "slow"
    try:
        t0 = time.monotonic()
        sent = await system.say("dealer", "any promotions?")
        elapsed = time.monotonic() - t0
        assert "unavailable" in texts(sent)[0]
        assert elapsed < system.settings.rasa.timeout_seconds + 3
    finally:
        system.switch.mode = "pass"
    await asyncio.sleep(0)

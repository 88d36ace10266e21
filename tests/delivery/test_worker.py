"""The delivery worker against the emulator with a real PTB Bot, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from core.db import Database
from core.models import (
    PRIORITY_BULK,
    PRIORITY_INTERACTIVE,
    AuditLog,
    ChatMigration,
    OutboxMessage,
)
from core.services import outbox
from tests.conftest import uow
from tests.delivery.conftest import (
    accepted,
    count,
    fast_settings,
    groups,
    open_rows,
    private_chats,
    rows,
    running_worker,
    wait_until,
)


async def test_sends_template_and_text_and_runs_after_sent_hook_in_same_transaction(
        db: Database, emu, ctl, tgbot) -> None:
    await private_chats(ctl, 501, 502)

    @outbox.on_sent("test_hooked")
    async def remember(s, message: OutboxMessage, telegram_message_id: int) -> None:
        s.add(AuditLog(actor="test", action="sent", subject=f"{message.id}:{telegram_message_id}"))

    async with db.transaction() as s:
        a = await outbox.enqueue(s, 501, template="back_in_stock", locale="en",
                                 variables={"sku": "BV-1", "name_zh": "茶", "name_en": "Tea",
                                            "total": 5}, kind="test_hooked",
                                 buttons=[{"label": "Open", "payload": "notify:BV-1"}])
        b = await outbox.enqueue(s, 502, text="<b>hello</b>", pin=True)
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="both sent")
    by_id = {r.id: r for r in await rows(db)}
    assert by_id[a].status == by_id[b].status == "sent"
    assert by_id[a].telegram_message_id and by_id[a].sent_at is not None
    history = await ctl.get("chats/501/history")
    last = history[-1] if isinstance(history, list) else history["messages"][-1]
    assert "back in stock" in last["text"]
    assert last["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "notify:BV-1"
    async with db.transaction() as s:
        audit = (await s.scalars(select(AuditLog).where(AuditLog.actor == "test"))).all()
    assert [x.subject for x in audit] == [f"{a}:{by_id[a].telegram_message_id}"]
    assert emu.state.chats[502].pinned  # pin: true pinned the message


async def _all_final(db: Database) -> bool:
    return await open_rows(db) == 0


async def test_interactive_overtakes_a_running_broadcast(db: Database, emu, ctl, tgbot) -> None:
    users = list(range(10_001, 10_061))
    await private_chats(ctl, *users, 777)
    async with db.transaction() as s:
        campaign = await outbox.start_campaign(s, "promo", "Spring", "test")
        for uid in users:
            await outbox.enqueue(s, uid, text="promo", priority=PRIORITY_BULK,
                                 campaign_id=campaign)
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _sent_at_least(db, 5), what="campaign under way")
        urgent = await uow(db, outbox.enqueue, 777, text="your answer",
                           priority=PRIORITY_INTERACTIVE)
        await wait_until(lambda: _all_final(db), what="all sent")
    by_id = {r.id: r for r in await rows(db)}
    later_bulk = [r for r in by_id.values() if r.campaign_id and r.sent_at > by_id[urgent].sent_at]
    # At 28 msg/s the 60 promos take ~2 s; the answer must not wait for them.
    assert len(later_bulk) >= 30, len(later_bulk)


async def _sent_at_least(db: Database, n: int) -> bool:
    return await count(db, status="sent") >= n


async def test_429_is_honoured_and_not_an_attempt(db: Database, emu, ctl, tgbot) -> None:
    await private_chats(ctl, 601)
    await ctl.post("faults", {"kind": "429", "chat_id": 601, "retry_after": 2, "times": 1})
    mid = await uow(db, outbox.enqueue, 601, text="after the wait")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="sent after 429")
    elapsed = loop.time() - t0
    row = next(r for r in await rows(db) if r.id == mid)
    assert row.status == "sent" and row.attempts == 0
    assert elapsed >= 1.9, elapsed
    assert (await accepted(ctl)).get(601) == 1


async def test_5xx_retried_then_sent_or_failed_after_max_attempts(
        db: Database, emu, ctl, tgbot) -> None:
    await private_chats(ctl, 701, 702)
    await ctl.post("faults", {"kind": "500", "chat_id": 701, "times": 2})
    await ctl.post("faults", {"kind": "502", "chat_id": 702, "times": None})
    ok = await uow(db, outbox.enqueue, 701, text="eventually")
    bad = await uow(db, outbox.enqueue, 702, text="never")
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="retries done")
    by_id = {r.id: r for r in await rows(db)}
    assert by_id[ok].status == "sent" and by_id[ok].attempts == 2
    assert by_id[bad].status == "failed" and by_id[bad].attempts == 3
    assert by_id[bad].error.startswith("server_error") and "after 3 attempts" in by_id[bad].error
    assert (await accepted(ctl)).get(702) is None


async def test_permanent_failures_recorded_with_reason_and_hook(
        db: Database, emu, ctl, tgbot) -> None:
    await private_chats(ctl, 801)
    await groups(ctl, -100801)
    await ctl.post("faults", {"kind": "blocked", "chat_id": 801, "times": None})
    await ctl.post("faults", {"kind": "kicked", "chat_id": -100801, "times": None})
    seen: list[str] = []

    @outbox.on_failed("test_failing")
    async def note(s, message: OutboxMessage, reason: str) -> None:
        seen.append(reason)

    blocked = await uow(db, outbox.enqueue, 801, text="x", kind="test_failing")
    kicked = await uow(db, outbox.enqueue, -100801, text="x", kind="test_failing")
    missing = await uow(db, outbox.enqueue, 999_999, text="x", kind="test_failing")
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="failures recorded")
    by_id = {r.id: r for r in await rows(db)}
    assert (by_id[blocked].status, by_id[blocked].error) == ("failed", "blocked")
    assert (by_id[kicked].status, by_id[kicked].error) == ("failed", "kicked")
    assert (by_id[missing].status, by_id[missing].error) == ("failed", "chat_not_found")
    assert all(by_id[i].attempts == 1 for i in (blocked, kicked, missing))
    assert sorted(seen) == ["blocked", "chat_not_found", "kicked"]


async def test_migrated_group_gets_the_message_at_its_new_id(
        db: Database, emu, ctl, tgbot) -> None:
    await ctl.post("chats", {"id": -4242, "type": "group", "title": "Basic", "members": [
        {"user": {"id": 2001, "first_name": "Olga"}, "status": "creator"}]})
    await ctl.post("chats/-4242/migrate", {"new_chat_id": -1004242})
    moves: list[tuple[int, int]] = []

    @outbox.on_migrated
    async def moved(s, old: int, new: int) -> None:
        moves.append((old, new))

    first = await uow(db, outbox.enqueue, -4242, text="to the old id")
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="sent after migration")
        second = await uow(db, outbox.enqueue, -4242, text="again to the old id")
        await wait_until(lambda: _all_final(db), what="second sent")
    by_id = {r.id: r for r in await rows(db)}
    for mid in (first, second):
        assert by_id[mid].status == "sent", by_id[mid].error
        assert (by_id[mid].chat_id, by_id[mid].migrated_from) == (-1004242, -4242)
    assert (await accepted(ctl)).get(-1004242) == 2
    async with db.transaction() as s:
        assert (await s.get(ChatMigration, -4242)).new_chat_id == -1004242
    assert (-4242, -1004242) in moves


async def test_long_text_is_delivered_in_parts(db: Database, emu, ctl, tgbot) -> None:
    await private_chats(ctl, 901)
    long = "\n".join(f"line {i:05d} " + "x" * 80 for i in range(120))  # ~11,000 characters
    mid = await uow(db, outbox.enqueue, 901, text=long)
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="parts sent")
    row = next(r for r in await rows(db) if r.id == mid)
    assert row.status == "sent" and row.parts_sent == 3
    history = await ctl.get("chats/901/history")
    msgs = history if isinstance(history, list) else history["messages"]
    texts = [m["text"] for m in msgs if m.get("from", {}).get("is_bot")]
    assert len(texts) == 3 and all(len(t) <= 4096 for t in texts)
    assert "\n".join(texts) == long


async def test_a_local_photo_is_uploaded_once_then_sent_by_file_id(
        db: Database, emu, ctl, tgbot, tmp_path) -> None:
    """Twelve chats get the same local photo at once: one upload, eleven sends by file_id
    (the first sends must not all upload it in parallel before the first upload returns)."""
    from bot.delivery import sender
    photo = tmp_path / "lesson.png"
    photo.write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408"
        "d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082"))
    sender._uploaded.clear()
    chats = list(range(601, 613))
    await private_chats(ctl, *chats)
    # The first upload is slow (a real one takes a while): later sends start before it returns.
    await ctl.post("faults", {"method": "sendPhoto", "kind": "slow", "delay": 0.6})
    async with db.transaction() as s:
        for chat in chats:
            await outbox.enqueue(s, chat, text="lesson", media_kind="photo",
                                 media_ref=str(photo))
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _all_final(db), what="all sent")
    assert {r.status for r in await rows(db)} == {"sent"}
    calls = [c for c in await ctl.get("calls?method=sendPhoto") if c["status"] == 200]
    uploads = [c for c in calls if not isinstance(c["params"].get("photo"), str)]
    assert len(calls) == 12 and len(uploads) == 1, [c["params"].get("photo") for c in calls]

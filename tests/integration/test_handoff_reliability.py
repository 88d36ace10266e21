"""Hand-off reliability at the service level: ticket states, double taps, update claims,
transcripts and button payloads in the database, unanswered tickets, the outbox hooks."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select, text

from core.db import Database
from core.models import (
    PRIORITY_STAFF,
    AuditLog,
    OutboxMessage,
    Product,
    StockSubscription,
    Ticket,
    utcnow,
)
from core.services import (
    callbacks,
    conversations,
    notifications,
    outbox,
    tickets,
    updates,
)
from tests.conftest import uow


async def test_ten_taps_open_one_ticket(db: Database) -> None:
    views = await asyncio.gather(*[
        uow(db, tickets.open_ticket, 42, None, "handoff", f"tap {i}") for i in range(10)])
    assert len({v.id for v in views}) == 1
    assert sum(v.created for v in views) == 1
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Ticket)) == 1
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == 1


async def test_ten_taps_make_one_waiting_subscription(db: Database) -> None:
    async with db.transaction() as s:
        s.add(Product(sku="BV-1", name_zh="冰红茶"))
    results = await asyncio.gather(*[
        uow(db, notifications.subscribe, 9, "BV-1") for _ in range(10)])
    assert sorted(results) == [False] * 9 + [True]
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(StockSubscription)) == 1
        sub = await s.scalar(select(StockSubscription))
        sub.notified_at = utcnow()  # once notified, a new subscription may wait again
    assert await uow(db, notifications.subscribe, 9, "BV-1") is True


async def test_a_ticket_staff_never_got_silences_nobody(db: Database) -> None:
    ticket = await uow(db, tickets.open_ticket, 7, None, "handoff", "人呢")
    assert ticket.status == "pending"
    route = await uow(db, conversations.decide_route, 7, "箱子破了", 8)
    assert route.action == "relay"  # queued behind the staff post that is on its way
    await uow(db, tickets.staff_post_sent, ticket.id, -100, 55)
    route = await uow(db, conversations.decide_route, 7, "箱子破了", 8)
    assert route.action == "relay" and route.ticket and route.ticket.id == ticket.id
    assert (await uow(db, tickets.ticket_for_staff_message, -100, 55)).status == "open"

    second = await uow(db, tickets.open_ticket, 8, None, "handoff", "help")
    changed = await uow(db, tickets.mark_unreachable, second.id, "Forbidden: bot was kicked")
    assert changed is not None and changed.status == "unreachable"
    assert await uow(db, tickets.mark_unreachable, second.id, "again") is None  # once
    assert (await uow(db, conversations.decide_route, 8, "hello", 8)).action == "assistant"
    again = await uow(db, tickets.open_ticket, 8, None, "handoff", "try again")
    assert again.created and again.id != second.id


async def test_ten_taps_queue_one_staff_post_with_the_ticket(db: Database) -> None:
    views = await asyncio.gather(*[
        uow(db, tickets.request_handoff, 44, None, "handoff", "转人工", staff_chat_id=-100,
            staff_locale="zh-Hans", user_name="赵", transcript=[("user", "冰红茶还有货吗")])
        for _ in range(10)])
    assert len({v.id for v in views}) == 1
    async with db.transaction() as s:
        posts = (await s.scalars(select(OutboxMessage))).all()
    assert len(posts) == 1
    post = posts[0]
    assert (post.chat_id, post.kind, post.ref, post.priority) == (
        -100, "ticket_post", f"ticket:{views[0].id}", PRIORITY_STAFF)
    assert post.variables["transcript"] == [{"who": "user", "text": "冰红茶还有货吗"}]
    assert post.buttons[0]["payload"] == f"ticket:close:{views[0].id}"


async def test_customer_cancels(db: Database) -> None:
    ticket = await uow(db, tickets.open_ticket, 11, None, "handoff", "x")
    await uow(db, tickets.staff_post_sent, ticket.id, -100, 1)
    cancelled = await uow(db, tickets.cancel_ticket, 11)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert await uow(db, tickets.cancel_ticket, 11) is None
    assert (await uow(db, conversations.decide_route, 11, "hi", 8)).action == "assistant"
    async with db.transaction() as s:
        assert "ticket.cancel" in set((await s.scalars(select(AuditLog.action))).all())


async def test_unanswered_tickets_close_once_with_a_notice(db: Database) -> None:
    old = await uow(db, tickets.open_ticket, 21, None, "handoff", "old")
    answered = await uow(db, tickets.open_ticket, 22, None, "handoff", "answered")
    fresh = await uow(db, tickets.open_ticket, 23, None, "handoff", "fresh")
    async with db.transaction() as s:
        for tid in (old.id, answered.id):
            (await s.get(Ticket, tid)).created_at = utcnow() - dt.timedelta(hours=50)
    await uow(db, tickets.staff_post_sent, answered.id, -100, 5)
    await uow(db, tickets.staff_replied, answered.id, -100, 6)
    closed = await uow(db, tickets.close_unanswered, 48, "en")
    assert [t.id for t in closed] == [old.id]
    assert await uow(db, tickets.close_unanswered, 48, "en") == []  # idempotent
    async with db.transaction() as s:
        notices = (await s.scalars(select(OutboxMessage))).all()
        assert [(m.chat_id, m.template) for m in notices] == [(21, "handoff_expired")]
        assert (await s.get(Ticket, fresh.id)).status == "pending"


async def test_outbox_hooks_open_the_ticket_or_tell_the_customer(db: Database) -> None:
    ok = await uow(db, tickets.open_ticket, 31, None, "handoff", "a")
    bad = await uow(db, tickets.open_ticket, 32, None, "handoff", "b")
    sent_hook = outbox.after_sent_hook("ticket_post")
    failed_hook = outbox.after_failed_hook("ticket_post")
    assert sent_hook and failed_hook
    async with db.transaction() as s:
        await sent_hook(s, OutboxMessage(chat_id=-100, ref=f"ticket:{ok.id}"), 77)
        await failed_hook(s, OutboxMessage(chat_id=-100, ref=f"ticket:{bad.id}"),
                          "Forbidden: bot was kicked from the supergroup chat")
    assert (await uow(db, tickets.ticket_for_staff_message, -100, 77)).status == "open"
    async with db.transaction() as s:
        assert (await s.get(Ticket, bad.id)).status == "unreachable"
        notice = await s.scalar(select(OutboxMessage))
        assert (notice.chat_id, notice.template) == (32, "handoff_unreachable")


async def test_update_claims_survive_a_crash_but_not_a_success(db: Database) -> None:
    t0 = utcnow()
    assert await uow(db, updates.claim, 500, 60, now=t0) is True
    # Redelivered while the first attempt still runs: dropped.
    assert await uow(db, updates.claim, 500, 60, now=t0 + dt.timedelta(seconds=5)) is False
    # The first attempt crashed (never done) and its lease ran out: handled again.
    assert await uow(db, updates.claim, 500, 60, now=t0 + dt.timedelta(seconds=61)) is True
    await uow(db, updates.mark_done, 500)
    assert await uow(db, updates.state_of, 500) == "done"
    assert await uow(db, updates.claim, 500, 60, now=t0 + dt.timedelta(hours=1)) is False
    assert await uow(db, updates.prune, 7, now=t0 + dt.timedelta(days=8)) == 1


async def test_transcript_keeps_the_last_lines_per_chat(db: Database) -> None:
    for i in range(15):
        await uow(db, conversations.note_lines, [(1, "user", f"u{i}"), (1, "bot", f"b{i}"),
                                                 (2, "user", f"other{i}")], 10)
    lines = await uow(db, conversations.transcript, 1, 10)
    assert lines[-1] == ("bot", "b14") and lines[0] == ("user", "u10") and len(lines) == 10
    assert len(await uow(db, conversations.transcript, 2, 50)) == 10


async def test_long_button_payloads_outlive_the_process(db: Database) -> None:
    payload = '/stock_query{"product":"' + "X" * 100 + '"}'
    key = callbacks.key_for(payload)
    await uow(db, callbacks.save, {key: payload})
    await uow(db, callbacks.save, {key: payload})  # sent again: fine
    search_path = None
    if not db.is_sqlite:
        async with db.transaction() as s:
            search_path = await s.scalar(text("SHOW search_path"))
    other = Database(db.url, search_path=search_path)  # "another gateway"
    try:
        assert await uow(other, callbacks.load, key) == payload
        assert await uow(other, callbacks.load, "k:unknown") is None
        assert await uow(other, callbacks.load, "/help") == "/help"
    finally:
        await other.dispose()



async def test_cli_lists_and_closes_tickets(tmp_path, capsys) -> None:
    import argparse

    from core.cli import build_parser, cmd_tickets
    from core.migrate import upgrade
    from core.settings import load_settings

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    settings = load_settings(env={"DATABASE_URL": url, "APP_DATA_DIR": str(tmp_path)})
    db = Database(url)
    await upgrade(db.engine)
    ticket = await uow(db, tickets.open_ticket, 61, None, "complaint", "破了")
    await db.dispose()
    args = build_parser().parse_args(["tickets", "list"])
    assert await cmd_tickets(settings, args) == 0
    assert f"{ticket.id}  pending" in capsys.readouterr().out
    assert await cmd_tickets(settings, argparse.Namespace(
        action="close", ticket_id=ticket.id, by="李")) == 0
    assert "closed; the customer will be told" in capsys.readouterr().out
    assert await cmd_tickets(settings, argparse.Namespace(
        action="close", ticket_id=999, by="李")) == 1
    db = Database(url)
    async with db.transaction() as s:
        assert (await s.get(Ticket, ticket.id)).status == "closed"
        notice = await s.scalar(select(OutboxMessage))
        assert (notice.chat_id, notice.template) == (61, "handoff_closed")
    await db.dispose()

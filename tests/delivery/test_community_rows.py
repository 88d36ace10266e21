"""Community rows through the real worker and the emulator: kicks, an announcement to a group
deleted mid-way (final report names the reason), and a group migrated before it is reached."""

from __future__ import annotations

from sqlalchemy import select

from community import announcements, groups, membership
from community.models import CommunityGroup
from core.db import Database
from core.models import Campaign, OutboxMessage
from tests.delivery.conftest import (
    fast_settings,
    open_rows,
    rows,
    running_worker,
    wait_until,
)
from tests.delivery.conftest import groups as emu_groups
from tests.emulator.conftest import Control

STAFF = -100900


async def _register(db: Database, *chats: int) -> None:
    async with db.transaction() as s:
        for chat in chats:
            await groups.register(s, chat, f"G{chat}", actor="test")


async def test_kick_rows_remove_the_member(db: Database, ctl: Control, tgbot) -> None:
    await ctl.post("chats", {"id": -100501, "type": "supergroup", "title": "G",
                             "members": [{"user": {"id": 77, "first_name": "D",
                                                   "is_bot": False}, "status": "member"}]})
    await _register(db, -100501)
    async with db.transaction() as s:
        g = await groups.get(s, -100501)
        await membership._upsert_member(s, g.id, 77, None, "member")
        from core.services import outbox
        await outbox.enqueue(s, -100501, text="kick", kind="kick", variables={"user_id": 77})
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _none_open(db), what="kick done")
    assert [r.status for r in await rows(db)] == ["sent"]
    state = await ctl.get("chats/-100501")
    assert state["members"]["77"]["status"] == "left" and state["banned"] == []


async def _none_open(db: Database) -> bool:
    return await open_rows(db) == 0


async def test_announcement_to_a_deleted_group_reports_it(db: Database, ctl: Control,
                                                          tgbot) -> None:
    await emu_groups(ctl, -100601, -100602, -100603, STAFF)
    await _register(db, -100601, -100602, -100603)
    await ctl.request("DELETE", "chats/-100602", None, 200)  # deleted as it goes out
    async with db.transaction() as s:
        queued = await announcements.announce(s, {"all": True}, text="hello", actor="t",
                                              report_chat_id=STAFF, pin=True)
    assert queued.groups == 3
    async with running_worker(fast_settings(), db, tgbot, progress_seconds=0.2):
        async def reported() -> bool:
            async with db.transaction() as s:
                c = await s.get(Campaign, queued.campaign_id)
                done = c is not None and c.reported_at is not None
            return done and await open_rows(db) == 0
        await wait_until(reported, what="final report")
    by_chat = {r.chat_id: r for r in await rows(db) if r.kind == "announcement"}
    assert by_chat[-100601].status == "sent" and by_chat[-100603].status == "sent"
    assert by_chat[-100602].status == "failed"
    final = [r for r in await rows(db) if r.dedupe_key == f"campaign:{queued.campaign_id}:final"]
    assert final and final[0].chat_id == STAFF and final[0].variables["failed"] == 1
    async with db.transaction() as s:  # the group that is gone is deactivated
        active = dict((await s.execute(select(CommunityGroup.chat_id,
                                              CommunityGroup.active))).all())
    assert active == {-100601: True, -100602: False, -100603: True}


async def test_migrated_group_keeps_settings_and_gets_the_announcement(
        db: Database, ctl: Control, tgbot) -> None:
    await ctl.post("chats", {"id": -4343, "type": "group", "title": "Basic", "members": [
        {"user": {"id": 2001, "first_name": "Olga"}, "status": "creator"}]})
    await _register(db, -4343)
    async with db.transaction() as s:
        await groups.change_settings(s, -4343, actor="t", rules="be nice", blocklist_add="x")
    await ctl.post("chats/-4343/migrate", {"new_chat_id": -1004343})
    async with db.transaction() as s:
        await announcements.announce(s, {"all": True}, text="after the move", actor="t")
    async with running_worker(fast_settings(), db, tgbot):
        await wait_until(lambda: _none_open(db), what="sent after migration")
    sent = [r for r in await rows(db) if r.kind == "announcement"]
    assert sent[0].status == "sent" and sent[0].chat_id == -1004343
    async with db.transaction() as s:
        group = await groups.get(s, -1004343)
        assert group.rules_text == "be nice" and group.blocklist == ["x"]
        assert (await s.scalar(select(OutboxMessage.migrated_from)
                               .where(OutboxMessage.id == sent[0].id))) == -4343

"""Community services on SQLite and PostgreSQL: joining, sync, announcements, moderation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from community import announcements, groups, membership, moderation, participation
from community.models import CommunityGroup, GroupMember, JoinDecision, ParticipationDay
from core.db import Database
from core.errors import PermissionDenied
from core.models import AuditLog, Customer, OutboxMessage
from core.services.accounts import link_identity_directly
from core.services.importer import import_paths
from tests.conftest import uow

EAST = -1001
SOUTH = -1002
ALL = -1003
KEY_EAST, KEY_SOUTH, GENERAL_EAST, NOBODY, ADMIN, CS = 11, 12, 13, 14, 21, 22

DEALERS = """code,name,phone,region,tier
D1,East Key Co,1,华东,key
D2,South Key Co,2,华南,key
D3,East General Co,3,华东,general
"""


async def _setup(db: Database, tmp_path: Path) -> None:
    (tmp_path / "dealers.csv").write_text(DEALERS, encoding="utf-8")
    await import_paths(db, [tmp_path / "dealers.csv"])
    async with db.transaction() as s:
        for uid, code in ((KEY_EAST, "D1"), (KEY_SOUTH, "D2"), (GENERAL_EAST, "D3")):
            await link_identity_directly(s, uid, f"u{uid}", customer_code=code)
        await link_identity_directly(s, ADMIN, "Boss", staff_name="Boss", staff_role="admin")
        await link_identity_directly(s, CS, "CS", staff_name="CS", staff_role="customer_service")
        await groups.register(s, EAST, "East key", actor="test",
                              options={"tiers": "key,potential", "regions": "华东",
                                       "lang": "zh-Hans"})
        await groups.register(s, SOUTH, "South", actor="test", options={"regions": "华南"})
        await groups.register(s, ALL, "Everyone", actor="test", options={"lang": "en"})
        for chat in (EAST, SOUTH, ALL):
            await groups.set_invite_link(s, chat, f"https://t.me/+{abs(chat)}")
        await groups.change_settings(s, EAST, actor="test", log=str(-999))


async def _decide(db: Database, chat: int, user: int, date: int = 1000):
    return await uow(db, membership.decide_join, chat, user, date)


async def test_join_decisions_and_bad_requests(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    ok = await _decide(db, EAST, KEY_EAST)
    assert ok.approved and ok.reason == "ok" and not ok.duplicate
    assert (await _decide(db, EAST, NOBODY)).reason == "not_linked"      # unlinked
    assert (await _decide(db, EAST, KEY_SOUTH)).reason == "region"       # wrong region
    assert (await _decide(db, EAST, GENERAL_EAST)).reason == "tier"      # wrong tier
    assert (await _decide(db, ALL, GENERAL_EAST)).approved
    # the same request twice → one decision
    again = await _decide(db, EAST, NOBODY)
    assert again.duplicate and not again.approved
    async with db.transaction() as s:
        n = await s.scalar(select(func.count()).select_from(JoinDecision)
                           .where(JoinDecision.telegram_user_id == NOBODY))
        assert n == 1
    # deactivated dealer, banned member
    async with db.transaction() as s:
        await membership.set_dealer(s, "D3", actor="test", active=False)
    assert (await _decide(db, ALL, GENERAL_EAST, 2000)).reason == "inactive"
    async with db.transaction() as s:
        group = await groups.get(s, SOUTH)
        await membership.banned(s, group.id, KEY_SOUTH)
    assert (await _decide(db, SOUTH, KEY_SOUTH)).reason == "banned"
    assert await uow(db, membership.decide_join, -5555, KEY_EAST, 1) is None  # not registered
    async with db.transaction() as s:  # declines reach the log chat, approvals do not
        logs = (await s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == -999)
                                )).all()
        assert {m.variables["reason"] for m in logs} == {"not_linked", "region", "tier"}


async def test_my_groups_lists_exactly_the_fitting_groups(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    reason, got = await uow(db, membership.groups_for_user, KEY_EAST)
    assert reason is None and [g.chat_id for g in got] == [EAST, ALL]
    assert got[0].invite_link == "https://t.me/+1001"
    reason, got = await uow(db, membership.groups_for_user, KEY_SOUTH)
    assert [g.chat_id for g in got] == [SOUTH, ALL]
    assert (await uow(db, membership.groups_for_user, NOBODY)) == ("not_linked", [])


async def test_import_downgrade_queues_kick_and_invites(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    assert (await _decide(db, EAST, KEY_EAST)).approved
    assert (await _decide(db, ALL, KEY_EAST)).approved
    # an old dealers.csv (no `active`) that downgrades D1 and moves it south
    (tmp_path / "dealers.csv").write_text(DEALERS.replace("D1,East Key Co,1,华东,key",
                                                          "D1,East Key Co,1,华南,general"))
    await import_paths(db, [tmp_path / "dealers.csv"])
    async with db.transaction() as s:
        kicks = (await s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "kick"))).all()
        assert [(k.chat_id, k.variables["user_id"]) for k in kicks] == [(EAST, KEY_EAST)]
        member = await s.scalar(select(GroupMember).where(GroupMember.telegram_user_id ==
                                                          KEY_EAST, GroupMember.status ==
                                                          "removed"))
        assert member is not None
        # logged to the admin log chat only (not to the group itself)
        logs = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "community_log"))).all()
        assert any(m.chat_id == -999 and m.variables["action"] == "removed" for m in logs)
        assert not (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.chat_id == EAST, OutboxMessage.kind != "kick"))).all()
    # the move south offers the South group in private (the import changed the record)
    async with db.transaction() as s:
        offer = await s.scalar(select(OutboxMessage).where(
            OutboxMessage.chat_id == KEY_EAST, OutboxMessage.kind == "community_invite"))
        assert [g["title"] for g in offer.variables["groups"]] == ["South"]
    # the kick's own chat_member update (ban, then unban) is not a ban
    await uow(db, membership.member_left, EAST, KEY_EAST, "kicked")
    async with db.transaction() as s:
        assert await s.scalar(select(GroupMember.status).where(
            GroupMember.telegram_user_id == KEY_EAST, GroupMember.status == "banned")) is None
    # importing again changes nothing (already removed)
    await import_paths(db, [tmp_path / "dealers.csv"])
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.kind == "kick")) == 1
    # staff move it back: the new groups are offered in private
    async with db.transaction() as s:
        report = await membership.set_dealer(s, "D1", actor="test", tier="key", region="华东")
    assert report.invited == 1
    async with db.transaction() as s:
        invite = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.chat_id == KEY_EAST).order_by(OutboxMessage.id.desc()))).first()
        assert [g["title"] for g in invite.variables["groups"]] == ["East key"]


async def test_active_column_deactivates_and_old_files_stay_valid(db: Database,
                                                                  tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    (tmp_path / "dealers.csv").write_text("code,name,phone,region,tier,active\n"
                                          "D1,East Key Co,1,华东,key,no\n")
    await import_paths(db, [tmp_path / "dealers.csv"])
    async with db.transaction() as s:
        assert (await s.scalar(select(Customer.active).where(Customer.code == "D1"))) is False
    (tmp_path / "dealers.csv").write_text(DEALERS)  # no column: the stored value stays
    await import_paths(db, [tmp_path / "dealers.csv"])
    async with db.transaction() as s:
        assert (await s.scalar(select(Customer.active).where(Customer.code == "D1"))) is False
        assert (await s.scalar(select(Customer.active).where(Customer.code == "D2"))) is True


async def test_announcement_segments_campaign_and_schedule(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    with pytest.raises(announcements.EmptySegment):
        await uow(db, announcements.announce, {"tiers": ["general"], "regions": ["西北"]},
                  text="hi", actor="t")
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    at = announcements.parse_at("2026-12-01T09:00", "Asia/Shanghai")
    assert at == dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
    queued = await uow(db, announcements.announce, announcements.parse_segment("tiers=key"),
                       text="新品上市", actor="t", pin=True, not_before=at, report_chat_id=-77,
                       key="launch")
    assert queued.groups == 1 and queued.titles == ["East key"]
    again = await uow(db, announcements.announce, {"all": True}, text="x", actor="t",
                      key="launch")
    assert again.groups == 3
    async with db.transaction() as s:
        rows = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "announcement").order_by(OutboxMessage.id))).all()
        # the keyed East row was not queued twice
        assert [r.chat_id for r in rows] == [EAST, SOUTH, ALL]
        assert rows[0].pin and rows[0].campaign_id == queued.campaign_id


async def test_announce_draft_flow_confirms_once(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    with pytest.raises(announcements.EmptySegment):
        await uow(db, announcements.start_draft, -50, CS, "regions=西北", "Asia/Shanghai")
    async with db.transaction() as s:
        draft, titles = await announcements.start_draft(s, -50, CS, "all pin=yes",
                                                        "Asia/Shanghai")
        assert len(titles) == 3
    async with db.transaction() as s:
        d = await announcements.open_draft(s, -50, CS)
        assert d is not None and d.pin
        await announcements.set_content(s, d, text="hello", media_kind=None, media_ref=None)
        draft_id = d.id
    assert await uow(db, announcements.confirm, draft_id, 9999, actor="x",
                     report_chat_id=-50) is None  # not the author
    first = await uow(db, announcements.confirm, draft_id, CS, actor="cs", report_chat_id=-50)
    second = await uow(db, announcements.confirm, draft_id, CS, actor="cs", report_chat_id=-50)
    assert first is not None and first.groups == 3 and second is None


async def test_non_staff_cannot_register_or_change(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    for user in (NOBODY, CS):  # a stranger, and staff without the admin role
        async with db.transaction() as s:  # caught inside the unit of work: the audit commits
            with pytest.raises(PermissionDenied):
                await groups.require_group_admin(s, user, EAST, ["admin"], is_chat_admin=True,
                                                 action="community:register_group",
                                                 staff_only=True)
    assert await uow(db, groups.require_group_admin, ADMIN, EAST, ["admin"],
                     is_chat_admin=False, action="x", staff_only=True) == "staff:admin"
    assert await uow(db, groups.require_group_admin, NOBODY, EAST, ["admin"],
                     is_chat_admin=True, action="x") == "chat_admin"
    async with db.transaction() as s:
        denied = await s.scalar(select(func.count()).select_from(AuditLog)
                                .where(AuditLog.action == "permission.denied"))
    assert denied == 2
    with pytest.raises(groups.BadOptions):
        await uow(db, groups.register, -7, "x", actor="t", options={"tiers": "gold"})


async def test_rights_lost_are_reported_once(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    missing = groups.missing_rights({"can_invite_users": True}, "administrator")
    assert missing == ["can_restrict_members", "can_delete_messages", "can_pin_messages"]
    assert await uow(db, groups.record_rights, EAST, missing, staff_chat_id=-50)
    assert not await uow(db, groups.record_rights, EAST, missing, staff_chat_id=-50)
    async with db.transaction() as s:
        notes = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.template == "community_rights_changed"))).all()
        assert sorted(n.chat_id for n in notes) == [-999, -50]


async def test_migration_keeps_settings_and_members(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    assert (await _decide(db, EAST, KEY_EAST)).approved
    await uow(db, groups.migrate, EAST, -100555)
    await uow(db, groups.migrate, EAST, -100555)  # the worker and the service message
    async with db.transaction() as s:
        group = await groups.get(s, -100555)
        assert group.regions == ["华东"] and group.log_chat_id == -999
        assert (await groups.get(s, EAST)).id == group.id  # the old id still finds it
        assert [m.telegram_user_id for m in await groups.members_of(s, group.id)] == [KEY_EAST]
    assert (await _decide(db, -100555, KEY_EAST, 5)).approved


async def test_moderation_rules() -> None:
    g = CommunityGroup(blocklist=["违禁词"], flood_messages=3, flood_seconds=10)
    judge = moderation.judge
    assert judge(g, text="這是違禁詞", has_link=False, forwarded=False, verified=True,
                 exempt=False, flooding=False).reason == "blocklist"
    assert judge(g, text="see https://x.y", has_link=False, forwarded=False, verified=False,
                 exempt=False, flooding=False).reason == "link_unverified"
    assert judge(g, text="see https://x.y", has_link=True, forwarded=False, verified=True,
                 exempt=False, flooding=False).action is None
    assert judge(g, text="fwd", has_link=False, forwarded=True, verified=False,
                 exempt=False, flooding=False).reason == "forward_unverified"
    assert judge(g, text="違禁詞", has_link=False, forwarded=False, verified=False,
                 exempt=True, flooding=True).action is None
    flood = moderation.FloodTracker()
    hits = [flood.hit(1, 2, 3, 10, now=t) for t in (0, 1, 2, 3)]
    assert hits == [False, False, False, True]
    assert not flood.hit(1, 2, 3, 10, now=30)
    assert moderation.step_for(["warn", "mute:60", "ban"], 1) == "warn"
    assert moderation.step_for(["warn", "mute:60", "ban"], 2) == "mute:60"
    assert moderation.step_for(["warn", "mute:60", "ban"], 7) == "ban"


async def test_warn_escalates_to_ban(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    steps = []
    for _ in range(3):
        async with db.transaction() as s:
            group = await groups.get(s, EAST)
            steps.append((await moderation.warn(s, group, NOBODY, actor="t"))[1])
    assert steps == ["warn", "mute:3600", "ban"]
    assert (await _decide(db, EAST, NOBODY, 77)).reason in ("not_linked", "banned")


async def test_participation_counts_and_csv(db: Database, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    day = dt.date(2026, 11, 24)
    async with db.transaction() as s:
        group = await groups.get(s, EAST)
        customer = await s.scalar(select(Customer.id).where(Customer.code == "D1"))
        gid = group.id
    counts = [await uow(db, participation.count_message, gid, KEY_EAST, customer, day)
              for _ in range(3)]
    assert counts == [1, 2, 3]
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(ParticipationDay)) == 1
        from community.points.models import PointsEntry
        entries = (await s.scalars(select(PointsEntry.source_key))).all()
        assert entries == [f"participation_day:2026-11-24:group:{gid}"]
    rows = await uow(db, participation.activity, day, day)
    assert rows[0].messages == 3 and rows[0].dealer_code == "D1"
    csv_text = participation.to_csv([participation.ActivityRow("=cmd()", 1, "+x", "@y", 1, 1)])
    assert "'=cmd()" in csv_text and "'+x" in csv_text and "'@y" in csv_text


def test_group_lists_put_each_link_on_its_own_line() -> None:
    from bot.gateway.render import render
    groups_ = [{"title": "A", "link": "https://t.me/+a", "member": False},
               {"title": "B", "link": "https://t.me/+b", "member": False}]
    for locale in ("en", "zh-Hans", "zh-Hant"):
        text = render("community_my_groups", locale, reason=None, groups=groups_)
        assert any(line.endswith("https://t.me/+a") for line in text.splitlines()), text
        text = render("community_new_groups", locale, groups=groups_)
        assert any(line.endswith("https://t.me/+a") for line in text.splitlines()), text

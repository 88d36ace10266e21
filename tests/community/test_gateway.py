"""The community adapter in the real gateway (in-process) against the emulator, no Rasa:
registration with a rights check, non-staff refused, join requests approved/declined,
moderation of unverified links, the bot losing admin rights, /groups, /announce flow."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.gateway import app as gateway_app
from community.models import CommunityGroup
from core.db import Database
from core.migrate import upgrade
from core.models import AuditLog, OutboxMessage
from core.services.accounts import link_identity_directly
from core.services.importer import import_paths
from core.settings import load_settings
from sandbox.emulator import running_emulator
from tests.emulator.conftest import Control

GID = -100701
STAFF = -100999
DEALER = {"id": 11, "first_name": "Dee", "is_bot": False}
ADMIN = {"id": 21, "first_name": "Boss", "is_bot": False}
CS = {"id": 22, "first_name": "CS", "is_bot": False}
STRANGER = {"id": 4242, "first_name": "Stranger", "is_bot": False}


async def _until(check, timeout: float = 15.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out: {what}")


@pytest.mark.timeout(120)
async def test_community_in_the_gateway(tmp_path: Path) -> None:
    async with running_emulator() as emu:
        import aiohttp
        port = emu.url.rsplit(":", 1)[1]
        env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
               "SANDBOX_PORT": port, "APP_DATA_DIR": str(tmp_path),
               "TELEGRAM_STAFF_CHAT_ID": str(STAFF)}
        settings = load_settings(env=env)
        db = Database(settings.resolved_database_url())
        await upgrade(db.engine)
        (tmp_path / "dealers.csv").write_text("code,name,phone,region,tier\n"
                                              "D1,恒通商贸,1,华东,key\n", encoding="utf-8")
        await import_paths(db, [tmp_path / "dealers.csv"])
        async with db.transaction() as s:
            await link_identity_directly(s, 11, "Dee", customer_code="D1")
            await link_identity_directly(s, 21, "Boss", staff_name="Boss", staff_role="admin")
            await link_identity_directly(s, 22, "CS", staff_name="CS",
                                         staff_role="customer_service")
        async with aiohttp.ClientSession() as http:
            ctl = Control(emu.url, http)
            await ctl.post("chats", {"id": STAFF, "type": "supergroup", "title": "Staff",
                                     "members": [{"user": CS, "status": "member"},
                                                 {"user": ADMIN, "status": "member"}]})
            await ctl.post("chats", {"id": GID, "type": "supergroup", "title": "East",
                                     "members": [{"user": ADMIN, "status": "administrator"},
                                                 {"user": CS, "status": "member"},
                                                 {"user": STRANGER, "status": "member"}]})
            for u in (DEALER, CS, ADMIN):
                await ctl.say(u, "hi")  # they have started the bot
            stop = asyncio.Event()
            task = asyncio.create_task(gateway_app.run(settings, stop))
            try:
                await _scenario(ctl, db)
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)
                await db.dispose()


async def _sent(ctl: Control, chat: int, after: int, quiet: float = 1.0) -> list[str]:
    """What the bot sent to a chat after `after`, once nothing more came for `quiet` s."""
    return [str((e.get("message") or {}).get("text") or "")
            for e in await _entries(ctl, chat, after, quiet)]


async def _entries(ctl: Control, chat: int, after: int, quiet: float = 1.0) -> list[dict]:
    got: list[dict] = []
    wait = 5.0
    while True:
        batch = await ctl.get(f"sent?chat_id={chat}&after={after}&timeout={wait}")
        if not batch:
            break
        got.extend(batch)
        after = max(int(e["seq"]) for e in batch)
        wait = quiet
    return got


async def _seq(ctl: Control) -> int:
    return int((await ctl.get("health"))["last_seq"])


async def _scenario(ctl: Control, db: Database) -> None:
    chat = {"id": GID}
    # non-staff (a customer-service member without the admin role) cannot register
    seq = await _seq(ctl)
    await ctl.post("updates/message", {"user": CS, "chat": chat,
                                       "text": "/register_group tiers=key"})
    assert any("Only group admins" in t or "只有" in t for t in await _sent(ctl, GID, seq))
    async with db.transaction() as s:
        assert await s.scalar(select(CommunityGroup.id)) is None
    # the admin registers; the bot has every right
    seq = await _seq(ctl)
    await ctl.post("updates/message", {"user": ADMIN, "chat": chat,
                                       "text": "/register_group tiers=key regions=华东 lang=en"})
    text = "\n".join(await _sent(ctl, GID, seq))
    assert "registered" in text and "https://t.me/+" in text and "missing" not in text

    async def group() -> CommunityGroup | None:
        async with db.transaction() as s:
            return await s.scalar(select(CommunityGroup))
    g = await _until(group, what="group row")
    assert g.invite_link and g.tiers == ["key"] and g.locale == "en"

    # dealer approved, stranger declined
    await ctl.post("updates/join_request", {"user": DEALER, "chat": chat,
                                            "invite_link": g.invite_link})
    await ctl.post("updates/join_request", {"user": {"id": 5151, "first_name": "X",
                                                     "is_bot": False}, "chat": chat})

    async def decided() -> bool:
        st = await ctl.get(f"chats/{GID}")
        return 11 in st["join_requests"]["approved"] and 5151 in st["join_requests"]["declined"]
    await _until(decided, what="join decisions")
    # the welcome names the company, in the group's language (sent by the outbox)
    async with db.transaction() as s:
        welcome = await s.scalar(select(OutboxMessage).where(
            OutboxMessage.kind == "community_welcome"))
    if welcome is None:  # the chat_member update from the approval arrives just after
        await ctl.post("updates/chat_member", {"user": DEALER, "chat": chat,
                                               "status": "member"})

        async def welcomed():  # type: ignore[no-untyped-def]
            async with db.transaction() as s:
                return await s.scalar(select(OutboxMessage).where(
                    OutboxMessage.kind == "community_welcome"))
        welcome = await _until(welcomed, what="welcome queued")
    assert welcome.variables["company"] == "恒通商贸" and welcome.locale == "en"

    # an unverified member's link is deleted; the dealer's is kept
    spam = await ctl.post("updates/message", {"user": STRANGER, "chat": chat,
                                              "text": "cheap stuff https://spam.example"})
    ok = await ctl.post("updates/message", {"user": DEALER, "chat": chat,
                                            "text": "catalogue https://brand.example"})

    async def deleted() -> bool:
        hist = await ctl.get(f"chats/{GID}/history")
        ids = {m["message_id"] for m in (hist if isinstance(hist, list) else
                                         hist.get("messages", []))}
        return spam["message"]["message_id"] not in ids and ok["message"]["message_id"] in ids
    await _until(deleted, what="spam deleted")

    # the bot loses the right to delete: logged, staff told, it keeps working
    await ctl.post("updates/my_chat_member", {"user": ADMIN, "chat": chat,
                                              "status": "administrator",
                                              "can_invite_users": True,
                                              "can_delete_messages": False,
                                              "can_restrict_members": False,
                                              "can_pin_messages": True})

    async def told():  # type: ignore[no-untyped-def]
        async with db.transaction() as s:
            return (await s.scalars(select(OutboxMessage.chat_id).where(
                OutboxMessage.template == "community_rights_changed"))).all()
    assert STAFF in await _until(told, what="rights notice")
    seq = await _seq(ctl)
    await ctl.post("updates/message", {"user": ADMIN, "chat": chat, "text": "/set_flood 2/60"})
    got = await _sent(ctl, GID, seq)
    assert any("saved" in t for t in got), got
    for i in range(3):  # flooding: the mute needs a right the bot no longer has
        await ctl.post("updates/message", {"user": STRANGER, "chat": chat, "text": f"m{i}"})

    async def failed_logged():  # type: ignore[no-untyped-def]
        async with db.transaction() as s:
            rows = (await s.scalars(select(AuditLog).where(
                AuditLog.action == "community.auto_mute"))).all()
            return [r for r in rows if r.details.get("done") is False]
    await _until(failed_logged, what="failed mute logged")
    seq = await _seq(ctl)
    await ctl.say(DEALER, "/groups")  # still answering
    assert any("East (you are in it)" in t for t in await _sent(ctl, DEALER["id"], seq))

    # /announce: refused for a stranger; staff flow with preview and one confirm
    seq = await _seq(ctl)
    await ctl.post("updates/message", {"user": STRANGER, "chat": {"id": STAFF},
                                       "text": "/announce all"})
    await ctl.post("updates/message", {"user": CS, "chat": {"id": STAFF},
                                       "text": "/announce regions=西北"})
    texts = await _sent(ctl, STAFF, seq)
    assert any("staff" in t.lower() or "客服" in t for t in texts)
    assert any("segment" in t or "范围" in t for t in texts), texts
    seq = await _seq(ctl)
    await ctl.post("updates/message", {"user": CS, "chat": {"id": STAFF},
                                       "text": "/announce tiers=key pin=yes"})
    await ctl.post("updates/message", {"user": CS, "chat": {"id": STAFF},
                                       "text": "New price list"})
    got = await _entries(ctl, STAFF, seq)
    preview = next(e for e in got if (e.get("message") or {}).get("reply_markup"))
    data = preview["message"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(2):  # a double tap queues one campaign
        await ctl.post("updates/callback", {"user": CS, "chat_id": STAFF,
                                            "message_id": preview["message"]["message_id"],
                                            "data": data})

    async def announced():  # type: ignore[no-untyped-def]
        async with db.transaction() as s:
            return (await s.scalars(select(OutboxMessage).where(
                OutboxMessage.kind == "announcement"))).all()
    rows = await _until(announced, what="announcement queued")
    await asyncio.sleep(1.0)
    rows = await announced()
    assert len(rows) == 1 and rows[0].chat_id == GID and rows[0].pin

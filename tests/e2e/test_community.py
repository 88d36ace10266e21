"""The demo dealer (D001, user 1002) asks "my groups", joins through the invite link (a join
request the bot approves) and sees an announcement; a stranger's request is declined."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from community import announcements
from community.sandbox import DEMO_GROUPS
from core.db import Database
from sandbox.harness import Harness, texts

pytestmark = pytest.mark.asyncio(loop_scope="session")

EAST, SOUTH, ALL = (int(g["id"]) for g in DEMO_GROUPS)
LINK = re.compile(r"https://t\.me/\+\S+")


async def _wait(pred, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pred():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


async def test_dealer_asks_joins_and_sees_an_announcement(system: Harness) -> None:
    answer = "\n".join(texts(await system.say("dealer", "my groups")))
    assert "华东重点经销商群" in answer and "Dealer Desk community" in answer
    assert "华南经销商群" not in answer  # D001 is in 华东: exactly the groups it may join
    line = next(row for row in answer.splitlines() if "华东重点经销商群" in row)
    found = LINK.search(line)
    assert found, answer  # the invite link of the group, as the emulator created it
    link = found.group(0)
    east = await system.control("GET", f"chats/{EAST}")
    assert link in {li["invite_link"] for li in east["invite_links"]}, (link, east)

    after = await system.last_seq()
    await system.control("POST", "updates/join_request", {
        "user": system.user("dealer"), "chat": {"id": EAST}, "invite_link": link})

    async def joined() -> bool:
        state = await system.control("GET", f"chats/{EAST}")
        return (state["members"].get("1002") or {}).get("status") == "member"
    await _wait(joined)
    welcome = "\n".join(texts(await system.replies(EAST, after, timeout=20)))
    assert "上海恒通商贸有限公司" in welcome  # the dealer's company, in the group's language

    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            queued = await announcements.announce(
                s, {"regions": ["华东"]}, text="双十二新品订货会", actor="e2e",
                report_chat_id=system.settings.staff_chat_id)
    finally:
        await db.dispose()
    assert queued.groups == 1
    after = await system.last_seq()
    sent = "\n".join(texts(await system.replies(EAST, after - 50, timeout=30)))
    assert "双十二新品订货会" in sent


async def test_stranger_is_declined_and_the_dm_failure_is_handled(system: Harness) -> None:
    stranger = {"id": 4242, "first_name": "Stranger", "is_bot": False}
    await system.control("POST", "updates/join_request", {"user": stranger,
                                                          "chat": {"id": EAST}})

    async def declined() -> bool:
        state = await system.control("GET", f"chats/{EAST}")
        return 4242 in state["join_requests"]["declined"]
    await _wait(declined)
    # the gateway is still answering after the 403 on the private notice
    assert texts(await system.say("dealer", "/groups"))

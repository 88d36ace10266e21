"""Security of the running system: who may ask Rasa as whom, staff-only buttons, secrets."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
from sqlalchemy import func, select

from core import identity
from core.db import Database
from core.models import AuditLog, Ticket
from sandbox.harness import Harness, buttons, texts

pytestmark = pytest.mark.asyncio(loop_scope="session")

VICTIM = "1001"  # the demo retailer persona R001, linked, with open orders


async def rest(system: Harness, sender: str, message: str, metadata: dict | None = None
               ) -> list[dict]:
    """Post straight to Rasa's REST channel, as anyone on the host could."""
    body: dict = {"sender": sender, "message": message}
    if metadata is not None:
        body["metadata"] = metadata
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{system.rasa_url}/webhooks/rest/webhook", json=body) as resp:
            assert resp.status == 200
            return await resp.json()


def templates(responses: list[dict]) -> list[str]:
    return [str((r.get("custom") or {}).get("template")) for r in responses]


async def test_posting_to_rasa_as_a_victim_reveals_nothing(system: Harness) -> None:
    forged = {
        "none": None,
        "made up": {identity.METADATA_KEY: identity.sign("guessed-key", VICTIM)},
        "expired": {identity.METADATA_KEY: identity.sign(
            system.env["IDENTITY_SIGNING_KEY"], VICTIM, now=time.time() - 600)},
    }
    for case, metadata in forged.items():
        got = await rest(system, VICTIM, "/order_status", metadata)
        assert templates(got) == ["link_required"], (case, got)
        assert "SO2026" not in str(got), case
    # Control: the same request with the gateway's proof (as Rasa 3.6 passes it on in
    # tracker.latest_message.metadata) does reach the victim's orders — so the refusals above
    # are the signature check, not a broken path.
    signed = {identity.METADATA_KEY: identity.sign(system.env["IDENTITY_SIGNING_KEY"], VICTIM)}
    got = await rest(system, VICTIM, "/order_status", signed)
    assert "SO2026" in str(got), got
    # And through the gateway a linked persona still sees its own orders.
    sent = await system.say("retailer", "我的订单到哪了")
    assert any("SO2026" in t for t in texts(sent)) or any("SO2026" in label
                                                           for label, _ in buttons(sent))


async def test_no_secret_on_any_command_line(system: Harness) -> None:
    secrets = {name: system.env[name] for name in
               ("ACTION_SERVER_TOKEN", "IDENTITY_SIGNING_KEY", "LINK_CODE_PEPPER")}
    for name in ("RASA_AUTH_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_BOT_TOKEN"):
        if system.env.get(name):
            secrets[name] = system.env[name]
    ours = [p.process.pid for p in system.stack.procs if p.process]
    assert {p.name for p in system.stack.procs} >= {"actions", "rasa", "gateway", "worker",
                                                   "scheduler"}
    seen = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        seen += 1
        for name, value in secrets.items():
            assert value not in cmdline, f"{name} visible in `ps` for pid {proc.info['pid']}"
    assert seen > len(ours)
    rasa = next(p for p in system.stack.procs if p.name == "rasa")
    assert "--enable-api" not in rasa.command and "--auth-token" not in rasa.command


async def test_secret_files_database_and_logs_are_owner_only(system: Harness) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    data = system.data_dir
    assert mode(data) == 0o700
    assert mode(Path(system.env["RASA_ENDPOINTS"])) == 0o600
    assert system.env["ACTION_SERVER_TOKEN"] in Path(system.env["RASA_ENDPOINTS"]).read_text()
    assert mode(data / "e2e.db") == 0o600
    logs = list((data / "logs").glob("*.log"))
    assert len(logs) >= 4 and all(mode(p) == 0o600 for p in logs), logs
    for path in data.rglob("*"):
        if path.is_file():
            assert mode(path) & 0o077 == 0, f"{path} is readable by others"


async def answers_after(system: Harness, after: int, timeout: float = 10) -> list[dict]:
    """answerCallbackQuery calls recorded after `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = await system.control("GET", f"calls?method=answerCallbackQuery&after={after}")
        if calls:
            return calls
        await asyncio.sleep(0.2)
    return []


async def call_seq(system: Harness) -> int:
    calls = await system.control("GET", "calls")
    return max([0, *(int(c["seq"]) for c in calls)])


async def ticket_status(system: Harness, ticket_id: int) -> str:
    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            return str(await s.scalar(select(Ticket.status).where(Ticket.id == ticket_id)))
    finally:
        await db.dispose()


async def denied_count(system: Harness) -> int:
    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            return int(await s.scalar(select(func.count(AuditLog.id))
                                      .where(AuditLog.action == "permission.denied")) or 0)
    finally:
        await db.dispose()


async def test_only_staff_in_the_staff_group_can_close_tickets(system: Harness) -> None:
    customer = {"id": 777101, "first_name": "钱店长", "language_code": "zh-hans", "is_bot": False}
    attacker = {"id": 777102, "first_name": "Mallory", "language_code": "en", "is_bot": False}
    trainer = {"id": 1003, "first_name": "Trainer Zhao", "is_bot": False}
    staff_user = {"id": 1005, "first_name": "客服小李", "is_bot": False}
    staff_chat = {"id": system.settings.staff_chat_id, "type": "supergroup",
                  "title": "客服组 Staff desk"}
    after = await system.last_seq()
    await system.say(customer, "我要转人工，找客服")
    posted = await system.replies(system.settings.staff_chat_id, after, timeout=10)
    close_data = next(d for _, d in buttons(posted) if d.startswith("ticket:close:"))
    ticket_id = int(close_data.rsplit(":", 1)[1])
    ticket_post = next(e["message"] for e in posted if e["message"].get("reply_markup"))
    denied_before = await denied_count(system)

    # 1. A customer's client forges the close button in its own private chat.
    own = (await system.say(attacker, "/help"))[0]["message"]
    seq = await call_seq(system)
    await system.control("POST", "updates/callback", {
        "user": attacker, "chat_id": attacker["id"], "message_id": own["message_id"],
        "data": close_data, "force": True})
    answered = await answers_after(system, seq)
    assert answered and "staff" in str(answered[0]["params"].get("text", "")).lower() \
        or "客服" in str(answered[0]["params"].get("text", "")), answered
    # 2. Someone in the staff group who is not linked staff presses the real button.
    seq = await call_seq(system)
    await system.control("POST", "updates/callback", {
        "user": {"id": 777103, "first_name": "Guest", "is_bot": False},
        "chat_id": staff_chat["id"], "message_id": ticket_post["message_id"],
        "data": close_data})
    assert (await answers_after(system, seq))[0]["params"].get("text")
    # 3. A linked trainer (not customer service) replies /close to the ticket.
    after = await system.last_seq()
    await system.control("POST", "updates/message", {
        "user": trainer, "chat": staff_chat, "text": "/close",
        "reply_to_message_id": ticket_post["message_id"]})
    refusal = await system.replies(staff_chat["id"], after, timeout=10)
    assert any("客服" in t for t in texts(refusal)), texts(refusal)
    await asyncio.sleep(0.5)
    assert await ticket_status(system, ticket_id) == "open"
    assert await system.replies(customer["id"], after, timeout=1) == []
    assert await denied_count(system) == denied_before + 3

    # Linked customer service in the staff group: closes it.
    after = await system.last_seq()
    seq = await call_seq(system)
    await system.control("POST", "updates/callback", {
        "user": staff_user, "chat_id": staff_chat["id"],
        "message_id": ticket_post["message_id"], "data": close_data})
    closed = await system.replies(customer["id"], after)
    assert "结束" in texts(closed)[0]
    assert await ticket_status(system, ticket_id) == "closed"
    assert not (await answers_after(system, seq))[0]["params"].get("text")
    assert os.environ.get("IDENTITY_SIGNING_KEY") != system.env["IDENTITY_SIGNING_KEY"]

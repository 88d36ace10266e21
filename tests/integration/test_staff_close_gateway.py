"""A real gateway process: a customer's client forging `ticket:close:N` closes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from core.db import Database
from core.models import AuditLog, Ticket
from core.services import tickets
from sandbox.emulator import running_emulator
from tests.integration.test_gateway_modes import ask_help, run_gateway

STAFF_CHAT = -1009999  # run_gateway's TELEGRAM_STAFF_CHAT_ID


async def control(emu_url: str, method: str, path: str, body: dict | None = None):  # noqa: ANN201
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{emu_url}/_emulator/{path}", json=body) as resp:
            assert resp.status < 400, await resp.text()
            return await resp.json()


async def test_close_button_from_a_private_chat_is_refused(tmp_path: Path) -> None:
    async with running_emulator() as emu:
        stack = await run_gateway(tmp_path, emu.url, {})
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        try:
            async with db.transaction() as s:
                ticket = await tickets.open_ticket(s, 555001, None, "handoff", "help me")
                # Staff have the post (what the delivery worker's hook records): it is open.
                await tickets.staff_post_sent(s, ticket.id, -1009999, 1)
            attacker = {"id": 555002, "first_name": "Mallory", "language_code": "en",
                        "is_bot": False}
            own = (await ask_help(emu.url, attacker["id"]))[0]["message"]
            await control(emu.url, "POST", "updates/callback", {
                "user": attacker, "chat_id": attacker["id"], "message_id": own["message_id"],
                "data": f"ticket:close:{ticket.id}", "force": True})
            answers: list = []
            deadline = time.monotonic() + 15
            while not answers and time.monotonic() < deadline:
                answers = await control(emu.url, "GET", "calls?method=answerCallbackQuery")
                await asyncio.sleep(0.2)
            assert answers and answers[0]["params"].get("text"), answers
            assert answers[0]["params"].get("show_alert") in (True, "true", "True")
            async with db.transaction() as s:
                assert await s.scalar(select(Ticket.status).where(Ticket.id == ticket.id)) \
                    == "open"
                assert await s.scalar(select(func.count(AuditLog.id)).where(
                    AuditLog.action == "permission.denied",
                    AuditLog.actor == f"tg:{attacker['id']}")) == 1
        finally:
            await db.dispose()
            await stack.stop()

"""Webhook mode refuses updates without Telegram's secret header (a real gateway process)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from sqlalchemy import create_engine, text

from sandbox.emulator import running_emulator
from sandbox.harness import free_port
from tests.integration.test_gateway_modes import ask_help, run_gateway

SECRET = "hook-secret-0123456789abcdef0123456789"
USER = 31338


def forged_update(update_id: int) -> dict:
    now = int(time.time())
    user = {"id": USER, "is_bot": False, "first_name": "Tok", "language_code": "en"}
    return {"update_id": update_id, "message": {
        "message_id": 9000 + update_id % 1000, "date": now, "from": user,
        "chat": {"id": USER, "type": "private", "first_name": "Tok"}, "text": "/help",
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}


def claimed(tmp_path: Path, update_id: int) -> bool:
    engine = create_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM processed_updates WHERE update_id = :u"),
                                {"u": update_id}).first() is not None
    finally:
        engine.dispose()


async def sent_to(emu_url: str, after: int, timeout: float) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu_url}/_emulator/sent",
                            params={"chat_id": USER, "after": after, "timeout": timeout}) as r:
            return await r.json()


async def test_webhook_without_or_with_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    async with running_emulator() as emu:
        port = free_port()
        stack = await run_gateway(tmp_path, emu.url, {
            "TELEGRAM_MODE": "webhook", "APP__TELEGRAM__WEBHOOK_PORT": str(port),
            "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
            "TELEGRAM_WEBHOOK_SECRET": SECRET})
        try:
            # The emulator (as Telegram) delivers with the secret it was given by setWebhook.
            first = await ask_help(emu.url, USER)
            assert first and "I can help with" in first[-1]["message"]["text"]
            last = max(int(e["seq"]) for e in first)
            hook = f"http://127.0.0.1:{port}/telegram"
            async with aiohttp.ClientSession() as http:
                for update_id, headers in [
                    (880001, {}),
                    (880002, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}),
                    (880003, {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]}),
                ]:
                    async with http.post(hook, json=forged_update(update_id),
                                         headers=headers) as resp:
                        assert resp.status == 403, (update_id, resp.status)
                await asyncio.sleep(1.5)
                assert await sent_to(emu.url, last, timeout=0.5) == []
                for update_id in (880001, 880002, 880003):
                    assert not claimed(tmp_path, update_id)
                # Control: the same request with the right secret is handled.
                async with http.post(hook, json=forged_update(880004),
                                     headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
                    assert resp.status == 200
            answered = await sent_to(emu.url, last, timeout=15)
            assert answered and "I can help with" in answered[0]["message"]["text"]
            assert claimed(tmp_path, 880004)
        finally:
            await stack.stop()

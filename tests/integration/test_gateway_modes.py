"""The gateway process with a token: a custom Bot API base URL, polling and webhook modes.

Uses a private emulator and a real `python -m bot.gateway` process; commands need no Rasa.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import aiohttp
import pytest

from bot.launcher import Proc, Stack, read_procfile
from core.cli import cmd_migrate
from core.settings import load_settings
from sandbox.emulator import running_emulator
from sandbox.harness import free_port


async def run_gateway(tmp_path: Path, emu_url: str, extra: dict[str, str]) -> Stack:
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env.update({
        "TELEGRAM_BOT_TOKEN": "4242:real-looking-token",
        "TELEGRAM_STAFF_CHAT_ID": "-1009999",
        "TELEGRAM_API_BASE_URL": f"{emu_url}/bot",
        "TELEGRAM_FILE_BASE_URL": f"{emu_url}/file/bot",
        "APP_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "RASA_PORT": str(free_port()),  # nobody listens: commands must not need Rasa
        "PYTHONUNBUFFERED": "1",
        **extra,
    })
    await cmd_migrate(load_settings(env=env), argparse.Namespace())
    stack = Stack(env, echo=False, log_dir=tmp_path / "logs")
    await stack.start(Proc("gateway", read_procfile()["gateway"], ready_line="gateway ready"),
                      timeout=60)
    return stack


async def ask_help(emu_url: str, user_id: int) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        user = {"id": user_id, "first_name": "Tok", "language_code": "en"}
        async with http.post(f"{emu_url}/_emulator/updates/message",
                             json={"user": user, "text": "/help"}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(f"{emu_url}/_emulator/sent",
                            params={"chat_id": user_id, "after": 0, "timeout": 15}) as resp:
            return await resp.json()


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_token_mode_uses_the_configured_bot_api_server(tmp_path: Path, mode: str) -> None:
    async with running_emulator() as emu:
        extra: dict[str, str] = {}
        if mode == "webhook":
            port = free_port()
            extra = {"TELEGRAM_MODE": "webhook", "APP__TELEGRAM__WEBHOOK_PORT": str(port),
                     "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
                     "TELEGRAM_WEBHOOK_SECRET": "hook-secret"}
        stack = await run_gateway(tmp_path, emu.url, extra)
        try:
            sent = await ask_help(emu.url, 31337)
            assert sent and "I can help with" in sent[0]["message"]["text"]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{emu.url}/_emulator/calls") as resp:
                    calls = await resp.json()
            methods = {c["method"] for c in calls}
            if mode == "webhook":
                assert "setWebhook" in methods
            else:
                assert "getUpdates" in methods
        finally:
            await stack.stop()

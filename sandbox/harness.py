"""Run the whole system on free loopback ports and talk to it as a persona (tests, benchmarks).

Rasa's model is trained once and cached by the hash of nlu/ (nlu/train.py). A small TCP switch
sits between the gateway and Rasa so tests can make Rasa unreachable or slow and bring it back
without a 35-second restart; Rasa itself is the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.launcher import (
    SANDBOX_PERSONAS,
    Stack,
    link_sandbox_personas,
    process_env,
    register_sandbox_chats,
    standard_procs,
)
from core.cli import cmd_migrate, cmd_seed_demo
from core.db import Database
from core.settings import Settings, load_settings

PERSONAS = {p["key"]: p for p in SANDBOX_PERSONAS}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpSwitch:
    """A loopback TCP relay that can pass traffic, refuse it, or hang."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._mode = "pass"  # pass | down | slow
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def mode(self) -> str:
        """pass, down or slow."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        # Kept-alive connections would otherwise bypass the new mode.
        self._mode = value
        for writer in list(self._open):
            writer.close()
        self._open.clear()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self.server:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            writer.close()
            return
        if self.mode == "slow":
            await asyncio.sleep(60)
            writer.close()
            return
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._open.update({writer, w2})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))


@dataclass
class Harness:
    """A running system and helpers to talk to it as a persona."""

    settings: Settings
    env: dict[str, str]
    stack: Stack
    switch: TcpSwitch
    data_dir: Path
    http: aiohttp.ClientSession = field(default=None)  # type: ignore[assignment]
    prepared: Any = None  # what start_system's `prepare` returned

    @property
    def emulator(self) -> str:
        """Emulator base URL."""
        return self.settings.sandbox.url

    @property
    def rasa_url(self) -> str:
        """Rasa's own URL (not through the switch)."""
        return self.settings.rasa.url

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the emulator's control API."""
        if body is None and method != "GET":
            body = {}  # the emulator takes JSON only on state-changing routes
        async with self.http.request(method, f"{self.emulator}/_emulator/{path}",
                                     json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise AssertionError(f"control {path} → {resp.status}: {data}")
            return data

    async def last_seq(self) -> int:
        """Sequence number of the newest recorded bot message (0 if none)."""
        return int((await self.control("GET", "health"))["last_seq"])

    async def replies(self, chat_id: int, after: int, timeout: float = 20,
                      settle: float = 1.3, expect: int = 1) -> list[dict]:
        """Bot messages to a chat after `after`, once `expect` arrived and it went quiet.

        Quiet means `settle` seconds without a message: longer than the pause after a 429 in
        a private chat (Telegram allows a short burst, then about one message a second).
        """
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wait = settle if len(got) >= expect else max(0.1, deadline - time.monotonic())
            batch = await self.control(
                "GET", f"sent?chat_id={chat_id}&after={after}&timeout={wait:.2f}")
            if not batch:
                if len(got) >= expect:
                    break
                continue
            got.extend(batch)
            after = max(int(e["seq"]) for e in batch)
        return got

    async def say(self, persona: str | dict, text: str | None = None, *, kind: str = "text",
                  expect: int = 1, timeout: float = 20, **extra: Any) -> list[dict]:
        """Send a private message as a persona; return what the bot sent back."""
        user = self.user(persona)
        after = await self.last_seq()
        body: dict[str, Any] = {"user": user, "kind": kind, **extra}
        if text is not None:
            body["text"] = text
        await self.control("POST", "updates/message", body)
        return await self.replies(user["id"], after, timeout=timeout, expect=expect)

    async def click(self, persona: str | dict, message: dict, data: str,
                    expect: int = 1, *, force: bool = False) -> list[dict]:
        """Press an inline button of a bot message; what the bot sent the persona back.

        force: a press Telegram would not offer (the keyboard is gone — a fast double tap —
        or `data` is not on it — a forgery); the emulator lets it through.
        """
        user = self.user(persona)
        after = await self.last_seq()
        await self.control("POST", "updates/callback", {
            "user": user, "chat_id": message["chat"]["id"],
            "message_id": message["message_id"], "data": data, "force": force,
        })
        return await self.replies(user["id"], after, expect=expect)

    @staticmethod
    def user(persona: str | dict) -> dict:
        """A Telegram user dict for a persona key or a literal dict."""
        if isinstance(persona, dict):
            return persona
        p = PERSONAS[persona]
        return {"id": p["user_id"], "first_name": p["first_name"],
                "language_code": p["language_code"], "is_bot": False}


def texts(sent: list[dict]) -> list[str]:
    """The text of each sent/edited message."""
    return [str((e.get("message") or {}).get("text") or "") for e in sent]


def buttons(sent: list[dict]) -> list[tuple[str, str]]:
    """(label, callback_data) of every inline button in the sent messages."""
    out = []
    for e in sent:
        markup = (e.get("message") or {}).get("reply_markup") or {}
        for row in markup.get("inline_keyboard") or []:
            for b in row:
                out.append((b.get("text", ""), b.get("callback_data", "")))
    return out


def pick(sent: list[dict], label_part: str) -> tuple[dict, str]:
    """(message, callback_data) of the first button whose label contains `label_part`."""
    for e in sent:
        message = e.get("message") or {}
        for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []:
            for b in row:
                if label_part in b.get("text", ""):
                    return message, b["callback_data"]
    raise AssertionError(f"no {label_part!r} in {buttons(sent)}")


async def start_system(data_dir: Path, log=print, *, skip: Iterable[str] = (),
                       prepare: Callable[[Any, Settings], Awaitable[Any]] | None = None,
                       ) -> Harness:
    """Prepare a fresh database and start every process; the model is trained if needed.

    `skip` names launcher processes not to start (with "rasa" skipped no model is trained and
    the gateway's Rasa is unreachable). `prepare(session, settings)`, if given, runs in one
    database transaction after the demo seed and before any process starts; what it returns
    is kept as `harness.prepared`.
    """
    skip = frozenset(skip)
    rasa_port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env.update({
        "APP_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'e2e.db'}",
        "RASA_PORT": str(rasa_port),
        "ACTIONS_PORT": str(free_port()),
        "SANDBOX_PORT": str(free_port()),
        "APP__RASA__TIMEOUT_SECONDS": "3",
        "APP__SUPPORT__RESTOCK_POLL_SECONDS": "1",
        "APP__SUPPORT__TRANSCRIPT_LINES": "20",  # long enough for a staff post over 4,096
    })
    settings = load_settings(env=env)
    await cmd_migrate(settings, argparse.Namespace())
    await cmd_seed_demo(settings, argparse.Namespace())
    await link_sandbox_personas(settings)
    prepared = await _prepare(settings, prepare) if prepare else None
    model = None
    if "rasa" not in skip:
        from nlu.train import ensure_model

        t0 = time.monotonic()
        model = await asyncio.to_thread(ensure_model)
        log(f"model ready in {time.monotonic() - t0:.1f} s: {model.name}")
    switch = TcpSwitch(rasa_port)
    await switch.start()
    full_env = process_env(settings, model, base=env)
    stack = Stack(full_env, echo=False, log_dir=data_dir / "logs")
    s = settings
    harness = Harness(settings=s, env=full_env, stack=stack, switch=switch, data_dir=data_dir,
                      prepared=prepared)
    try:
        for proc in standard_procs(s):  # the launcher's processes and readiness checks
            if proc.name in skip:
                continue
            # The gateway reaches Rasa through the switch; everything else directly.
            stack.env = {**full_env, "RASA_PORT": str(switch.port)} if proc.name == "gateway" \
                else full_env
            t0 = time.monotonic()
            await stack.start(proc, timeout=300 if proc.name == "rasa" else 60)
            log(f"{proc.name} ready in {time.monotonic() - t0:.1f} s")
            if proc.name == "emulator":
                await register_sandbox_chats(s)
        stack.env = full_env
    except BaseException:
        await stack.stop()
        await switch.stop()
        raise
    harness.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    return harness


async def _prepare(settings: Settings, prepare: Callable[[Any, Settings], Awaitable[Any]]) -> Any:
    """Run `prepare(session, settings)` in one transaction on the system's database."""
    db = Database(settings.resolved_database_url())
    try:
        async with db.transaction() as session:
            return await prepare(session, settings)
    finally:
        await db.dispose()


async def stop_system(harness: Harness) -> None:
    """Stop every process and the switch."""
    await harness.http.close()
    await harness.stack.stop()
    await harness.switch.stop()

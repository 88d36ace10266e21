"""Local Telegram Bot API emulator with a control API and a sandbox chat page.

Point python-telegram-bot at it::

    Application.builder().token("123:any").base_url(f"{url}/bot").base_file_url(f"{url}/file/bot")

In-process (tests, benchmarks)::

    async with running_emulator() as emu:     # 127.0.0.1, free port
        emu.url, emu.bot_base_url, emu.file_base_url, emu.state

or ``emu = await start_emulator(host, port, personas, bot_username)`` … ``await emu.stop()``;
``create_app(personas, bot_username)`` gives the bare aiohttp app. Standalone:
``python -m sandbox.emulator --host 127.0.0.1 --port 8081 [--personas-json FILE]``.

Control API (JSON in/out, POST bodies must be application/json):

* ``POST /_emulator/updates/{message|callback|join_request|chat_member|my_chat_member|raw|
  redeliver}`` → ``{"update_id", "queued", ...}``; ``queued`` is false (with ``reason``) when
  Telegram would not deliver it (allowed_updates, privacy mode, bot not in chat / not admin).
* ``GET /_emulator/sent?chat_id=&after=&timeout=&all=1`` long-polls what the bot sent/edited/
  deleted (``all=1`` adds answerCallbackQuery and sendChatAction entries).
* ``GET /_emulator/calls?method=&after=`` every Bot API call; ``POST|GET|DELETE
  /_emulator/faults``; ``POST /_emulator/chats`` (register a group), ``GET /_emulator/chats``,
  ``GET /_emulator/chats/{id}``, ``GET /_emulator/chats/{id}/history``; ``GET
  /_emulator/updates`` (queue); ``GET /_emulator/files/{file_id}``; ``GET /_emulator/health``;
  ``POST /_emulator/reset``.
"""

from sandbox.emulator.server import (
    RunningEmulator,
    create_app,
    get_state,
    running_emulator,
    start_emulator,
)
from sandbox.emulator.state import EmulatorState

__all__ = [
    "EmulatorState",
    "RunningEmulator",
    "create_app",
    "get_state",
    "running_emulator",
    "start_emulator",
]

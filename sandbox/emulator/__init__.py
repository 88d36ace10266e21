"""Local Telegram Bot API emulator with a control API and a sandbox chat page.

Point python-telegram-bot at it::

    Application.builder().token("123:any").base_url(f"{url}/bot").base_file_url(f"{url}/file/bot")

In-process (tests, benchmarks)::

    async with running_emulator() as emu:     # 127.0.0.1, free port
        emu.url, emu.bot_base_url, emu.file_base_url, emu.state

or ``emu = await start_emulator(host, port, personas, bot_username, rate_limits=True)`` …
``await emu.stop()``; ``create_app(personas, bot_username, bind_host=, rate_limits=)`` gives the
bare aiohttp app. Standalone: ``python -m sandbox.emulator --host 127.0.0.1 --port 8081
[--personas-json FILE] [--no-rate-limits]``.

Telegram's flood limits are ON by default (sandbox/emulator/limits.py): per bot, at most 30
messages per second over all chats and 20 per minute in one group/supergroup/channel (sliding
windows), and about 1 per second in one private chat (token bucket, burst of 3). Only
message-creating methods count (send*, copyMessage, forwardMessage…). A refused call answers
429 ``{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after N",
"parameters": {"retry_after": N}}``, creates nothing and does not count.

Security: every route answers only to a loopback Host (localhost, 127.0.0.1, [::1], any port)
or the bind host (403 otherwise); the Bot API and /_emulator POST/DELETE refuse a foreign
``Origin`` (403); /_emulator POST/DELETE need ``Content-Type: application/json`` (415); the Bot
API takes POST, and GET only for read-only methods (getMe, getChat, getFile…; 405 otherwise).

Control API (JSON in/out, POST/DELETE bodies must be application/json):

* ``POST /_emulator/updates/{message|callback|join_request|chat_member|my_chat_member|raw|
  redeliver}`` → ``{"update_id", "queued", ...}``; ``queued`` is false (with ``reason``) when
  Telegram would not deliver it (allowed_updates, privacy mode, bot not in chat / not admin).
  ``my_chat_member`` with ``status: "kicked"``/``"left"`` removes the bot from a group.
* ``GET /_emulator/sent?chat_id=&after=&timeout=&all=1`` long-polls what the bot sent/edited/
  deleted (``all=1`` adds answerCallbackQuery and sendChatAction entries); every entry has
  ``time`` (wall clock of acceptance).
* ``GET /_emulator/calls?method=&after=`` every Bot API call (429s included, with status).
* ``POST /_emulator/faults`` ``{"kind", "method"="*", "chat_id"?, "times"=1 | null (until
  removed), "retry_after", "delay", "process", "migrate_to_chat_id"?}``; kinds: 429, 500, 502
  (nginx HTML), drop, slow (answers after ``delay``), blocked (403 bot was blocked by the user),
  chat_not_found (400), kicked (403 bot was kicked from the <type> chat), migrated (400 group
  chat was upgraded…, parameters.migrate_to_chat_id), deleted (403 the group chat was deleted
  / 400 chat not found); ``GET /_emulator/faults``; ``DELETE /_emulator/faults[?chat_id=]``.
* ``GET|POST /_emulator/limits`` the flood limits (``{"enabled": false}`` or new numbers:
  global_max, global_period, group_max, group_period, private_burst, private_rate);
  ``GET /_emulator/stats`` messages accepted per chat, 429s given per kind and per chat,
  first/last acceptance time.
* ``POST /_emulator/users/{id}/block`` / ``unblock``: the user blocks the bot (state: every
  later send fails 403 until unblocked; the bot gets my_chat_member).
* ``POST /_emulator/chats`` (register a group), ``GET /_emulator/chats``, ``GET
  /_emulator/chats/{id}``, ``GET /_emulator/chats/{id}/history``; ``POST
  /_emulator/chats/{id}/migrate`` ``{"from"?, "new_chat_id"?}`` upgrades a basic group to a
  -100… supergroup (members and settings move, the bot gets the migrate_to_chat_id and
  migrate_from_chat_id messages, the old id then answers 400 with migrate_to_chat_id);
  ``DELETE /_emulator/chats/{id}`` deletes a group; ``GET /_emulator/updates`` (queue);
  ``GET /_emulator/files/{file_id}``; ``GET /_emulator/health``; ``POST /_emulator/reset``
  (keeps the limit settings).
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

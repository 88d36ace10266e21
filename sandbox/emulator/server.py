"""aiohttp app of the emulator: Bot API, /_emulator control API, webhook delivery, chat page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from html import escape as html_escape
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from markupsafe import Markup

from sandbox.emulator import control
from sandbox.emulator.botapi import METHODS, Call, Upload, normalize_params
from sandbox.emulator.formatting import entities_to_html
from sandbox.emulator.limits import MESSAGE_METHODS
from sandbox.emulator.state import (
    CHAT_FAULT_KINDS,
    FAULT_KINDS,
    JSON,
    ApiError,
    ChatState,
    EmulatorState,
    Fault,
    now,
)

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parent
TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
MAX_UPLOAD = 50 * 1024 * 1024  # Telegram's upload limit; bigger bodies get 413
# Browsers send GET for links, images and form navigations from any web page; only these
# read-only methods may be called that way (python-telegram-bot always POSTs).
READ_ONLY_GET_METHODS = frozenset({
    "getMe", "getWebhookInfo", "getFile", "getChat", "getChatMember", "getChatMemberCount",
    "getChatAdministrators", "getMyCommands", "getChatMenuButton",
})
# Host names the emulator answers to (plus the host it was told to bind): anything else is a
# DNS-rebinding attempt from a web page, whose name now resolves to 127.0.0.1.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_PORT_RE = re.compile(r":\d{1,5}")
MAX_POLL_TIMEOUT = 60.0
DEFAULT_PERSONAS: list[JSON] = [
    {"key": "retailer", "label": "Demo retailer", "user_id": 1001, "first_name": "Rita",
     "language_code": "en"},
    {"key": "dealer", "label": "Demo dealer", "user_id": 1002, "first_name": "Dan",
     "language_code": "en"},
    {"key": "trainer", "label": "Trainer", "user_id": 1003, "first_name": "Tess",
     "language_code": "en"},
]
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
PAGE_HEADERS = {
    # Nothing may come from the internet, and nothing injected may run: 'self' only, no inline.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

STATE_KEY = web.AppKey("emulator_state", EmulatorState)
PERSONAS_KEY = web.AppKey("emulator_personas", list)
ALLOWED_HOSTS_KEY = web.AppKey("emulator_allowed_hosts", frozenset)
WEBHOOK_TASK_KEY = web.AppKey("emulator_webhook_task", asyncio.Task)

_dumps = partial(json.dumps, ensure_ascii=False)


def get_state(app: web.Application) -> EmulatorState:
    """The EmulatorState behind an app made by create_app."""
    return app[STATE_KEY]


# --- Bot API ----------------------------------------------------------------------------------


def _tg_ok(result: Any) -> web.Response:
    """Telegram's success envelope."""
    return web.json_response({"ok": True, "result": result}, dumps=_dumps)


def _tg_error(code: int, description: str, parameters: JSON | None = None) -> web.Response:
    """Telegram's error envelope with the matching HTTP status."""
    body: JSON = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code, dumps=_dumps)


async def _read_params(request: web.Request) -> tuple[JSON, dict[str, Upload]]:
    """Query string plus JSON, urlencoded or multipart body (file parts kept apart)."""
    raw: JSON = dict(request.query)
    files: dict[str, Upload] = {}
    if not request.body_exists:
        return raw, files
    ctype = request.content_type
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = Upload(value.filename, value.content_type, value.file.read())
            else:
                raw[name] = value
        return raw, files
    body = await request.read()
    if body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON request body") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "Bad Request: request body must be a JSON object")
        raw.update(parsed)
    return raw, files


async def _apply_fault(request: web.Request, fault: Fault, call: Call | None,
                       handler: Callable[[Call], Awaitable[Any]] | None) -> web.Response | None:
    """Turn an injected fault into a response (None means: carry on normally)."""
    if fault.kind == "slow":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "429":
        return _tg_error(429, f"Too Many Requests: retry after {fault.retry_after}",
                         {"retry_after": fault.retry_after})
    if fault.kind == "500":
        return _tg_error(500, "Internal Server Error")
    if fault.kind == "502":
        # The real 502 comes from Telegram's nginx as HTML, not as a Bot API JSON error.
        return web.Response(status=502, text=BAD_GATEWAY_HTML, content_type="text/html")
    # "drop": optionally execute the call first (the response is lost, the side effect isn't).
    if fault.process and call is not None and handler is not None:
        with contextlib.suppress(ApiError):
            await handler(call)
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


def _limited(method_name: str, handler: Callable[[Call], Awaitable[Any]],
             ) -> Callable[[Call], Awaitable[Any]]:
    """Wrap a handler in Telegram's flood limits: refuse with 429 before anything happens, and
    count the message only once the handler has really sent it."""
    if method_name not in MESSAGE_METHODS:
        return handler

    async def run(call: Call) -> Any:
        state, chat_id = call.state, call.params.get("chat_id")
        chat = state.chat_state(chat_id) if isinstance(chat_id, int | str) else None
        refusal = state.limiter.check(call.bot_id, chat.id if chat else None,
                                      chat.type if chat else None)
        if refusal is not None:
            raise ApiError(429, f"Too Many Requests: retry after {refusal.retry_after}",
                           refusal.retry_after)
        result = await handler(call)
        if chat is not None:
            state.limiter.accept(call.bot_id, chat.id, chat.type)
        return result

    return run


def _chat_fault_error(state: EmulatorState, fault: Fault, chat_id: Any) -> ApiError:
    """The Telegram error of a chat fault, worded for the chat's type when the chat is known."""
    chat = state.chat_state(chat_id) if isinstance(chat_id, int | str) else None
    if fault.kind == "migrated" and fault.migrate_to_chat_id is None:
        fault.migrate_to_chat_id = (chat.migrated_to if chat and chat.migrated_to else
                                    control.supergroup_id_for(state, int(chat_id or 0)))
    return fault.error(chat.type if chat else None)


async def bot_api(request: web.Request) -> web.StreamResponse:
    """/bot<token>/<method>: dispatch a Bot API call, recording it in the call log."""
    state = request.app[STATE_KEY]
    started = time.time()
    token, name = request.match_info["token"], request.match_info["method"]
    entry = METHODS.get(name.lower())
    method_name = entry[0] if entry else name
    match = TOKEN_RE.match(token)
    logged: JSON = {}
    status, description = 200, ""
    try:
        if match is None or entry is None:
            raise ApiError(404, "Not Found")
        if request.method != "POST" and not (request.method == "GET"
                                              and method_name in READ_ONLY_GET_METHODS):
            # A GET can be forged by any web page (a link, an <img>): state changes need POST.
            raise ApiError(405, f"Method Not Allowed: {method_name} must be called with POST")
        bot_id = int(match.group(1))
        state.last_bot_id = bot_id
        try:
            raw, files = await _read_params(request)
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "Request Entity Too Large") from None
        logged = dict(raw)
        call = Call(state, bot_id, normalize_params(raw), files)
        logged = call.log_params()
        handler = _limited(method_name, entry[1])
        fault = state.take_fault(method_name, call.params.get("chat_id"))
        if fault is not None and fault.kind in CHAT_FAULT_KINDS:
            raise _chat_fault_error(state, fault, call.params.get("chat_id"))
        if fault is not None:
            faulted = await _apply_fault(request, fault, call, handler)
            if faulted is not None:
                status = faulted.status
                description = f"injected fault {fault.kind}"
                return faulted
        result = await handler(call)
        return _tg_ok(result)
    except ApiError as exc:
        status, description = exc.code, exc.description
        return _tg_error(exc.code, exc.description, exc.parameters)
    except Exception:
        # An emulator bug must look like a Telegram 500, not an HTML page PTB can't parse.
        log.exception("emulator error in %s", method_name)
        status, description = 500, "emulator error (see emulator log)"
        return _tg_error(500, "Internal Server Error")
    finally:
        state.record_call(method_name, logged, status, started, description)


async def file_download(request: web.Request) -> web.StreamResponse:
    """/file/bot<token>/<file_path>: the bytes behind getFile's file_path."""
    state = request.app[STATE_KEY]
    record = None
    if TOKEN_RE.match(request.match_info["token"]):
        record = state.file_by_path(request.match_info["file_path"])
    if record is None:
        return _tg_error(404, "Not Found")
    return web.Response(body=record.content,
                        content_type=record.mime_type or "application/octet-stream")


# --- control API ------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    """Plain JSON response for the control API."""
    return web.json_response(data, status=status, dumps=_dumps)


async def _control_body(request: web.Request) -> JSON:
    """The JSON object body of a control request.

    Requiring application/json keeps browsers on other origins from posting here (a
    cross-origin JSON POST needs a CORS preflight that this server never grants).
    """
    if request.content_type != "application/json":
        raise control.ControlError(415, "control API requests must be application/json")
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise control.ControlError(400, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise control.ControlError(400, "body must be a JSON object")
    return body


@web.middleware
async def control_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Render ControlError as ``{"error": ...}`` with its status."""
    try:
        return await handler(request)
    except control.ControlError as exc:
        return _json({"error": exc.message}, exc.status)


def _host_name(header: str) -> str | None:
    """The host part of a Host header ("[::1]:8081" -> "::1"); None if malformed."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1:]
    else:
        name, sep, port = header.partition(":")
        rest = sep + port
    if not name or (rest and not _PORT_RE.fullmatch(rest)):
        return None
    return name


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    """A refusal in the shape the caller understands: Telegram's envelope for the Bot API."""
    if request.path.startswith(("/bot", "/file/bot")):
        prefix = "Forbidden" if status == 403 else "Unsupported Media Type"
        return _tg_error(status, f"{prefix}: {message}")
    return _json({"error": message}, status)


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Keep web pages the developer visits from driving the sandbox.

    * Host must be a loopback name (or the bind host): defeats DNS rebinding, where an
      attacker's domain resolves to 127.0.0.1 and the browser treats it as same-origin.
    * State-changing requests (Bot API, /_emulator POST/DELETE) with a foreign Origin are
      refused: browsers send Origin on cross-site POSTs, even "simple" form posts that need
      no CORS preflight.
    * /_emulator POST/DELETE must be application/json, which a cross-site page can only send
      after a CORS preflight this server never grants.
    """
    host = _host_name(request.headers.get("Host", ""))
    if host is None or host not in request.app[ALLOWED_HOSTS_KEY]:
        return _refuse(request, 403, "Host header not allowed: the sandbox answers only to "
                                     "localhost/127.0.0.1/[::1] (DNS rebinding protection)")
    reading = request.method in ("GET", "HEAD")
    changes = not reading or request.path.startswith("/bot")
    origin = request.headers.get("Origin")
    if changes and origin is not None \
            and origin.lower() != f"http://{request.headers['Host'].strip().lower()}":
        return _refuse(request, 403, f"cross-origin request from {origin[:100]} refused")
    if not reading and request.path.startswith("/_emulator/") \
            and request.content_type != "application/json":
        return _refuse(request, 415, "control API requests must be application/json")
    return await handler(request)


_INJECTORS: dict[str, Callable[[EmulatorState, JSON], JSON]] = {
    "message": control.inject_message,
    "callback": control.inject_callback,
    "join_request": control.inject_join_request,
    "chat_member": control.inject_chat_member,
    "my_chat_member": control.inject_my_chat_member,
    "raw": control.inject_raw,
    "redeliver": control.redeliver,
}


async def inject_update(request: web.Request) -> web.Response:
    """POST /_emulator/updates/{kind}: simulate something a Telegram user did."""
    injector = _INJECTORS.get(request.match_info["kind"])
    if injector is None:
        raise control.ControlError(404, f"unknown update kind; use one of {sorted(_INJECTORS)}")
    body = await _control_body(request)
    return _json(injector(request.app[STATE_KEY], body))


async def pending_updates(request: web.Request) -> web.Response:
    """GET /_emulator/updates: the queue as the bot would see it (debugging aid)."""
    state = request.app[STATE_KEY]
    return _json({
        "pending": [p.update for _, p in sorted(state.pending.items())],
        "allowed_updates": state.allowed_updates,
        "dropped_by_allowed_updates": state.dropped_updates,
        "webhook": {k: v for k, v in state.webhook.items() if k != "secret_token"},
    })


async def register_chat(request: web.Request) -> web.Response:
    """POST /_emulator/chats: create/update a group chat, its members and the bot's rights."""
    body = await _control_body(request)
    return _json(control.register_chat(request.app[STATE_KEY], body))


def _chat_from_path(request: web.Request) -> ChatState:
    """The ChatState named in the URL, or a 404."""
    chat = request.app[STATE_KEY].chat_state(request.match_info["chat_id"])
    if chat is None:
        raise control.ControlError(404, "chat not found")
    return chat


async def list_chats(request: web.Request) -> web.Response:
    """GET /_emulator/chats?type=: known chats (the page offers the groups)."""
    wanted = request.query.get("type")
    chats = [
        {"chat": c.chat, "bot_status": c.bot_member.get("status"),
         "member_ids": [uid for uid, m in c.members.items()
                        if m["status"] in ("creator", "administrator", "member", "restricted")]}
        for c in request.app[STATE_KEY].chats.values()
        # an upgraded or deleted group can't be chatted in any more
        if (not wanted or c.type in wanted.split(",")) and c.migrated_to is None
        and not c.deleted
    ]
    return _json(chats)


async def chat_info(request: web.Request) -> web.Response:
    """GET /_emulator/chats/{chat_id}: members, bans, pins, join requests, invite links."""
    chat = _chat_from_path(request)
    return _json(request.app[STATE_KEY].chat_snapshot(chat))


async def chat_history(request: web.Request) -> web.Response:
    """GET /_emulator/chats/{chat_id}/history: stored messages (user and bot) in order."""
    chat = _chat_from_path(request)
    state = request.app[STATE_KEY]
    last_seq = state.sent[-1]["seq"] if state.sent else 0
    return _json({"chat": chat.chat, "messages": list(chat.messages.values()),
                  "last_seq": last_seq})


def _int_arg(request: web.Request, name: str, default: int | None = None) -> int | None:
    """An optional integer query argument."""
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise control.ControlError(400, f"{name} must be an integer") from None


def _newer_than(log: Iterable[JSON], after: int) -> list[JSON]:
    """Entries with seq > after, scanning from the newest end (logs are in seq order), so a
    long-poll wake-up costs O(new entries) rather than O(log size)."""
    newer: list[JSON] = []
    for entry in reversed(log):  # type: ignore[call-overload]
        if entry["seq"] <= after:
            break
        newer.append(entry)
    newer.reverse()
    return newer


_MESSAGE_METHODS = frozenset({
    "sendMessage", "sendDocument", "sendPhoto", "copyMessage", "forwardMessage",
    "editMessageText", "editMessageCaption", "editMessageReplyMarkup", "deleteMessage",
})


async def sent_messages(request: web.Request) -> web.Response:
    """GET /_emulator/sent?chat_id=&after=&timeout=&all=: long-poll the bot's messages.

    By default only entries carrying a message (sends, edits, deletes); ``all=1`` adds
    answerCallbackQuery and sendChatAction entries (message null) for the chat page.
    """
    state = request.app[STATE_KEY]
    chat_id = _int_arg(request, "chat_id")
    after = _int_arg(request, "after", 0) or 0
    try:
        timeout = min(max(float(request.query.get("timeout") or 0), 0.0), MAX_POLL_TIMEOUT)
    except ValueError:
        raise control.ControlError(400, "timeout must be a number") from None
    include_all = request.query.get("all", "") in ("1", "true", "yes")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        entries = [
            e for e in _newer_than(state.sent, after)
            if (chat_id is None or e["chat_id"] == chat_id)
            and (include_all or e["method"] in _MESSAGE_METHODS)
        ]
        remaining = deadline - loop.time()
        if entries or remaining <= 0 or state.closing:
            return _json(entries)
        await state.sent_changed.wait(remaining)


async def call_log(request: web.Request) -> web.Response:
    """GET /_emulator/calls?method=&after=: recorded Bot API calls (newest last)."""
    state = request.app[STATE_KEY]
    wanted = (request.query.get("method") or "").lower()
    after = _int_arg(request, "after", 0) or 0
    return _json([c for c in _newer_than(state.calls, after)
                  if not wanted or c["method"].lower() == wanted])


def _optional_int(body: JSON, name: str) -> int | None:
    """An optional integer field of a control body."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise control.ControlError(400, f"{name} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise control.ControlError(400, f"{name} must be an integer") from None


async def add_fault(request: web.Request) -> web.Response:
    """POST /_emulator/faults: fail the next ``times`` calls (null = until removed) of
    ``method`` (or "*"), optionally only those to ``chat_id``."""
    body = await _control_body(request)
    kind = str(body.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise control.ControlError(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
    chat_id: int | str | None = body.get("chat_id")
    if isinstance(chat_id, str) and chat_id.strip().startswith("@"):
        chat_id = chat_id.strip()
    else:
        chat_id = _optional_int(body, "chat_id")
    try:
        fault = Fault(
            method=str(body.get("method") or "*").lower(),
            kind=kind,
            times=None if "times" in body and body["times"] is None else
            int(body.get("times", 1)),
            retry_after=int(body.get("retry_after", 1)),
            delay=float(body.get("delay", 0.0)),
            process=bool(body.get("process", False)),
            chat_id=chat_id,
            migrate_to_chat_id=_optional_int(body, "migrate_to_chat_id"),
        )
    except (TypeError, ValueError):
        raise control.ControlError(400, "times/retry_after must be integers, delay a number") \
            from None
    if (fault.times is not None and fault.times < 1) or fault.retry_after < 1 \
            or not 0 <= fault.delay <= MAX_POLL_TIMEOUT:
        raise control.ControlError(400, "times (or null) and retry_after must be >= 1, "
                                        "delay 0..60")
    state = request.app[STATE_KEY]
    state.faults.append(fault)
    return _json([f.to_json() for f in state.faults])


async def list_faults(request: web.Request) -> web.Response:
    """GET /_emulator/faults: faults not yet used up."""
    return _json([f.to_json() for f in request.app[STATE_KEY].faults])


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_emulator/faults[?chat_id=]: remove all faults, or those aimed at one chat."""
    state = request.app[STATE_KEY]
    chat_id = request.query.get("chat_id")
    if chat_id is None:
        state.faults.clear()
    else:
        state.faults = [f for f in state.faults
                        if f.chat_id is None or str(f.chat_id).lower() != chat_id.lower()]
    return _json([f.to_json() for f in state.faults])


async def get_limits(request: web.Request) -> web.Response:
    """GET /_emulator/limits: the flood limits in force."""
    return _json(request.app[STATE_KEY].limiter.config.to_json())


async def set_limits(request: web.Request) -> web.Response:
    """POST /_emulator/limits: switch limits on/off or change numbers (partial update)."""
    body = await _control_body(request)
    limiter = request.app[STATE_KEY].limiter
    try:
        limiter.config.update(body)
    except ValueError as exc:
        raise control.ControlError(400, str(exc)) from None
    return _json(limiter.config.to_json())


async def stats(request: web.Request) -> web.Response:
    """GET /_emulator/stats: messages accepted per chat, 429s given per limit kind."""
    return _json(request.app[STATE_KEY].limiter.stats())


async def block_user(request: web.Request) -> web.Response:
    """POST /_emulator/users/{user_id}/block|unblock: the user blocks or unblocks the bot."""
    try:
        user_id = int(request.match_info["user_id"])
    except ValueError:
        raise control.ControlError(400, "user id must be an integer") from None
    blocked = request.match_info["action"] == "block"
    return _json(control.block_user(request.app[STATE_KEY], user_id, blocked))


async def migrate_chat(request: web.Request) -> web.Response:
    """POST /_emulator/chats/{chat_id}/migrate: upgrade a basic group to a supergroup."""
    body = await _control_body(request)
    chat = _chat_from_path(request)
    return _json(control.migrate_chat(request.app[STATE_KEY], chat, body))


async def delete_chat(request: web.Request) -> web.Response:
    """DELETE /_emulator/chats/{chat_id}: the group is deleted; later sends fail."""
    chat = _chat_from_path(request)
    return _json(control.delete_chat(request.app[STATE_KEY], chat))


async def reset(request: web.Request) -> web.Response:
    """POST /_emulator/reset: forget every chat, update, log, fault, file and webhook."""
    request.app[STATE_KEY].reset()
    return _json({"reset": True})


async def health(request: web.Request) -> web.Response:
    """GET /_emulator/health: readiness probe; last_seq is the newest sent-log seq (a cheap
    starting point for ``/sent?after=``)."""
    state = request.app[STATE_KEY]
    last_seq = state.sent[-1]["seq"] if state.sent else 0
    limiter = state.limiter
    return _json({"ok": True, "bot_username": state.bot_username, "time": now(),
                  "last_seq": last_seq, "pending_updates": len(state.pending),
                  "rate_limits": limiter.config.enabled,
                  "rate_limited": sum(limiter.refused.values())})


async def list_personas(request: web.Request) -> web.Response:
    """GET /_emulator/personas: the personas offered by the chat page."""
    return _json(request.app[PERSONAS_KEY])


async def raw_file(request: web.Request) -> web.StreamResponse:
    """GET /_emulator/files/{file_id}: file bytes for the chat page (token-free)."""
    record = request.app[STATE_KEY].files.get(request.match_info["file_id"])
    if record is None:
        raise control.ControlError(404, "file not found")
    headers = {"X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox"}
    mime = record.mime_type or "application/octet-stream"
    if mime not in INLINE_IMAGE_TYPES:
        # Uploaded HTML/SVG must never render on the page's origin.
        mime = "application/octet-stream"
        name = (record.file_name or "file").replace('"', "")
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return web.Response(body=record.content, content_type=mime, headers=headers)


# --- chat page -------------------------------------------------------------------------------

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _page_history(state: EmulatorState, persona: JSON, chat: ChatState | None,
                  limit: int = 200) -> list[JSON]:
    """A chat rendered for first paint (the page's JS then takes over)."""
    if chat is None:
        return []
    rows = []
    for message in list(chat.messages.values())[-limit:]:
        if "text" in message:
            body = entities_to_html(message["text"], message.get("entities"))
        elif message.get("caption"):
            body = entities_to_html(message["caption"], message.get("caption_entities"))
        else:
            kinds = [k for k in ("document", "photo", "voice", "sticker", "location", "contact")
                     if k in message]
            body = html_escape(f"[{kinds[0] if kinds else 'message'}]")
        sender = message.get("from") or {}
        mine = sender.get("id") == persona["user_id"]
        rows.append({
            "id": message["message_id"],
            "side": "out" if mine else "in",
            "sender": sender.get("first_name") if chat.type != "private" and not mine else None,
            # entities_to_html escapes every character of the text itself
            "html": Markup(body),
        })
    return rows


async def chat_page(request: web.Request) -> web.Response:
    """GET /?persona=<key>[&chat=<group id>]: the sandbox chat page, history pre-rendered."""
    state = request.app[STATE_KEY]
    all_personas = request.app[PERSONAS_KEY]
    wanted = request.query.get("persona")
    persona = next((p for p in all_personas if p["key"] == wanted), all_personas[0])
    group = state.chat_state(request.query.get("chat", "")) if request.query.get("chat") else None
    if group is not None and group.type == "private":
        group = None
    html = _templates.get_template("chat.html").render(
        personas=all_personas,
        selected=persona["key"],
        chat_option=group.chat if group else None,
        history=_page_history(state, persona, group or state.chat_state(persona["user_id"])),
        bot_username=state.bot_username,
    )
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


def validate_personas(raw: Any) -> list[JSON]:
    """Check persona dicts ({key, label, user_id, first_name, language_code?, username?})."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("personas must be a non-empty list")
    result, seen = [], set()
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("each persona must be an object")
        missing = [k for k in ("key", "label", "user_id", "first_name") if not item.get(k)]
        if missing:
            raise ValueError(f"persona {item!r} lacks {', '.join(missing)}")
        if str(item["key"]) in seen:
            raise ValueError(f"duplicate persona key {item['key']!r}")
        seen.add(str(item["key"]))
        persona = {"key": str(item["key"]), "label": str(item["label"]),
                   "user_id": int(item["user_id"]), "first_name": str(item["first_name"]),
                   "language_code": str(item.get("language_code") or "en")}
        if item.get("username"):
            persona["username"] = str(item["username"])
        result.append(persona)
    return result


# --- webhook delivery -----------------------------------------------------------------------


async def _deliver_webhooks(state: EmulatorState) -> None:
    """POST queued updates to the webhook one at a time; 2xx confirms, anything else retries."""
    session: aiohttp.ClientSession | None = None
    failures = 0
    try:
        while not state.closing:
            url = state.webhook.get("url")
            update = state.next_webhook_update() if url else None
            if update is None:
                await state.updates_changed.wait(5.0)
                continue
            if session is None:
                session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
            headers = {"Content-Type": "application/json"}
            if state.webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = state.webhook["secret_token"]
            error = ""
            try:
                async with session.post(url, data=_dumps(update), headers=headers) as resp:
                    await resp.read()
                    if not 200 <= resp.status < 300:
                        error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"Connection failed: {exc.__class__.__name__}: {exc}"
            if not error:
                failures = 0
                state.ack_webhook_update(int(update["update_id"]))
                continue
            failures += 1
            state.webhook_error = {"last_error_date": now(), "last_error_message": error}
            # Back off like Telegram does, but briefly: tests should not wait long.
            await state.updates_changed.wait(min(0.05 * 2**failures, 3.0))
    finally:
        if session is not None:
            await session.close()


async def _start_background(app: web.Application) -> None:
    """on_startup: run the webhook deliverer."""
    app[WEBHOOK_TASK_KEY] = asyncio.create_task(_deliver_webhooks(app[STATE_KEY]))


async def _wake_pollers(app: web.Application) -> None:
    """on_shutdown: release long-polls so the server can stop without waiting for them."""
    app[STATE_KEY].close()


async def _stop_background(app: web.Application) -> None:
    """on_cleanup: stop the webhook deliverer."""
    task = app.get(WEBHOOK_TASK_KEY)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- app factory ------------------------------------------------------------------------------


def create_app(
    personas: list[JSON] | None = None,
    bot_username: str = "sandbox_bot",
    *,
    state: EmulatorState | None = None,
    bind_host: str | None = None,
    rate_limits: bool = True,
) -> web.Application:
    """Build the emulator app: Bot API, file downloads, /_emulator control API and chat page.

    ``bind_host`` is accepted in Host headers besides the loopback names; ``rate_limits``
    False starts with Telegram's flood limits off.
    """
    app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024,
                          middlewares=[guard, control_errors])
    app[STATE_KEY] = state or EmulatorState(bot_username=bot_username)
    app[STATE_KEY].limiter.config.enabled = rate_limits
    allowed = set(LOOPBACK_HOSTS)
    if bind_host:
        allowed.add(bind_host.strip().strip("[]").lower())
    app[ALLOWED_HOSTS_KEY] = frozenset(allowed)
    app[PERSONAS_KEY] = validate_personas(personas if personas is not None else DEFAULT_PERSONAS)
    router = app.router
    router.add_route("*", "/bot{token}/{method}", bot_api)
    router.add_get("/file/bot{token}/{file_path:.+}", file_download)
    router.add_post("/_emulator/updates/{kind}", inject_update)
    router.add_get("/_emulator/updates", pending_updates)
    router.add_post("/_emulator/chats", register_chat)
    router.add_get("/_emulator/chats", list_chats)
    router.add_get("/_emulator/chats/{chat_id}", chat_info)
    router.add_get("/_emulator/chats/{chat_id}/history", chat_history)
    router.add_post("/_emulator/chats/{chat_id}/migrate", migrate_chat)
    router.add_delete("/_emulator/chats/{chat_id}", delete_chat)
    router.add_post("/_emulator/users/{user_id}/{action:block|unblock}", block_user)
    router.add_get("/_emulator/limits", get_limits)
    router.add_post("/_emulator/limits", set_limits)
    router.add_get("/_emulator/stats", stats)
    router.add_get("/_emulator/sent", sent_messages)
    router.add_get("/_emulator/calls", call_log)
    router.add_get("/_emulator/faults", list_faults)
    router.add_post("/_emulator/faults", add_fault)
    router.add_delete("/_emulator/faults", clear_faults)
    router.add_post("/_emulator/reset", reset)
    router.add_get("/_emulator/health", health)
    router.add_get("/_emulator/personas", list_personas)
    router.add_get("/_emulator/files/{file_id}", raw_file)
    router.add_get("/", chat_page)
    router.add_static("/static/", PACKAGE_DIR / "static")
    app.on_startup.append(_start_background)
    app.on_shutdown.append(_wake_pollers)
    app.on_cleanup.append(_stop_background)
    return app


@dataclass
class RunningEmulator:
    """An emulator served in-process; ``url`` is e.g. ``http://127.0.0.1:43121``."""

    url: str
    app: web.Application
    runner: web.AppRunner

    @property
    def state(self) -> EmulatorState:
        """Direct access to the emulator's state."""
        return self.app[STATE_KEY]

    @property
    def bot_base_url(self) -> str:
        """Value for PTB's ``base_url``."""
        return f"{self.url}/bot"

    @property
    def file_base_url(self) -> str:
        """Value for PTB's ``base_file_url``."""
        return f"{self.url}/file/bot"

    async def stop(self) -> None:
        """Stop serving and release the port."""
        await self.runner.cleanup()


async def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    personas: list[JSON] | None = None,
    bot_username: str = "sandbox_bot",
    rate_limits: bool = True,
) -> RunningEmulator:
    """Start the emulator on ``host:port`` (0 = a free port) inside the running loop."""
    app = create_app(personas, bot_username, bind_host=host, rate_limits=rate_limits)
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp exposes the bound port only through the server sockets
    sockets = getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    shown_host = f"[{host}]" if ":" in host else host
    return RunningEmulator(url=f"http://{shown_host}:{bound_port}", app=app, runner=runner)


@contextlib.asynccontextmanager
async def running_emulator(
    personas: list[JSON] | None = None, bot_username: str = "sandbox_bot",
    rate_limits: bool = True,
) -> AsyncIterator[RunningEmulator]:
    """``async with running_emulator() as emu:`` — start on a free port, stop afterwards."""
    emulator = await start_emulator(personas=personas, bot_username=bot_username,
                                    rate_limits=rate_limits)
    try:
        yield emulator
    finally:
        await emulator.stop()

"""Bot API methods of the emulator: validation and behaviour modelled on api.telegram.org."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sandbox.emulator.formatting import EntityParseError, parse_text, strip_text
from sandbox.emulator.state import (
    ADMIN_RIGHTS,
    JSON,
    MEMBER_PERMISSIONS,
    PRESENT_STATUSES,
    ApiError,
    ChatState,
    EmulatorState,
    FileRecord,
    bad_request,
    chat_kind_name,
    deleted_error,
    forbidden,
    member_obj,
    migrated_error,
    now,
)

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses bigger files, like the real Bot API
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
CONTENT_KEYS = ("text", "entities", "caption", "caption_entities", "document", "photo",
                "voice", "sticker", "location", "contact")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

# Form-encoded requests carry every value as a string; these tables restore the real types.
_INT_PARAMS = frozenset({
    "message_id", "user_id", "offset", "limit", "timeout", "until_date", "expire_date",
    "member_limit", "max_connections", "cache_time", "message_thread_id", "reply_to_message_id",
})
_JSON_PARAMS = frozenset({
    "reply_markup", "entities", "caption_entities", "reply_parameters", "link_preview_options",
    "allowed_updates", "permissions", "commands", "scope", "menu_button", "message_ids",
})
_BOOL_PARAMS = frozenset({
    "disable_notification", "protect_content", "show_alert", "drop_pending_updates",
    "only_if_banned", "revoke_messages", "creates_join_request", "disable_web_page_preview",
    "allow_sending_without_reply", "is_anonymous", "use_independent_chat_permissions",
    "remove_caption", "show_caption_above_media", "has_spoiler", "disable_content_type_detection",
    "allow_paid_broadcast",
})


@dataclass
class Upload:
    """One multipart file part."""

    filename: str | None
    content_type: str | None
    content: bytes


@dataclass
class Call:
    """One Bot API request being served."""

    state: EmulatorState
    bot_id: int
    params: JSON
    files: dict[str, Upload] = field(default_factory=dict)

    @property
    def bot(self) -> JSON:
        """The calling bot's User."""
        return self.state.bot_user(self.bot_id)

    def log_params(self) -> JSON:
        """Params for the logs, with uploads summarised instead of raw bytes."""
        logged = dict(self.params)
        for name, upload in self.files.items():
            logged[name] = {
                "file_name": upload.filename,
                "content_type": upload.content_type,
                "size": len(upload.content),
            }
        return logged


Handler = Callable[[Call], Awaitable[Any]]
METHODS: dict[str, tuple[str, Handler]] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register a Bot API method under its case-insensitive name."""

    def register(func: Handler) -> Handler:
        METHODS[name.lower()] = (name, func)
        return func

    return register


def _to_bool(value: Any) -> bool:
    """Telegram's lenient boolean parsing for form values."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def normalize_params(raw: dict[str, Any]) -> JSON:
    """Coerce form-encoded strings to ints/bools/JSON so handlers see one shape."""
    params: JSON = {}
    for name, value in raw.items():
        if name in ("chat_id", "from_chat_id"):
            if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
        elif name in _INT_PARAMS:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise bad_request(f"invalid {name} specified") from None
        elif name in _BOOL_PARAMS or (name.startswith("can_") and name != "can_set_sticker_set"):
            value = _to_bool(value)
        elif name in _JSON_PARAMS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                if name == "reply_markup":
                    raise bad_request("can't parse reply keyboard markup JSON object") from None
                raise bad_request(f"can't parse {name} JSON object") from None
        params[name] = value
    return params


# --- shared helpers -------------------------------------------------------------------------


def _require(call: Call, name: str, reason: str | None = None) -> Any:
    """A required parameter, or Telegram's "<name> is empty" error."""
    value = call.params.get(name)
    if value is None or value == "":
        raise bad_request(reason or f"{name} is empty")
    return value


def _chat(call: Call, key: str = "chat_id") -> ChatState:
    """The chat named by ``key``; unknown chats are "chat not found" like in Telegram."""
    chat_id = _require(call, key)
    state = call.state.chat_state(chat_id)
    if state is None:
        if isinstance(chat_id, int) and chat_id in call.state.users:
            # Telegram knows the user (e.g. from a group) but they never started the bot.
            raise forbidden("bot can't initiate conversation with a user")
        raise bad_request("chat not found")
    if state.migrated_to is not None:
        raise migrated_error(state.migrated_to)
    if state.deleted:
        raise deleted_error(state.type)
    return state


def _ensure_can_send(chat: ChatState) -> None:
    """Refuse sends to users who blocked the bot or chats the bot isn't in."""
    status = chat.bot_member.get("status", "member")
    if chat.type == "private":
        if status == "kicked":
            raise forbidden("bot was blocked by the user")
        return
    kind = chat_kind_name(chat.type)
    if status == "kicked":
        raise forbidden(f"bot was kicked from the {kind}")
    if status == "left":
        raise forbidden(f"bot is not a member of the {kind}")
    if chat.type == "channel" and status != "administrator":
        raise bad_request("need administrator rights in the channel chat")


def _require_group_right(chat: ChatState, right: str, error: str) -> None:
    """Member-management methods need a group and a bot admin holding ``right``."""
    if chat.type == "private":
        raise bad_request("chat member status can't be changed in private chats")
    info = chat.bot_member
    if info.get("status") != "administrator" or not info.get(right, True):
        raise bad_request(error)


def _message_arg(call: Call, chat: ChatState, missing: str) -> JSON:
    """The stored message named by message_id, or ``missing`` as the error."""
    message_id = call.params.get("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = call.state.find_message(chat, int(message_id))
    if message is None:
        raise bad_request(missing)
    return message


def _formatted(
    call: Call,
    text: str,
    mode_key: str,
    entities_key: str,
    empty_error: str,
    limit: int,
    long_error: str,
) -> tuple[str, list[JSON]]:
    """Parse text + parse_mode (or explicit entities), trim, and enforce Telegram's limits."""
    explicit = call.params.get(entities_key)
    if explicit is not None:
        if not isinstance(explicit, list):
            raise bad_request(f"can't parse {entities_key} JSON object")
        parsed, entities = text, [e for e in explicit if isinstance(e, dict)]
    else:
        try:
            parsed, entities = parse_text(text, call.params.get(mode_key))
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        except ValueError:
            raise bad_request(f"unsupported parse_mode {call.params.get(mode_key)!r}") from None
    parsed, entities = strip_text(parsed, entities)
    if not parsed and empty_error:
        raise bad_request(empty_error)
    if len(parsed) > limit:
        raise bad_request(long_error)
    for entity in entities:
        if entity.get("type") == "text_mention":
            known = call.state.users.get(int(entity["user"]["id"]))
            if known:
                entity["user"] = dict(known)
    return parsed, entities


def _check_markup(markup: Any) -> JSON | None:
    """Validate reply_markup like Telegram; returns the inline keyboard to echo, if any."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request("can't parse inline keyboard button: field \"inline_keyboard\" "
                              "must be an Array of Arrays")
        if sum(len(r) for r in rows) > 100:
            raise bad_request("reply markup is too long")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return {"inline_keyboard": rows}
    if "keyboard" in markup:
        if not isinstance(markup["keyboard"], list):
            raise bad_request("can't parse reply keyboard markup JSON object")
        return None
    if "remove_keyboard" in markup or "force_reply" in markup:
        return None
    raise bad_request("can't parse reply keyboard markup JSON object")


def _check_inline_button(button: Any) -> None:
    """One inline keyboard button: text plus exactly one action, callback_data <= 64 bytes."""
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type "
                          "String")
    actions = [k for k in button if k != "text"]
    if not actions:
        raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in "
                          "the inline keyboard")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = str(button["url"])
        if urlsplit(url).scheme.lower() not in ("http", "https", "tg"):
            raise bad_request(f"inline keyboard button URL '{url}' is invalid: unsupported URL "
                              "protocol")


def _reply_to(call: Call, chat: ChatState) -> JSON | None:
    """The message being replied to (reply_parameters or legacy reply_to_message_id)."""
    params = call.params
    reply = params.get("reply_parameters")
    if isinstance(reply, dict):
        message_id = reply.get("message_id")
        allow_missing = _to_bool(reply.get("allow_sending_without_reply", False))
        source = chat
        if reply.get("chat_id") is not None:
            source = call.state.chat_state(reply["chat_id"]) or chat
    else:
        message_id = params.get("reply_to_message_id")
        allow_missing = bool(params.get("allow_sending_without_reply", False))
        source = chat
    if message_id is None:
        return None
    target = call.state.find_message(source, int(message_id))
    if target is None:
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")
    quoted = copy.deepcopy(target)
    quoted.pop("reply_to_message", None)  # Telegram never nests replies more than one level
    return quoted


def _bot_message(call: Call, chat: ChatState, content: JSON) -> JSON:
    """Create, store and return a message sent by the bot."""
    message: JSON = {"message_id": 0, "date": now(), "chat": dict(chat.chat)}
    if chat.type == "channel":
        message["sender_chat"] = dict(chat.chat)
    else:
        message["from"] = call.bot
    if call.params.get("message_thread_id") and chat.chat.get("is_forum"):
        message["message_thread_id"] = call.params["message_thread_id"]
    reply_to = _reply_to(call, chat)
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    if call.params.get("protect_content"):
        message["has_protected_content"] = True
    message.update({k: v for k, v in content.items() if v not in (None, [], "")})
    return call.state.store_message(chat, message)


def _sent(call: Call, method_name: str, chat: ChatState, message: JSON | None) -> None:
    """Log a user-visible bot action for /_emulator/sent."""
    call.state.record_sent(method_name, chat.id, message, call.log_params())


def _out(message: JSON) -> JSON:
    """A detached copy for the HTTP response (later edits must not alter it)."""
    return copy.deepcopy(message)


# --- identity & lifecycle ---------------------------------------------------------------------


@method("getMe")
async def get_me(call: Call) -> JSON:
    """The bot's own User with the getMe-only capability flags."""
    return {
        **call.bot,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
async def log_out(call: Call) -> bool:
    """Accept logOut (no cloud server to log out from here)."""
    return True


@method("close")
async def close_bot(call: Call) -> bool:
    """Accept close."""
    return True


# --- updates ---------------------------------------------------------------------------------


@method("getUpdates")
async def get_updates(call: Call) -> list[JSON]:
    """Long-poll for updates; returns as soon as one is queued, like Telegram."""
    state, params = call.state, call.params
    if state.webhook.get("url"):
        raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                            "use deleteWebhook to delete the webhook first")
    limit = min(max(int(params.get("limit") or 100), 1), 100)
    timeout = max(float(params.get("timeout") or 0), 0.0)
    allowed = params.get("allowed_updates")
    if isinstance(allowed, list):
        state.allowed_updates = [str(a) for a in allowed] or None
    # A newer getUpdates terminates an older one still waiting (two bot instances -> 409).
    state.poll_generation += 1
    generation = state.poll_generation
    state.updates_changed.notify()
    offset = int(params.get("offset") or 0)
    if offset:
        state.confirm_updates(offset)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if generation != state.poll_generation:
            raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure "
                                "that only one bot instance is running")
        updates = state.take_updates(limit)
        remaining = deadline - loop.time()
        if updates or remaining <= 0 or state.closing:
            return updates
        await state.updates_changed.wait(remaining)


@method("setWebhook")
async def set_webhook(call: Call) -> bool:
    """Switch to webhook delivery (plain http allowed: everything here is local)."""
    state, params = call.state, call.params
    url = str(params.get("url") or "")
    if not url:
        return await delete_webhook(call)
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.get("secret_token")
    if secret is not None and not _SECRET_RE.match(str(secret)):
        raise bad_request("secret token contains unallowed characters")
    max_connections = int(params.get("max_connections") or 40)
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    if params.get("drop_pending_updates"):
        state.pending.clear()
    allowed = params.get("allowed_updates")
    if isinstance(allowed, list):
        state.allowed_updates = [str(a) for a in allowed] or None
    state.webhook = {"url": url, "secret_token": secret, "max_connections": max_connections}
    state.webhook_error = {}
    state.updates_changed.notify()
    return True


@method("deleteWebhook")
async def delete_webhook(call: Call) -> bool:
    """Back to getUpdates mode; optionally drop queued updates."""
    call.state.webhook = {}
    if call.params.get("drop_pending_updates"):
        call.state.pending.clear()
    call.state.updates_changed.notify()
    return True


@method("getWebhookInfo")
async def get_webhook_info(call: Call) -> JSON:
    """WebhookInfo with the pending count and the last delivery error."""
    state = call.state
    info: JSON = {
        "url": state.webhook.get("url", ""),
        "has_custom_certificate": False,
        "pending_update_count": len(state.pending),
    }
    if state.webhook:
        info["max_connections"] = state.webhook["max_connections"]
    if state.allowed_updates:
        info["allowed_updates"] = list(state.allowed_updates)
    info.update(state.webhook_error)
    return info


# --- messages ---------------------------------------------------------------------------------


@method("sendMessage")
async def send_message(call: Call) -> JSON:
    """Send a text message (validates text, parse_mode entities and inline keyboards)."""
    chat = _chat(call)
    _ensure_can_send(chat)
    raw = call.params.get("text")
    text, entities = _formatted(call, "" if raw is None else str(raw), "parse_mode", "entities",
                                "message text is empty", MAX_TEXT, "message is too long")
    markup = _check_markup(call.params.get("reply_markup"))
    message = _bot_message(call, chat, {"text": text, "entities": entities,
                                        "reply_markup": markup})
    _sent(call, "sendMessage", chat, message)
    return _out(message)


@method("editMessageText")
async def edit_message_text(call: Call) -> JSON:
    """Edit a bot message's text; omitting reply_markup removes the keyboard, as in Telegram."""
    if call.params.get("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = _chat(call)
    message = _message_arg(call, chat, "message to edit not found")
    _check_editable(call, message)
    if "text" not in message:
        raise bad_request("there is no text in the message to edit")
    raw = call.params.get("text")
    text, entities = _formatted(call, "" if raw is None else str(raw), "parse_mode", "entities",
                                "message text is empty", MAX_TEXT, "message is too long")
    markup = _check_markup(call.params.get("reply_markup"))
    return _apply_edit(call, chat, message, "editMessageText",
                       {"text": text, "entities": entities, "reply_markup": markup})


@method("editMessageCaption")
async def edit_message_caption(call: Call) -> JSON:
    """Edit a media message's caption."""
    chat = _chat(call)
    message = _message_arg(call, chat, "message to edit not found")
    _check_editable(call, message)
    if "text" in message:
        raise bad_request("there is no caption in the message to edit")
    raw = call.params.get("caption")
    caption, entities = _formatted(call, "" if raw is None else str(raw), "parse_mode",
                                   "caption_entities", "", MAX_CAPTION,
                                   "message caption is too long")
    markup = _check_markup(call.params.get("reply_markup"))
    return _apply_edit(call, chat, message, "editMessageCaption",
                       {"caption": caption, "caption_entities": entities,
                        "reply_markup": markup})


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> JSON:
    """Replace (or with no reply_markup, remove) a bot message's inline keyboard."""
    if call.params.get("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = _chat(call)
    message = _message_arg(call, chat, "message to edit not found")
    _check_editable(call, message)
    markup = _check_markup(call.params.get("reply_markup"))
    return _apply_edit(call, chat, message, "editMessageReplyMarkup", {"reply_markup": markup})


def _check_editable(call: Call, message: JSON) -> None:
    """Only the bot's own messages can be edited."""
    sender = message.get("from")
    if sender is not None and sender.get("id") != call.bot_id:
        raise bad_request("message can't be edited")


def _apply_edit(
    call: Call, chat: ChatState, message: JSON, method_name: str, changes: JSON
) -> JSON:
    """Apply an edit, refusing no-op edits with Telegram's "message is not modified"."""
    if all(message.get(k) == (v if v not in ([], "") else None) for k, v in changes.items()):
        raise bad_request(NOT_MODIFIED)
    for key, value in changes.items():
        if value in (None, [], ""):
            message.pop(key, None)
        else:
            message[key] = value
    message["edit_date"] = now()
    _sent(call, method_name, chat, message)
    return _out(message)


@method("deleteMessage")
async def delete_message(call: Call) -> bool:
    """Delete a message; the sent log gets a deleteMessage entry so the page can drop it."""
    chat = _chat(call)
    message = _message_arg(call, chat, "message to delete not found")
    _delete(call, chat, message)
    return True


@method("deleteMessages")
async def delete_messages(call: Call) -> bool:
    """Delete several messages; missing ones are skipped like Telegram does."""
    chat = _chat(call)
    ids = call.params.get("message_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message_ids is empty")
    for message_id in ids:
        message = call.state.find_message(chat, int(message_id))
        if message is not None:
            _delete(call, chat, message)
    return True


def _delete(call: Call, chat: ChatState, message: JSON) -> None:
    """Remove a message from the chat, its pins and record it."""
    chat.messages.pop(message["message_id"], None)
    if message["message_id"] in chat.pinned:
        chat.pinned.remove(message["message_id"])
    _sent(call, "deleteMessage", chat, message)


@method("answerCallbackQuery")
async def answer_callback_query(call: Call) -> bool:
    """Answer a callback query once; unknown or already answered ids fail like Telegram."""
    query_id = str(_require(call, "callback_query_id", QUERY_INVALID))
    entry = call.state.callbacks.get(query_id)
    if entry is None or entry["answer"] is not None:
        raise bad_request(QUERY_INVALID)
    text = call.params.get("text")
    if text is not None and len(str(text)) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    entry["answer"] = call.log_params()
    chat = call.state.chat_state(entry["chat_id"])
    if chat is not None:
        _sent(call, "answerCallbackQuery", chat, None)
    return True


@method("sendChatAction")
async def send_chat_action(call: Call) -> bool:
    """Show "typing…" and friends."""
    chat = _chat(call)
    _ensure_can_send(chat)
    if call.params.get("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    _sent(call, "sendChatAction", chat, None)
    return True


# --- media ---------------------------------------------------------------------------------


def _input_file(call: Call, name: str, kind: str) -> tuple[FileRecord, bool]:
    """Resolve an upload, attach:// reference, URL or file_id; (record, is_new_upload)."""
    value = call.params.get(name)
    upload = call.files.get(name)
    if upload is None and isinstance(value, str) and value.startswith("attach://"):
        upload = call.files.get(value[len("attach://"):])
        if upload is None:
            raise bad_request(f"there is no {name} in the request")
    if upload is not None:
        record = call.state.add_file(upload.content, kind, upload.filename, upload.content_type)
        return record, True
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        # No internet here: pretend the download worked and keep an empty file.
        file_name = urlsplit(value).path.rsplit("/", 1)[-1] or "file"
        return call.state.add_file(b"", kind, file_name), True
    if isinstance(value, str) and value:
        record = call.state.files.get(value)
        if record is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return record, False
    raise bad_request(f"there is no {name} in the request")


def image_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG, or None if it is not an image we recognise."""
    if content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) >= 24:
        width, height = struct.unpack(">II", content[16:24])
        return width, height
    if content[:6] in (b"GIF87a", b"GIF89a") and len(content) >= 10:
        width, height = struct.unpack("<HH", content[6:10])
        return width, height
    if content.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(content):
            if content[i] != 0xFF:
                i += 1
                continue
            marker = content[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF):
                height, width = struct.unpack(">HH", content[i + 5 : i + 9])
                return width, height
            (length,) = struct.unpack(">H", content[i + 2 : i + 4])
            i += 2 + length
    return None


def _caption(call: Call) -> tuple[str, list[JSON]]:
    """Parse an optional caption."""
    raw = call.params.get("caption")
    if raw is None or raw == "":
        return "", []
    return _formatted(call, str(raw), "parse_mode", "caption_entities", "", MAX_CAPTION,
                      "message caption is too long")


@method("sendDocument")
async def send_document(call: Call) -> JSON:
    """Send a document (multipart upload, file_id or URL)."""
    chat = _chat(call)
    _ensure_can_send(chat)
    record, _ = _input_file(call, "document", "document")
    caption, entities = _caption(call)
    markup = _check_markup(call.params.get("reply_markup"))
    document: JSON = {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                      "file_size": record.file_size}
    if record.file_name:
        document["file_name"] = record.file_name
    if record.mime_type:
        document["mime_type"] = record.mime_type
    message = _bot_message(call, chat, {"document": document, "caption": caption,
                                        "caption_entities": entities, "reply_markup": markup})
    _sent(call, "sendDocument", chat, message)
    return _out(message)


@method("sendPhoto")
async def send_photo(call: Call) -> JSON:
    """Send a photo; uploads must really be PNG/JPEG/GIF images, as Telegram checks."""
    chat = _chat(call)
    _ensure_can_send(chat)
    record, fresh = _input_file(call, "photo", "photo")
    size = image_size(record.content)
    if size is None:
        if fresh and record.content:
            raise bad_request("IMAGE_PROCESS_FAILED")
        size = (0, 0)
    caption, entities = _caption(call)
    markup = _check_markup(call.params.get("reply_markup"))
    photo = [{"file_id": record.file_id, "file_unique_id": record.file_unique_id,
              "file_size": record.file_size, "width": size[0], "height": size[1]}]
    message = _bot_message(call, chat, {"photo": photo, "caption": caption,
                                        "caption_entities": entities, "reply_markup": markup})
    _sent(call, "sendPhoto", chat, message)
    return _out(message)


@method("getFile")
async def get_file(call: Call) -> JSON:
    """File metadata with a file_path for /file/bot<token>/<file_path>."""
    file_id = str(_require(call, "file_id", "invalid file_id"))
    record = call.state.files.get(file_id)
    if record is None:
        raise bad_request("invalid file_id")
    if record.file_size > MAX_DOWNLOAD:
        raise bad_request("file is too big")
    return {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
            "file_size": record.file_size, "file_path": record.file_path}


@method("copyMessage")
async def copy_message(call: Call) -> JSON:
    """Copy a message's content (optionally with a new caption); returns a MessageId."""
    source_chat = _chat(call, "from_chat_id")
    source = _message_arg(call, source_chat, "message to copy not found")
    chat = _chat(call)
    _ensure_can_send(chat)
    content = {k: copy.deepcopy(source[k]) for k in CONTENT_KEYS if k in source}
    if "caption" in call.params and "text" not in source:
        caption, entities = _caption(call)
        content["caption"], content["caption_entities"] = caption, entities
    content["reply_markup"] = _check_markup(call.params.get("reply_markup"))
    message = _bot_message(call, chat, content)
    _sent(call, "copyMessage", chat, message)
    return {"message_id": message["message_id"]}


@method("forwardMessage")
async def forward_message(call: Call) -> JSON:
    """Forward a message, adding forward_origin like Bot API 7+."""
    source_chat = _chat(call, "from_chat_id")
    source = _message_arg(call, source_chat, "message to forward not found")
    chat = _chat(call)
    _ensure_can_send(chat)
    content = {k: copy.deepcopy(source[k]) for k in CONTENT_KEYS if k in source}
    if source_chat.type == "channel":
        origin: JSON = {"type": "channel", "chat": dict(source_chat.chat),
                        "message_id": source["message_id"], "date": source["date"]}
    else:
        origin = {"type": "user", "sender_user": source.get("from", call.bot),
                  "date": source["date"]}
    content["forward_origin"] = origin
    call.params.pop("reply_parameters", None)
    message = _bot_message(call, chat, content)
    _sent(call, "forwardMessage", chat, message)
    return _out(message)


# --- pins -----------------------------------------------------------------------------------


def _require_pin_right(chat: ChatState) -> None:
    """Pinning in groups needs an admin bot with can_pin_messages; private chats are free."""
    if chat.type == "private":
        return
    info = chat.bot_member
    if info.get("status") != "administrator" or not info.get("can_pin_messages", True):
        raise bad_request("not enough rights to manage pinned messages in the chat")


@method("pinChatMessage")
async def pin_chat_message(call: Call) -> bool:
    """Pin a message (most recent pin last)."""
    chat = _chat(call)
    _require_pin_right(chat)
    message = _message_arg(call, chat, "message to pin not found")
    if message["message_id"] in chat.pinned:
        chat.pinned.remove(message["message_id"])
    chat.pinned.append(message["message_id"])
    return True


@method("unpinChatMessage")
async def unpin_chat_message(call: Call) -> bool:
    """Unpin one message, or the most recent pin when message_id is omitted."""
    chat = _chat(call)
    _require_pin_right(chat)
    message_id = call.params.get("message_id")
    if message_id is None:
        if chat.pinned:
            chat.pinned.pop()
        return True
    if int(message_id) not in chat.pinned:
        raise bad_request("message to unpin not found")
    chat.pinned.remove(int(message_id))
    return True


@method("unpinAllChatMessages")
async def unpin_all_chat_messages(call: Call) -> bool:
    """Clear all pins."""
    chat = _chat(call)
    _require_pin_right(chat)
    chat.pinned.clear()
    return True


# --- members --------------------------------------------------------------------------------


def _target_user(call: Call, chat: ChatState) -> tuple[int, JSON]:
    """The user_id parameter resolved to a known user (and their current member record)."""
    user_id = int(_require(call, "user_id"))
    if user_id == call.bot_id:
        return user_id, call.state.bot_member(chat, call.bot_id)
    member = call.state.member(chat, user_id)
    if member is None:
        raise bad_request("PARTICIPANT_ID_INVALID")
    return user_id, member


def _refuse_admin_target(member: JSON) -> None:
    """Bots can't ban or restrict the owner or other admins."""
    if member["status"] == "creator":
        raise bad_request("can't remove chat owner")
    if member["status"] == "administrator":
        raise bad_request("user is an administrator of the chat")


def _chat_member_update(call: Call, chat: ChatState, old: JSON, new: JSON, **extra: Any) -> None:
    """Queue the chat_member update Telegram sends when membership changes."""
    update = {"chat_member": {"chat": dict(chat.chat), "from": extra.pop("actor", call.bot),
                              "date": now(), "old_chat_member": old, "new_chat_member": new,
                              **extra}}
    call.state.enqueue_update(update)


@method("banChatMember")
async def ban_chat_member(call: Call) -> bool:
    """Ban a user (status "kicked"); pending join requests of the user are dropped."""
    chat = _chat(call)
    _require_group_right(chat, "can_restrict_members",
                         "not enough rights to restrict/unrestrict chat member")
    user_id, member = _target_user(call, chat)
    if user_id == call.bot_id:
        raise bad_request("can't restrict self")
    _refuse_admin_target(member)
    new = member_obj(member["user"], "kicked", until_date=call.params.get("until_date") or 0)
    chat.members[user_id] = new
    chat.join_requests["pending"].pop(user_id, None)
    if member["status"] != "kicked":
        _chat_member_update(call, chat, member, new)
    return True


@method("unbanChatMember")
async def unban_chat_member(call: Call) -> bool:
    """Unban; on a current member without only_if_banned this REMOVES them, like Telegram."""
    chat = _chat(call)
    _require_group_right(chat, "can_restrict_members",
                         "not enough rights to restrict/unrestrict chat member")
    user_id, member = _target_user(call, chat)
    if user_id == call.bot_id:
        raise bad_request("can't restrict self")
    status = member["status"]
    only_if_banned = bool(call.params.get("only_if_banned"))
    if status in ("creator", "administrator"):
        if not only_if_banned:
            _refuse_admin_target(member)
        return True
    if status == "kicked" or (status in ("member", "restricted") and not only_if_banned):
        new = member_obj(member["user"], "left")
        chat.members[user_id] = new
        _chat_member_update(call, chat, member, new)
    return True


@method("restrictChatMember")
async def restrict_chat_member(call: Call) -> bool:
    """Restrict a supergroup member; granting every permission lifts the restriction."""
    chat = _chat(call)
    _require_group_right(chat, "can_restrict_members",
                         "not enough rights to restrict/unrestrict chat member")
    if chat.type != "supergroup":
        raise bad_request("method is available only for supergroups")
    user_id, member = _target_user(call, chat)
    if user_id == call.bot_id:
        raise bad_request("can't restrict self")
    _refuse_admin_target(member)
    permissions = call.params.get("permissions")
    if not isinstance(permissions, dict):
        raise bad_request("can't parse chat permissions JSON object")
    if "can_send_media_messages" in permissions:  # legacy field still accepted by Telegram
        for key in ("can_send_audios", "can_send_documents", "can_send_photos",
                    "can_send_videos", "can_send_video_notes", "can_send_voice_notes"):
            permissions.setdefault(key, permissions["can_send_media_messages"])
    granted = {p: bool(permissions.get(p, False)) for p in MEMBER_PERMISSIONS}
    present = member["status"] in PRESENT_STATUSES or member.get("is_member", False)
    if all(granted.values()):
        new = member_obj(member["user"], "member" if present else "left")
    else:
        new = member_obj(member["user"], "restricted", is_member=present,
                         until_date=call.params.get("until_date") or 0, **granted)
    chat.members[user_id] = new
    _chat_member_update(call, chat, member, new)
    return True


@method("promoteChatMember")
async def promote_chat_member(call: Call) -> bool:
    """Promote (any right true) or demote (all false) a member."""
    chat = _chat(call)
    _require_group_right(chat, "can_promote_members", "not enough rights")
    user_id, member = _target_user(call, chat)
    if member["status"] == "creator":
        raise bad_request("can't remove chat owner")
    if member["status"] not in PRESENT_STATUSES and member["status"] != "restricted":
        raise bad_request("USER_NOT_MUTUAL_CONTACT")
    rights = {r: bool(call.params.get(r, False)) for r in ADMIN_RIGHTS}
    if any(rights.values()) or call.params.get("is_anonymous"):
        new = member_obj(member["user"], "administrator", can_be_edited=True,
                         is_anonymous=call.params.get("is_anonymous", False), **rights)
    else:
        new = member_obj(member["user"], "member")
    chat.members[user_id] = new
    _chat_member_update(call, chat, member, new)
    return True


@method("approveChatJoinRequest")
async def approve_chat_join_request(call: Call) -> bool:
    """Approve a pending join request: the user becomes a member."""
    chat = _chat(call)
    _require_group_right(chat, "can_invite_users", "CHAT_ADMIN_REQUIRED")
    user_id = int(_require(call, "user_id"))
    request = chat.join_requests["pending"].get(user_id)
    if request is None:
        raise bad_request("HIDE_REQUESTER_MISSING")
    old = call.state.member(chat, user_id) or member_obj(request["from"], "left")
    if old["status"] in PRESENT_STATUSES:
        raise bad_request("USER_ALREADY_PARTICIPANT")
    del chat.join_requests["pending"][user_id]
    chat.join_requests["approved"][user_id] = request
    new = member_obj(request["from"], "member")
    chat.members[user_id] = new
    extra: JSON = {"via_join_request": True}
    if request.get("invite_link"):
        extra["invite_link"] = request["invite_link"]
    _chat_member_update(call, chat, old, new, **extra)
    return True


@method("declineChatJoinRequest")
async def decline_chat_join_request(call: Call) -> bool:
    """Decline a pending join request."""
    chat = _chat(call)
    _require_group_right(chat, "can_invite_users", "CHAT_ADMIN_REQUIRED")
    user_id = int(_require(call, "user_id"))
    request = chat.join_requests["pending"].pop(user_id, None)
    if request is None:
        raise bad_request("HIDE_REQUESTER_MISSING")
    chat.join_requests["declined"][user_id] = request
    return True


# --- invite links ---------------------------------------------------------------------------


def _new_link(call: Call, chat: ChatState, primary: bool, **options: Any) -> JSON:
    """Create and store a ChatInviteLink."""
    link: JSON = {
        "invite_link": "https://t.me/+" + secrets.token_urlsafe(12),
        "creator": call.bot,
        "creates_join_request": bool(options.get("creates_join_request", False)),
        "is_primary": primary,
        "is_revoked": False,
    }
    for key in ("name", "expire_date", "member_limit"):
        if options.get(key) not in (None, ""):
            link[key] = options[key]
    chat.invite_links[link["invite_link"]] = link
    return link


def _invite_right(chat: ChatState) -> None:
    """Invite links need can_invite_users."""
    _require_group_right(chat, "can_invite_users",
                         "not enough rights to manage chat invite link")


@method("createChatInviteLink")
async def create_chat_invite_link(call: Call) -> JSON:
    """Create an additional invite link."""
    chat = _chat(call)
    _invite_right(chat)
    params = call.params
    if params.get("creates_join_request") and params.get("member_limit"):
        raise bad_request("member_limit can't be specified for links requiring administrator "
                          "approval")
    name = params.get("name")
    if name is not None and len(str(name)) > 32:
        raise bad_request("INVITE_LINK_NAME_INVALID")
    return _new_link(call, chat, False, **params)


@method("revokeChatInviteLink")
async def revoke_chat_invite_link(call: Call) -> JSON:
    """Revoke a link; revoking the primary link creates a new primary one."""
    chat = _chat(call)
    _invite_right(chat)
    link = chat.invite_links.get(str(_require(call, "invite_link")))
    if link is None:
        raise bad_request("INVITE_HASH_EXPIRED")
    link["is_revoked"] = True
    if link["is_primary"]:
        _new_link(call, chat, True)
    return dict(link)


@method("exportChatInviteLink")
async def export_chat_invite_link(call: Call) -> str:
    """Generate a new primary link, revoking the previous primary one."""
    chat = _chat(call)
    _invite_right(chat)
    for link in chat.invite_links.values():
        if link["is_primary"]:
            link["is_revoked"] = True
    return str(_new_link(call, chat, True)["invite_link"])


# --- chat info --------------------------------------------------------------------------------


@method("getChat")
async def get_chat(call: Call) -> JSON:
    """ChatFullInfo (with the fields PTB 22 requires)."""
    chat = _chat(call)
    info: JSON = {
        **chat.chat,
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False,
                                "unique_gifts": False, "premium_subscription": False},
    }
    if chat.pinned and chat.pinned[-1] in chat.messages:
        info["pinned_message"] = copy.deepcopy(chat.messages[chat.pinned[-1]])
    if chat.type != "private":
        info["permissions"] = dict.fromkeys(MEMBER_PERMISSIONS, True)
        primary = [k for k, v in chat.invite_links.items() if v["is_primary"] and
                   not v["is_revoked"]]
        if primary:
            info["invite_link"] = primary[-1]
    return info


@method("getChatMember")
async def get_chat_member(call: Call) -> JSON:
    """A user's membership; never-seen users are "user not found"."""
    chat = _chat(call)
    user_id = int(_require(call, "user_id"))
    if user_id == call.bot_id:
        return call.state.bot_member(chat, call.bot_id)
    member = call.state.member(chat, user_id)
    if member is None:
        raise bad_request("user not found")
    return member


@method("getChatMemberCount")
async def get_chat_member_count(call: Call) -> int:
    """Members present in the chat, the bot included."""
    chat = _chat(call)
    if chat.type == "private":
        return 2
    count = sum(1 for m in chat.members.values()
                if m["status"] in PRESENT_STATUSES or m.get("is_member"))
    bot_present = chat.bot_member.get("status") in ("administrator", "member", "restricted")
    return count + (1 if bot_present else 0)


@method("getChatAdministrators")
async def get_chat_administrators(call: Call) -> list[JSON]:
    """Owner and administrators (including the bot when it is one)."""
    chat = _chat(call)
    if chat.type == "private":
        raise bad_request("there are no administrators in the private chat")
    admins = [m for m in chat.members.values() if m["status"] in ("creator", "administrator")]
    if chat.bot_member.get("status") == "administrator":
        admins.append(call.state.bot_member(chat, call.bot_id))
    return admins


@method("leaveChat")
async def leave_chat(call: Call) -> bool:
    """The bot leaves a group; Telegram then sends the bot a my_chat_member update."""
    chat = _chat(call)
    if chat.type == "private":
        raise bad_request("chat member status can't be changed in private chats")
    old = call.state.bot_member(chat, call.bot_id)
    if old["status"] in ("left", "kicked"):
        raise forbidden(f"bot is not a member of the {chat.type} chat")
    chat.bot_member = {"status": "left"}
    new = call.state.bot_member(chat, call.bot_id)
    call.state.enqueue_update({"my_chat_member": {
        "chat": dict(chat.chat), "from": call.bot, "date": now(),
        "old_chat_member": old, "new_chat_member": new}})
    return True


# --- commands & menu ----------------------------------------------------------------------


def _commands_key(call: Call) -> tuple[str, str]:
    """Commands are stored per (scope, language_code) like Telegram."""
    scope = call.params.get("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), str(call.params.get("language_code") or "")


@method("setMyCommands")
async def set_my_commands(call: Call) -> bool:
    """Store the command list for a scope/language after validating each command."""
    commands = call.params.get("commands")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > 100:
        raise bad_request("too many commands")
    cleaned = []
    for command in commands:
        if not isinstance(command, dict):
            raise bad_request("can't parse BotCommand JSON object")
        name = str(command.get("command", "")).lstrip("/")
        description = str(command.get("description", ""))
        if not _COMMAND_RE.match(name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description.strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        cleaned.append({"command": name, "description": description})
    call.state.commands[_commands_key(call)] = cleaned
    return True


@method("getMyCommands")
async def get_my_commands(call: Call) -> list[JSON]:
    """The command list for exactly this scope/language (empty if unset)."""
    return list(call.state.commands.get(_commands_key(call), []))


@method("deleteMyCommands")
async def delete_my_commands(call: Call) -> bool:
    """Forget the command list for this scope/language."""
    call.state.commands.pop(_commands_key(call), None)
    return True


@method("setChatMenuButton")
async def set_chat_menu_button(call: Call) -> bool:
    """Set the menu button of one private chat or the default one."""
    button = call.params.get("menu_button") or {"type": "default"}
    if not isinstance(button, dict) or button.get("type") not in ("commands", "web_app",
                                                                   "default"):
        raise bad_request("can't parse menu button JSON object")
    if call.params.get("chat_id") is not None:
        _chat(call).menu_button = button
    else:
        call.state.default_menu_button = (
            {"type": "commands"} if button["type"] == "default" else button
        )
    return True


@method("getChatMenuButton")
async def get_chat_menu_button(call: Call) -> JSON:
    """The effective menu button for a chat (or the default)."""
    if call.params.get("chat_id") is not None:
        button = _chat(call).menu_button
        if button and button.get("type") != "default":
            return button
    return call.state.default_menu_button

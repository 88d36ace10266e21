"""In-memory state of the Telegram Bot API emulator (one object, one asyncio loop)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import mimetypes
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.emulator.limits import RateLimiter

JSON = dict[str, Any]

CALL_LOG_CAP = 10_000
SENT_LOG_CAP = 10_000
UPDATE_HISTORY_CAP = 10_000
MESSAGES_PER_CHAT_CAP = 5_000
CALLBACK_CAP = 10_000
FILE_CAP = 2_000
FILE_BYTES_CAP = 512 * 1024 * 1024  # oldest files are forgotten beyond this
PENDING_CAP = 100_000  # Telegram keeps at most ~24 h of updates; we keep a count instead
FIRST_UPDATE_ID = 100_000_001  # large on purpose: code must not assume small update ids

# Telegram's default when allowed_updates is empty/never set: everything except these.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_pin_messages",
    "can_manage_topics",
)
MEMBER_PERMISSIONS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
PRESENT_STATUSES = frozenset({"creator", "administrator", "member"})


class ApiError(Exception):
    """A Bot API error answered as ``{"ok": false, "error_code", "description"[, "parameters"]}``.

    ``parameters`` is Telegram's ResponseParameters (retry_after, migrate_to_chat_id): PTB turns
    them into RetryAfter and ChatMigrated.
    """

    def __init__(self, code: int, description: str, retry_after: int | None = None,
                 parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters: JSON = dict(parameters or {})
        if retry_after is not None:
            self.parameters["retry_after"] = retry_after


def bad_request(reason: str) -> ApiError:
    """400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {reason}")


def forbidden(reason: str) -> ApiError:
    """403 with Telegram's "Forbidden: " prefix."""
    return ApiError(403, f"Forbidden: {reason}")


class Notifier:
    """Wakes every coroutine waiting on it; a tiny broadcast condition for one event loop."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        """Wake all current waiters."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait(self, seconds: float) -> None:
        """Wait until notified or ``seconds`` pass."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(fut, seconds)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)


def migrated_error(new_chat_id: int) -> ApiError:
    """What Telegram answers for a basic group that became a supergroup (PTB: ChatMigrated)."""
    return ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                    parameters={"migrate_to_chat_id": new_chat_id})


# Fault kinds that answer with a Telegram error about the chat (the delivery worker's cases).
CHAT_FAULT_KINDS = ("blocked", "chat_not_found", "kicked", "migrated", "deleted")
FAULT_KINDS = ("429", "500", "502", "drop", "slow", *CHAT_FAULT_KINDS)


@dataclass
class Fault:
    """An injected failure for the next ``times`` matching Bot API calls (None = until removed).

    A fault matches a method (or "*") and, when ``chat_id`` is set, only calls whose chat_id
    names that chat.
    """

    method: str  # lower-case method name or "*"
    kind: str  # one of FAULT_KINDS
    times: int | None = 1
    retry_after: int = 1
    delay: float = 0.0
    process: bool = False  # "drop" only: execute the call, then lose the response
    chat_id: int | str | None = None
    migrate_to_chat_id: int | None = None  # "migrated" only

    def to_json(self) -> JSON:
        """JSON view for the control API."""
        view: JSON = {
            "method": self.method,
            "kind": self.kind,
            "times": self.times,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "process": self.process,
        }
        if self.chat_id is not None:
            view["chat_id"] = self.chat_id
        if self.migrate_to_chat_id is not None:
            view["migrate_to_chat_id"] = self.migrate_to_chat_id
        return view

    def matches(self, method: str, chat_id: Any) -> bool:
        """Whether a call of ``method`` (lower-case) to ``chat_id`` triggers this fault."""
        if self.method not in ("*", method):
            return False
        if self.chat_id is None:
            return True
        return chat_id is not None and str(chat_id).strip().lower() == \
            str(self.chat_id).lower()

    def error(self, chat_type: str | None) -> ApiError:
        """The Telegram error of a chat fault kind, worded for the chat's type."""
        if self.kind == "blocked":
            return forbidden("bot was blocked by the user")
        if self.kind == "kicked":
            return forbidden(f"bot was kicked from the {chat_kind_name(chat_type or 'supergroup')}")
        if self.kind == "migrated":
            return migrated_error(int(self.migrate_to_chat_id or 0))
        if self.kind == "deleted":
            return deleted_error(chat_type or "group")
        return bad_request("chat not found")


def chat_kind_name(chat_type: str) -> str:
    """How Telegram names a chat type in errors: "group chat", "supergroup chat", "channel"."""
    return "channel" if chat_type == "channel" else f"{chat_type} chat"


def deleted_error(chat_type: str) -> ApiError:
    """A send to a deleted chat. Telegram answers 403 "the group chat was deleted" for a basic
    group; a deleted supergroup or channel is simply gone for the bot: 400 "chat not found"."""
    if chat_type == "group":
        return forbidden("the group chat was deleted")
    return bad_request("chat not found")


@dataclass
class FileRecord:
    """A stored file, served under /file/bot<token>/<file_path>."""

    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    mime_type: str | None = None
    file_name: str | None = None

    @property
    def file_size(self) -> int:
        """Size in bytes."""
        return len(self.content)


@dataclass
class PendingUpdate:
    """An update waiting to be fetched by getUpdates or POSTed to the webhook."""

    update: JSON
    redelivery: bool = False
    delivered: bool = False


@dataclass
class ChatState:
    """Everything the emulator knows about one chat."""

    chat: JSON
    members: dict[int, JSON] = field(default_factory=dict)
    bot_member: JSON = field(default_factory=dict)
    pinned: list[int] = field(default_factory=list)
    join_requests: dict[str, dict[int, JSON]] = field(
        default_factory=lambda: {"pending": {}, "approved": {}, "declined": {}}
    )
    invite_links: dict[str, JSON] = field(default_factory=dict)
    messages: OrderedDict[int, JSON] = field(default_factory=OrderedDict)
    next_message_id: int = 1
    menu_button: JSON | None = None
    migrated_to: int | None = None  # a basic group upgraded to this supergroup
    deleted: bool = False

    @property
    def id(self) -> int:
        """The chat id."""
        return int(self.chat["id"])

    @property
    def type(self) -> str:
        """private | group | supergroup | channel."""
        return str(self.chat["type"])


def now() -> int:
    """Unix time in whole seconds, as Telegram sends dates."""
    return int(time.time())


def member_obj(user: JSON, status: str, **extra: Any) -> JSON:
    """A ChatMember dict with every field PTB's de_json needs for ``status``."""
    member: JSON = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = bool(extra.get("is_anonymous", False))
    elif status == "administrator":
        member["can_be_edited"] = bool(extra.get("can_be_edited", False))
        member["is_anonymous"] = bool(extra.get("is_anonymous", False))
        for right in ADMIN_RIGHTS:
            member[right] = bool(extra.get(right, False))
    elif status == "restricted":
        member["is_member"] = bool(extra.get("is_member", True))
        member["until_date"] = int(extra.get("until_date") or 0)
        for perm in MEMBER_PERMISSIONS:
            member[perm] = bool(extra.get(perm, False))
    elif status == "kicked":
        member["until_date"] = int(extra.get("until_date") or 0)
    if extra.get("custom_title") and status in ("creator", "administrator"):
        member["custom_title"] = str(extra["custom_title"])
    return member


def full_admin(user: JSON) -> JSON:
    """An administrator member with every right (the bot's default in registered groups)."""
    return member_obj(user, "administrator", **dict.fromkeys(ADMIN_RIGHTS, True))


def update_type(update: JSON) -> str:
    """The payload key of an update ("message", "callback_query", ...)."""
    for key in update:
        if key != "update_id":
            return key
    return ""


class EmulatorState:
    """All emulator state: users, chats, messages, update queue, logs, faults, files."""

    def __init__(self, bot_username: str = "sandbox_bot", bot_first_name: str = "Sandbox Bot"):
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.updates_changed = Notifier()
        self.sent_changed = Notifier()
        self.closing = False
        # These survive reset(): a bot that keeps polling across a reset holds offset = last+1,
        # /sent pollers hold after=<seq>, and a waiting getUpdates must not see a fake conflict.
        self.next_update_id = FIRST_UPDATE_ID
        self.seq = itertools.count(1)
        self.poll_generation = 0
        self.last_bot_id = 0
        # Limits are configuration (a CLI flag may have switched them off): reset() keeps them
        # and only forgets the windows and counters.
        self.limiter = RateLimiter()
        self.reset()

    # --- lifecycle ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything except the bot's identity; wake long-polls so they notice."""
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, ChatState] = {}
        self.pending: dict[int, PendingUpdate] = {}
        self.update_history: OrderedDict[int, JSON] = OrderedDict()
        self.allowed_updates: list[str] | None = None
        self.dropped_updates = 0
        self.webhook: JSON = {}
        self.webhook_error: JSON = {}
        self.sent: deque[JSON] = deque(maxlen=SENT_LOG_CAP)
        self.calls: deque[JSON] = deque(maxlen=CALL_LOG_CAP)
        self.faults: list[Fault] = []
        self.files: OrderedDict[str, FileRecord] = OrderedDict()
        self.file_paths: dict[str, str] = {}
        self.file_bytes = 0
        self.file_counter = itertools.count(1)
        self.callbacks: OrderedDict[str, JSON] = OrderedDict()
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.default_menu_button: JSON = {"type": "commands"}
        self.limiter.clear()
        self.updates_changed.notify()
        self.sent_changed.notify()

    def close(self) -> None:
        """Mark the emulator as shutting down so long-polls return at once."""
        self.closing = True
        self.updates_changed.notify()
        self.sent_changed.notify()

    # --- identities --------------------------------------------------------------------------

    def bot_user(self, bot_id: int | None = None) -> JSON:
        """The bot's User object; the id comes from the token's digits."""
        if bot_id is None:
            bot_id = self.last_bot_id or 1
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def remember_user(self, raw: JSON) -> JSON:
        """Normalise and store a User from control-API input; returns the User dict."""
        if not isinstance(raw, dict) or "id" not in raw:
            raise ValueError("user.id is required")
        user_id = int(raw["id"])
        known = self.users.get(user_id, {})
        user: JSON = {
            "id": user_id,
            "is_bot": bool(raw.get("is_bot", known.get("is_bot", False))),
            "first_name": str(raw.get("first_name") or known.get("first_name") or f"User{user_id}"),
        }
        for key in ("last_name", "username", "language_code"):
            value = raw.get(key, known.get(key))
            if value:
                user[key] = str(value)
        self.users[user_id] = user
        return user

    # --- chats -------------------------------------------------------------------------------

    def private_chat(self, user: JSON) -> ChatState:
        """The private chat with ``user``, created on first use."""
        chat: JSON = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if user.get(key):
                chat[key] = user[key]
        state = self.chats.get(user["id"])
        if state is None:
            state = ChatState(chat=chat, bot_member={"status": "member"})
            state.members[user["id"]] = member_obj(user, "member")
            self.chats[user["id"]] = state
        else:
            state.chat.update(chat)
        return state

    def register_chat(self, raw: JSON, bot_status: str | None = None) -> ChatState:
        """Create a group/supergroup/channel chat, or merge the given fields into a known one.

        Fields not given keep their current values, so ``{"id": -100…}`` just names a chat.
        """
        chat_id = int(raw["id"])
        state = self.chats.get(chat_id)
        default_type = state.type if state else ("supergroup" if chat_id < 0 else "private")
        chat_type = str(raw.get("type") or default_type)
        if chat_type == "private":
            if state is not None and state.type == "private" and len(raw) == 1:
                return state
            return self.private_chat(self.remember_user({**raw, "id": chat_id}))
        if chat_type not in ("group", "supergroup", "channel"):
            raise ValueError(f"unknown chat type {chat_type!r}")
        if state is None:
            chat: JSON = {"id": chat_id, "type": chat_type,
                          "title": str(raw.get("title") or f"Chat {chat_id}")}
            # A group someone sets up for the bot: the bot is an admin unless told otherwise.
            state = ChatState(chat=chat, bot_member={"status": "administrator"})
            self.chats[chat_id] = state
        state.chat["type"] = chat_type
        if raw.get("title"):
            state.chat["title"] = str(raw["title"])
        if raw.get("username"):
            state.chat["username"] = str(raw["username"]).lstrip("@")
        if raw.get("is_forum"):
            state.chat["is_forum"] = True
        if bot_status:
            state.bot_member = {"status": bot_status}
        return state

    def chat_state(self, chat_id: int | str) -> ChatState | None:
        """Look a chat up by id or @username."""
        if isinstance(chat_id, str):
            name = chat_id.strip()
            if name.startswith("@"):
                for state in self.chats.values():
                    if state.chat.get("username", "").lower() == name[1:].lower():
                        return state
                return None
            try:
                chat_id = int(name)
            except ValueError:
                return None
        return self.chats.get(int(chat_id))

    def bot_member(self, state: ChatState, bot_id: int) -> JSON:
        """The bot's ChatMember in ``state`` (admins get all rights unless set otherwise)."""
        bot = self.bot_user(bot_id)
        info = state.bot_member
        status = info.get("status", "member")
        if status == "administrator":
            rights = {r: info.get(r, True) for r in ADMIN_RIGHTS}
            return member_obj(bot, "administrator", **rights)
        return member_obj(bot, status, **{k: v for k, v in info.items() if k != "status"})

    def member(self, state: ChatState, user_id: int) -> JSON | None:
        """A user's ChatMember, a "left" one for known users, or None if never seen."""
        if user_id in state.members:
            return state.members[user_id]
        user = self.users.get(user_id)
        return member_obj(user, "left") if user else None

    # --- messages ----------------------------------------------------------------------------

    def store_message(self, state: ChatState, message: JSON) -> JSON:
        """Give ``message`` the chat's next id, keep it (bounded), and return it."""
        message["message_id"] = state.next_message_id
        state.next_message_id += 1
        state.messages[message["message_id"]] = message
        while len(state.messages) > MESSAGES_PER_CHAT_CAP:
            state.messages.popitem(last=False)
        return message

    def find_message(self, state: ChatState, message_id: int) -> JSON | None:
        """A stored message of the chat, or None."""
        return state.messages.get(int(message_id))

    # --- updates -----------------------------------------------------------------------------

    def is_allowed(self, kind: str) -> bool:
        """Whether the bot's allowed_updates lets updates of ``kind`` through."""
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in DEFAULT_EXCLUDED_UPDATES

    def enqueue_update(self, update: JSON) -> tuple[JSON, bool]:
        """Assign an update_id if missing and queue it; False when allowed_updates drops it."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self.next_update_id
        update_id = int(update["update_id"])
        self.next_update_id = max(self.next_update_id, update_id + 1)
        self.update_history[update_id] = update
        while len(self.update_history) > UPDATE_HISTORY_CAP:
            self.update_history.popitem(last=False)
        # Telegram filters at creation time: a type the bot didn't ask for is never delivered.
        if not self.is_allowed(update_type(update)):
            self.dropped_updates += 1
            return update, False
        self.pending[update_id] = PendingUpdate(update)
        if len(self.pending) > PENDING_CAP:
            del self.pending[min(self.pending)]
        self.updates_changed.notify()
        return update, True

    def redeliver(self, update_id: int) -> JSON | None:
        """Queue an already delivered update again with the same id (as after a bot crash)."""
        update = self.update_history.get(update_id)
        if update is None:
            return None
        self.pending[update_id] = PendingUpdate(update, redelivery=True)
        self.updates_changed.notify()
        return update

    def confirm_updates(self, offset: int) -> None:
        """Apply a getUpdates offset: forget updates below it (negative = keep the last N)."""
        if offset < 0:
            keep = sorted(self.pending)[offset:]
            self.pending = {uid: self.pending[uid] for uid in keep}
            return
        for uid, pending in list(self.pending.items()):
            # A redelivered update sits below the bot's current offset; it must reach the bot
            # once before an offset can confirm it, or the redelivery would be a no-op.
            if uid < offset and (pending.delivered or not pending.redelivery):
                del self.pending[uid]

    def take_updates(self, limit: int) -> list[JSON]:
        """The oldest pending updates (up to ``limit``), marked as delivered but still pending."""
        ready = sorted(self.pending.items())[:limit]
        for _, pending in ready:
            pending.delivered = True
        return [copy.deepcopy(p.update) for _, p in ready]

    def next_webhook_update(self) -> JSON | None:
        """The oldest pending update for webhook delivery."""
        if not self.pending:
            return None
        return self.pending[min(self.pending)].update

    def ack_webhook_update(self, update_id: int) -> None:
        """The webhook answered 2xx: the update is confirmed."""
        self.pending.pop(update_id, None)

    # --- logs --------------------------------------------------------------------------------

    def record_call(
        self, method: str, params: JSON, status: int, started: float, description: str = ""
    ) -> None:
        """Append a Bot API call to the bounded call log."""
        entry: JSON = {
            "seq": next(self.seq),
            "method": method,
            "params": params,
            "status": status,
            "time": started,
            "duration": round(time.time() - started, 6),
        }
        if description:
            entry["description"] = description
        self.calls.append(entry)

    def record_sent(
        self, method: str, chat_id: int, message: JSON | None, params: JSON
    ) -> JSON:
        """Append something the bot did in a chat to the bounded sent log; wakes /sent pollers."""
        entry: JSON = {
            "seq": next(self.seq),
            "method": method,
            "chat_id": chat_id,
            "message": copy.deepcopy(message),
            "params": params,
            "time": time.time(),
        }
        self.sent.append(entry)
        self.sent_changed.notify()
        return entry

    # --- faults ------------------------------------------------------------------------------

    def take_fault(self, method: str, chat_id: Any = None) -> Fault | None:
        """Consume one use of the first fault matching ``method`` (case-insensitive) and the
        call's ``chat_id``; faults with ``times`` None stay until removed."""
        lowered = method.lower()
        for fault in self.faults:
            if fault.matches(lowered, chat_id):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    # --- files -------------------------------------------------------------------------------

    def add_file(
        self,
        content: bytes,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> FileRecord:
        """Store uploaded bytes and give them Telegram-like file_id / file_unique_id / path."""
        prefixes = {"document": "BQAC", "photo": "AgAC", "voice": "AwAC", "sticker": "CAAC"}
        folders = {"document": "documents", "photo": "photos", "voice": "voice",
                   "sticker": "stickers"}
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        ext = ""
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1][:8]
        elif mime_type:
            ext = mimetypes.guess_extension(mime_type) or ""
        number = next(self.file_counter)
        record = FileRecord(
            file_id=prefixes.get(kind, "BQAC") + "AgADA" + secrets.token_hex(16),
            file_unique_id="AQAD" + secrets.token_hex(6),
            file_path=f"{folders.get(kind, 'documents')}/file_{number}{ext}",
            content=content,
            mime_type=mime_type,
            file_name=file_name,
        )
        self.files[record.file_id] = record
        self.file_paths[record.file_path] = record.file_id
        self.file_bytes += record.file_size
        while len(self.files) > 1 and (len(self.files) > FILE_CAP
                                       or self.file_bytes > FILE_BYTES_CAP):
            _, old = self.files.popitem(last=False)
            self.file_paths.pop(old.file_path, None)
            self.file_bytes -= old.file_size
        return record

    def file_by_path(self, file_path: str) -> FileRecord | None:
        """The file served at ``file_path``."""
        file_id = self.file_paths.get(file_path)
        return self.files.get(file_id) if file_id else None

    # --- callback queries --------------------------------------------------------------------

    def add_callback(self, query: JSON, chat_id: int) -> None:
        """Remember a callback query so answerCallbackQuery can be validated."""
        self.callbacks[query["id"]] = {"query": query, "chat_id": chat_id, "answer": None}
        while len(self.callbacks) > CALLBACK_CAP:
            self.callbacks.popitem(last=False)

    # --- snapshots for the control API ------------------------------------------------------

    def chat_snapshot(self, state: ChatState) -> JSON:
        """The control API's view of a chat: members, bans, pins, join requests, links."""
        members = {str(uid): m for uid, m in state.members.items()}
        pinned = state.pinned[-1] if state.pinned else None
        return {
            "chat": state.chat,
            "bot": state.bot_member,
            "members": members,
            "banned": [uid for uid, m in state.members.items() if m["status"] == "kicked"],
            "restricted": [uid for uid, m in state.members.items()
                           if m["status"] == "restricted"],
            "pinned_message_id": pinned,
            "pinned_message_ids": list(state.pinned),
            "join_requests": {
                kind: sorted(reqs) for kind, reqs in state.join_requests.items()
            },
            "invite_links": list(state.invite_links.values()),
            "message_count": len(state.messages),
            "menu_button": state.menu_button,
        }

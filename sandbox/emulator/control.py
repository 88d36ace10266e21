"""Control API logic: inject updates as real Telegram users would cause them, register chats."""

from __future__ import annotations

import base64
import binascii
import copy
import secrets
from typing import Any

from sandbox.emulator.botapi import image_size
from sandbox.emulator.formatting import auto_entities
from sandbox.emulator.state import (
    ADMIN_RIGHTS,
    JSON,
    MEMBER_PERMISSIONS,
    PRESENT_STATUSES,
    ChatState,
    EmulatorState,
    member_obj,
    now,
)

MESSAGE_KINDS = ("text", "sticker", "photo", "voice", "document", "location", "contact")
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
# A valid 1x1 PNG so that injected photos without content still have real image bytes.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


class ControlError(Exception):
    """A control-API request the emulator refuses (HTTP ``status`` with ``message``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _user(state: EmulatorState, body: JSON, key: str = "user") -> JSON:
    """The (remembered) User named by ``body[key]``."""
    raw = body.get(key)
    if not isinstance(raw, dict) or "id" not in raw:
        raise ControlError(400, f"{key}.id is required")
    try:
        return state.remember_user(raw)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"invalid {key}: {exc}") from None


def _chat(state: EmulatorState, body: JSON, user: JSON | None) -> ChatState:
    """The chat from ``body["chat"]`` (registered on first sight) or the user's private chat."""
    raw = body.get("chat")
    if raw is None:
        if user is None:
            raise ControlError(400, "chat is required")
        return state.private_chat(user)
    if not isinstance(raw, dict) or "id" not in raw:
        raise ControlError(400, "chat.id is required")
    try:
        if user is not None and int(raw["id"]) == user["id"]:
            return state.private_chat(user)
        chat = state.register_chat(raw)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"invalid chat: {exc}") from None
    # Nobody can write in a group that is gone; Telegram clients move to the supergroup.
    if chat.migrated_to is not None:
        raise ControlError(409, f"the group was upgraded to supergroup {chat.migrated_to}")
    if chat.deleted:
        raise ControlError(409, "the chat was deleted")
    return chat


def _content(spec: JSON) -> bytes:
    """File bytes from {"content": text} or {"content_b64": base64}."""
    if spec.get("content_b64") is not None:
        try:
            return base64.b64decode(str(spec["content_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ControlError(400, "content_b64 is not valid base64") from None
    content = spec.get("content")
    return str(content).encode("utf-8") if content is not None else b""


def _ensure_present(state: EmulatorState, chat: ChatState, user: JSON) -> None:
    """A user writing in a group is a member; banned users can't write at all."""
    if chat.type == "private":
        if chat.bot_member.get("status") == "kicked":
            # Writing to a blocked bot means the user unblocked it: Telegram says so first.
            _set_bot_status(state, chat, user, "member")
        return
    member = chat.members.get(user["id"])
    if member is not None and member["status"] == "kicked":
        raise ControlError(403, "user is banned in this chat")
    if member is None or member["status"] == "left":
        chat.members[user["id"]] = member_obj(user, "member")


def _bot_sees(state: EmulatorState, chat: ChatState, message: JSON) -> str:
    """Why the bot would NOT get this group message ("" = it gets it), following Telegram:
    non-members get nothing; with privacy mode (non-admin bots) only commands, replies to the
    bot, @mentions of it and service messages arrive."""
    if chat.type == "private":
        return ""
    status = chat.bot_member.get("status", "member")
    if status in ("left", "kicked"):
        return "the bot is not a member of this chat"
    if status == "administrator" or chat.type == "channel":
        return ""
    text = str(message.get("text") or message.get("caption") or "")
    replied = (message.get("reply_to_message") or {}).get("from") or {}
    if (text.startswith("/") or f"@{state.bot_username}".lower() in text.lower()
            or replied.get("is_bot") or "new_chat_members" in message
            or "left_chat_member" in message or "migrate_to_chat_id" in message
            or "migrate_from_chat_id" in message):
        return ""
    return "privacy mode: a non-admin bot only sees commands, replies to it and mentions"


def _queue(state: EmulatorState, update: JSON, blocked_reason: str = "") -> JSON:
    """Queue an update unless Telegram would not deliver it; report what happened."""
    if blocked_reason:
        return {"update_id": None, "queued": False, "reason": blocked_reason}
    queued_update, queued = state.enqueue_update(update)
    result: JSON = {"update_id": queued_update["update_id"], "queued": queued}
    if not queued:
        result["reason"] = "filtered by the bot's allowed_updates"
    return result


def _admin_only(chat: ChatState, what: str) -> str:
    """chat_member and chat_join_request updates reach only administrator bots."""
    if chat.bot_member.get("status") != "administrator":
        return f"{what} updates are only sent to bots that are administrators"
    return ""


def _message_payload(state: EmulatorState, body: JSON, kind: str) -> JSON:
    """The kind-specific part of an incoming message."""
    text = body.get("text")
    if kind == "text":
        if not isinstance(text, str) or not text.strip():
            raise ControlError(400, "text is required for kind 'text'")
        entities = body.get("entities")
        return {"text": text, "entities": entities if entities is not None else auto_entities(text)}
    payload: JSON = {}
    if isinstance(text, str) and text:
        payload.update(caption=text, caption_entities=auto_entities(text))
    spec = body.get(kind) or {}
    if not isinstance(spec, dict):
        raise ControlError(400, f"{kind} must be an object")
    if kind == "document":
        name = str(spec.get("file_name") or "document.txt")
        record = state.add_file(_content(spec), "document", name, spec.get("mime_type"))
        payload["document"] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                               "file_name": name, "file_size": record.file_size}
        if record.mime_type:
            payload["document"]["mime_type"] = record.mime_type
    elif kind == "photo":
        content = _content(spec) or TINY_PNG
        size = image_size(content)
        if size is None:
            raise ControlError(400, "photo content must be a PNG, JPEG or GIF image")
        record = state.add_file(content, "photo", None, None)
        payload["photo"] = [{"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                             "file_size": record.file_size, "width": size[0],
                             "height": size[1]}]
    elif kind == "voice":
        record = state.add_file(_content(spec), "voice", None, "audio/ogg")
        payload["voice"] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                            "duration": int(spec.get("duration", 1)), "mime_type": "audio/ogg",
                            "file_size": record.file_size}
    elif kind == "sticker":
        record = state.add_file(_content(spec), "sticker", None, "image/webp")
        payload["sticker"] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id,
                              "width": 512, "height": 512, "is_animated": False,
                              "is_video": False, "type": "regular",
                              "emoji": str(spec.get("emoji", "👍"))}
    elif kind == "location":
        try:
            payload["location"] = {"latitude": float(spec["latitude"]),
                                   "longitude": float(spec["longitude"])}
        except (KeyError, TypeError, ValueError):
            raise ControlError(400, "location needs latitude and longitude") from None
    elif kind == "contact":
        if not spec.get("phone_number") or not spec.get("first_name"):
            raise ControlError(400, "contact needs phone_number and first_name")
        payload["contact"] = {k: spec[k] for k in ("phone_number", "first_name", "last_name",
                                                   "user_id", "vcard") if spec.get(k)}
    return payload


def inject_message(state: EmulatorState, body: JSON) -> JSON:
    """A user sends a message (text or other kind) to the bot; queues a message update."""
    user = _user(state, body)
    chat = _chat(state, body, user)
    kind = str(body.get("kind") or "text")
    if kind not in MESSAGE_KINDS:
        raise ControlError(400, f"kind must be one of {', '.join(MESSAGE_KINDS)}")
    payload = _message_payload(state, body, kind)
    _ensure_present(state, chat, user)
    message: JSON = {"message_id": 0, "from": user, "chat": dict(chat.chat), "date": now()}
    if body.get("reply_to_message_id") is not None:
        target = state.find_message(chat, int(body["reply_to_message_id"]))
        if target is None:
            raise ControlError(404, "reply_to_message_id not found in this chat")
        quoted = copy.deepcopy(target)
        quoted.pop("reply_to_message", None)
        message["reply_to_message"] = quoted
    message.update({k: v for k, v in payload.items() if v not in (None, [])})
    state.store_message(chat, message)
    result = _queue(state, {"message": message}, _bot_sees(state, chat, message))
    return {**result, "message": copy.deepcopy(message)}


def _has_button(message: JSON, data: str) -> bool:
    """Whether the message's current inline keyboard has a button with this callback_data."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return any(b.get("callback_data") == data for row in rows for b in row)


def inject_callback(state: EmulatorState, body: JSON) -> JSON:
    """A user presses an inline button on a bot message; queues a callback_query update."""
    user = _user(state, body)
    if body.get("chat_id") is None or body.get("message_id") is None:
        raise ControlError(400, "chat_id and message_id are required")
    data = body.get("data")
    if not isinstance(data, str):
        raise ControlError(400, "data is required")
    chat = state.chat_state(body["chat_id"])
    if chat is None:
        raise ControlError(404, "chat not found")
    message = state.find_message(chat, int(body["message_id"]))
    if message is None:
        raise ControlError(404, "message not found")
    # Telegram clients can only send data of buttons that exist on the message right now;
    # "force" lets tests forge stale or hostile callback data on purpose.
    if not body.get("force") and not _has_button(message, data):
        raise ControlError(409, "the message has no inline button with this callback_data")
    query: JSON = {
        "id": str(secrets.randbits(62)),
        "from": user,
        "message": copy.deepcopy(message),
        "chat_instance": str((chat.id * 2654435761) % (2**62)),
        "data": data,
    }
    state.add_callback(query, chat.id)
    result = _queue(state, {"callback_query": query})
    return {**result, "callback_query_id": query["id"]}


def _invite_link(state: EmulatorState, chat: ChatState, raw: Any) -> JSON | None:
    """A ChatInviteLink from a link string (known or not) or a partial dict."""
    if raw is None:
        return None
    if isinstance(raw, str):
        known = chat.invite_links.get(raw)
        if known:
            return dict(known)
        raw = {"invite_link": raw}
    if not isinstance(raw, dict) or not raw.get("invite_link"):
        raise ControlError(400, "invite_link must be a string or an object with invite_link")
    link = {"creator": state.bot_user(), "creates_join_request": True, "is_primary": False,
            "is_revoked": False, **raw}
    return link


def inject_join_request(state: EmulatorState, body: JSON) -> JSON:
    """A user asks to join a group via a join-request link; queues chat_join_request."""
    user = _user(state, body)
    if not isinstance(body.get("chat"), dict):
        raise ControlError(400, "chat is required")
    chat = _chat(state, {"chat": {"type": "supergroup", **body["chat"]}}, None)
    if chat.type == "private":
        raise ControlError(400, "join requests need a group, supergroup or channel")
    member = chat.members.get(user["id"])
    if member is not None and member["status"] == "kicked":
        raise ControlError(403, "user is banned in this chat")
    if member is not None and member["status"] in PRESENT_STATUSES:
        raise ControlError(409, "user is already a member of this chat")
    # The bot may message the requester (user_chat_id) even if they never started it.
    state.private_chat(user)
    request: JSON = {"chat": dict(chat.chat), "from": user, "user_chat_id": user["id"],
                     "date": now()}
    if body.get("bio"):
        request["bio"] = str(body["bio"])
    link = _invite_link(state, chat, body.get("invite_link"))
    if link is not None:
        request["invite_link"] = link
    for bucket in ("approved", "declined"):
        chat.join_requests[bucket].pop(user["id"], None)
    chat.join_requests["pending"][user["id"]] = request
    result = _queue(state, {"chat_join_request": request},
                    _admin_only(chat, "chat_join_request"))
    return {**result, "chat_join_request": request}


def _member_extra(body: JSON) -> JSON:
    """Rights/permissions/until_date for a member record from control-API input."""
    extra: JSON = {}
    for key in (*ADMIN_RIGHTS, *MEMBER_PERMISSIONS, "is_anonymous", "custom_title",
                "until_date", "is_member"):
        if key in body:
            extra[key] = body[key]
    for nested in ("rights", "permissions"):
        if isinstance(body.get(nested), dict):
            extra.update(body[nested])
    return extra


def inject_chat_member(state: EmulatorState, body: JSON) -> JSON:
    """A member's status changes (joined, left, kicked, promoted...); queues chat_member."""
    user = _user(state, body)
    actor = _user(state, body, "from") if body.get("from") else user
    if not isinstance(body.get("chat"), dict):
        raise ControlError(400, "chat is required")
    chat = _chat(state, body, None)
    if chat.type == "private":
        raise ControlError(400, "chat_member updates need a group, supergroup or channel")
    status = body.get("status")
    if status not in MEMBER_STATUSES:
        raise ControlError(400, f"status must be one of {', '.join(MEMBER_STATUSES)}")
    old = state.member(chat, user["id"]) or member_obj(user, "left")
    new = member_obj(user, status, **_member_extra(body))
    chat.members[user["id"]] = new
    payload: JSON = {"chat": dict(chat.chat), "from": actor, "date": now(),
                     "old_chat_member": old, "new_chat_member": new}
    link = _invite_link(state, chat, body.get("invite_link"))
    if link is not None:
        payload["invite_link"] = link
    result = {**_queue(state, {"chat_member": payload}, _admin_only(chat, "chat_member")),
              "chat_member": payload}
    if body.get("service_message"):
        result["service_message"] = _service_message(state, chat, actor, user, old, new)
    return result


def _service_message(
    state: EmulatorState, chat: ChatState, actor: JSON, user: JSON, old: JSON, new: JSON
) -> JSON | None:
    """The new_chat_members / left_chat_member message Telegram also posts in groups."""
    was_in = old["status"] in PRESENT_STATUSES or old.get("is_member")
    is_in = new["status"] in PRESENT_STATUSES or new.get("is_member")
    if was_in == is_in:
        return None
    message: JSON = {"message_id": 0, "from": actor, "chat": dict(chat.chat), "date": now()}
    if is_in:
        message["new_chat_members"] = [user]
    else:
        message["left_chat_member"] = user
    state.store_message(chat, message)
    return {**_queue(state, {"message": message}, _bot_sees(state, chat, message)),
            "message": message}


def _set_bot_status(
    state: EmulatorState, chat: ChatState, actor: JSON, status: str, extra: JSON | None = None
) -> tuple[JSON, bool]:
    """Change the bot's own membership and queue the my_chat_member update for it."""
    old = state.bot_member(chat, state.last_bot_id or 1)
    chat.bot_member = {"status": status, **(extra or {})}
    new = state.bot_member(chat, state.last_bot_id or 1)
    payload: JSON = {"chat": dict(chat.chat), "from": actor, "date": now(),
                     "old_chat_member": old, "new_chat_member": new}
    update, queued = state.enqueue_update({"my_chat_member": payload})
    return {"update_id": update["update_id"], "my_chat_member": payload}, queued


def inject_my_chat_member(state: EmulatorState, body: JSON) -> JSON:
    """The bot's own status changes: user blocks (kicked) / unblocks (member) it, or a group
    adds / promotes / removes it; queues my_chat_member."""
    user = _user(state, body)
    chat = _chat(state, body, user)
    status = body.get("status")
    allowed = ("member", "kicked") if chat.type == "private" else (
        "member", "administrator", "restricted", "left", "kicked")
    if status not in allowed:
        raise ControlError(400, f"status must be one of {', '.join(allowed)}")
    result, queued = _set_bot_status(state, chat, user, status, _member_extra(body))
    return {**result, "queued": queued}


def _absorb(state: EmulatorState, update: JSON) -> None:
    """Learn users and chats from a raw update so later Bot API calls can reach them."""
    for key in ("message", "edited_message", "channel_post", "edited_channel_post",
                "callback_query", "chat_member", "my_chat_member", "chat_join_request"):
        payload = update.get(key)
        if not isinstance(payload, dict):
            continue
        sender = payload.get("from")
        if isinstance(sender, dict) and "id" in sender:
            state.remember_user(sender)
        message = payload.get("message") if key == "callback_query" else payload
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            if chat.get("type") == "private":
                state.private_chat(state.remember_user({**chat, "id": chat["id"]}))
            else:
                state.register_chat(chat)


def inject_raw(state: EmulatorState, body: JSON) -> JSON:
    """Queue any update dict verbatim (update_id assigned if missing)."""
    payload_keys = [k for k in body if k != "update_id"]
    if len(payload_keys) != 1:
        raise ControlError(400, "an update has update_id plus exactly one payload field")
    try:
        _absorb(state, body)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"invalid update: {exc}") from None
    return _queue(state, body)


def redeliver(state: EmulatorState, body: JSON) -> JSON:
    """Queue an earlier update again with the same update_id."""
    try:
        update_id = int(body["update_id"])
    except (KeyError, TypeError, ValueError):
        raise ControlError(400, "update_id is required") from None
    update = state.redeliver(update_id)
    if update is None:
        raise ControlError(404, "unknown update_id")
    return {"update_id": update_id, "queued": True}


def register_chat(state: EmulatorState, body: JSON) -> JSON:
    """Create/update a chat (and optionally its members and the bot's status)."""
    if "id" not in body:
        raise ControlError(400, "id is required")
    bot_status = body.get("bot_status")
    if bot_status is not None and bot_status not in ("member", "administrator", "left",
                                                     "kicked", "restricted"):
        raise ControlError(400, "invalid bot_status")
    try:
        chat = state.register_chat(body, bot_status)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"invalid chat: {exc}") from None
    if isinstance(body.get("bot_rights"), dict):
        chat.bot_member.update({k: bool(v) for k, v in body["bot_rights"].items()
                                if k in ADMIN_RIGHTS})
    for entry in body.get("members") or []:
        if not isinstance(entry, dict):
            raise ControlError(400, "members must be objects with user and status")
        user = _user(state, entry)
        status = entry.get("status", "member")
        if status not in MEMBER_STATUSES:
            raise ControlError(400, f"invalid member status {status!r}")
        chat.members[user["id"]] = member_obj(user, status, **_member_extra(entry))
    return state.chat_snapshot(chat)


def block_user(state: EmulatorState, user_id: int, blocked: bool) -> JSON:
    """The user blocks (or unblocks) the bot: later sends to the private chat fail with 403
    "bot was blocked by the user" until unblocked; the bot gets my_chat_member either way."""
    chat = state.chats.get(user_id)
    user = state.users.get(user_id)
    if chat is None or user is None or chat.type != "private":
        raise ControlError(404, "no private chat with this user (they never wrote to the bot)")
    status = "kicked" if blocked else "member"
    if chat.bot_member.get("status") == status:
        return {"user_id": user_id, "blocked": blocked, "update_id": None, "queued": False,
                "reason": "already " + ("blocked" if blocked else "unblocked")}
    result, queued = _set_bot_status(state, chat, user, status)
    return {"user_id": user_id, "blocked": blocked, **result, "queued": queued}


def supergroup_id_for(state: EmulatorState, old_id: int) -> int:
    """A free supergroup id (-100 followed by 10 digits) derived from a basic group's id."""
    number = abs(old_id) % 10**10
    while -(10**12 + number) in state.chats:
        number = (number + 1) % 10**10
    return -(10**12 + number)


def _upgrader(state: EmulatorState, chat: ChatState, body: JSON) -> JSON:
    """Who upgrades the group: ``body["from"]``, else the chat's creator or first admin."""
    if body.get("from") is not None:
        return _user(state, body, "from")
    for wanted in ("creator", "administrator"):
        for member in chat.members.values():
            if member["status"] == wanted:
                return dict(member["user"])
    raise ControlError(400, "from is required (the chat has no creator or administrator)")


def migrate_chat(state: EmulatorState, chat: ChatState, body: JSON) -> JSON:
    """Upgrade a basic group to a supergroup as Telegram does: a new -100… id gets the members
    and settings, the bot gets the two service messages (old chat: migrate_to_chat_id, new
    chat: migrate_from_chat_id), and the old id then answers "group chat was upgraded"."""
    if chat.type != "group":
        raise ControlError(400, "only a basic group (type group) can be upgraded")
    if chat.migrated_to is not None:
        raise ControlError(409, f"already upgraded to {chat.migrated_to}")
    if chat.deleted:
        raise ControlError(409, "the chat was deleted")
    actor = _upgrader(state, chat, body)
    new_id = body.get("new_chat_id")
    if new_id is None:
        new_id = supergroup_id_for(state, chat.id)
    elif isinstance(new_id, bool) or not isinstance(new_id, int) \
            or not str(new_id).startswith("-100") or new_id in state.chats:
        raise ControlError(400, "new_chat_id must be a free -100… id")
    new = ChatState(
        chat={**copy.deepcopy(chat.chat), "id": new_id, "type": "supergroup"},
        members=copy.deepcopy(chat.members),
        bot_member=copy.deepcopy(chat.bot_member),
        join_requests=copy.deepcopy(chat.join_requests),
        invite_links=copy.deepcopy(chat.invite_links),
        menu_button=copy.deepcopy(chat.menu_button),
    )
    state.chats[new_id] = new
    old_message: JSON = {"message_id": 0, "from": actor, "chat": dict(chat.chat), "date": now(),
                         "migrate_to_chat_id": new_id}
    state.store_message(chat, old_message)
    old_result = _queue(state, {"message": old_message}, _bot_sees(state, chat, old_message))
    new_message: JSON = {"message_id": 0, "from": actor, "chat": dict(new.chat), "date": now(),
                         "migrate_from_chat_id": chat.id}
    state.store_message(new, new_message)
    new_result = _queue(state, {"message": new_message}, _bot_sees(state, new, new_message))
    chat.migrated_to = new_id
    return {"old_chat_id": chat.id, "new_chat_id": new_id,
            "updates": [{**old_result, "message": old_message},
                        {**new_result, "message": new_message}]}


def delete_chat(state: EmulatorState, chat: ChatState) -> JSON:
    """The group is deleted by its owner: sends fail like Telegram's (see deleted_error)."""
    if chat.type == "private":
        raise ControlError(400, "private chats can't be deleted for the bot; block the user")
    chat.deleted = True
    return {"chat_id": chat.id, "deleted": True}

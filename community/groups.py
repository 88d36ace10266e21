"""Registered dealer groups: registration, settings, the bot's admin rights, migrations.

Services only: no Telegram imports, the caller's session, never a commit. Every change by a
person writes an audit row in the same unit of work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.models import REQUIRED_RIGHTS, CommunityGroup, GroupMember
from core.errors import DomainError, NotFound, PermissionDenied
from core.i18n import LOCALES, normalize_locale
from core.models import DEALER_TIERS, PRIORITY_STAFF, AuditLog
from core.services import outbox
from core.services.staff import linked_role

MAX_BLOCKLIST = 200
MAX_TEXT = 3000
_OPTION = re.compile(r"(\w+)=(\S+)")
_STEP = re.compile(r"^(warn|ban|mute:\d{1,7})$")


class BadOptions(DomainError):
    """A /register_group or /set option is wrong; `problem` says which."""

    code = "community_bad_options"
    template = "community_bad_options"


@dataclass(frozen=True)
class GroupView:
    """A group as adapters show it."""

    id: int
    chat_id: int
    title: str
    tiers: list[str]
    regions: list[str]
    locale: str
    invite_link: str | None
    log_chat_id: int | None
    missing_rights: list[str]
    active: bool


def view(g: CommunityGroup) -> GroupView:
    """The adapter-facing view of a group row."""
    return GroupView(g.id, g.chat_id, g.title, list(g.tiers or []), list(g.regions or []),
                     g.locale, g.invite_link, g.log_chat_id, list(g.missing_rights or []),
                     g.active)


# --------------------------------------------------------------------------- parsing


def parse_options(text: str) -> dict[str, str]:
    """`key=value` pairs of a command line (values without spaces; lists comma-separated)."""
    return {k.lower(): v for k, v in _OPTION.findall(text or "")}


def _items(value: str) -> list[str]:
    seen: dict[str, None] = {}
    for part in re.split(r"[,，、|]", value or ""):
        part = part.strip()
        if part and part.lower() not in ("all", "any", "*"):
            seen.setdefault(part[:100], None)
    return list(seen)


def parse_tiers(value: str) -> list[str]:
    """Tier names (key, potential, advantage, general); `all` = any tier."""
    tiers = [t.lower() for t in _items(value)]
    bad = [t for t in tiers if t not in DEALER_TIERS]
    if bad:
        raise BadOptions(f"unknown tier {bad[0]!r}", problem=f"tiers: {', '.join(bad)}")
    return tiers


def parse_locale(value: str) -> str:
    """zh-Hans / zh-Hant / en, spelled loosely."""
    loc = normalize_locale(value)
    if loc not in LOCALES:
        raise BadOptions(f"unknown language {value!r}", problem=f"lang: {value}")
    return loc


def parse_warn_steps(value: str) -> list[str]:
    """E.g. `warn,mute:3600,ban`: what the 1st, 2nd, 3rd … warning does."""
    steps = [s.lower() for s in _items(value)]
    if not steps or len(steps) > 10 or not all(_STEP.match(s) for s in steps):
        raise BadOptions(f"bad warn steps {value!r}", problem=f"warn_steps: {value}")
    return steps


def parse_flood(value: str) -> tuple[int, int]:
    """`5/10` = at most 5 messages in 10 seconds."""
    m = re.fullmatch(r"(\d{1,3})/(\d{1,4})", (value or "").strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise BadOptions(f"bad flood limit {value!r}", problem=f"flood: {value}")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------- who may


async def staff_role(s: AsyncSession, telegram_user_id: int) -> str | None:
    """The staff role of a Telegram user linked to a staff member, else None."""
    return await linked_role(s, telegram_user_id)


async def require_group_admin(s: AsyncSession, telegram_user_id: int, chat_id: int,
                              roles: Iterable[str], *, is_chat_admin: bool,
                              action: str, staff_only: bool = False) -> str:
    """Allow a change in a group by linked staff with one of `roles`, or (unless `staff_only`)
    by an administrator of that Telegram group. A refusal is audited, then PermissionDenied."""
    role = await staff_role(s, telegram_user_id)
    if role is not None and role in set(roles):
        return f"staff:{role}"
    if is_chat_admin and not staff_only:
        return "chat_admin"
    s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="permission.denied",
                   subject=action[:200],
                   details={"reason": "not_group_admin" if not staff_only else "not_staff",
                            "chat_id": chat_id, "role": role, "roles": sorted(roles)}))
    raise PermissionDenied(f"{action} refused", reason="not_staff")


# --------------------------------------------------------------------------- registration


async def by_chat(s: AsyncSession, chat_id: int) -> CommunityGroup | None:
    """The registered group of a chat id (following a recorded migration)."""
    group = await s.scalar(select(CommunityGroup).where(CommunityGroup.chat_id == chat_id))
    if group is None:
        moved = await outbox.migrated_chat_id(s, chat_id)
        if moved is not None:
            group = await s.scalar(select(CommunityGroup)
                                   .where(CommunityGroup.chat_id == moved))
    return group


async def get(s: AsyncSession, chat_id: int) -> CommunityGroup:
    """The registered group of a chat, or NotFound."""
    group = await by_chat(s, chat_id)
    if group is None:
        raise NotFound(f"chat {chat_id} is not a registered community group")
    return group


async def register(s: AsyncSession, chat_id: int, title: str, *, actor: str,
                   options: dict[str, str] | None = None,
                   missing_rights: list[str] | None = None) -> tuple[GroupView, bool]:
    """Register (or re-register with new options) a group; returns (view, created)."""
    options = options or {}
    unknown = set(options) - {"tiers", "regions", "lang", "log", "title"}
    if unknown:
        raise BadOptions(f"unknown option {sorted(unknown)[0]}",
                         problem=", ".join(sorted(unknown)))
    group = await s.scalar(select(CommunityGroup).where(CommunityGroup.chat_id == chat_id))
    created = group is None
    if group is None:
        group = CommunityGroup(chat_id=chat_id, registered_by=actor[:100], tiers=[], regions=[],
                               blocklist=[], missing_rights=[])
        s.add(group)
    group.title = (options.get("title") or title or group.title or str(chat_id))[:200]
    if "tiers" in options:
        group.tiers = parse_tiers(options["tiers"])
    if "regions" in options:
        group.regions = _items(options["regions"])
    if "lang" in options:
        group.locale = parse_locale(options["lang"])
    if "log" in options:
        group.log_chat_id = _chat_id(options["log"])
    if missing_rights is not None:
        group.missing_rights = list(missing_rights)
    group.active = True
    await s.flush()
    s.add(AuditLog(actor=actor[:100], action="community.group_registered" if created
                   else "community.group_updated", subject=f"chat:{chat_id}",
                   details={"tiers": group.tiers, "regions": group.regions,
                            "locale": group.locale, "missing_rights": group.missing_rights}))
    return view(group), created


def _chat_id(value: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise BadOptions(f"bad chat id {value!r}", problem=f"log: {value}") from None


SETTINGS = ("welcome", "rules", "lang", "blocklist_add", "blocklist_remove", "flood", "mute",
            "log", "warn_steps", "tiers", "regions", "title", "active")


async def change_settings(s: AsyncSession, chat_id: int, *, actor: str,
                          **changes: Any) -> GroupView:
    """Change a group's settings (any of SETTINGS); unknown names are refused."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise BadOptions(f"unknown setting {sorted(unknown)[0]}", problem=", ".join(unknown))
    group = await get(s, chat_id)
    done: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            continue
        if name == "welcome":
            group.welcome_text = str(value)[:MAX_TEXT] or None
        elif name == "rules":
            group.rules_text = str(value)[:MAX_TEXT] or None
        elif name == "lang":
            group.locale = parse_locale(str(value))
        elif name == "blocklist_add":
            words = list(group.blocklist or [])
            for w in _items(str(value)) if isinstance(value, str) else value:
                if w not in words:
                    words.append(w[:100])
            group.blocklist = words[:MAX_BLOCKLIST]
        elif name == "blocklist_remove":
            drop = set(_items(str(value)) if isinstance(value, str) else value)
            group.blocklist = [w for w in group.blocklist or [] if w not in drop]
        elif name == "flood":
            group.flood_messages, group.flood_seconds = parse_flood(str(value))
        elif name == "mute":
            group.mute_seconds = max(30, min(int(value), 366 * 86400))
        elif name == "log":
            group.log_chat_id = None if str(value).lower() in ("", "none", "off") \
                else _chat_id(str(value))
        elif name == "warn_steps":
            group.warn_steps = parse_warn_steps(str(value))
        elif name == "tiers":
            group.tiers = parse_tiers(str(value))
        elif name == "regions":
            group.regions = _items(str(value))
        elif name == "title":
            group.title = str(value)[:200]
        elif name == "active":
            group.active = bool(value)
        done[name] = value if name not in ("welcome", "rules") else f"{len(str(value))} chars"
    s.add(AuditLog(actor=actor[:100], action="community.settings_changed",
                   subject=f"chat:{group.chat_id}", details=done))
    return view(group)


async def set_invite_link(s: AsyncSession, chat_id: int, link: str) -> None:
    """Store the group's join-request invite link (created by an adapter)."""
    group = await get(s, chat_id)
    group.invite_link = link[:300]


async def list_groups(s: AsyncSession, active_only: bool = True) -> list[GroupView]:
    """Every registered group, by id."""
    q = select(CommunityGroup).order_by(CommunityGroup.id)
    if active_only:
        q = q.where(CommunityGroup.active.is_(True))
    return [view(g) for g in (await s.scalars(q)).all()]


def missing_rights(rights: dict[str, bool], status: str) -> list[str]:
    """Which REQUIRED_RIGHTS the bot lacks, given its member status and rights flags."""
    if status == "creator":
        return []
    if status != "administrator":
        return list(REQUIRED_RIGHTS)
    return [r for r in REQUIRED_RIGHTS if not rights.get(r)]


async def record_rights(s: AsyncSession, chat_id: int, missing: list[str], *,
                        staff_chat_id: int | None) -> bool:
    """Store what the bot may no longer do; when that changed, tell the log chat and staff.

    Returns True when something changed (and notices were queued)."""
    group = await by_chat(s, chat_id)
    if group is None:
        return False
    before = sorted(group.missing_rights or [])
    if before == sorted(missing):
        return False
    group.missing_rights = list(missing)
    s.add(AuditLog(actor="bot", action="community.bot_rights_changed",
                   subject=f"chat:{group.chat_id}",
                   details={"missing": missing, "before": before}))
    variables = {"title": group.title, "chat_id": group.chat_id, "missing": missing}
    for target in {c for c in (group.log_chat_id, staff_chat_id) if c is not None}:
        await outbox.enqueue(s, target, template="community_rights_changed",
                             locale=group.locale, variables=variables, priority=PRIORITY_STAFF,
                             kind="community_log", ref=f"community:{group.id}")
    return True


async def log_action(s: AsyncSession, group: CommunityGroup | GroupView, action: str,
                     *, user_id: int | None, reason: str, details: dict[str, Any] | None = None,
                     actor: str = "bot", to_log_chat: bool = True) -> None:
    """An automatic or staff moderation action: an audit row and a line in the log chat."""
    s.add(AuditLog(actor=actor[:100], action=f"community.{action}",
                   subject=f"chat:{group.chat_id}",
                   details={"user_id": user_id, "reason": reason, **(details or {})}))
    if to_log_chat and group.log_chat_id is not None:
        await outbox.enqueue(s, group.log_chat_id, template="community_log",
                             locale=group.locale, priority=PRIORITY_STAFF, kind="community_log",
                             variables={"title": group.title, "action": action,
                                        "user_id": user_id or 0, "reason": reason},
                             ref=f"community:{group.id}")


# --------------------------------------------------------------------------- migration


@outbox.on_migrated
async def group_migrated(s: AsyncSession, old_chat_id: int, new_chat_id: int) -> None:
    """A group became a supergroup: its settings, members and counts follow (idempotent)."""
    group = await s.scalar(select(CommunityGroup).where(CommunityGroup.chat_id == old_chat_id))
    if group is None:
        return
    taken = await s.scalar(select(CommunityGroup.id)
                           .where(CommunityGroup.chat_id == new_chat_id))
    if taken is not None:  # registered again under the new id already: keep that one
        return
    await s.execute(update(CommunityGroup).where(CommunityGroup.id == group.id)
                    .values(chat_id=new_chat_id).execution_options(synchronize_session=False))
    s.add(AuditLog(actor="bot", action="community.group_migrated", subject=f"chat:{old_chat_id}",
                   details={"new_chat_id": new_chat_id}))


async def migrate(s: AsyncSession, old_chat_id: int, new_chat_id: int) -> None:
    """The migrate_to_chat_id service message: record it as the worker does (hooks run)."""
    if await outbox.migrated_chat_id(s, old_chat_id) == new_chat_id:
        await group_migrated(s, old_chat_id, new_chat_id)  # no-op when already moved
        return
    await outbox.chat_migrated(s, old_chat_id, new_chat_id)


async def members_of(s: AsyncSession, group_id: int) -> list[GroupMember]:
    """Current members of a group."""
    return list((await s.scalars(select(GroupMember).where(
        GroupMember.group_id == group_id, GroupMember.status == "member"))).all())

"""The dealer community's one Telegram adapter: thin handlers around community/ services.

Registered from bot/gateway/app.py (the group slot, before groups' catch-all). Every field of
an update and every callback payload is treated as attacker-controlled: ids are parsed as
integers, permissions are decided by the services (staff roles in the database, Telegram
admin status fetched from Telegram, never from the message).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from telegram import Bot, ChatPermissions, Update
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatJoinRequestHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.gateway.context import gw, turn
from bot.gateway.outbound import reply
from community import announcements, groups, membership, moderation, participation
from community.models import REQUIRED_RIGHTS
from core.errors import DomainError, PermissionDenied
from core.services import staff as staff_service

log = logging.getLogger(__name__)

FLOOD = moderation.FloodTracker()
ADMIN_CACHE_SECONDS = 300.0
_admins: dict[int, tuple[float, set[int]]] = {}
CONFIRM, CANCEL = "cann:ok:", "cann:no:"
SETTINGS_COMMANDS = ("set_welcome", "set_rules", "set_lang", "set_flood", "set_log",
                     "set_warn_steps", "blocklist", "group_settings")


# --------------------------------------------------------------------------- helpers


def _args(update: Update) -> str:
    text = (update.effective_message.text or "") if update.effective_message else ""
    parts = text.split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


async def chat_admins(bot: Bot, chat_id: int, refresh: bool = False) -> set[int]:
    """The group's administrators (cached a few minutes per process)."""
    cached = _admins.get(chat_id)
    if cached and not refresh and time.monotonic() - cached[0] < ADMIN_CACHE_SECONDS:
        return cached[1]
    try:
        ids = {m.user.id for m in await bot.get_chat_administrators(chat_id)}
    except TelegramError as exc:
        log.warning("getChatAdministrators %s failed: %s", chat_id, exc)
        ids = set()
    _admins[chat_id] = (time.monotonic(), ids)
    return ids


async def bot_missing_rights(bot: Bot, chat_id: int) -> list[str]:
    """Which admin rights the bot lacks in the chat (getChatMember on itself)."""
    try:
        me = await bot.get_chat_member(chat_id, bot.id)
    except TelegramError as exc:
        log.warning("getChatMember(bot) in %s failed: %s", chat_id, exc)
        return list(REQUIRED_RIGHTS)
    rights = {r: bool(getattr(me, r, False)) for r in REQUIRED_RIGHTS}
    return groups.missing_rights(rights, me.status)


async def ensure_invite_link(bot: Bot, db: Any, chat_id: int) -> str | None:
    """The group's join-request link, created (createChatInviteLink) and stored if missing."""
    async with db.transaction() as s:
        group = await groups.by_chat(s, chat_id)
        if group is None:
            return None
        if group.invite_link:
            return group.invite_link
        chat_id = group.chat_id
    try:
        link = await bot.create_chat_invite_link(chat_id, name="Dealer Desk",
                                                 creates_join_request=True)
    except TelegramError as exc:
        log.warning("createChatInviteLink %s failed: %s", chat_id, exc)
        return None
    async with db.transaction() as s:
        await groups.set_invite_link(s, chat_id, link.invite_link)
    return link.invite_link


async def _refresh_rights(context: ContextTypes.DEFAULT_TYPE, chat_id: int) -> None:
    g = gw(context)
    missing = await bot_missing_rights(context.bot, chat_id)
    async with g.db.transaction() as s:
        await groups.record_rights(s, chat_id, missing, staff_chat_id=g.settings.staff_chat_id)


async def _say(context: ContextTypes.DEFAULT_TYPE, chat_id: int, locale: str, template: str,
               **variables: Any) -> None:
    try:
        await reply(context, chat_id, locale, template, **variables)
    except TelegramError as exc:  # the group may be gone or the bot muted
        log.warning("reply %s to %s failed: %s", template, chat_id, exc)


def _ident_locale(context: ContextTypes.DEFAULT_TYPE) -> str:
    current = turn(context)
    if current is not None and current.ident is not None:
        return current.ident.locale
    return gw(context).settings.app.default_locale


# --------------------------------------------------------------------------- joining


async def on_join_request(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Approve linked, active dealers that fit the group; decline (and tell) everyone else."""
    req = update.chat_join_request
    if req is None:
        return
    g = gw(context)
    async with g.db.transaction() as s:
        outcome = await membership.decide_join(s, req.chat.id, req.from_user.id,
                                               int(req.date.timestamp()))
    if outcome is None or outcome.duplicate:
        return
    try:
        if outcome.approved:
            await context.bot.approve_chat_join_request(req.chat.id, req.from_user.id)
        else:
            await context.bot.decline_chat_join_request(req.chat.id, req.from_user.id)
    except BadRequest as exc:  # handled by an admin already, or the bot lost the right
        log.warning("join request %s/%s: %s", req.chat.id, req.from_user.id, exc)
        if "right" in str(exc).lower():
            await _refresh_rights(context, req.chat.id)
        return
    if not outcome.approved:
        locale = outcome.user_locale or outcome.group.locale
        try:
            await reply(context, req.user_chat_id or req.from_user.id, locale,
                        "community_decline_dm", title=outcome.group.title,
                        reason=outcome.reason)
        except Forbidden as exc:  # never started the bot, or blocked it
            log.info("decline notice to %s not delivered: %s", req.from_user.id, exc)
        except TelegramError as exc:
            log.warning("decline notice to %s failed: %s", req.from_user.id, exc)


async def on_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Someone joined (welcome) or left/was removed (membership follows)."""
    change = update.chat_member
    if change is None or change.new_chat_member.user.is_bot:
        return
    user = change.new_chat_member.user
    was = change.old_chat_member.status in ("member", "administrator", "creator") or (
        change.old_chat_member.status == "restricted"
        and getattr(change.old_chat_member, "is_member", False))
    now = change.new_chat_member.status in ("member", "administrator", "creator") or (
        change.new_chat_member.status == "restricted"
        and getattr(change.new_chat_member, "is_member", False))
    g = gw(context)
    async with g.db.transaction() as s:
        if now and not was:
            await membership.member_joined(s, change.chat.id, user.id, user.first_name or "")
        elif was and not now:
            await membership.member_left(s, change.chat.id, user.id,
                                         change.new_chat_member.status)


async def on_my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot's own status changed in a group: record lost/regained rights, tell staff."""
    change = update.my_chat_member
    if change is None or change.chat.type not in ("group", "supergroup"):
        return
    new = change.new_chat_member
    rights = {r: bool(getattr(new, r, False)) for r in REQUIRED_RIGHTS}
    missing = groups.missing_rights(rights, new.status)
    g = gw(context)
    async with g.db.transaction() as s:
        changed = await groups.record_rights(s, change.chat.id, missing,
                                             staff_chat_id=g.settings.staff_chat_id)
    _admins.pop(change.chat.id, None)
    if changed and "can_invite_users" not in missing:
        await ensure_invite_link(context.bot, g.db, change.chat.id)


async def on_migrate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: settings, members and counts move to the new id."""
    msg = update.effective_message
    if msg is None or not msg.migrate_to_chat_id:
        return
    g = gw(context)
    async with g.db.transaction() as s:
        if await groups.by_chat(s, msg.chat.id) is None:
            return
        await groups.migrate(s, msg.chat.id, int(msg.migrate_to_chat_id))
    _admins.pop(msg.chat.id, None)


# --------------------------------------------------------------------------- group admin


async def cmd_register(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/register_group tiers=key,potential regions=华东 lang=zh-Hans (admin-role staff)."""
    msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if msg is None or user is None or chat is None:
        return
    g = gw(context)
    locale = g.settings.app.default_locale
    options = groups.parse_options(_args(update))
    missing = await bot_missing_rights(context.bot, chat.id)
    try:
        async with g.db.transaction() as s:
            try:
                await groups.require_group_admin(
                    s, user.id, chat.id, g.settings.community.register_roles,
                    is_chat_admin=False, action="community:register_group", staff_only=True)
            except PermissionDenied:
                refused = True
            else:
                refused = False
                view, _ = await groups.register(s, chat.id, chat.title or "",
                                                actor=f"tg:{user.id}", options=options,
                                                missing_rights=missing)
                locale = view.locale
    except DomainError as exc:
        await _say(context, chat.id, locale, exc.template, **exc.vars)
        return
    if refused:
        await _say(context, chat.id, locale, "community_only_admins")
        return
    link = None
    if "can_invite_users" not in missing:
        link = await ensure_invite_link(context.bot, g.db, chat.id)
    await _say(context, chat.id, view.locale, "community_registered", title=view.title,
               tiers=", ".join(view.tiers), regions=", ".join(view.regions),
               lang=view.locale, link=link or "", missing=", ".join(missing))


async def cmd_settings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/set_welcome, /set_rules, /set_lang, /set_flood, /set_log, /set_warn_steps,
    /blocklist add|remove …, /group_settings — group admins and staff."""
    msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if msg is None or user is None or chat is None or not msg.text:
        return
    command = msg.text.split()[0][1:].split("@")[0].lower()
    arg = _args(update).strip()
    g = gw(context)
    admins = await chat_admins(context.bot, chat.id)
    roles = set(g.settings.community.register_roles) | set(g.settings.community.announce_roles)
    locale = g.settings.app.default_locale
    try:
        async with g.db.transaction() as s:
            group = await groups.by_chat(s, chat.id)
            if group is None:
                template, variables = "community_not_registered", {}
            else:
                locale = group.locale
                try:
                    actor = await groups.require_group_admin(
                        s, user.id, chat.id, roles, is_chat_admin=user.id in admins,
                        action=f"community:{command}")
                except PermissionDenied:
                    template, variables = "community_only_admins", {}
                else:
                    template, variables = await _apply_setting(s, group, command, arg,
                                                               f"tg:{user.id}:{actor}")
                    locale = group.locale
    except DomainError as exc:
        template, variables = exc.template, exc.vars
    await _say(context, chat.id, locale, template, **variables)


async def _apply_setting(s: Any, group: Any, command: str, arg: str,
                         actor: str) -> tuple[str, dict[str, Any]]:
    if command == "group_settings":
        return "community_settings_show", {
            "title": group.title, "tiers": ", ".join(group.tiers or []),
            "regions": ", ".join(group.regions or []), "lang": group.locale,
            "flood": f"{group.flood_messages}/{group.flood_seconds}s",
            "mute": group.mute_seconds, "steps": ", ".join(group.warn_steps or []),
            "log": group.log_chat_id or "", "blocklist": ", ".join(group.blocklist or [])}
    changes: dict[str, Any] = {}
    if command == "set_welcome":
        changes["welcome"] = arg
    elif command == "set_rules":
        changes["rules"] = arg
    elif command == "set_lang":
        changes["lang"] = arg
    elif command == "set_flood":
        changes["flood"] = arg
    elif command == "set_log":
        changes["log"] = arg or "off"
    elif command == "set_warn_steps":
        changes["warn_steps"] = arg
    elif command == "blocklist":
        verb, _, words = arg.partition(" ")
        if verb.lower() not in ("add", "remove") or not words.strip():
            raise groups.BadOptions("blocklist", problem="/blocklist add|remove word1,word2")
        changes["blocklist_add" if verb.lower() == "add" else "blocklist_remove"] = \
            words.replace(" ", ",")
    view = await groups.change_settings(s, group.chat_id, actor=actor, **changes)
    return "community_settings_saved", {"title": view.title, "what": command[4:]
                                        if command.startswith("set_") else command}


async def cmd_rules(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/rules: the group's rules in its language."""
    chat = update.effective_chat
    if chat is None:
        return
    async with gw(context).db.transaction() as s:
        group = await groups.by_chat(s, chat.id)
        if group is None:
            return
        locale, title, rules = group.locale, group.title, group.rules_text
    if rules:
        await _say(context, chat.id, locale, "community_rules", title=title, rules=rules)
    else:
        await _say(context, chat.id, locale, "community_no_rules")


async def cmd_warn(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/warn [reason] as a reply: warning → mute → ban, as the group's steps say."""
    msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if msg is None or user is None or chat is None:
        return
    g = gw(context)
    target = msg.reply_to_message.from_user if msg.reply_to_message else None
    admins = await chat_admins(context.bot, chat.id)
    roles = set(g.settings.community.register_roles) | set(g.settings.community.announce_roles)
    async with g.db.transaction() as s:
        group = await groups.by_chat(s, chat.id)
        if group is None:
            return
        locale = group.locale
        try:
            actor = await groups.require_group_admin(s, user.id, chat.id, roles,
                                                     is_chat_admin=user.id in admins,
                                                     action="community:warn")
        except PermissionDenied:
            actor = None
        result = None
        if actor is not None and target is not None and not target.is_bot \
                and target.id not in admins:
            result = await moderation.warn(s, group, target.id, actor=f"tg:{user.id}:{actor}",
                                           reason=_args(update))
            mute = group.mute_seconds
    if actor is None:
        await _say(context, chat.id, locale, "community_only_admins")
        return
    if result is None or target is None:
        await _say(context, chat.id, locale, "community_warn_howto")
        return
    count, step = result
    try:
        if step == "ban":
            await context.bot.ban_chat_member(chat.id, target.id)
        elif step.startswith("mute"):
            seconds = int(step.split(":", 1)[1]) if ":" in step else mute
            await context.bot.restrict_chat_member(
                chat.id, target.id, ChatPermissions(can_send_messages=False),
                until_date=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))
    except TelegramError as exc:
        log.warning("warn step %s in %s failed: %s", step, chat.id, exc)
        await _refresh_rights(context, chat.id)
    await _say(context, chat.id, locale, "community_warned", name=target.first_name or "",
               count=count, step=step)


async def cmd_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report as a reply: the admins (log chat, else staff) are alerted."""
    msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if msg is None or user is None or chat is None:
        return
    g = gw(context)
    reported = msg.reply_to_message
    async with g.db.transaction() as s:
        group = await groups.by_chat(s, chat.id)
        if group is None:
            return
        locale = group.locale
        if reported is None or reported.from_user is None:
            template = "community_report_howto"
        else:
            await moderation.report(s, group, reporter_id=user.id,
                                    target_id=reported.from_user.id,
                                    message_id=reported.message_id,
                                    excerpt=reported.text or reported.caption or "",
                                    staff_chat_id=g.settings.staff_chat_id)
            template = "community_report_thanks"
    await _say(context, chat.id, locale, template)


# --------------------------------------------------------------------------- members talking


async def on_group_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every message in a registered group: moderation first, then participation counting."""
    msg, user, chat = update.message, update.effective_user, update.effective_chat
    if msg is None or user is None or chat is None or user.is_bot:
        return
    if msg.migrate_to_chat_id:
        await on_migrate(update, context)
        return
    if msg.new_chat_members or msg.left_chat_member or msg.sender_chat is not None \
            and msg.sender_chat.id == chat.id:
        return  # service messages and the group posting as itself
    g = gw(context)
    text = msg.text or msg.caption or ""
    has_link = any(e.type in ("url", "text_link")
                   for e in (msg.entities or ()) + (msg.caption_entities or ()))
    forwarded = msg.forward_origin is not None
    async with g.db.transaction() as s:
        group = await groups.by_chat(s, chat.id)
        if group is None or not group.active:
            return
        customer_id = await moderation.verified_dealer(s, user.id)
        flooding = FLOOD.hit(group.chat_id, user.id, group.flood_messages, group.flood_seconds)
        needs_check = flooding or bool(group.blocklist) or (
            customer_id is None and (has_link or forwarded or bool(moderation.LINK.search(text))))
        exempt = needs_check and (user.id in await chat_admins(context.bot, chat.id))
        verdict = moderation.judge(group, text=text, has_link=has_link, forwarded=forwarded,
                                   verified=customer_id is not None, exempt=exempt,
                                   flooding=flooding)
        if verdict.action is None:
            await participation.count_message(
                s, group.id, user.id, customer_id,
                participation.local_day(g.settings.app.timezone), text=text,
                store_content=g.settings.community.store_content)
            return
        mute_seconds = group.mute_seconds
    done, error = True, ""
    try:
        if verdict.action == "delete":
            await msg.delete()
        elif verdict.action == "mute":
            await context.bot.restrict_chat_member(
                chat.id, user.id, ChatPermissions(can_send_messages=False),
                until_date=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=mute_seconds))
    except TelegramError as exc:  # lost the right mid-way: log it, keep going
        done, error = False, str(exc)[:200]
    async with g.db.transaction() as s:
        group = await groups.by_chat(s, chat.id)
        if group is not None:
            await moderation.record(s, group, verdict, user.id, done=done, error=error)
    if not done:
        await _refresh_rights(context, chat.id)


# --------------------------------------------------------------------------- dealers, staff


async def cmd_groups(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/groups in private: the invite links of exactly the groups this dealer may join."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    g = gw(context)
    async with g.db.transaction() as s:
        reason, open_groups = await membership.groups_for_user(s, user.id)
    for og in open_groups:
        if og.invite_link is None and not og.member:
            await ensure_invite_link(context.bot, g.db, og.chat_id)
    if any(og.invite_link is None for og in open_groups):
        async with g.db.transaction() as s:
            reason, open_groups = await membership.groups_for_user(s, user.id)
    await reply(context, chat.id, _ident_locale(context), "community_my_groups", reason=reason,
                groups=[{"title": og.title, "link": og.invite_link or "", "member": og.member}
                        for og in open_groups])


async def _staff_ok(context: ContextTypes.DEFAULT_TYPE, user_id: int, chat_id: int,
                    roles: list[str], action: str) -> bool:
    g = gw(context)
    async with g.db.transaction() as s:
        try:
            await staff_service.require_role(s, user_id, roles, chat_id,
                                             staff_chat_id=g.settings.staff_chat_id,
                                             action=action)
        except PermissionDenied:
            return False
    return True


async def cmd_announce(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/announce tiers=… regions=… groups=… | all [pin=yes] [at=…] in the staff chat."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    g = gw(context)
    locale = g.settings.app.default_locale
    if not await _staff_ok(context, user.id, chat.id, g.settings.community.announce_roles,
                           "community:announce"):
        await _say(context, chat.id, locale, "staff_only")
        return
    try:
        async with g.db.transaction() as s:
            draft, titles = await announcements.start_draft(s, chat.id, user.id, _args(update),
                                                            g.settings.app.timezone)
            at = draft.not_before.isoformat(timespec="minutes") if draft.not_before else ""
            pin = draft.pin
    except DomainError as exc:
        await _say(context, chat.id, locale, exc.template, **exc.vars)
        return
    await _say(context, chat.id, locale, "community_announce_start", count=len(titles),
               titles=titles, pin=pin, at=at)


async def cmd_cancel_announce(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel_announce: drop this staff member's open draft."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    g = gw(context)
    async with g.db.transaction() as s:
        draft = await announcements.open_draft(s, chat.id, user.id)
        if draft is not None:
            await announcements.cancel(s, draft.id, user.id)
    await _say(context, chat.id, g.settings.app.default_locale, "community_announce_cancelled")


async def on_staff_content(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A staff message in the staff chat: the content of their open announcement draft."""
    msg, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if msg is None or user is None or chat is None:
        return
    g = gw(context)
    media_kind = media_ref = None
    if msg.photo:
        media_kind, media_ref = "photo", msg.photo[-1].file_id
    elif msg.document:
        media_kind, media_ref = "document", msg.document.file_id
    text = msg.text or msg.caption or ""
    if not text and not media_ref:
        return
    async with g.db.transaction() as s:
        draft = await announcements.open_draft(s, chat.id, user.id)
        if draft is None:
            return
        titles = await announcements.set_content(s, draft, text=text, media_kind=media_kind,
                                                 media_ref=media_ref)
        draft_id, pin = draft.id, draft.pin
        at = draft.not_before.isoformat(timespec="minutes") if draft.not_before else ""
    locale = g.settings.app.default_locale
    await reply(context, chat.id, locale, "community_announce_preview", titles=titles,
                text=text, pin=pin, at=at, media=media_kind or "",
                buttons=[{"label_key": "button_community_confirm",
                          "payload": f"{CONFIRM}{draft_id}"},
                         {"label_key": "button_community_cancel",
                          "payload": f"{CANCEL}{draft_id}"}])


async def on_announce_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Confirm / cancel under a preview: the author only, once."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    g = gw(context)
    locale = g.settings.app.default_locale
    try:
        draft_id = int(query.data.rsplit(":", 1)[1])
    except ValueError:
        await query.answer()
        return
    chat_id = query.message.chat.id if query.message else None
    if chat_id is None or not await _staff_ok(context, query.from_user.id, chat_id,
                                              g.settings.community.announce_roles,
                                              f"community:announce:{draft_id}"):
        await query.answer(show_alert=True, text="⛔")
        return
    await query.answer()
    try:
        async with g.db.transaction() as s:
            if query.data.startswith(CONFIRM):
                queued = await announcements.confirm(
                    s, draft_id, query.from_user.id, actor=f"tg:{query.from_user.id}",
                    report_chat_id=chat_id)
                template = "community_announce_gone" if queued is None \
                    else "community_announce_queued"
                variables = {} if queued is None else {"campaign_id": queued.campaign_id,
                                                       "groups": queued.groups}
            else:
                done = await announcements.cancel(s, draft_id, query.from_user.id)
                template = "community_announce_cancelled" if done \
                    else "community_announce_gone"
                variables = {}
    except DomainError as exc:
        template, variables = exc.template, exc.vars
    await _say(context, chat_id, locale, template, **variables)


async def cmd_activity(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/activity [days]: messages per dealer and group (staff chat)."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    g = gw(context)
    locale = g.settings.app.default_locale
    if not await _staff_ok(context, user.id, chat.id, g.settings.community.activity_roles,
                           "community:activity"):
        await _say(context, chat.id, locale, "staff_only")
        return
    try:
        days = max(1, min(int(_args(update).strip() or 7), 366))
    except ValueError:
        days = 7
    until = participation.local_day(g.settings.app.timezone)
    since = until - dt.timedelta(days=days - 1)
    async with g.db.transaction() as s:
        rows = await participation.activity(s, since, until)
    await _say(context, chat.id, locale, "community_activity", since=since.isoformat(),
               until=until.isoformat(), rows=[r.__dict__ for r in rows[:30]])


# --------------------------------------------------------------------------- wiring


def register(app: Application) -> None:
    """Community handlers, in the gateway's group slot (before groups' catch-all)."""
    staff_chat = app.bot_data["gateway"].settings.staff_chat_id
    in_groups = filters.ChatType.GROUPS
    app.add_handler(ChatJoinRequestHandler(on_join_request))
    app.add_handler(ChatMemberHandler(on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(ChatMemberHandler(on_chat_member, ChatMemberHandler.CHAT_MEMBER))
    app.add_handler(CommandHandler("groups", cmd_groups, filters=filters.ChatType.PRIVATE))
    app.add_handler(CallbackQueryHandler(on_announce_button, pattern=r"^cann:(ok|no):"))
    if staff_chat is not None:
        in_staff = filters.Chat(staff_chat)
        app.add_handler(CommandHandler("announce", cmd_announce, filters=in_staff))
        app.add_handler(CommandHandler("cancel_announce", cmd_cancel_announce,
                                       filters=in_staff))
        app.add_handler(CommandHandler("activity", cmd_activity, filters=in_staff))
        app.add_handler(MessageHandler(in_staff & ~filters.COMMAND & filters.UpdateType.MESSAGE,
                                       on_staff_content))
        in_groups = in_groups & ~in_staff
    app.add_handler(CommandHandler("register_group", cmd_register, filters=in_groups))
    app.add_handler(CommandHandler(list(SETTINGS_COMMANDS), cmd_settings, filters=in_groups))
    app.add_handler(CommandHandler("rules", cmd_rules, filters=in_groups))
    app.add_handler(CommandHandler("warn", cmd_warn, filters=in_groups))
    app.add_handler(CommandHandler("report", cmd_report, filters=in_groups))
    app.add_handler(MessageHandler(in_groups & filters.UpdateType.MESSAGE, on_group_message))

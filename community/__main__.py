"""Dealer community CLI: `python -m community <group|dealer|sync|announce|activity> …`.

Every subcommand has --help. Changes are audited (actor "cli"). `group register
--create-link` and `group link` call the Bot API (the configured token, or the sandbox's).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from community import announcements, groups, membership, participation
from core.db import Database
from core.errors import DomainError
from core.settings import ConfigError, Settings, load_settings


def _yes(value: str) -> bool:
    v = value.strip().lower()
    if v in ("yes", "y", "true", "1", "on"):
        return True
    if v in ("no", "n", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError("use yes or no")


async def create_link(settings: Settings, db: Database, chat_id: int) -> str | None:
    """Create and store the join-request link through the Bot API."""
    from telegram import Bot

    from community.telegram import ensure_invite_link
    bot = Bot(settings.bot_token, base_url=settings.bot_api_base_url,
              base_file_url=settings.bot_file_base_url)
    async with bot:
        return await ensure_invite_link(bot, db, chat_id)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    try:
        return await _run(settings, db, args)
    except DomainError as exc:
        print(f"error: {exc} {exc.vars or ''}".rstrip(), file=sys.stderr)
        return 1
    finally:
        await db.dispose()


async def _run(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    actor = f"cli:{args.actor}"
    if args.cmd == "group" and args.action == "register":
        options = {k: v for k, v in (("tiers", args.tiers), ("regions", args.regions),
                                     ("lang", args.lang), ("log", args.log_chat)) if v}
        async with db.transaction() as s:
            view, created = await groups.register(s, args.chat_id, args.title, actor=actor,
                                                  options=options)
        print(f"{'registered' if created else 'updated'} {view.chat_id} {view.title!r}: "
              f"tiers={view.tiers or 'all'} regions={view.regions or 'all'} "
              f"lang={view.locale}")
        if args.create_link:
            print(f"invite link: {await create_link(settings, db, args.chat_id)}")
    elif args.cmd == "group" and args.action == "link":
        print(await create_link(settings, db, args.chat_id))
    elif args.cmd == "group" and args.action == "set":
        changes = {"welcome": args.welcome, "rules": args.rules, "lang": args.lang,
                   "flood": args.flood, "log": args.log_chat, "warn_steps": args.warn_steps,
                   "blocklist_add": args.blocklist_add,
                   "blocklist_remove": args.blocklist_remove, "tiers": args.tiers,
                   "regions": args.regions, "mute": args.mute_seconds,
                   "active": args.active}
        async with db.transaction() as s:
            view = await groups.change_settings(s, args.chat_id, actor=actor, **{
                k: v for k, v in changes.items() if v is not None})
        print(f"saved {view.chat_id} {view.title!r}")
    elif args.cmd == "group":  # list
        async with db.transaction() as s:
            for g in await groups.list_groups(s, active_only=False):
                print(f"{g.chat_id}\t{g.title}\ttiers={','.join(g.tiers) or 'all'}\t"
                      f"regions={','.join(g.regions) or 'all'}\t{g.locale}\t"
                      f"{'active' if g.active else 'inactive'}\t{g.invite_link or '-'}\t"
                      f"missing={','.join(g.missing_rights) or '-'}")
    elif args.cmd == "dealer":
        async with db.transaction() as s:
            report = await membership.set_dealer(s, args.code, actor=actor, active=args.active,
                                                 tier=args.tier, region=args.region)
        print(f"{args.code}: {report.removed} removal(s) and {report.invited} invitation(s) "
              "queued")
    elif args.cmd == "sync":
        async with db.transaction() as s:
            report = await membership.sync(s, actor=actor)
        print(f"{report.removed} removal(s) queued")
    elif args.cmd == "announce":
        segment = {"all": args.all, "tiers": groups.parse_tiers(args.tiers or ""),
                   "regions": groups._items(args.regions or ""),
                   "groups": groups._items(args.groups or "")}
        if not (segment["all"] or segment["tiers"] or segment["regions"] or segment["groups"]):
            print("error: give a segment: --tiers, --regions, --groups or --all",
                  file=sys.stderr)
            return 2
        media = ("photo", args.photo) if args.photo else ("document", args.document) \
            if args.document else (None, None)
        if not args.text and media[1] is None:
            print("error: give --text and/or --photo/--document", file=sys.stderr)
            return 2
        at = announcements.parse_at(args.at, settings.app.timezone)
        async with db.transaction() as s:
            queued = await announcements.announce(
                s, segment, text=args.text or "", actor=actor, media_kind=media[0],
                media_ref=media[1], pin=args.pin, not_before=at,
                report_chat_id=args.report_chat or settings.staff_chat_id, key=args.key)
        print(f"campaign {queued.campaign_id}: {queued.groups} group(s): "
              f"{', '.join(queued.titles)}" + (f" at {at.isoformat()}" if at else ""))
    elif args.cmd == "activity":
        until = dt.date.fromisoformat(args.until) if args.until else \
            participation.local_day(settings.app.timezone)
        since = dt.date.fromisoformat(args.since) if args.since else until - dt.timedelta(6)
        async with db.transaction() as s:
            rows = await participation.activity(s, since, until)
        text = participation.to_csv(rows)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8-sig")
            print(f"{len(rows)} row(s) → {args.out}")
        else:
            sys.stdout.write(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m community",
                                description="Dealer community groups: register and configure "
                                            "groups, change dealers, sync memberships, "
                                            "announce, export activity.")
    p.add_argument("--actor", default="operator", help="who is acting (audit log)")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("group", help="register, configure or list groups")
    gs = g.add_subparsers(dest="action", required=True)
    reg = gs.add_parser("register", help="register a group (the bot must be its admin)")
    reg.add_argument("--chat-id", type=int, required=True)
    reg.add_argument("--title", default="")
    reg.add_argument("--tiers", help="key,potential,advantage,general (default: all)")
    reg.add_argument("--regions", help="comma-separated (default: all)")
    reg.add_argument("--lang", help="zh-Hans | zh-Hant | en")
    reg.add_argument("--log-chat", help="chat id of the admin log chat")
    reg.add_argument("--create-link", action="store_true",
                     help="create the join-request invite link through the Bot API")
    link = gs.add_parser("link", help="create/store the join-request invite link (Bot API)")
    link.add_argument("--chat-id", type=int, required=True)
    st = gs.add_parser("set", help="change a group's settings")
    st.add_argument("--chat-id", type=int, required=True)
    st.add_argument("--welcome", help="extra welcome text")
    st.add_argument("--rules", help="the /rules text")
    st.add_argument("--lang")
    st.add_argument("--flood", help="N/M: at most N messages in M seconds, else muted")
    st.add_argument("--mute-seconds", type=int)
    st.add_argument("--log-chat", help="chat id, or off")
    st.add_argument("--warn-steps", help="e.g. warn,mute:3600,ban")
    st.add_argument("--blocklist-add", help="comma-separated words")
    st.add_argument("--blocklist-remove", help="comma-separated words")
    st.add_argument("--tiers")
    st.add_argument("--regions")
    st.add_argument("--active", type=_yes, help="yes/no")
    gs.add_parser("list", help="list registered groups")
    d = sub.add_parser("dealer", help="deactivate a dealer or change its tier/region; "
                                      "memberships follow")
    d.add_argument("--code", required=True)
    d.add_argument("--active", type=_yes, help="yes/no")
    d.add_argument("--tier")
    d.add_argument("--region")
    sub.add_parser("sync", help="remove members who no longer fit their groups")
    a = sub.add_parser("announce", help="queue an announcement to a segment of groups")
    a.add_argument("--tiers")
    a.add_argument("--regions")
    a.add_argument("--groups", help="chat ids or exact titles, comma-separated")
    a.add_argument("--all", action="store_true")
    a.add_argument("--text", default="")
    a.add_argument("--photo", help="file_id, URL or local path")
    a.add_argument("--document", help="file_id, URL or local path")
    a.add_argument("--pin", action="store_true")
    a.add_argument("--at", help="send at, e.g. 2026-12-01T09:00 (app.timezone)")
    a.add_argument("--key", help="idempotency key: the same key never queues twice")
    a.add_argument("--report-chat", type=int, help="progress/final report chat (default staff)")
    act = sub.add_parser("activity", help="messages per dealer per group as CSV")
    act.add_argument("--since", help="YYYY-MM-DD (default: 6 days before --until)")
    act.add_argument("--until", help="YYYY-MM-DD (default: today)")
    act.add_argument("--out", help="write to this file (default: stdout)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings, args))


if __name__ == "__main__":
    sys.exit(main())

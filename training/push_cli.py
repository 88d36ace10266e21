"""Training pushes from the command line: `push`, `pushes`, `cancel-push` (wired into
`python -m training` by `add_parsers`).

    python -m training push basics --lesson intro --segment "tiers=key regions=华东"
    python -m training push basics --segment "dealers=D001" --every mon@09:00 --tz Europe/Berlin
    python -m training pushes
    python -m training cancel-push 7

Each subcommand sets `handler`, an `async (ctx, args) -> int` run by training/cli.py (which
prints refusals and sets the exit code); a push made here is active at once (no preview: the
command line is the confirmation), audited as actor `cli:<--actor>`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from training import push
from training.cli import Context


def add_parsers(subparsers: Any) -> None:
    """Add push / pushes / cancel-push to a `python -m training` subparsers object."""
    p = subparsers.add_parser(
        "push", help="push a lesson or a whole course to dealers (now, at a time, weekly)",
        description="Push a lesson (--lesson) or the whole course, one lesson at a time, to a "
                    "segment of dealers through the outbox: now, once (--at) or every week "
                    "(--every). Segment words: tiers=key,potential regions=华东 (both must "
                    "match), groups=-100123,华东经销商群 and dealers=D001,D002 (added), or all.")
    p.add_argument("course", help="the course code")
    p.add_argument("--lesson", help="the key of one lesson or quiz (default: the whole course)")
    p.add_argument("--segment", required=True,
                   help='who gets it, e.g. "tiers=key regions=华东" or "dealers=D001,D002" '
                        'or "all"')
    p.add_argument("--at", help="once, at this local time (ISO, e.g. 2026-12-01T09:00)")
    p.add_argument("--every", help="weekly: weekday@HH:MM, e.g. mon@09:00")
    p.add_argument("--tz", help="time zone of --at / --every (default: app.timezone)")
    p.add_argument("--report-chat", type=int, help="chat id that gets the delivery report")
    p.set_defaults(handler=cmd_push)
    p = subparsers.add_parser("pushes", help="list scheduled pushes",
                              description="List active pushes (--all: done and cancelled too).")
    p.add_argument("--all", action="store_true", help="include done and cancelled pushes")
    p.set_defaults(handler=cmd_pushes)
    p = subparsers.add_parser("cancel-push", help="cancel a scheduled push",
                              description="Cancel a push: no further slots fire (messages "
                                          "already queued stay; see `python -m core.cli "
                                          "campaign-cancel`).")
    p.add_argument("id", type=int, help="the push id (see `pushes`)")
    p.set_defaults(handler=cmd_cancel_push)


def _line(v: push.PushView, tz: str) -> str:
    what = f"{v.course_code}" + (f" lesson {v.item_key}" if v.item_key else " (whole course)")
    when = {"now": "now", "once": "once"}.get(v.schedule, f"every {v.weekly_text} {v.timezone}")
    nxt = v.due_in(tz)
    return (f"#{v.id} [{v.status}] {what} → {v.segment_text} · {when}"
            + (f" · next {nxt:%Y-%m-%d %H:%M} {tz}" if nxt else "")
            + (f" · fired {v.runs}x" if v.runs else ""))


async def cmd_push(ctx: Context, args: argparse.Namespace) -> int:
    """Create (and, without --at/--every, send) a push; prints what it did."""
    tz = ctx.settings.app.timezone

    async def work(s: Any) -> int:
        view = await push.create_push(
            s, course_code=args.course, item_key=args.lesson, segment=args.segment,
            actor=ctx.actor, report_chat_id=args.report_chat, at=args.at,
            weekly=args.every, timezone=args.tz, app_timezone=tz)
        print(_line(view, tz))
        print(f"dealers {view.dealers}: reachable {view.reachable}, "
              f"not linked {view.unreachable}")
        if view.unknown_dealers or view.unknown_groups:
            print(f"unknown (left out): {', '.join(view.unknown_dealers + view.unknown_groups)}")
        if view.fired is not None:
            f = view.fired
            print(f"sent now: {f.queued} queued (campaign {f.campaign_id}), "
                  f"{f.already_done} had finished it")
        elif args.tz and view.next_due_at:
            print(f"= {view.due_in(args.tz):%Y-%m-%d %H:%M} {args.tz}")
        return 0

    async with ctx.transaction() as s:
        return await work(s)


async def cmd_pushes(ctx: Context, args: argparse.Namespace) -> int:
    """Print the pushes, one a line."""
    async def work(s: Any) -> int:
        views = await push.list_pushes(s, include_finished=args.all)
        for v in views:
            print(_line(v, ctx.settings.app.timezone))
        if not views:
            print("no scheduled pushes (create one with: python -m training push …)")
        return 0

    async with ctx.transaction() as s:
        return await work(s)


async def cmd_cancel_push(ctx: Context, args: argparse.Namespace) -> int:
    """Cancel one push."""
    async def work(s: Any) -> int:
        view = await push.cancel(s, args.id, ctx.actor)
        if view is None:
            print(f"push #{args.id} was already done or cancelled", file=sys.stderr)
            return 1
        print(f"cancelled #{view.id}")
        return 0

    async with ctx.transaction() as s:
        return await work(s)

"""Operator commands: migrate, import data, load demo data, issue link codes.

Run `.venv/bin/python -m core.cli --help` (or `make help`) for the list.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from core.db import Database
from core.migrate import upgrade
from core.settings import PROJECT_ROOT, ConfigError, Settings, load_settings


def _db(settings: Settings) -> Database:
    return Database(settings.resolved_database_url(), echo=settings.database.echo)


async def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    """Bring the database schema up to date."""
    db = _db(settings)
    try:
        await upgrade(db.engine)
    finally:
        await db.dispose()
    print(f"database schema is up to date ({_redact(settings.resolved_database_url())})")
    return 0


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Import CSV files (or a folder of them) into the database."""
    from core.services.importer import ImportRejected, import_paths

    db = _db(settings)
    try:
        await upgrade(db.engine)
        paths = [Path(p) for p in args.paths]
        try:
            report = await import_paths(db, paths, progress=_progress,
                                        timezone=settings.app.timezone)
        except ImportRejected as exc:
            print(f"\nimport rejected, nothing was changed ({len(exc.errors)} problem(s)):",
                  file=sys.stderr)
            for err in exc.errors[: args.max_errors]:
                print(f"  {err}", file=sys.stderr)
            if len(exc.errors) > args.max_errors:
                print(f"  … and {len(exc.errors) - args.max_errors} more", file=sys.stderr)
            return 1
    finally:
        await db.dispose()
    print()
    print(report.summary())
    return 0


async def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Load the bundled demo data and link the sandbox personas to demo accounts."""
    from core.services.demo import seed_demo

    db = _db(settings)
    try:
        await upgrade(db.engine)
        summary = await seed_demo(db, settings, progress=_progress)
    finally:
        await db.dispose()
    print()
    print(summary)
    return 0


async def cmd_link_code(settings: Settings, args: argparse.Namespace) -> int:
    """Issue a one-time code that links a Telegram chat to a customer or staff account."""
    from core.errors import DomainError
    from core.identity import pepper_for
    from core.services import accounts

    db = _db(settings)
    try:
        await upgrade(db.engine)
        try:
            async with db.transaction() as s:
                if args.customer:
                    issued = await accounts.issue_link_code(
                        s, settings.linking, customer_code=args.customer, created_by=args.by,
                        pepper=pepper_for(settings),
                    )
                else:
                    issued = await accounts.issue_link_code(
                        s, settings.linking, staff_name=args.staff, staff_role=args.role,
                        pepper=pepper_for(settings),
                        created_by=args.by,
                    )
        except DomainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        await db.dispose()
    print(f"code: {issued.code}")
    print(f"for: {issued.account_label}")
    print(f"expires: {issued.expires_at.isoformat(timespec='minutes')}")
    print(f"deep link: https://t.me/<your_bot_username>?start={issued.code}")
    return 0


async def cmd_tickets(settings: Settings, args: argparse.Namespace) -> int:
    """List hand-off tickets, or close one (the customer is told through the outbox)."""
    from core.errors import NotFound
    from core.services import tickets

    db = _db(settings)
    try:
        await upgrade(db.engine)
        async with db.transaction() as s:
            if args.action == "list":
                rows = await tickets.list_tickets(s, None if args.status == "all"
                                                  else args.status, args.limit)
                print(f"{'#':>6}  {'status':<11} {'kind':<9} {'created (UTC)':<16} "
                      f"{'answered':<8} customer")
                for t in rows:
                    created = t.created_at.strftime("%Y-%m-%d %H:%M") if t.created_at else ""
                    who = t.customer_code or f"tg {t.telegram_user_id}"
                    print(f"{t.id:>6}  {t.status:<11} {t.kind:<9} {created:<16} "
                          f"{'yes' if t.answered else 'no':<8} {who}")
                return 0
            try:
                t = await tickets.close_and_notify(s, args.ticket_id, f"cli:{args.by}",
                                                   settings.app.default_locale)
            except NotFound:
                print(f"error: no ticket #{args.ticket_id}", file=sys.stderr)
                return 1
    finally:
        await db.dispose()
    print(f"ticket #{t.id} " + ("closed; the customer will be told" if t.just_closed
                                else f"was already {t.status}"))
    return 0


async def cmd_outbox_failed(settings: Settings, args: argparse.Namespace) -> int:
    """List messages that failed for good, with their reasons."""
    from core.services import outbox

    db = _db(settings)
    try:
        async with db.transaction() as s:
            failed = await outbox.failed_messages(s, args.campaign, limit=args.limit)
    finally:
        await db.dispose()
    if not failed:
        print("no failed messages" + (f" in campaign {args.campaign}" if args.campaign else ""))
        return 0
    print(f"{'id':>8}  {'chat':>15}  {'campaign':>8}  {'kind':<16} reason")
    for m in failed:
        print(f"{m.id:>8}  {m.chat_id:>15}  {m.campaign_id or '-':>8}  {m.kind:<16} {m.error}")
    print(f"\n{len(failed)} failed; queue them again with: python -m core.cli outbox retry "
          f"{'--campaign ' + str(args.campaign) if args.campaign else 'ID …'}")
    return 0


async def cmd_outbox_retry(settings: Settings, args: argparse.Namespace) -> int:
    """Queue failed messages again."""
    from core.services import outbox

    if not args.ids and args.campaign is None and not args.all_failed:
        print("error: say which messages to retry: message ids, --campaign N or --all-failed "
              "(list them with: python -m core.cli outbox failed)", file=sys.stderr)
        return 2
    db = _db(settings)
    try:
        async with db.transaction() as s:
            n = await outbox.retry(s, ids=args.ids or None, campaign_id=args.campaign,
                                   all_failed=args.all_failed)
    finally:
        await db.dispose()
    if n == 0:
        print("nothing to retry: no failed message matched (only 'failed' messages are "
              "re-queued; see python -m core.cli outbox failed)", file=sys.stderr)
        return 1
    print(f"{n} message(s) queued again; a running delivery worker sends them "
          "(start one with: python -m bot.delivery)")
    return 0


async def cmd_campaign_report(settings: Settings, args: argparse.Namespace) -> int:
    """Print a campaign's counts and failure reasons."""
    from core.errors import NotFound
    from core.services import outbox

    db = _db(settings)
    try:
        async with db.transaction() as s:
            report = await outbox.campaign_report(s, args.campaign_id)
    except NotFound:
        print(f"error: no campaign {args.campaign_id}; check the id", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(f"campaign {report.id}: {report.title} [{report.status}]")
    print(f"  total {report.total}  sent {report.sent}  failed {report.failed}  "
          f"queued {report.queued}  sending {report.sending}  cancelled {report.cancelled}")
    for reason, count in report.reasons:
        print(f"  failed: {count:>6}  {reason}")
    return 0


async def cmd_campaign_cancel(settings: Settings, args: argparse.Namespace) -> int:
    """Cancel a campaign: nothing more of it is sent."""
    from core.errors import NotFound
    from core.services import outbox

    db = _db(settings)
    try:
        async with db.transaction() as s:
            n = await outbox.cancel_campaign(s, args.campaign_id, by=args.by)
    except NotFound:
        print(f"error: no campaign {args.campaign_id}; check the id", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(f"campaign {args.campaign_id} cancelled: {n} message(s) will not be sent; messages "
          "already in a Telegram call finish. The final report goes to the report chat.")
    return 0


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if done >= total else ""
    print(f"\r{label:<22} [{bar}] {done}/{total}", end=end, flush=True)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m core.cli",
        description="Operator commands for the dealer/retailer front desk.",
    )
    parser.add_argument("--config", help="path to config.yml (default: the project's)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create or upgrade the database schema",
                   description="Create or upgrade the database schema (Alembic).")

    p = sub.add_parser(
        "import", help="import operator CSV files",
        description=(
            "Import CSV files exported from the ERP/DMS. Give files or folders; each file is "
            "recognised by its name: products.csv, stock.csv, retailers.csv, dealers.csv, "
            "orders.csv, promotions.csv (UTF-8, header row). Re-importing the same file changes "
            "nothing. If any row is bad, nothing is imported and every bad row is listed."
        ),
    )
    p.add_argument("paths", nargs="+", help="CSV files or folders containing them")
    p.add_argument("--max-errors", type=int, default=50, help="errors to print (default 50)")

    sub.add_parser("seed-demo", help="load the bundled demo data and sandbox personas",
                   description="Load data/demo/*.csv and link the sandbox personas.")

    p = sub.add_parser(
        "link-code", help="issue a one-time account link code",
        description="Issue a one-time code; the user sends it to the bot (or opens the "
                    "deep link) to link their Telegram chat to the account.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--customer", help="retailer or dealer code, e.g. R001")
    target.add_argument("--staff", help="staff member's name (created if new)")
    p.add_argument("--role", choices=["admin", "customer_service", "trainer"],
                   default="customer_service", help="role for --staff")
    p.add_argument("--by", default="cli", help="who issues the code (for the audit log)")

    p = sub.add_parser("tickets", help="list or close hand-off tickets",
                       description="Hand-off tickets: list them, or close one.")
    tsub = p.add_subparsers(dest="action", required=True)
    lp = tsub.add_parser("list", help="list tickets, newest first",
                         description="List hand-off tickets, newest first.")
    lp.add_argument("--status", default="active",
                    choices=["active", "all", "pending", "open", "unreachable", "closed",
                             "cancelled"],
                    help="which tickets (default active: pending or open)")
    lp.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    cp = tsub.add_parser("close", help="close a ticket; the customer is told",
                         description="Close ticket N; the customer gets the usual notice "
                                     "(queued in the outbox, sent by the delivery worker).")
    cp.add_argument("ticket_id", type=int, metavar="N", help="ticket number")
    cp.add_argument("--by", default="staff", help="who closes it (for the audit log)")

    p = sub.add_parser("outbox", help="failed messages and retries",
                       description="Inspect and retry messages of the outbox.")
    osub = p.add_subparsers(dest="action", required=True)
    q = osub.add_parser("failed", help="list failed messages with their reasons",
                        description="List messages that failed for good, newest first.")
    q.add_argument("--campaign", type=int, default=None, help="only this campaign")
    q.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    q.set_defaults(handler=cmd_outbox_failed)
    q = osub.add_parser("retry", help="queue failed messages again",
                        description="Queue failed messages again: by id, by campaign or all.")
    q.add_argument("ids", nargs="*", type=int, help="message ids (from `outbox failed`)")
    q.add_argument("--campaign", type=int, default=None, help="every failed message of it")
    q.add_argument("--all-failed", action="store_true", help="every failed message")
    q.set_defaults(handler=cmd_outbox_retry)

    p = sub.add_parser("campaign", help="campaign reports and cancelling",
                       description="Reports and cancelling of campaigns (bulk sends).")
    csub = p.add_subparsers(dest="action", required=True)
    q = csub.add_parser("report", help="counts and failure reasons of a campaign",
                        description="Queued / sent / failed (reasons grouped) / cancelled.")
    q.add_argument("campaign_id", type=int, help="campaign id")
    q.set_defaults(handler=cmd_campaign_report)
    q = csub.add_parser("cancel", help="stop a campaign half-way",
                        description="Nothing more of the campaign is sent; its queued messages "
                                    "become 'cancelled' and the final report says so.")
    q.add_argument("campaign_id", type=int, help="campaign id")
    q.add_argument("--by", default="cli", help="who cancels (recorded as the reason)")
    q.set_defaults(handler=cmd_campaign_cancel)
    return parser


COMMANDS = {
    "tickets": cmd_tickets,
    "migrate": cmd_migrate,
    "import": cmd_import,
    "seed-demo": cmd_seed_demo,
    "link-code": cmd_link_code,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    return asyncio.run(handler(settings, args))


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "PROJECT_ROOT"]

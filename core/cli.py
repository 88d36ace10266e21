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
    return parser


COMMANDS = {
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
    return asyncio.run(COMMANDS[args.command](settings, args))


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "PROJECT_ROOT"]

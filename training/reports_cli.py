"""Training reports on the command line: `progress`, `verify` and `certificate`.

`python -m training` adds these with `add_parsers(subparsers)`; each subcommand sets
`handler=async fn(settings, db, args) -> exit code`. They also run alone:
`python -m training.reports_cli progress basics --csv out.csv`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.gateway.render import plain
from core.db import Database
from core.errors import DomainError, NotFound
from core.i18n import renderer
from core.settings import ConfigError, Settings, load_settings
from training import certificates, reports


def _show(template: str, locale: str, variables: dict[str, Any]) -> str:
    return plain(renderer().render(template, locale, **variables))


async def cmd_progress(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    """Print a course's (or group's, or dealer's) progress, or write it as CSV."""
    if not args.course and not args.dealer:
        print("error: name a course (progress basics) or a dealer (--dealer D001)",
              file=sys.stderr)
        return 2
    if args.dealer and (args.course or args.group):
        print("error: --dealer shows every course of one dealer: leave out the course "
              "and --group", file=sys.stderr)
        return 2
    async with db.transaction() as s:
        if args.csv:
            _name, data, count = await reports.csv_for(s, course=args.course, group=args.group,
                                                       dealer=args.dealer)
        else:
            screen = await reports.query_screen(s, reports.ProgressQuery(
                course=args.course, group=args.group, dealer=args.dealer))
    if args.csv:
        if args.csv == "-":
            sys.stdout.write(data.decode("utf-8-sig"))
        else:
            Path(args.csv).write_bytes(data)
            print(f"{count} row(s) → {args.csv}")
        return 0
    print(_show(screen.template, args.locale or settings.app.default_locale, screen.vars))
    return 0


async def cmd_verify(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    """Check a certificate code as the bot would; exit 1 when it is not valid."""
    async with db.transaction() as s:
        screen = await certificates.verify(s, args.code)
    print(_show(screen.template, args.locale or settings.app.default_locale, screen.vars))
    return 0 if screen.template == "training_verify_valid" else 1


async def cmd_certificate(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    """Write a certificate's PDF (rendered afresh from its row) to --out."""
    async with db.transaction() as s:
        cert = await certificates.by_code(s, args.code)
    if cert is None:
        print(f"error: {args.code!r} is not a certificate code (check it with "
              "`verify CODE`)", file=sys.stderr)
        return 1
    data = certificates.render_pdf(cert, settings)
    Path(args.out).write_bytes(data)
    print(f"{cert.code} ({cert.holder_name}, {cert.course_title}) → {args.out}")
    return 0


def add_parsers(sub: Any) -> None:
    """Add `progress`, `verify` and `certificate` to a subparsers object."""
    p = sub.add_parser("progress", help="training progress of a course, a group or a dealer",
                       description="Progress per course (enrolled, started, completed, "
                                   "passed, quiz scores, every dealer), narrowed to a "
                                   "registered group's dealers with --group, or one dealer's "
                                   "courses with --dealer. --csv writes a spreadsheet "
                                   "(UTF-8 with BOM, formula-safe).")
    p.add_argument("course", nargs="?", help="course code (as imported), e.g. product-basics")
    p.add_argument("--group", help="a registered group's chat id or exact title")
    p.add_argument("--dealer", help="a dealer code: that dealer's courses (no course then)")
    p.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-' for stdout)")
    p.add_argument("--locale", help="zh-Hans, zh-Hant or en (default: app.default_locale)")
    p.set_defaults(handler=cmd_progress)
    v = sub.add_parser("verify", help="check a certificate code",
                       description="Check a certificate code as `/verify` does (case, "
                                   "spaces, dashes and O/0 I/1 are forgiven). Exit 1 if "
                                   "it is not valid.")
    v.add_argument("code")
    v.add_argument("--locale", help="zh-Hans, zh-Hant or en (default: app.default_locale)")
    v.set_defaults(handler=cmd_verify)
    c = sub.add_parser("certificate", help="write a certificate's PDF to a file",
                       description="Render the certificate with this code as PDF.")
    c.add_argument("code")
    c.add_argument("--out", required=True, help="the PDF file to write")
    c.set_defaults(handler=cmd_certificate)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run a parsed subcommand against the configured database; errors in words."""
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    try:
        return await args.handler(settings, db, args)
    except NotFound as exc:
        print(f"error: no {exc.vars.get('what', 'such thing')} {exc.vars.get('ref', '')!r} "
              "(check the spelling; course codes are listed by the course import)",
              file=sys.stderr)
        return 1
    except DomainError as exc:
        print(f"error: {exc} {exc.vars or ''}".rstrip(), file=sys.stderr)
        return 1
    finally:
        await db.dispose()


def parser() -> argparse.ArgumentParser:
    """The stand-alone parser (`python -m training.reports_cli`)."""
    p = argparse.ArgumentParser(prog="python -m training.reports_cli",
                                description="Training progress reports and certificates.")
    add_parsers(p.add_subparsers(dest="cmd", required=True))
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, load the settings, run."""
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings, args))


if __name__ == "__main__":
    sys.exit(main())

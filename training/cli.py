"""Training operator commands: `python -m training --help`.

Exit codes: 0 done, 1 the command was refused (the reasons are printed: a bundle's
problems, an unknown course …), 2 bad configuration or arguments.

Every subcommand is an `async def (ctx: Context, args) -> int` set as the parser's `handler`:
the bundle commands are here (`import`, `courses`), pushes in training/push_cli.py (`push`,
`pushes`, `cancel-push`), reports in training/reports_cli.py (`progress`, `verify`,
`certificate`); each module's `add_parsers(subparsers)` adds its own. A command that needs
the database opens `async with ctx.transaction() as s:` (the schema is brought up to date
first, once); raising DomainError prints "error: …" (and what to fix) and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.errors import DomainError, NotFound
from core.migrate import upgrade
from core.settings import ConfigError, Settings, load_settings
from training import bundle
from training.courses import CourseInvalid
from training.models import Course, CourseItem, Enrollment


@dataclass
class Context:
    """What every command gets: the settings, the database (opened on first use) and who
    is acting (for the audit log)."""

    settings: Settings
    db: Database
    actor: str
    _migrated: bool = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work on an up-to-date schema."""
        if not self._migrated:
            await upgrade(self.db.engine)
            self._migrated = True
        async with self.db.transaction() as s:
            yield s


Command = Callable[[Context, argparse.Namespace], Awaitable[int]]


async def c_import(ctx: Context, a: argparse.Namespace) -> int:
    """Check a course folder and import it (a new course, or a new version of the same code)."""
    loaded = bundle.load(a.folder)
    if not loaded.ok:
        raise CourseInvalid(loaded.problems)
    if a.dry_run:
        print(bundle.outline(loaded))
        print("dry run: the bundle is fine; nothing was saved (run again without --dry-run)")
        return 0
    async with ctx.transaction() as s:
        result = await bundle.import_bundle(s, a.folder, ctx.settings, actor=ctx.actor)
        course = result.course
        print(bundle.outline(result.bundle))
        print(f"saved course {course.code} version {course.version} (id {course.id})"
              if result.saved else
              f"course {course.code} is already this content; version {course.version} kept")
    return 0


async def c_courses(ctx: Context, a: argparse.Namespace) -> int:
    """List every course: code, title, version, active items, enrolled dealers."""
    items = (select(func.count()).where(CourseItem.course_id == Course.id, CourseItem.active)
             .correlate(Course).scalar_subquery())
    enrolled = (select(func.count()).where(Enrollment.course_id == Course.id)
                .correlate(Course).scalar_subquery())
    async with ctx.transaction() as s:
        rows = (await s.execute(select(Course, items, enrolled).order_by(Course.code))).all()
    if not rows:
        print("no courses yet (import one: python -m training import <folder>)")
    for course, n_items, n_enrolled in rows:
        print(f"{course.code}\t{course.title}\tv{course.version}\t{n_items} item(s)\t"
              f"{n_enrolled} enrolled\t{course.status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `python -m training` command line."""
    from training import push_cli, reports_cli  # they import Context from here
    p = argparse.ArgumentParser(prog="python -m training",
                                description="Training: import course bundles, list courses, push "
                                            "lessons, progress reports, certificates.")
    p.add_argument("--config", help="path to config.yml (default: the project's)")
    p.add_argument("--actor", default="operator", help="who is acting (audit log)")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, fn: Command, help_: str, **kw: Any) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_, description=help_, **kw)
        parser.set_defaults(handler=fn)
        return parser

    q = cmd("import", c_import, "check a course folder (course.yml, lessons *.md, quizzes "
                                "*.yml, attachments) and import it; every problem is listed "
                                "and nothing is saved while there is one")
    q.add_argument("folder", help="the course folder, the one holding course.yml")
    q.add_argument("--dry-run", action="store_true",
                   help="check and print the outline only; save nothing")
    cmd("courses", c_courses, "list courses: code, title, version, items, enrolled dealers")
    push_cli.add_parsers(sub)
    reports_cli.add_parsers(sub)
    return p


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one command; a refused command prints why and returns 1."""
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    ctx = Context(settings=settings, db=db, actor=f"cli:{args.actor}")
    try:
        return int(await args.handler(ctx, args))
    except CourseInvalid as exc:
        print(f"error: {len(exc.problems)} problem(s); nothing was saved. Fix these and run "
              "the command again:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  • {problem}", file=sys.stderr)
        return 1
    except NotFound as exc:
        print(f"error: no {exc.vars.get('what', 'such thing')} {exc.vars.get('ref', '')!r} "
              "(check the spelling; `python -m training courses` lists the course codes)",
              file=sys.stderr)
        return 1
    except DomainError as exc:
        detail = exc.vars.get("problem") or ""
        print(f"error: {exc}{f' — {detail}' if detail else ''}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings, args))


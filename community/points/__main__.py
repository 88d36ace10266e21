"""Reward points operator commands: `python -m community.points --help`.

Each command runs in one unit of work against the configured database (DATABASE_URL or
config.yml), after bringing the schema up to date. `reconcile` exits 1 when any balance
drifted from its ledger, so it can run from cron or CI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.points import ledger, reports, rewards
from core.db import Database
from core.errors import DomainError
from core.migrate import upgrade
from core.models import Customer
from core.settings import ConfigError, Settings, load_settings


async def _customer_id(s: AsyncSession, code: str) -> int:
    cid = await s.scalar(select(Customer.id).where(Customer.code == code))
    if cid is None:
        raise DomainError(f"no customer with code {code}")
    return int(cid)


def _month(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y-%m").date()


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one command in a unit of work; domain errors print and exit 1."""
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    try:
        await upgrade(db.engine)
        async with db.transaction() as s:
            return await COMMANDS[args.command](s, args)
    except (DomainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()


async def c_balance(s: AsyncSession, a: argparse.Namespace) -> int:
    """Print an account's balance."""
    v = await ledger.balance(s, await _customer_id(s, a.customer))
    print(f"available {v.available}  pending {v.pending}  debt {v.debt}  "
          f"expiring {v.expiring_points} (first on {v.expiring_on or '-'})")
    return 0


async def c_history(s: AsyncSession, a: argparse.Namespace) -> int:
    """Print an account's newest entries."""
    for e in await ledger.history(s, await _customer_id(s, a.customer), limit=a.limit):
        print(f"{e.id:>8} {e.created_at:%Y-%m-%d %H:%M} {e.kind:<8} {e.amount:>+7} "
              f"{e.pending:>+7}  {e.source_key}  {e.reason}")
    return 0


async def c_award(s: AsyncSession, a: argparse.Namespace) -> int:
    """Award a configured rule once per source."""
    r = await ledger.award(s, await _customer_id(s, a.customer), a.rule, a.source, actor=a.by)
    print(f"awarded {r.points} ({r.source_key})" if r.created else
          f"already awarded ({r.source_key}); nothing changed")
    return 0


async def c_referral(s: AsyncSession, a: argparse.Namespace) -> int:
    """Award the dealer who referred a new dealer (once per new dealer)."""
    r = await ledger.award_referral(s, await _customer_id(s, a.referrer),
                                    await _customer_id(s, a.new), actor=a.by)
    print(f"awarded {r.points} to {a.referrer} ({r.source_key})" if r.created else
          f"already awarded ({r.source_key}); nothing changed")
    return 0


async def c_adjust(s: AsyncSession, a: argparse.Namespace) -> int:
    """Adjust a balance by hand (staff with an adjusting role, reason required)."""
    entry = await ledger.adjust(s, await _customer_id(s, a.customer), a.points, a.reason,
                                a.staff_id, source_key=a.key)
    print(f"entry {entry}" if entry else "already adjusted with this key; nothing changed")
    return 0


async def c_rewards(s: AsyncSession, a: argparse.Namespace) -> int:
    """List the catalogue."""
    for r in await rewards.catalogue(s, include_inactive=a.all):
        stock = "∞" if r.stock is None else r.stock
        print(f"{r.code:<16} {r.kind:<8} {r.cost:>7} pts  stock {stock!s:<6} "
              f"{'approval ' if r.needs_approval else ''}{'' if r.active else '(inactive) '}"
              f"{r.name_zh} {r.name_en}")
    return 0


async def c_reward_add(s: AsyncSession, a: argparse.Namespace) -> int:
    """Create or update one reward."""
    from decimal import Decimal

    r = await rewards.upsert_reward(
        s, a.code, kind=a.kind, name_zh=a.name_zh, name_en=a.name_en, cost=a.cost,
        stock=a.stock, value=Decimal(a.value) if a.value else None,
        needs_approval=not a.no_approval, active=not a.inactive, actor=a.by)
    print(f"saved {r.code}: {r.cost} points")
    return 0


async def c_reward_import(s: AsyncSession, a: argparse.Namespace) -> int:
    """Import rewards from CSV."""
    print(f"imported {await rewards.import_rewards_csv(s, a.file, actor=a.by)} reward(s)")
    return 0


async def c_redeem(s: AsyncSession, a: argparse.Namespace) -> int:
    """Redeem for an account (e.g. at a sales rep's request)."""
    v = await rewards.redeem(s, await _customer_id(s, a.customer), a.reward, a.qty,
                             actor=a.by)
    print(f"request {v.id}: {v.status}, {v.cost} points, {v.available_after} left")
    return 0


async def c_requests(s: AsyncSession, a: argparse.Namespace) -> int:
    """List redemption requests."""
    for v in await rewards.requests(s, status=None if a.status == "all" else a.status):
        print(f"{v.id:>6} {v.created_at:%Y-%m-%d} account {v.account_id:<6} {v.status:<9} "
              f"{v.quantity} x {v.reward_code} ({v.cost} pts) {v.note}")
    return 0


async def c_approve(s: AsyncSession, a: argparse.Namespace) -> int:
    """Approve a pending request."""
    v = await rewards.approve(s, a.request, a.staff_id, note=a.note)
    print(f"request {v.id}: {v.status}")
    return 0


async def c_reject(s: AsyncSession, a: argparse.Namespace) -> int:
    """Reject a pending request and refund it."""
    v = await rewards.reject(s, a.request, a.staff_id, a.reason)
    print(f"request {v.id}: {v.status}, {v.cost} points refunded")
    return 0


async def c_mature(s: AsyncSession, a: argparse.Namespace) -> int:
    """Make order points past the return window available."""
    print(f"{await ledger.mature_due(s)} earning(s) became available")
    return 0


async def c_expire(s: AsyncSession, a: argparse.Namespace) -> int:
    """Expire due points and queue reminders."""
    day = dt.date.fromisoformat(a.date) if a.date else None
    r = await ledger.expire_due(s, day, remind=not a.no_reminders)
    print(f"expired {r.expired_points} point(s) in {r.expired_accounts} account(s); "
          f"{r.reminders} reminder(s) queued")
    return 0


async def c_statements(s: AsyncSession, a: argparse.Namespace) -> int:
    """Queue the monthly statements."""
    print(f"{await reports.queue_monthly_statements(s, _month(a.month))} statement(s) queued")
    return 0


async def c_leaderboard(s: AsyncSession, a: argparse.Namespace) -> int:
    """Print a leaderboard."""
    month = _month(a.month) if a.month else None
    for r in await reports.leaderboard(s, a.scope, a.period, a.limit, key=a.key, month=month):
        print(f"{r.rank:>3}. {r.code:<10} {r.name:<30} {r.region:<8} {r.tier or '-':<10} "
              f"{r.points:>8}")
    return 0


async def c_reconcile(s: AsyncSession, a: argparse.Namespace) -> int:
    """Check balances against the ledger; 1 on drift."""
    r = await ledger.reconcile(s)
    print(f"checked {r.accounts} account(s), {r.entries} entr(ies)")
    for d in r.drifts:
        print(f"DRIFT account {d.account_id}: stored available {d.stored_available} / pending "
              f"{d.stored_pending}, ledger {d.ledger_available} / {d.ledger_pending}")
    print("OK: every balance equals its ledger" if r.ok else f"{len(r.drifts)} account(s) drifted")
    return 0 if r.ok else 1


async def c_export(s: AsyncSession, a: argparse.Namespace) -> int:
    """Export the ledger or the balances as CSV."""
    out = Path(a.out)
    with out.open("w", encoding="utf-8-sig", newline="") as f:  # noqa: ASYNC230 - a CLI
        if a.what == "ledger":
            since = dt.datetime.fromisoformat(a.since).replace(tzinfo=dt.UTC) if a.since else None
            until = dt.datetime.fromisoformat(a.until).replace(tzinfo=dt.UTC) if a.until else None
            n = await reports.export_ledger(s, f, since=since, until=until)
        else:
            n = await reports.export_balances(s, f)
    print(f"wrote {n} row(s) to {out}")
    return 0


Command = Callable[[AsyncSession, argparse.Namespace], Awaitable[int]]
COMMANDS: dict[str, Command] = {}


def build_parser() -> argparse.ArgumentParser:
    """The `python -m community.points` command line."""
    p = argparse.ArgumentParser(prog="python -m community.points",
                                description="Reward points: ledger, rewards, redemption, "
                                            "expiry, statements, reconciliation, export.")
    p.add_argument("--config", help="path to config.yml (default: the project's)")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, fn: Command, help_: str, **kw: Any) -> argparse.ArgumentParser:
        COMMANDS[name] = fn
        return sub.add_parser(name, help=help_, description=help_, **kw)

    def customer(q: argparse.ArgumentParser) -> None:
        q.add_argument("--customer", required=True, help="dealer/retailer code, e.g. D001")

    q = cmd("balance", c_balance, "show an account's points")
    customer(q)
    q = cmd("history", c_history, "show an account's newest ledger entries")
    customer(q)
    q.add_argument("--limit", type=int, default=20)
    q = cmd("award", c_award, "award a configured rule (points.rules) once per source")
    customer(q)
    q.add_argument("--rule", required=True, help="e.g. course_completed, quiz_passed")
    q.add_argument("--source", required=True, help="what it is for, e.g. the course id")
    q.add_argument("--by", default="cli", help="actor for the ledger and audit log")
    q = cmd("referral", c_referral, "award the referral rule to the dealer who brought in a "
                                    "new dealer (once per new dealer and referrer)")
    q.add_argument("--referrer", required=True, help="code of the referring dealer, e.g. D001")
    q.add_argument("--new", required=True, help="code of the new dealer, e.g. D009")
    q.add_argument("--by", default="cli", help="actor for the ledger and audit log")
    q = cmd("adjust", c_adjust, "adjust a balance by hand (reason required; staff role "
                                "in points.adjust_roles)")
    customer(q)
    q.add_argument("--points", type=int, required=True, help="+N or -N")
    q.add_argument("--reason", required=True)
    q.add_argument("--staff-id", type=int, required=True, help="the staff member doing it")
    q.add_argument("--key", help="idempotency key, e.g. a ticket number")
    q = cmd("rewards", c_rewards, "list the rewards catalogue")
    q.add_argument("--all", action="store_true", help="include inactive rewards")
    q = cmd("reward-add", c_reward_add, "create or update a reward")
    q.add_argument("--code", required=True)
    q.add_argument("--kind", choices=["gift", "coupon", "discount"], required=True)
    q.add_argument("--name-zh", required=True)
    q.add_argument("--name-en", default="")
    q.add_argument("--cost", type=int, required=True, help="points per unit")
    q.add_argument("--stock", type=int, help="units available (omit: unlimited)")
    q.add_argument("--value", help="money value of a discount/coupon")
    q.add_argument("--no-approval", action="store_true", help="fulfilled without staff")
    q.add_argument("--inactive", action="store_true")
    q.add_argument("--by", default="cli")
    q = cmd("reward-import", c_reward_import,
            "import rewards from a UTF-8 CSV: " + ",".join(rewards.REWARD_COLUMNS))
    q.add_argument("file")
    q.add_argument("--by", default="cli")
    q = cmd("redeem", c_redeem, "redeem a reward for an account")
    customer(q)
    q.add_argument("--reward", required=True, help="reward code")
    q.add_argument("--qty", type=int, default=1)
    q.add_argument("--by", default="cli")
    q = cmd("requests", c_requests, "list redemption requests")
    q.add_argument("--status", default="pending",
                   choices=["pending", "approved", "rejected", "all"])
    q = cmd("approve", c_approve, "approve a pending redemption request")
    q.add_argument("request", type=int)
    q.add_argument("--staff-id", type=int, required=True)
    q.add_argument("--note", default="")
    q = cmd("reject", c_reject, "reject a pending request (refunds the points once)")
    q.add_argument("request", type=int)
    q.add_argument("--staff-id", type=int, required=True)
    q.add_argument("--reason", required=True)
    cmd("mature", c_mature, "make order points past points.return_window_days available")
    q = cmd("expire", c_expire, "expire due points (oldest first) and queue reminders; "
                                "safe to run twice")
    q.add_argument("--date", help="YYYY-MM-DD (default: today in app.timezone)")
    q.add_argument("--no-reminders", action="store_true")
    q = cmd("statements", c_statements, "queue monthly statements to linked chats")
    q.add_argument("--month", required=True, help="YYYY-MM")
    q = cmd("leaderboard", c_leaderboard, "print a leaderboard")
    q.add_argument("--scope", choices=reports.SCOPES, default="all")
    q.add_argument("--key", help="the region or tier, with --scope region|tier")
    q.add_argument("--period", choices=reports.PERIODS, default="month")
    q.add_argument("--month", help="YYYY-MM (default: this month)")
    q.add_argument("--limit", type=int, default=10)
    cmd("reconcile", c_reconcile, "prove balances equal the ledger; exit 1 on drift")
    q = cmd("export", c_export, "export ledger or balances as formula-safe CSV for finance")
    q.add_argument("what", choices=["ledger", "balances"])
    q.add_argument("--out", required=True, help="CSV file to write")
    q.add_argument("--since", help="ledger from this UTC date-time (ISO 8601)")
    q.add_argument("--until", help="ledger before this UTC date-time")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings, args))


if __name__ == "__main__":
    sys.exit(main())

"""The points ledger: earn, mature, spend, reverse, expire, adjust, refund; balances; reconcile.

Guarantees
- Append-only: an entry is never changed or deleted (database triggers refuse it); mistakes
  are corrected by new entries.
- Once per source: the unique key (account, kind, source_key) is enforced by the database with
  INSERT … ON CONFLICT DO NOTHING, so a retry, a re-import or two workers awarding the same
  event produce one entry. The balance row changes only when the entry was really inserted.
- Balance = ledger: `points_balances.available/pending` are updated in the same transaction as
  each entry; `reconcile()` re-adds the ledger and reports any account where they differ.
- Writes that read the balance first lock the account's balance row (an UPDATE of the row,
  which is a row lock on PostgreSQL and the write lock on SQLite), so they serialise per account.

Reversal policy (an order cancelled or returned after its points were spent): the reversal is
recorded in full. `available` may then go negative: that is an explicit *debt*, shown in
`balance()` as `debt`, logged in the audit log. Future earnings pay the debt first (they simply
add to the negative balance) and redemption is refused while available < cost, so a debt can
never be spent through. Points still pending (inside the return window) are reversed from
`pending` and never touch `available`.

Expiry policy (FIFO): every credit to `available` (earn, mature, refund, positive adjust)
carries `expires_on` = credit day + points.expire_after_days. Debits consume the oldest credits
first, so the points expired by day d are max(0, credits expiring on or before d − all debits so
far); expiry entries are debits themselves. The figure is computed from the ledger — no mutable
lot table — so it reconciles exactly, and `expire_due(today)` is idempotent: a second run finds
nothing left to expire and its `expire:<day>` source key is taken anyway.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    Date,
    DateTime,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from community.points import rules
from community.points.errors import NotEligible, ReasonRequired
from community.points.models import PointsBalance, PointsEntry
from core.errors import NotFound, PermissionDenied
from core.models import (
    PRIORITY_NOTICE,
    AuditLog,
    Customer,
    Order,
    OrderLine,
    Product,
    StaffMember,
    TelegramIdentity,
    utcnow,
)
from core.services.outbox import enqueue
from core.settings import PointsSection, Settings, load_settings

CHUNK = 500


# --------------------------------------------------------------------------- configuration


@lru_cache(maxsize=1)
def _settings() -> Settings:
    return load_settings()


def config(cfg: PointsSection | None = None) -> PointsSection:
    """The given points settings, or the process's (config.yml + environment)."""
    return cfg if cfg is not None else _settings().points


def local_today(now: dt.datetime | None = None) -> dt.date:
    """Today in the operator's timezone (app.timezone): expiry and statements use local days."""
    return (now or utcnow()).astimezone(ZoneInfo(_settings().app.timezone)).date()


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class BalanceView:
    """An account's points as a chat adapter shows them."""

    account_id: int
    available: int
    pending: int
    debt: int  # > 0 when an order was reversed after its points were spent
    expiring_points: int  # expire within points.remind_days_before
    expiring_on: dt.date | None  # the first day some of them expire


@dataclass(frozen=True)
class EntryView:
    """One ledger line for a history list."""

    id: int
    kind: str
    amount: int
    pending: int
    source_key: str
    reason: str
    actor: str
    created_at: dt.datetime
    expires_on: dt.date | None


@dataclass(frozen=True)
class AwardView:
    """The outcome of an award: `created` is False when the source was awarded before."""

    account_id: int
    source_key: str
    points: int
    created: bool


@dataclass(frozen=True)
class Drift:
    """An account whose stored balance differs from the sum of its ledger."""

    account_id: int
    stored_available: int | None
    ledger_available: int
    stored_pending: int | None
    ledger_pending: int


@dataclass
class ReconcileReport:
    """Accounts and entries checked and every drift found."""

    accounts: int = 0
    entries: int = 0
    drifts: list[Drift] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every balance equals its ledger."""
        return not self.drifts


@dataclass
class OrderChanges:
    """What apply_order_changes did."""

    earned: int = 0  # orders that started earning (pending)
    reversed: int = 0  # orders whose points were taken back
    matured: int = 0  # earnings that became available
    points: int = 0  # pending points added


@dataclass
class ExpiryRun:
    """What expire_due did."""

    expired_accounts: int = 0
    expired_points: int = 0
    reminders: int = 0


# --------------------------------------------------------------------------- primitives


def _dialect(s: AsyncSession) -> str:
    return s.bind.dialect.name if s.bind is not None else "sqlite"


def _insert(s: AsyncSession, model: Any):  # type: ignore[no-untyped-def]
    return (pg_insert if _dialect(s) == "postgresql" else sqlite_insert)(model)


# The two hot statements as SQL text: SQLAlchemy cannot cache dialect ON CONFLICT constructs,
# and recompiling them on every award cost more than the database work. Both statements are
# valid as written on SQLite (3.35+) and PostgreSQL.
_ENTRY_SQL = text(
    "INSERT INTO points_entries (account_id, kind, source_key, amount, pending, expires_on, "
    "matures_on, actor, reason, created_at) VALUES (:account_id, :kind, :source_key, :amount, "
    ":pending, :expires_on, :matures_on, :actor, :reason, :created_at) "
    "ON CONFLICT (account_id, kind, source_key) DO NOTHING RETURNING id"
).bindparams(bindparam("expires_on", type_=Date()), bindparam("matures_on", type_=Date()),
             bindparam("created_at", type_=DateTime(timezone=True)))
_BUMP = (
    "INSERT INTO points_balances (account_id, available, pending, updated_at) "
    "VALUES (:account_id, :amount, :pending, :now) ON CONFLICT (account_id) DO UPDATE SET "
    "available = points_balances.available + excluded.available, "
    "pending = points_balances.pending + excluded.pending, updated_at = excluded.updated_at")
# PostgreSQL: entry and balance in one round trip (a data-modifying CTE always runs, and
# moves the balance only when the entry was really inserted).
_POST_PG_SQL = text(
    "WITH e AS (" + _ENTRY_SQL.text.replace("RETURNING id", "RETURNING id, account_id, "
                                            "amount, pending, created_at") + "), "
    "b AS (INSERT INTO points_balances (account_id, available, pending, updated_at) "
    "SELECT account_id, amount, pending, created_at FROM e ON CONFLICT (account_id) DO UPDATE "
    "SET available = points_balances.available + excluded.available, "
    "pending = points_balances.pending + excluded.pending, updated_at = excluded.updated_at "
    "RETURNING 1) SELECT id FROM e"
).bindparams(bindparam("expires_on", type_=Date()), bindparam("matures_on", type_=Date()),
             bindparam("created_at", type_=DateTime(timezone=True)))
_BUMP_SQL = text(_BUMP).bindparams(bindparam("now", type_=DateTime(timezone=True)))
# PostgreSQL: a whole award in one round trip — the account's kind and tier are read, the
# points chosen by tier (a JSON map of tier → points, computed from config in Python), the
# entry inserted only for an enabled kind, and the balance moved only if the entry was new.
# The result row says which: no row (no account), kind (not eligible) or the entry id (None:
# awarded before).
_AWARD_PG_SQL = text(
    "WITH c AS (SELECT id, kind, COALESCE((CAST(:tier_points AS jsonb) ->> tier)::int, "
    ":points) AS points FROM customers WHERE id = :account_id), "
    "e AS (INSERT INTO points_entries (account_id, kind, source_key, amount, pending, "
    "expires_on, matures_on, actor, reason, created_at) SELECT id, 'earn', :source_key, "
    "points, 0, :expires_on, NULL, :actor, :reason, :created_at FROM c "
    "WHERE kind = ANY(:kinds) ON CONFLICT (account_id, kind, source_key) DO NOTHING "
    "RETURNING id, account_id, amount, pending, created_at), "
    "b AS (INSERT INTO points_balances (account_id, available, pending, updated_at) "
    "SELECT account_id, amount, pending, created_at FROM e ON CONFLICT (account_id) DO UPDATE "
    "SET available = points_balances.available + excluded.available, "
    "pending = points_balances.pending + excluded.pending, updated_at = excluded.updated_at "
    "RETURNING 1) SELECT c.kind, c.points, (SELECT id FROM e) FROM c"
).bindparams(bindparam("expires_on", type_=Date()),
             bindparam("created_at", type_=DateTime(timezone=True)),
             bindparam("kinds", type_=ARRAY(String())))
_LOCK_SQL = text(_BUMP + " RETURNING available, pending").bindparams(
    bindparam("now", type_=DateTime(timezone=True)))


async def lock_account(s: AsyncSession, account_id: int) -> tuple[int, int]:
    """Lock the account's balance row for this transaction; returns (available, pending).

    A write rather than SELECT … FOR UPDATE: it is a row lock on PostgreSQL and takes the
    write lock on SQLite (which has no row locks), so the same code serialises both.
    """
    conn = await s.connection()
    row = (await conn.execute(_LOCK_SQL, {"account_id": account_id, "amount": 0, "pending": 0,
                                          "now": utcnow()})).one()
    return int(row[0]), int(row[1])


async def post(s: AsyncSession, account_id: int, kind: str, source_key: str, *,
               amount: int = 0, pending: int = 0, expires_on: dt.date | None = None,
               matures_on: dt.date | None = None, actor: str = "system", reason: str = "",
               now: dt.datetime | None = None) -> int | None:
    """Append one entry and move the balance with it; None if (account, kind, source) exists."""
    now = now or utcnow()
    # Core statements on the session's own connection: same transaction, without the ORM
    # execution layer (half the CPU of an award went there).
    conn = await s.connection()
    values = dict(account_id=account_id, kind=kind, source_key=source_key[:200], amount=amount,
                  pending=pending, expires_on=expires_on, matures_on=matures_on,
                  actor=actor[:100], reason=reason, created_at=now)
    if conn.dialect.name == "postgresql":
        entry_id = await conn.scalar(_POST_PG_SQL, values)
        return None if entry_id is None else int(entry_id)
    entry_id = await conn.scalar(_ENTRY_SQL, values)
    if entry_id is None:
        return None
    await conn.execute(_BUMP_SQL, {"account_id": account_id, "amount": amount,
                                   "pending": pending, "now": now})
    return int(entry_id)


def _expiry(cfg: PointsSection, now: dt.datetime) -> dt.date:
    return local_today(now) + dt.timedelta(days=cfg.expire_after_days)


async def _account(s: AsyncSession, account_id: int) -> Any:
    # A plain row, not an ORM object: this is on every award's path.
    conn = await s.connection()
    row = (await conn.execute(select(Customer.kind, Customer.tier, Customer.region,
                                     Customer.code).where(Customer.id == account_id))).first()
    if row is None:
        raise NotFound(f"no account {account_id}")
    return row


def _facts(c: Any) -> rules.AccountFacts:
    return rules.AccountFacts(kind=c.kind, tier=c.tier, region=c.region)


async def _audit(s: AsyncSession, actor: str, action: str, subject: str,
                 details: dict[str, Any]) -> None:
    # A core insert: no ORM flush on the hot path, same row, same transaction.
    conn = await s.connection()
    await conn.execute(insert(AuditLog).values(actor=actor[:100], action=action,
                                               subject=subject[:200], details=details,
                                               at=utcnow()))


# --------------------------------------------------------------------------- earning


async def award(s: AsyncSession, account_id: int, rule: str, source_key: str, *,
                actor: str = "system", reason: str = "", cfg: PointsSection | None = None,
                now: dt.datetime | None = None) -> AwardView:
    """Award a configured rule (course_completed, quiz_passed, referral …) once per source.

    `source_key` names the thing earned for, not the attempt (the quiz id, not the attempt
    id): a second pass of the same quiz then finds the key taken and earns nothing.
    """
    cfg, now = config(cfg), now or utcnow()
    key = f"{rule}:{source_key}"
    conn = await s.connection()
    if conn.dialect.name == "postgresql":
        return await _award_pg(conn, account_id, rule, key, actor=actor, reason=reason or rule,
                               cfg=cfg, now=now)
    customer = await _account(s, account_id)
    if not rules.eligible(cfg, _facts(customer)):
        raise NotEligible(f"{customer.kind} accounts do not earn points")
    points = rules.rule_points(cfg, rule, _facts(customer))
    # The entry itself records who, when, why and how much: earnings need no second audit row
    # (staff actions, redemptions, reversals, expiry runs and imports write one).
    entry = await post(s, account_id, "earn", key, amount=points,
                       expires_on=_expiry(cfg, now), actor=actor, reason=reason or rule, now=now)
    return AwardView(account_id, key, points if entry else 0, entry is not None)


def _tier_points(cfg: PointsSection, rule: str) -> tuple[str, int]:
    """The rule's points per configured tier (JSON) and for any other tier."""
    per_tier = {tier: rules.rule_points(cfg, rule, rules.AccountFacts("dealer", tier, ""))
                for tier in cfg.tier_multipliers}
    return json.dumps(per_tier), rules.rule_points(cfg, rule, rules.AccountFacts("", None, ""))


async def _award_pg(conn: Any, account_id: int, rule: str, key: str, *, actor: str,
                    reason: str, cfg: PointsSection, now: dt.datetime) -> AwardView:
    """award() on PostgreSQL: one statement (see _AWARD_PG_SQL), same outcomes."""
    tier_points, points = _tier_points(cfg, rule)
    row = (await conn.execute(_AWARD_PG_SQL, {
        "account_id": account_id, "tier_points": tier_points, "points": points,
        "kinds": list(cfg.enabled_kinds), "source_key": key[:200],
        "expires_on": _expiry(cfg, now), "actor": actor[:100], "reason": reason,
        "created_at": now})).first()
    if row is None:
        raise NotFound(f"no account {account_id}")
    kind, points, entry = row
    if kind not in cfg.enabled_kinds:
        raise NotEligible(f"{kind} accounts do not earn points")
    return AwardView(account_id, key, int(points) if entry else 0, entry is not None)


async def award_participation(s: AsyncSession, account_id: int, day: dt.date,
                              activity_key: str, *, actor: str = "community",
                              cfg: PointsSection | None = None,
                              now: dt.datetime | None = None) -> AwardView:
    """Award group participation for one activity on `day`, within the daily cap."""
    cfg, now = config(cfg), now or utcnow()
    customer = await _account(s, account_id)
    if not rules.eligible(cfg, _facts(customer)):
        raise NotEligible(f"{customer.kind} accounts do not earn points")
    prefix = f"participation_day:{day.isoformat()}:"
    key = prefix + activity_key
    await lock_account(s, account_id)  # the cap is read-then-write: one writer per account
    so_far = await s.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0))
        .where(PointsEntry.account_id == account_id, PointsEntry.kind == "earn",
               PointsEntry.source_key.startswith(prefix, autoescape=True))) or 0
    points = min(rules.rule_points(cfg, "participation_day", _facts(customer)),
                 cfg.participation_daily_cap - int(so_far))
    if points <= 0:
        return AwardView(account_id, key, 0, False)
    entry = await post(s, account_id, "earn", key, amount=points,
                       expires_on=_expiry(cfg, now), actor=actor, reason="participation",
                       now=now)
    return AwardView(account_id, key, points if entry else 0, entry is not None)


async def award_referral(s: AsyncSession, referrer_id: int, new_dealer_id: int, *,
                         actor: str = "community", cfg: PointsSection | None = None,
                         now: dt.datetime | None = None) -> AwardView:
    """Award the referrer of a new dealer account (once per new dealer)."""
    new = await _account(s, new_dealer_id)
    if new.kind != "dealer" or new_dealer_id == referrer_id:
        raise NotEligible("only a new dealer referred by another account earns a referral")
    return await award(s, referrer_id, "referral", str(new_dealer_id), actor=actor,
                       reason=f"referral of {new.code}", cfg=cfg, now=now)


def _order_key(order_id: int) -> str:
    return f"order:{order_id}"


async def apply_order_changes(s: AsyncSession, order_ids: Iterable[int], *,
                              actor: str = "import", cfg: PointsSection | None = None,
                              now: dt.datetime | None = None) -> OrderChanges:
    """Bring points in line with these orders: delivered earns (pending), cancelled reverses.

    Called by the importer inside its transaction after orders are written, so points and
    orders commit together. Safe to call any number of times: every step has a source key.
    An order earns once, at the first import that shows it delivered; its points become
    available `return_window_days` later (see `mature_due`).
    """
    cfg, now = config(cfg), now or utcnow()
    result = OrderChanges()
    ids = sorted(set(order_ids))
    today = local_today(now)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        orders = (await s.execute(
            select(Order.id, Order.customer_id, Order.status, Order.created_at,
                   Customer.kind, Customer.tier, Customer.region)
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.id.in_(chunk), Order.status.in_(("delivered", "cancelled")))
            # Accounts in a fixed order: two imports touching the same accounts can't deadlock.
            .order_by(Order.customer_id, Order.id))).all()
        if not orders:
            continue
        earned = {(a, k) for a, k in (await s.execute(
            select(PointsEntry.account_id, PointsEntry.source_key)
            .where(PointsEntry.kind == "earn",
                   PointsEntry.source_key.in_([_order_key(o.id) for o in orders])))).tuples()}
        delivered = [o for o in orders if o.status == "delivered"
                     and (o.customer_id, _order_key(o.id)) not in earned]
        lines: dict[int, list[rules.LineFacts]] = {}
        if delivered:
            rows = await s.execute(
                select(OrderLine.order_id, Product.sku, Product.category, OrderLine.quantity,
                       OrderLine.unit_price)
                .join(Product, Product.id == OrderLine.product_id)
                .where(OrderLine.order_id.in_([o.id for o in delivered])))
            for r in rows:
                lines.setdefault(r.order_id, []).append(
                    rules.LineFacts(r.sku, r.category, r.quantity, r.unit_price))
        for o in orders:
            key = _order_key(o.id)
            if o.status == "delivered" and (o.customer_id, key) not in earned:
                facts = rules.AccountFacts(o.kind, o.tier, o.region)
                day = local_today(o.created_at)
                points = rules.order_points(cfg, lines.get(o.id, []), facts, day)
                if points <= 0:
                    continue
                entry = await post(
                    s, o.customer_id, "earn", key, pending=points,
                    matures_on=today + dt.timedelta(days=cfg.return_window_days),
                    actor=actor, reason="delivered order", now=now)
                if entry is not None:
                    result.earned += 1
                    result.points += points
            elif o.status == "cancelled" and (o.customer_id, key) in earned:
                if await reverse_source(s, o.customer_id, key, actor=actor,
                                        reason="order cancelled or returned", now=now):
                    result.reversed += 1
    result.matured = await mature_due(s, now=now, cfg=cfg)
    if result.earned or result.reversed or result.matured:
        await _audit(s, actor, "points.orders", f"{len(ids)} order(s)",
                     {"earned": result.earned, "reversed": result.reversed,
                      "matured": result.matured, "points": result.points})
    return result


async def mature_due(s: AsyncSession, *, now: dt.datetime | None = None,
                     cfg: PointsSection | None = None, limit: int = 10_000) -> int:
    """Move pending order points past their return window to available; returns how many."""
    cfg, now = config(cfg), now or utcnow()
    today = local_today(now)
    later = aliased(PointsEntry)
    settled = exists().where(later.account_id == PointsEntry.account_id,
                             later.source_key == PointsEntry.source_key,
                             later.kind.in_(("mature", "reverse")))
    due = (await s.execute(
        select(PointsEntry.account_id, PointsEntry.source_key, PointsEntry.pending)
        .where(PointsEntry.kind == "earn", PointsEntry.pending > 0,
               PointsEntry.matures_on <= today, ~settled)
        .order_by(PointsEntry.account_id, PointsEntry.id).limit(limit))).all()
    done = 0
    for account_id, key, points in due:
        await lock_account(s, account_id)
        # Re-check under the lock: a reversal may have won the race for this source.
        if await s.scalar(select(literal(1)).where(
                PointsEntry.account_id == account_id, PointsEntry.source_key == key,
                PointsEntry.kind == "reverse")):
            continue
        if await post(s, account_id, "mature", key, amount=points, pending=-points,
                      expires_on=_expiry(cfg, now), actor="system",
                      reason="return window over", now=now):
            done += 1
    return done


async def reverse_source(s: AsyncSession, account_id: int, source_key: str, *,
                         actor: str = "system", reason: str = "",
                         now: dt.datetime | None = None) -> int | None:
    """Take back what one source earned, in full (pending or available); None if nothing to do.

    If the points were already spent, `available` goes negative: a visible debt (audited).
    """
    now = now or utcnow()
    available, _pending = await lock_account(s, account_id)
    rows = {k: (a, p) for k, a, p in (await s.execute(
        select(PointsEntry.kind, PointsEntry.amount, PointsEntry.pending)
        .where(PointsEntry.account_id == account_id,
               PointsEntry.source_key == source_key))).tuples()}
    if "earn" not in rows or "reverse" in rows:
        return None
    earn_amount, earn_pending = rows["earn"]
    if "mature" in rows:
        amount, pending = -rows["mature"][0], 0
    else:
        amount, pending = -earn_amount, -earn_pending
    entry = await post(s, account_id, "reverse", source_key, amount=amount, pending=pending,
                       actor=actor, reason=reason or "reversal", now=now)
    if entry is not None and available + amount < 0:
        await _audit(s, actor, "points.debt", f"customer:{account_id}",
                     {"source_key": source_key, "debt": -(available + amount),
                      "entry": entry})
    return entry


# --------------------------------------------------------------------------- adjustments


async def require_staff(s: AsyncSession, staff_id: int | None, roles: Sequence[str]) -> StaffMember:
    """The staff member, if their role is one of `roles`; PermissionDenied otherwise."""
    staff = await s.get(StaffMember, staff_id) if staff_id is not None else None
    if staff is None or staff.role not in roles:
        raise PermissionDenied("this needs a staff role: " + ", ".join(roles))
    return staff


async def adjust(s: AsyncSession, account_id: int, points: int, reason: str, staff_id: int, *,
                 source_key: str | None = None, cfg: PointsSection | None = None,
                 now: dt.datetime | None = None) -> int | None:
    """A staff correction (+/-) with a mandatory reason; returns the entry id (None: repeated).

    A negative adjustment may not take `available` below zero (use a reversal for debts).
    Give `source_key` (e.g. a ticket number) to make a retried adjustment count once.
    """
    from community.points.errors import NotEnoughPoints

    cfg, now = config(cfg), now or utcnow()
    if not reason or not reason.strip():
        raise ReasonRequired("an adjustment needs a reason")
    if points == 0:
        raise ValueError("an adjustment of 0 points changes nothing")
    staff = await require_staff(s, staff_id, cfg.adjust_roles)
    await _account(s, account_id)
    available, _ = await lock_account(s, account_id)
    if points < 0 and available + points < 0:
        raise NotEnoughPoints(available=available, needed=-points)
    key = source_key or f"staff:{staff.id}:{now.isoformat()}"
    actor = f"staff:{staff.id}"
    entry = await post(s, account_id, "adjust", key, amount=points,
                       expires_on=_expiry(cfg, now) if points > 0 else None,
                       actor=actor, reason=reason.strip(), now=now)
    if entry is not None:
        await _audit(s, actor, "points.adjust", f"customer:{account_id}",
                     {"points": points, "reason": reason.strip(), "entry": entry})
    return entry


async def grant(s: AsyncSession, account_id: int, points: int, source_key: str, reason: str,
                *, actor: str = "system", cfg: PointsSection | None = None,
                now: dt.datetime | None = None) -> int | None:
    """A credit by the operator's own process (an opening balance, the demo data), with a
    reason, once per `source_key`, audited; returns the entry id (None: granted before)."""
    cfg, now = config(cfg), now or utcnow()
    if points <= 0 or not reason.strip():
        raise ValueError("a grant needs positive points and a reason")
    await _account(s, account_id)
    entry = await post(s, account_id, "adjust", f"grant:{source_key}", amount=points,
                       expires_on=_expiry(cfg, now), actor=actor, reason=reason.strip(),
                       now=now)
    if entry is not None:
        await _audit(s, actor, "points.grant", f"customer:{account_id}",
                     {"points": points, "reason": reason.strip(), "entry": entry})
    return entry


# --------------------------------------------------------------------------- expiry


def _credit_expiring(by: dt.date):  # type: ignore[no-untyped-def]
    return func.coalesce(func.sum(case(
        (and_(PointsEntry.amount > 0, PointsEntry.expires_on <= by), PointsEntry.amount),
        else_=0)), 0)


_DEBITS = func.coalesce(func.sum(case((PointsEntry.amount < 0, -PointsEntry.amount),
                                      else_=0)), 0)


async def _expiring(s: AsyncSession, account_id: int, by: dt.date) -> int:
    row = (await s.execute(select(_credit_expiring(by), _DEBITS)
                           .where(PointsEntry.account_id == account_id))).one()
    return max(0, int(row[0]) - int(row[1]))


async def expire_due(s: AsyncSession, today: dt.date | None = None, *,
                     cfg: PointsSection | None = None, now: dt.datetime | None = None,
                     remind: bool = True) -> ExpiryRun:
    """Expire points past their day (oldest first) and queue reminders; idempotent per day."""
    cfg, now = config(cfg), now or utcnow()
    today = today or local_today(now)
    run = ExpiryRun()
    due = (await s.execute(
        select(PointsEntry.account_id)
        .group_by(PointsEntry.account_id)
        .having(_credit_expiring(today) > _DEBITS)
        .order_by(PointsEntry.account_id))).scalars().all()
    for account_id in due:
        await lock_account(s, account_id)
        # Recomputed under the lock: a spend since the scan may have used these points.
        points = await _expiring(s, account_id, today)
        if points <= 0:
            continue
        if await post(s, account_id, "expire", f"expire:{today.isoformat()}", amount=-points,
                      actor="system", reason=f"expired on {today.isoformat()}", now=now):
            run.expired_accounts += 1
            run.expired_points += points
    if remind and cfg.remind_days_before > 0:
        run.reminders = await queue_expiry_reminders(s, today, cfg=cfg)
    if run.expired_points or run.reminders:
        await _audit(s, "system", "points.expire", today.isoformat(),
                     {"accounts": run.expired_accounts, "points": run.expired_points,
                      "reminders": run.reminders})
    return run


async def linked_chats(s: AsyncSession, account_ids: Sequence[int]
                       ) -> dict[int, list[tuple[int, str | None]]]:
    """Telegram chats linked to each account: account id → [(chat id, locale)]."""
    chats: dict[int, list[tuple[int, str | None]]] = {}
    for start in range(0, len(account_ids), CHUNK):
        rows = await s.execute(
            select(TelegramIdentity.customer_id, TelegramIdentity.telegram_user_id,
                   TelegramIdentity.locale)
            .where(TelegramIdentity.customer_id.in_(account_ids[start:start + CHUNK]))
            .order_by(TelegramIdentity.telegram_user_id))
        for account_id, chat_id, locale in rows.tuples():
            chats.setdefault(int(account_id), []).append((int(chat_id), locale))
    return chats


async def queue_expiry_reminders(s: AsyncSession, today: dt.date, *,
                                 cfg: PointsSection | None = None) -> int:
    """Queue one reminder per account and expiry day for points expiring within the window."""
    cfg = config(cfg)
    horizon = today + dt.timedelta(days=cfg.remind_days_before)
    accounts = (await s.execute(
        select(PointsEntry.account_id)
        .group_by(PointsEntry.account_id)
        .having(_credit_expiring(horizon) > _DEBITS))).scalars().all()
    chats = await linked_chats(s, sorted(accounts))
    queued = 0
    for account_id, targets in chats.items():
        points, first_day = await _expiring_window(s, account_id, today, horizon)
        if points <= 0 or first_day is None:
            continue
        for chat_id, locale in targets:
            if await enqueue(
                    s, chat_id, template="points_expiry_reminder", locale=locale,
                    variables={"points": points, "date": first_day.isoformat(),
                               "days": (first_day - today).days},
                    priority=PRIORITY_NOTICE, ref=f"points:{account_id}",
                    dedupe_key=f"points-expiry:{account_id}:{first_day.isoformat()}:{chat_id}"):
                queued += 1
    return queued


async def _expiring_window(s: AsyncSession, account_id: int, today: dt.date,
                           horizon: dt.date) -> tuple[int, dt.date | None]:
    """Points expiring by `horizon` and the first day (≥ today) on which some of them do."""
    debits = int(await s.scalar(select(_DEBITS).where(PointsEntry.account_id == account_id)))
    rows = (await s.execute(
        select(PointsEntry.expires_on, func.sum(PointsEntry.amount))
        .where(PointsEntry.account_id == account_id, PointsEntry.amount > 0,
               PointsEntry.expires_on <= horizon)
        .group_by(PointsEntry.expires_on).order_by(PointsEntry.expires_on))).tuples().all()
    credits, first = 0, None
    for day, amount in rows:
        credits += int(amount)
        if first is None and credits > debits and day >= today:
            first = day
    return max(0, credits - debits), first


# --------------------------------------------------------------------------- reads


async def balance(s: AsyncSession, account_id: int, *, today: dt.date | None = None,
                  cfg: PointsSection | None = None) -> BalanceView:
    """The account's available and pending points, debt, and what expires soon."""
    cfg = config(cfg)
    today = today or local_today()
    row = await s.get(PointsBalance, account_id)
    available, pending = (row.available, row.pending) if row else (0, 0)
    expiring, first = (0, None)
    if available > 0:
        expiring, first = await _expiring_window(
            s, account_id, today, today + dt.timedelta(days=cfg.remind_days_before))
    return BalanceView(account_id, available, pending, max(0, -available), expiring, first)


async def history(s: AsyncSession, account_id: int, *, limit: int = 20,
                  before_id: int | None = None) -> list[EntryView]:
    """The newest ledger entries of an account (page back with `before_id`)."""
    stmt = select(PointsEntry).where(PointsEntry.account_id == account_id)
    if before_id is not None:
        stmt = stmt.where(PointsEntry.id < before_id)
    rows = (await s.execute(stmt.order_by(PointsEntry.id.desc()).limit(limit))).scalars()
    return [EntryView(e.id, e.kind, e.amount, e.pending, e.source_key, e.reason, e.actor,
                      e.created_at, e.expires_on) for e in rows]


async def reconcile(s: AsyncSession) -> ReconcileReport:
    """Prove every balance row equals the sum of its ledger; list each account that drifted."""
    sums = (select(PointsEntry.account_id.label("account_id"),
                   func.sum(PointsEntry.amount).label("available"),
                   func.sum(PointsEntry.pending).label("pending"),
                   func.count().label("n"))
            .group_by(PointsEntry.account_id).subquery())
    report = ReconcileReport()
    # Both directions: balance rows without entries, and entries without a balance row.
    rows = (await s.execute(
        select(PointsBalance.account_id, PointsBalance.available, PointsBalance.pending,
               sums.c.available, sums.c.pending, sums.c.n)
        .outerjoin(sums, sums.c.account_id == PointsBalance.account_id))).all()
    seen = set()
    for account_id, stored_a, stored_p, ledger_a, ledger_p, n in rows:
        seen.add(account_id)
        report.accounts += 1
        report.entries += int(n or 0)
        if (stored_a, stored_p) != (int(ledger_a or 0), int(ledger_p or 0)):
            report.drifts.append(Drift(account_id, stored_a, int(ledger_a or 0), stored_p,
                                       int(ledger_p or 0)))
    orphans = (await s.execute(
        select(sums.c.account_id, sums.c.available, sums.c.pending, sums.c.n)
        .where(~exists().where(PointsBalance.account_id == sums.c.account_id)))).all()
    for account_id, ledger_a, ledger_p, n in orphans:
        if account_id in seen:
            continue
        report.entries += int(n)
        report.drifts.append(Drift(account_id, None, int(ledger_a), None, int(ledger_p)))
    return report

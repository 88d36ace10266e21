"""The rewards catalogue and redemption: spend points on gifts, coupons or order discounts.

Redemption never overspends: the balance is debited by one conditional UPDATE
(`… SET available = available - cost WHERE available >= cost`), so of many concurrent
redemptions only those the balance covers succeed — on PostgreSQL the row lock orders them, on
SQLite the write lock does. Reward stock is taken the same way. A reward that needs fulfilment
leaves a pending request; staff approve it or reject it, and a rejection refunds the points
exactly once (the refund's source key is the request) and puts the stock back.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.points.errors import (
    AlreadyDecided,
    NotEnoughPoints,
    OutOfStock,
    RewardUnavailable,
)
from community.points.ledger import (
    _audit,
    _expiry,
    _insert,
    config,
    linked_chats,
    post,
    require_staff,
)
from community.points.models import (
    REWARD_KINDS,
    PointsBalance,
    PointsEntry,
    RedemptionRequest,
    Reward,
)
from core.errors import NotFound
from core.models import PRIORITY_NOTICE, utcnow
from core.services.outbox import enqueue
from core.settings import PointsSection

REWARD_COLUMNS = ("code", "kind", "name_zh", "name_en", "cost", "stock", "value",
                  "needs_approval", "active")
_TRUE = {"1", "true", "yes", "y", "是"}
_FALSE = {"0", "false", "no", "n", "否", ""}


@dataclass(frozen=True)
class RewardView:
    """A catalogue item as a chat adapter lists it."""

    code: str
    kind: str
    name_zh: str
    name_en: str
    cost: int
    stock: int | None
    value: Decimal | None
    needs_approval: bool
    active: bool


@dataclass(frozen=True)
class RedemptionView:
    """A redemption (request) and, right after redeeming, the balance left."""

    id: int
    account_id: int
    reward_code: str
    reward_name_zh: str
    reward_name_en: str
    quantity: int
    cost: int
    status: str  # pending | approved | rejected
    created_at: dt.datetime
    note: str = ""
    available_after: int | None = None


def _reward_view(r: Reward) -> RewardView:
    return RewardView(r.code, r.kind, r.name_zh, r.name_en, r.cost, r.stock, r.value,
                      r.needs_approval, r.active)


def _request_view(req: RedemptionRequest, reward: Reward,
                  available_after: int | None = None) -> RedemptionView:
    return RedemptionView(req.id, req.account_id, reward.code, reward.name_zh, reward.name_en,
                          req.quantity, req.cost, req.status, req.created_at, req.note,
                          available_after)


# --------------------------------------------------------------------------- catalogue


async def catalogue(s: AsyncSession, *, include_inactive: bool = False) -> list[RewardView]:
    """Rewards on offer, cheapest first."""
    stmt = select(Reward).order_by(Reward.cost, Reward.code)
    if not include_inactive:
        stmt = stmt.where(Reward.active.is_(True))
    return [_reward_view(r) for r in (await s.execute(stmt)).scalars()]


async def upsert_reward(s: AsyncSession, code: str, *, kind: str, name_zh: str, cost: int,
                        name_en: str = "", stock: int | None = None,
                        value: Decimal | None = None, needs_approval: bool = True,
                        active: bool = True, actor: str = "cli") -> RewardView:
    """Create or update a catalogue item by code."""
    if kind not in REWARD_KINDS:
        raise ValueError(f"kind must be one of {', '.join(REWARD_KINDS)}")
    if cost <= 0 or (stock is not None and stock < 0):
        raise ValueError("cost must be positive and stock not negative")
    values: dict[str, Any] = dict(code=code, kind=kind, name_zh=name_zh, name_en=name_en,
                                  cost=cost, stock=stock, value=value,
                                  needs_approval=needs_approval, active=active,
                                  updated_at=utcnow())
    stmt = _insert(s, Reward).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["code"],
                                      set_={k: v for k, v in values.items() if k != "code"})
    await s.execute(stmt)
    await _audit(s, actor, "points.reward", code, {k: str(v) for k, v in values.items()})
    reward = await s.scalar(select(Reward).where(Reward.code == code)
                            .execution_options(populate_existing=True))
    assert reward is not None
    return _reward_view(reward)


def _flag(value: str, problems: list[str], where: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v not in _FALSE:
        problems.append(f"{where}: {value!r} is not yes/no")
    return False


async def import_rewards_csv(s: AsyncSession, path: Path | str, *, actor: str = "cli"
                             ) -> int:
    """Import rewards from a UTF-8 CSV (columns: REWARD_COLUMNS); all rows or none."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    # A catalogue is a few dozen rows: reading it at once is cheaper than a thread hop.
    text = path.read_text(encoding="utf-8-sig")  # noqa: ASYNC240
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("code", "kind", "name_zh", "cost")
               if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path.name}: missing columns {', '.join(missing)}")
    for line, raw in enumerate(reader, start=2):
        r = {k: (raw.get(k) or "").strip() for k in REWARD_COLUMNS}
        where = f"{path.name}:{line}"
        try:
            cost = int(r["cost"])
            stock = int(r["stock"]) if r["stock"] else None
            value = Decimal(r["value"]) if r["value"] else None
        except (ValueError, InvalidOperation):
            problems.append(f"{where}: cost/stock must be whole numbers, value a number")
            continue
        if not r["code"] or not r["name_zh"] or r["kind"] not in REWARD_KINDS:
            problems.append(f"{where}: needs code, name_zh and kind in {REWARD_KINDS}")
        if cost <= 0 or (stock is not None and stock < 0):
            problems.append(f"{where}: cost must be positive, stock not negative")
        rows.append(dict(code=r["code"], kind=r["kind"], name_zh=r["name_zh"],
                         name_en=r["name_en"], cost=cost, stock=stock, value=value,
                         needs_approval=_flag(r["needs_approval"] or "yes", problems, where),
                         active=_flag(r["active"] or "yes", problems, where)))
    if problems:
        raise ValueError("rewards not imported:\n  " + "\n  ".join(problems))
    for row in rows:
        await upsert_reward(s, row.pop("code"), actor=actor, **row)
    return len(rows)


# --------------------------------------------------------------------------- redemption


async def redeem(s: AsyncSession, account_id: int, reward_code: str, qty: int = 1, *,
                 actor: str = "chat", cfg: PointsSection | None = None,
                 now: dt.datetime | None = None) -> RedemptionView:
    """Spend points on a reward; NotEnoughPoints / OutOfStock / RewardUnavailable if not.

    Nothing is left changed when it fails, even if the caller goes on with its transaction.
    """
    now = now or utcnow()
    if qty < 1:
        raise ValueError("quantity must be at least 1")
    reward = await s.scalar(select(Reward).where(Reward.code == reward_code))
    if reward is None or not reward.active:
        raise RewardUnavailable(f"no active reward {reward_code}", code=reward_code)
    cost = reward.cost * qty
    # The one-step conditional debit: the check and the write cannot be separated.
    left = await s.scalar(
        update(PointsBalance)
        .where(PointsBalance.account_id == account_id, PointsBalance.available >= cost)
        .values(available=PointsBalance.available - cost, updated_at=now)
        .returning(PointsBalance.available))
    if left is None:
        have = await s.scalar(select(PointsBalance.available)
                              .where(PointsBalance.account_id == account_id)) or 0
        raise NotEnoughPoints(f"{have} points available, {cost} needed",
                              available=int(have), needed=cost, reward=reward.name_zh)
    if reward.stock is not None:
        took = await s.scalar(
            update(Reward).where(Reward.id == reward.id, Reward.stock >= qty)
            .values(stock=Reward.stock - qty).returning(Reward.id))
        if took is None:
            # Give the points back before failing, so the caller's transaction stays whole.
            await s.execute(update(PointsBalance)
                            .where(PointsBalance.account_id == account_id)
                            .values(available=PointsBalance.available + cost))
            raise OutOfStock(f"{reward_code} is out of stock", reward=reward.name_zh)
    request = RedemptionRequest(
        account_id=account_id, reward_id=reward.id, quantity=qty, cost=cost,
        status="pending" if reward.needs_approval else "approved", actor=actor[:100],
        created_at=now, decided_at=None if reward.needs_approval else now)
    s.add(request)
    await s.flush()
    # The balance already moved; the entry is written directly (not via post()).
    await s.execute(_insert(s, PointsEntry).values(
        account_id=account_id, kind="spend", source_key=f"redemption:{request.id}",
        amount=-cost, pending=0, actor=actor[:100], reason=f"{qty} x {reward.code}",
        created_at=now))
    await _audit(s, actor, "points.redeem", f"customer:{account_id}",
                 {"request": request.id, "reward": reward.code, "qty": qty, "cost": cost,
                  "status": request.status})
    return _request_view(request, reward, int(left))


async def _decide(s: AsyncSession, request_id: int, staff_id: int, status: str, note: str,
                  cfg: PointsSection, now: dt.datetime
                  ) -> tuple[RedemptionRequest, Reward, bool]:
    staff = await require_staff(s, staff_id, cfg.approve_roles)
    changed = await s.scalar(
        update(RedemptionRequest)
        .where(RedemptionRequest.id == request_id, RedemptionRequest.status == "pending")
        .values(status=status, decided_at=now, decided_by=staff.id, note=note)
        .returning(RedemptionRequest.id))
    request = await s.scalar(select(RedemptionRequest)
                             .where(RedemptionRequest.id == request_id)
                             .execution_options(populate_existing=True))
    if request is None:
        raise NotFound(f"no redemption request {request_id}")
    if changed is None and request.status != status:
        raise AlreadyDecided(f"request {request_id} is already {request.status}",
                             status=request.status)
    reward = await s.get(Reward, request.reward_id)
    assert reward is not None
    return request, reward, changed is not None


async def approve(s: AsyncSession, request_id: int, staff_id: int, *, note: str = "",
                  cfg: PointsSection | None = None,
                  now: dt.datetime | None = None) -> RedemptionView:
    """Approve a pending request (approving twice is a no-op; a rejected one can't be)."""
    cfg, now = config(cfg), now or utcnow()
    request, reward, changed = await _decide(s, request_id, staff_id, "approved", note, cfg, now)
    if changed:
        await _audit(s, f"staff:{staff_id}", "points.approve", f"redemption:{request_id}",
                     {"account": request.account_id, "reward": reward.code})
        await _notify(s, request, reward, "points_redemption_approved")
    return _request_view(request, reward)


async def reject(s: AsyncSession, request_id: int, staff_id: int, reason: str, *,
                 cfg: PointsSection | None = None,
                 now: dt.datetime | None = None) -> RedemptionView:
    """Reject a pending request: the points come back once and the stock is restored."""
    cfg, now = config(cfg), now or utcnow()
    request, reward, changed = await _decide(s, request_id, staff_id, "rejected", reason, cfg,
                                             now)
    if changed:
        # Keyed by the request: even a replayed rejection cannot refund twice.
        refunded = await post(s, request.account_id, "refund", f"redemption:{request.id}",
                              amount=request.cost, expires_on=_expiry(cfg, now),
                              actor=f"staff:{staff_id}", reason=reason or "rejected", now=now)
        if refunded and reward.stock is not None:
            await s.execute(update(Reward).where(Reward.id == reward.id)
                            .values(stock=Reward.stock + request.quantity))
        await _audit(s, f"staff:{staff_id}", "points.reject", f"redemption:{request_id}",
                     {"account": request.account_id, "reward": reward.code,
                      "refund": request.cost if refunded else 0, "reason": reason})
        await _notify(s, request, reward, "points_redemption_rejected")
    return _request_view(request, reward)


async def _notify(s: AsyncSession, request: RedemptionRequest, reward: Reward,
                  template: str) -> None:
    chats = await linked_chats(s, [request.account_id])
    for chat_id, locale in chats.get(request.account_id, []):
        await enqueue(s, chat_id, template=template, locale=locale,
                      variables={"reward_zh": reward.name_zh, "reward_en": reward.name_en,
                                 "quantity": request.quantity, "points": request.cost,
                                 "note": request.note, "request": request.id},
                      priority=PRIORITY_NOTICE, ref=f"redemption:{request.id}",
                      dedupe_key=f"{template}:{request.id}:{chat_id}")


async def requests(s: AsyncSession, *, status: str | None = "pending",
                   account_id: int | None = None, limit: int = 50) -> list[RedemptionView]:
    """Redemption requests, oldest first (staff's queue) or an account's own."""
    stmt = select(RedemptionRequest, Reward).join(Reward,
                                                  Reward.id == RedemptionRequest.reward_id)
    if status is not None:
        stmt = stmt.where(RedemptionRequest.status == status)
    if account_id is not None:
        stmt = stmt.where(RedemptionRequest.account_id == account_id)
    rows = await s.execute(stmt.order_by(RedemptionRequest.id).limit(limit))
    return [_request_view(req, reward) for req, reward in rows.tuples()]

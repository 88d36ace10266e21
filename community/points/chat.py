"""What the chat adapters show and do with points: one view per screen, one call per tap.

Both the gateway (`/points`, `/redeem`, `/top`, the `pts:` buttons) and the action server
(intents points_balance and redeem_points) call these, so the words and buttons are the same
however the user asked. Each function returns a `Screen` — a template key, its variables and
buttons (plain dicts: no Telegram here) — or raises a DomainError whose template says why not.

Button payloads (callback data, all under 64 bytes, all attacker-controlled — every id is
parsed here, looked up, and checked against the presser):

- `pts:cat:<page>`           the rewards catalogue, page n
- `pts:pick:<reward id>`     choose a reward → a one-time `RedemptionChoice` row
- `pts:ok:<choice id>`       confirm it (one conditional UPDATE: a double tap redeems once)
- `pts:no:<choice id>`       cancel it
- `pts:top:<scope>:<period>` the leaderboard of the presser's region or tier, month or all time
- `pts:approve:<request id>` / `pts:reject:<request id>`   staff, in the staff group only
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.points import ledger, reports, rewards, rules
from community.points.errors import ReasonRequired
from community.points.models import (
    PointsBalance,
    RedemptionChoice,
    RedemptionRequest,
    Reward,
    StaffPrompt,
)
from core.errors import DomainError, NotLinked, PermissionDenied
from core.models import PRIORITY_STAFF, Customer, TelegramIdentity, utcnow
from core.screens import Screen, button
from core.services import staff as staff_service
from core.services.accounts import IdentityView
from core.services.outbox import enqueue
from core.settings import PointsSection

PAGE_SIZE = 5
HISTORY_LINES = 5
CHOICE_TTL = dt.timedelta(minutes=15)
PREFIX = "pts:"


class PointsLinkRequired(NotLinked):
    """The chat is not linked to an account that takes part in the points scheme."""

    code = "points_link_required"
    template = "points_link_required"


class ChoiceGone(DomainError):
    """A confirm/cancel button that is not (or no longer) the presser's to press."""

    code = "points_choice_gone"
    template = "points_choice_gone"


class ChoiceDone(DomainError):
    """The choice was confirmed already (a double tap): nothing is redeemed twice."""

    code = "points_choice_done"
    template = "points_choice_done"


# --------------------------------------------------------------------------- who may use it


def account_of(ident: IdentityView | None, cfg: PointsSection | None = None) -> int:
    """The account a chat's points belong to; PointsLinkRequired for unlinked/non-members."""
    cfg = ledger.config(cfg)
    if (ident is None or ident.customer_id is None or ident.customer_kind is None
            or not rules.eligible(cfg, rules.AccountFacts(ident.customer_kind,
                                                          ident.customer_tier,
                                                          ident.customer_region or ""))):
        raise PointsLinkRequired("points need a linked dealer account",
                                 linked=ident is not None and ident.is_linked)
    return ident.customer_id


# --------------------------------------------------------------------------- balance


def _entry_vars(e: ledger.EntryView) -> dict[str, Any]:
    return {"kind": e.kind, "amount": e.amount, "pending": e.pending,
            "date": ledger.local_today(e.created_at).isoformat(), "reason": e.reason}


async def balance_screen(s: AsyncSession, account_id: int, *,
                         cfg: PointsSection | None = None,
                         today: dt.date | None = None) -> Screen:
    """Balance, pending, debt, what expires soon and the latest entries."""
    view = await ledger.balance(s, account_id, cfg=cfg, today=today)
    recent = await ledger.history(s, account_id, limit=HISTORY_LINES)
    return Screen("points_summary", {
        "available": view.available if view.available > 0 else 0, "pending": view.pending,
        "debt": view.debt, "expiring_points": view.expiring_points,
        "expiring_on": view.expiring_on.isoformat() if view.expiring_on else "",
        "history": [_entry_vars(e) for e in recent],
    }, [button("button_points_redeem", f"{PREFIX}cat:0"),
        button("button_points_top", f"{PREFIX}top:region:month")])


# --------------------------------------------------------------------------- catalogue


async def _available(s: AsyncSession, account_id: int) -> int:
    return int(await s.scalar(select(PointsBalance.available)
                              .where(PointsBalance.account_id == account_id)) or 0)


async def catalogue_screen(s: AsyncSession, account_id: int, page: int = 0) -> Screen:
    """A page of the active rewards, cheapest first, one button each, with page buttons."""
    total = int(await s.scalar(select(func.count()).select_from(Reward)
                               .where(Reward.active.is_(True))) or 0)
    available = await _available(s, account_id)
    if total == 0:
        return Screen("points_catalogue_empty", {"available": available})
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    page = min(max(0, page), pages - 1)
    items = (await s.execute(
        select(Reward).where(Reward.active.is_(True)).order_by(Reward.cost, Reward.code)
        .offset(page * PAGE_SIZE).limit(PAGE_SIZE))).scalars().all()
    rows = [{"name_zh": r.name_zh, "name_en": r.name_en, "cost": r.cost, "stock": r.stock,
             "affordable": available >= r.cost and (r.stock is None or r.stock > 0)}
            for r in items]
    buttons = [button("button_points_reward", f"{PREFIX}pick:{r.id}", name_zh=r.name_zh,
                      name_en=r.name_en, cost=r.cost) for r in items]
    if page > 0:
        buttons.append(button("button_points_prev", f"{PREFIX}cat:{page - 1}"))
    if page + 1 < pages:
        buttons.append(button("button_points_next", f"{PREFIX}cat:{page + 1}"))
    return Screen("points_catalogue", {"available": available, "rewards": rows,
                                       "page": page + 1, "pages": pages}, buttons)


async def choose(s: AsyncSession, telegram_user_id: int, account_id: int, reward_id: int, *,
                 now: dt.datetime | None = None) -> Screen:
    """The confirm screen for a reward: cost, balance after, confirm/cancel buttons.

    Writes a one-time choice row owned by this Telegram user and account; nothing is spent yet.
    """
    now = now or utcnow()
    reward = await s.get(Reward, reward_id)
    if reward is None or not reward.active:
        raise rewards.RewardUnavailable(f"no active reward {reward_id}")
    available = await _available(s, account_id)
    if reward.stock is not None and reward.stock < 1:
        raise rewards.OutOfStock(f"{reward.code} is out of stock", reward=reward.name_zh)
    if available < reward.cost:
        raise rewards.NotEnoughPoints(f"{available} < {reward.cost}", available=available,
                                      needed=reward.cost, reward=reward.name_zh)
    choice = RedemptionChoice(telegram_user_id=telegram_user_id, account_id=account_id,
                              reward_id=reward.id, quantity=1, status="open", created_at=now,
                              expires_at=now + CHOICE_TTL)
    s.add(choice)
    await s.flush()
    return Screen("points_confirm", {
        "name_zh": reward.name_zh, "name_en": reward.name_en, "cost": reward.cost,
        "available": available, "after": available - reward.cost,
        "needs_approval": reward.needs_approval,
    }, [button("button_points_confirm", f"{PREFIX}ok:{choice.id}", cost=reward.cost),
        button("button_points_cancel", f"{PREFIX}no:{choice.id}")])


async def _claim_choice(s: AsyncSession, choice_id: int, telegram_user_id: int,
                        account_id: int, status: str, now: dt.datetime) -> RedemptionChoice:
    """open → `status`, only by its owner and before it expires; otherwise say why not."""
    claimed = await s.scalar(
        update(RedemptionChoice)
        .where(RedemptionChoice.id == choice_id,
               RedemptionChoice.telegram_user_id == telegram_user_id,
               RedemptionChoice.account_id == account_id,
               RedemptionChoice.status == "open", RedemptionChoice.expires_at > now)
        .values(status=status, decided_at=now)
        .returning(RedemptionChoice.id))
    choice = await s.scalar(select(RedemptionChoice).where(RedemptionChoice.id == choice_id)
                            .execution_options(populate_existing=True))
    mine = (choice is not None and choice.telegram_user_id == telegram_user_id
            and choice.account_id == account_id)
    if claimed is None or choice is None:
        if mine and choice is not None and choice.status == "confirmed":
            raise ChoiceDone(f"choice {choice_id} was confirmed already",
                             request=choice.redemption_id or 0)
        raise ChoiceGone(f"choice {choice_id} is not open for this user")
    return choice


async def confirm(s: AsyncSession, choice_id: int, telegram_user_id: int, account_id: int, *,
                  staff_chat_id: int | None, staff_locale: str,
                  now: dt.datetime | None = None) -> Screen:
    """Redeem the chosen reward once; a request needing staff is posted to the staff group.

    NotEnoughPoints / OutOfStock / RewardUnavailable propagate: the caller's unit of work then
    rolls back, the choice stays open, and nothing was spent.
    """
    now = now or utcnow()
    choice = await _claim_choice(s, choice_id, telegram_user_id, account_id, "confirmed", now)
    reward = await s.get(Reward, choice.reward_id)
    assert reward is not None
    done = await rewards.redeem(s, account_id, reward.code, choice.quantity,
                                actor=f"tg:{telegram_user_id}", now=now)
    choice.redemption_id = done.id
    if done.status == "pending" and staff_chat_id is not None:
        await post_request(s, done.id, staff_chat_id, staff_locale)
    return Screen("points_redeemed", {
        "request": done.id, "name_zh": reward.name_zh, "name_en": reward.name_en,
        "cost": done.cost, "after": done.available_after, "status": done.status,
        "staffed": staff_chat_id is not None})


async def cancel(s: AsyncSession, choice_id: int, telegram_user_id: int, account_id: int, *,
                 now: dt.datetime | None = None) -> Screen:
    """Drop an open choice (nothing was spent)."""
    await _claim_choice(s, choice_id, telegram_user_id, account_id, "cancelled",
                        now or utcnow())
    return Screen("points_choice_cancelled", {}, [button("button_points_redeem",
                                                         f"{PREFIX}cat:0")])


# --------------------------------------------------------------------------- staff


async def post_request(s: AsyncSession, request_id: int, staff_chat_id: int, locale: str
                       ) -> int | None:
    """Queue the request's post to the staff group (once) with Approve / Reject buttons."""
    req = await s.get(RedemptionRequest, request_id)
    assert req is not None
    reward = await s.get(Reward, req.reward_id)
    customer = await s.get(Customer, req.account_id)
    assert reward is not None and customer is not None
    available = await _available(s, req.account_id)
    return await enqueue(
        s, staff_chat_id, kind="points_request", ref=f"redemption:{req.id}",
        priority=PRIORITY_STAFF, template="points_staff_request", locale=locale,
        variables={"request": req.id, "customer_code": customer.code,
                   "customer_name": customer.name, "region": customer.region,
                   "tier": customer.tier or "", "reward_zh": reward.name_zh,
                   "reward_en": reward.name_en, "quantity": req.quantity, "cost": req.cost,
                   "available_after": available},
        buttons=[button("button_points_approve", f"{PREFIX}approve:{req.id}"),
                 button("button_points_reject", f"{PREFIX}reject:{req.id}")],
        dedupe_key=f"points-request:{req.id}:post")


async def staff_member(s: AsyncSession, telegram_user_id: int, chat_id: int | None, *,
                       staff_chat_id: int | None, action: str,
                       cfg: PointsSection | None = None) -> int:
    """The staff member id allowed to decide here, or PermissionDenied (audited).

    `require_role` decides (staff group only; roles points.approve_roles); redemption
    decisions also need a linked staff account, since they record who decided.
    """
    cfg = ledger.config(cfg)
    await staff_service.require_role(s, telegram_user_id, cfg.approve_roles, chat_id,
                                     staff_chat_id=staff_chat_id, action=action)
    staff_id = await s.scalar(select(TelegramIdentity.staff_id)
                              .where(TelegramIdentity.telegram_user_id == telegram_user_id))
    if staff_id is None:
        from core.models import AuditLog

        s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="permission.denied",
                       subject=action[:200], details={"reason": "not_linked_staff",
                                                      "chat_id": chat_id}))
        raise PermissionDenied(f"{action} refused: not a linked staff account",
                               reason="not_staff")
    return int(staff_id)


async def _still_pending(s: AsyncSession, request_id: int) -> None:
    """AlreadyDecided for a request decided before (a second tap says so, in words)."""
    status = await s.scalar(select(RedemptionRequest.status)
                            .where(RedemptionRequest.id == request_id))
    if status is not None and status != "pending":
        raise rewards.AlreadyDecided(f"request {request_id} is {status}", status=status)


async def approve(s: AsyncSession, request_id: int, staff_id: int, staff_name: str
                  ) -> Screen:
    """Approve a pending request (the dealer is told through the outbox)."""
    await _still_pending(s, request_id)
    view = await rewards.approve(s, request_id, staff_id)
    return Screen("points_staff_decided", _decided_vars(view, staff_name))


async def reject(s: AsyncSession, request_id: int, staff_id: int, staff_name: str,
                 reason: str) -> Screen:
    """Reject with a reason: the points come back once (the dealer is told)."""
    await _still_pending(s, request_id)
    if not reason.strip():
        raise ReasonRequired("a rejection needs a reason")
    view = await rewards.reject(s, request_id, staff_id, reason.strip()[:500])
    return Screen("points_staff_decided", _decided_vars(view, staff_name))


def _decided_vars(view: rewards.RedemptionView, staff_name: str) -> dict[str, Any]:
    return {"request": view.id, "status": view.status, "staff": staff_name,
            "reward_zh": view.reward_name_zh, "reward_en": view.reward_name_en,
            "cost": view.cost, "note": view.note}


async def ask_reason(s: AsyncSession, request_id: int) -> Screen:
    """The prompt staff reply to with the reason (the request must still be pending)."""
    req = await s.get(RedemptionRequest, request_id)
    if req is None:
        raise rewards.NotFound(f"no redemption request {request_id}")
    if req.status != "pending":
        raise rewards.AlreadyDecided(f"request {request_id} is {req.status}",
                                     status=req.status)
    return Screen("points_staff_reason_prompt", {"request": request_id})


async def remember_prompt(s: AsyncSession, staff_chat_id: int, message_id: int,
                          request_id: int, asked_by: int,
                          post_message_id: int | None = None) -> None:
    """Record the reason prompt the bot posted, so a reply to it rejects that request."""
    s.add(StaffPrompt(staff_chat_id=staff_chat_id, message_id=message_id,
                      request_id=request_id, asked_by=asked_by,
                      post_message_id=post_message_id))


async def prompt_request(s: AsyncSession, staff_chat_id: int, message_id: int
                         ) -> tuple[int, int | None] | None:
    """(request id, the request's post) a reason prompt is about; None if it is not one."""
    row = (await s.execute(select(StaffPrompt.request_id, StaffPrompt.post_message_id)
                           .where(StaffPrompt.staff_chat_id == staff_chat_id,
                                  StaffPrompt.message_id == message_id))).first()
    return None if row is None else (int(row[0]), row[1])


# --------------------------------------------------------------------------- leaderboards


async def leaderboard_screen(s: AsyncSession, account_id: int, scope: str = "region",
                             period: str = "month", *, limit: int = 10,
                             month: dt.date | None = None) -> Screen:
    """The top earners of the asker's region or tier, this month or all time."""
    customer = await s.get(Customer, account_id)
    assert customer is not None
    scopes = [sc for sc, key in (("region", customer.region), ("tier", customer.tier)) if key]
    if scope not in scopes:
        scope = scopes[0] if scopes else "all"
    if period not in reports.PERIODS:
        period = "month"
    key = customer.region if scope == "region" else customer.tier if scope == "tier" else None
    rows = await reports.leaderboard(s, scope, period, limit, key=key, month=month)
    me = next((r for r in rows if r.account_id == account_id), None)
    buttons = [button("button_points_top_choice", f"{PREFIX}top:{sc}:{pe}", scope=sc,
                      period=pe, where=customer.region if sc == "region" else customer.tier)
               for sc in scopes for pe in reports.PERIODS if (sc, pe) != (scope, period)]
    return Screen("points_leaderboard", {
        "scope": scope, "period": period, "where": key or "",
        "month": (month or ledger.local_today()).strftime("%Y-%m"),
        "rows": [{"rank": r.rank, "name": r.name, "code": r.code, "points": r.points,
                  "me": r.account_id == account_id} for r in rows],
        "my_rank": me.rank if me else 0}, buttons)


# --------------------------------------------------------------------------- payloads


def parse(data: str, verbs: Sequence[str]) -> tuple[str, list[str]] | None:
    """(`verb`, args) of a `pts:` payload whose verb is one of `verbs`; None if malformed."""
    if not data.startswith(PREFIX) or len(data) > 64:
        return None
    verb, *args = data[len(PREFIX):].split(":")
    if verb not in verbs:
        return None
    return verb, args


def int_arg(args: list[str], i: int = 0) -> int | None:
    """A small non-negative integer id from a payload, or None."""
    if len(args) <= i or not args[i].isdigit() or len(args[i]) > 12:
        return None
    return int(args[i])

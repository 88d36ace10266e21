"""Who may be in which group: join decisions, members, and syncing with the dealer records.

A Telegram user may join a group when linked (TelegramIdentity.customer_id) to an active
dealer whose tier and region fit the group (an empty tiers/regions list = any) and who is not
banned there. Removals and invitations caused by a changed dealer record go through the outbox
(`kind="kick"` rows the delivery worker executes as ban + unban; private invitations).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from community.groups import GroupView, by_chat, log_action, view
from community.models import CommunityGroup, GroupMember, JoinDecision
from core.errors import NotFound
from core.models import (
    PRIORITY_BULK,
    PRIORITY_NOTICE,
    AuditLog,
    Customer,
    TelegramIdentity,
    utcnow,
)
from core.services import outbox

# Why a join request was declined (template keys community_decline_<reason>).
REASONS = ("not_linked", "not_dealer", "inactive", "tier", "region", "banned")


def _insert(s: AsyncSession, model):  # type: ignore[no-untyped-def]
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


def fits(group: CommunityGroup | GroupView, customer: Customer | None) -> str | None:
    """None when the customer may be in the group, else the reason it may not."""
    if customer is None:
        return "not_linked"
    if customer.kind != "dealer":
        return "not_dealer"
    if not getattr(customer, "active", True):
        return "inactive"
    if group.tiers and (customer.tier or "") not in group.tiers:
        return "tier"
    if group.regions and (customer.region or "") not in group.regions:
        return "region"
    return None


async def _customer_of(s: AsyncSession, telegram_user_id: int) -> tuple[Customer | None, str]:
    row = (await s.execute(
        select(Customer, TelegramIdentity.locale)
        .join(TelegramIdentity, TelegramIdentity.customer_id == Customer.id)
        .where(TelegramIdentity.telegram_user_id == telegram_user_id))).first()
    if row is None:
        locale = await s.scalar(select(TelegramIdentity.locale)
                                .where(TelegramIdentity.telegram_user_id == telegram_user_id))
        return None, locale or ""
    return row[0], row[1] or ""


@dataclass
class JoinOutcome:
    """What to do with a join request; `duplicate` = decided before, do nothing."""

    approved: bool
    reason: str
    duplicate: bool
    group: GroupView
    user_locale: str
    company: str = ""


async def decide_join(s: AsyncSession, chat_id: int, telegram_user_id: int,
                      request_date: int) -> JoinOutcome | None:
    """Decide a chat_join_request once (None: the chat is not a registered group)."""
    group = await by_chat(s, chat_id)
    if group is None or not group.active:
        return None
    customer, locale = await _customer_of(s, telegram_user_id)
    reason = fits(group, customer)
    banned = await s.scalar(select(GroupMember.status).where(
        GroupMember.group_id == group.id, GroupMember.telegram_user_id == telegram_user_id))
    if reason is None and banned == "banned":
        reason = "banned"
    approved = reason is None
    inserted = await s.scalar(
        _insert(s, JoinDecision).values(
            chat_id=group.chat_id, telegram_user_id=telegram_user_id, request_date=request_date,
            customer_id=customer.id if customer else None, approved=approved,
            reason=reason or "ok", decided_at=utcnow())
        .on_conflict_do_nothing(index_elements=["chat_id", "telegram_user_id", "request_date"])
        .returning(JoinDecision.id))
    if inserted is None:  # the same request again: the first decision stands
        first = (await s.execute(select(JoinDecision.approved, JoinDecision.reason).where(
            JoinDecision.chat_id == group.chat_id,
            JoinDecision.telegram_user_id == telegram_user_id,
            JoinDecision.request_date == request_date))).first()
        return JoinOutcome(bool(first[0]) if first else approved,
                           (first[1] if first else reason) or "ok", True, view(group), locale)
    await log_action(s, group, "join_approved" if approved else "join_declined",
                     user_id=telegram_user_id, reason=reason or "ok",
                     details={"customer_id": customer.id if customer else None},
                     to_log_chat=not approved)
    if approved:
        await _upsert_member(s, group.id, telegram_user_id, customer.id if customer else None,
                             "member")
    return JoinOutcome(approved, reason or "ok", False, view(group), locale,
                       customer.name if customer else "")


async def _upsert_member(s: AsyncSession, group_id: int, telegram_user_id: int,
                         customer_id: int | None, status: str) -> None:
    now = utcnow()
    values = dict(group_id=group_id, telegram_user_id=telegram_user_id, customer_id=customer_id,
                  status=status, warnings=0, joined_at=now if status == "member" else None,
                  updated_at=now)
    change = {"status": status, "updated_at": now}
    if customer_id is not None:
        change["customer_id"] = customer_id
    if status == "member":
        change["joined_at"] = now
    await s.execute(_insert(s, GroupMember).values(**values).on_conflict_do_update(
        index_elements=["group_id", "telegram_user_id"], set_=change))


async def member_joined(s: AsyncSession, chat_id: int, telegram_user_id: int,
                        first_name: str) -> bool:
    """A user became a member (chat_member update): record it and queue the welcome once a
    day. Returns False for chats that are not registered groups."""
    group = await by_chat(s, chat_id)
    if group is None:
        return False
    customer, _ = await _customer_of(s, telegram_user_id)
    await _upsert_member(s, group.id, telegram_user_id, customer.id if customer else None,
                         "member")
    day = utcnow().date().isoformat()
    await outbox.enqueue(
        s, group.chat_id, template="community_welcome", locale=group.locale,
        variables={"name": first_name[:64], "company": customer.name if customer else "",
                   "title": group.title, "custom": group.welcome_text or "",
                   "has_rules": bool(group.rules_text)},
        priority=PRIORITY_NOTICE, dedupe_key=f"community:welcome:{group.id}:{telegram_user_id}"
        f":{day}", kind="community_welcome", ref=f"community:{group.id}")
    return True


async def member_left(s: AsyncSession, chat_id: int, telegram_user_id: int,
                      status: str) -> None:
    """The user left or was removed/banned (chat_member update)."""
    group = await by_chat(s, chat_id)
    if group is None:
        return
    member = await s.scalar(select(GroupMember).where(
        GroupMember.group_id == group.id, GroupMember.telegram_user_id == telegram_user_id))
    new = "banned" if status == "kicked" else "left"
    if member is None:
        await _upsert_member(s, group.id, telegram_user_id, None, new)
    elif member.status == "removed":
        return  # our own kick (ban + unban): not a ban, they may come back when they fit
    elif member.status != "banned":
        member.status = new
        member.removed_at = utcnow()


@dataclass(frozen=True)
class OpenGroup:
    """A group a dealer may join."""

    chat_id: int
    title: str
    invite_link: str | None
    member: bool


async def groups_for_user(s: AsyncSession, telegram_user_id: int
                          ) -> tuple[str | None, list[OpenGroup]]:
    """(reason it may join none, the groups it may join) for a Telegram user."""
    customer, _ = await _customer_of(s, telegram_user_id)
    if customer is None:
        return "not_linked", []
    if customer.kind != "dealer":
        return "not_dealer", []
    if not customer.active:
        return "inactive", []
    groups = (await s.scalars(select(CommunityGroup).where(CommunityGroup.active.is_(True))
                              .order_by(CommunityGroup.id))).all()
    statuses = dict((await s.execute(select(GroupMember.group_id, GroupMember.status).where(
        GroupMember.telegram_user_id == telegram_user_id))).all())
    out = [OpenGroup(g.chat_id, g.title, g.invite_link, statuses.get(g.id) == "member")
           for g in groups if fits(g, customer) is None and statuses.get(g.id) != "banned"]
    return None, out


# --------------------------------------------------------------------------- sync


@dataclass
class SyncReport:
    """What a membership sync queued."""

    removed: int = 0
    invited: int = 0
    removals: list[tuple[int, int, str]] = field(default_factory=list)  # chat, user, reason


async def sync(s: AsyncSession, *, actor: str, customer_ids: list[int] | None = None
               ) -> SyncReport:
    """Bring memberships in line with the dealer records: members who no longer fit are
    removed (a `kick` outbox row per group, logged to the group's log chat only), and dealers
    who now fit groups they are not in get their invite links in private. Idempotent: a member
    already marked removed is not queued again; invitations are deduplicated."""
    report = SyncReport()
    groups = {g.id: g for g in (await s.scalars(select(CommunityGroup).where(
        CommunityGroup.active.is_(True)))).all()}
    if not groups:
        return report
    q = (select(GroupMember, Customer).outerjoin(Customer, Customer.id == GroupMember.customer_id)
         .where(GroupMember.status == "member"))
    if customer_ids is not None:
        q = q.where(GroupMember.customer_id.in_(customer_ids))
    now = utcnow()
    for member, customer in (await s.execute(q)).all():
        group = groups.get(member.group_id)
        if group is None or member.customer_id is None:
            continue  # staff, admins and others the bot did not admit are not synced
        reason = fits(group, customer)
        if reason is None:
            continue
        member.status, member.removed_at = "removed", now
        await outbox.enqueue(
            s, group.chat_id, text="kick", kind="kick", priority=PRIORITY_BULK,
            variables={"user_id": member.telegram_user_id, "reason": reason},
            dedupe_key=f"community:kick:{group.id}:{member.telegram_user_id}:{now.isoformat()}",
            ref=f"community:{group.id}")
        await log_action(s, group, "removed", user_id=member.telegram_user_id, reason=reason,
                         actor=actor)
        report.removed += 1
        report.removals.append((group.chat_id, member.telegram_user_id, reason))
    # Invitations: linked dealers (of the given customers) and the groups they now fit.
    iq = (select(TelegramIdentity.telegram_user_id, TelegramIdentity.locale, Customer)
          .join(Customer, Customer.id == TelegramIdentity.customer_id)
          .where(Customer.kind == "dealer"))
    if customer_ids is not None:
        iq = iq.where(Customer.id.in_(customer_ids))
    else:
        return report  # a full sync only removes; invitations follow record changes
    memberships = {(m.group_id, m.telegram_user_id): m.status for m in (await s.scalars(
        select(GroupMember).where(GroupMember.customer_id.in_(customer_ids)))).all()}
    for user_id, locale, customer in (await s.execute(iq)).all():
        new = [g for g in groups.values() if fits(g, customer) is None and g.invite_link
               and memberships.get((g.id, user_id)) not in ("member", "banned")]
        if not new:
            continue
        ids = ",".join(str(g.id) for g in sorted(new, key=lambda g: g.id))
        queued = await outbox.enqueue(
            s, user_id, template="community_new_groups", locale=locale or None,
            variables={"groups": [{"title": g.title, "link": g.invite_link} for g in new]},
            priority=PRIORITY_NOTICE, kind="community_invite",
            dedupe_key=f"community:invite:{customer.id}:{user_id}:{ids}:{customer.tier}"
                       f":{customer.region}")
        if queued is not None:
            report.invited += 1
    return report


async def after_dealer_import(s: AsyncSession, *, actor: str,
                              changed_since: dt.datetime | None = None) -> SyncReport:
    """The importer's hook (same transaction): memberships follow the imported dealers —
    removals for everyone who no longer fits; private invitations for the dealers the import
    created or changed (updated_at >= changed_since) to groups they now fit."""
    report = await sync(s, actor=actor)
    if changed_since is not None:
        changed = list((await s.scalars(select(Customer.id).where(
            Customer.kind == "dealer", Customer.updated_at >= changed_since))).all())
        if changed:
            report.invited = (await sync(s, actor=actor, customer_ids=changed)).invited
    if report.removed:
        s.add(AuditLog(actor=actor[:100], action="community.sync",
                       subject="import", details={"removed": report.removed}))
    return report


async def set_dealer(s: AsyncSession, code: str, *, actor: str, active: bool | None = None,
                     tier: str | None = None, region: str | None = None) -> SyncReport:
    """Staff change a dealer's record (deactivate, tier, region); memberships follow."""
    customer = await s.scalar(select(Customer).where(Customer.code == code,
                                                     Customer.kind == "dealer"))
    if customer is None:
        raise NotFound(f"no dealer {code}")
    before = {"active": customer.active, "tier": customer.tier, "region": customer.region}
    if active is not None:
        customer.active = active
    if tier is not None:
        from community.groups import parse_tiers
        tiers = parse_tiers(tier)
        if len(tiers) != 1:
            raise NotFound(f"one tier please, not {tier!r}")
        customer.tier = tiers[0]
    if region is not None:
        customer.region = region[:100]
    customer.updated_at = utcnow()
    s.add(AuditLog(actor=actor[:100], action="community.dealer_changed", subject=code,
                   details={"before": before, "after": {"active": customer.active,
                                                        "tier": customer.tier,
                                                        "region": customer.region}}))
    await s.flush()
    return await sync(s, actor=actor, customer_ids=[customer.id])


async def banned(s: AsyncSession, group_id: int, telegram_user_id: int) -> None:
    """Record a ban decided by moderation (a later join request is declined)."""
    await _upsert_member(s, group_id, telegram_user_id, None, "banned")


def today() -> dt.date:
    """UTC today (participation uses the local day; see participation.local_day)."""
    return utcnow().date()

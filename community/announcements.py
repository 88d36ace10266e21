"""Announcements to a segment of the community groups, as one outbox campaign.

A segment is `{"tiers": [...], "regions": [...], "groups": [...], "all": bool}`: a group is in
it when every filter given matches (tiers/regions: the group admits one of them; groups: chat
id or exact title). A segment matching no group is refused before anything is queued. Staff
prepare announcements in the staff chat as a draft stored in the database (segment → content →
preview → confirm); confirming is one-time by the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from community.groups import BadOptions, _items, parse_options, parse_tiers
from community.models import AnnouncementDraft, CommunityGroup
from core.errors import DomainError, NotFound
from core.models import PRIORITY_BULK, AuditLog, OutboxMessage
from core.services import outbox

MAX_TEXT = 3500


class EmptySegment(DomainError):
    """No registered group matches the segment."""

    code = "community_empty_segment"
    template = "community_empty_segment"


def parse_segment(text: str, *, lists: tuple[str, ...] = (),
                  options: tuple[str, ...] = ("pin", "at")) -> dict:
    """`tiers=key,potential regions=华东 groups=-100123,华东群 all` → a segment dict.

    `lists` names further list-valued parts a caller's segments have (training pushes add
    `dealers`); `options` are the other `key=value` words of the command line (not part of
    the segment, not refused)."""
    opts = parse_options(text)
    parts = ("tiers", "regions", "groups", *lists)
    unknown = set(opts) - {*parts, *options}
    if unknown:
        raise BadOptions(f"unknown option {sorted(unknown)[0]}", problem=", ".join(unknown))
    segment: dict = {"all": "all" in (text or "").split()}
    if "tiers" in opts:
        segment["tiers"] = parse_tiers(opts["tiers"])
    for name in ("regions", "groups", *lists):
        if name in opts:
            segment[name] = _items(opts[name])
    if not segment["all"] and not any(segment.get(k) for k in parts):
        raise BadOptions("no segment", problem=" ".join(f"{k}=…" for k in parts) + " or all")
    return segment


def parse_at(value: str | None, timezone: str) -> dt.datetime | None:
    """`2026-12-01T09:00` in the operator's timezone (or with an offset) → aware UTC."""
    if not value:
        return None
    from zoneinfo import ZoneInfo
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadOptions(f"bad time {value!r}", problem=f"at: {value}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.astimezone(dt.UTC)


def matches(group: CommunityGroup, segment: dict) -> bool:
    """True when the group belongs to the segment."""
    if segment.get("all"):
        return True
    if segment.get("tiers") and not set(group.tiers or []) & set(segment["tiers"]):
        return False
    if segment.get("regions") and not set(group.regions or []) & set(segment["regions"]):
        return False
    if segment.get("groups"):
        names = set(segment["groups"])
        if str(group.chat_id) not in names and group.title not in names:
            return False
    return True


async def resolve(s: AsyncSession, segment: dict) -> list[CommunityGroup]:
    """The active groups of a segment, by id."""
    groups = (await s.scalars(select(CommunityGroup).where(CommunityGroup.active.is_(True))
                              .order_by(CommunityGroup.id))).all()
    return [g for g in groups if matches(g, segment)]


@dataclass(frozen=True)
class Queued:
    """An announcement queued: its campaign and how many groups it goes to."""

    campaign_id: int
    groups: int
    titles: list[str]


async def announce(s: AsyncSession, segment: dict, *, text: str, actor: str,
                   media_kind: str | None = None, media_ref: str | None = None,
                   pin: bool = False, not_before: dt.datetime | None = None,
                   report_chat_id: int | None = None, key: str | None = None) -> Queued:
    """Queue one campaign: one outbox row per group (dedupe keys), reported to staff."""
    groups = await resolve(s, segment)
    if not groups:
        raise EmptySegment("the segment matches no group")
    if media_kind not in (None, "photo", "document"):
        raise BadOptions(f"bad media kind {media_kind!r}", problem="media")
    campaign = await outbox.start_campaign(s, "announcement", (text or media_kind or "")[:80],
                                           actor, report_chat_id)
    tag = key or f"c{campaign}"
    for g in groups:
        await outbox.enqueue(
            s, g.chat_id, template="community_announcement", locale=g.locale,
            variables={"text": (text or "")[:MAX_TEXT]}, media_kind=media_kind,
            media_ref=media_ref, pin=pin, priority=PRIORITY_BULK, not_before=not_before,
            campaign_id=campaign, dedupe_key=f"community:announce:{tag}:{g.id}",
            kind="announcement", ref=f"community:{g.id}")
    s.add(AuditLog(actor=actor[:100], action="community.announce", subject=f"campaign:{campaign}",
                   details={"segment": segment, "groups": [g.chat_id for g in groups],
                            "pin": pin, "media": media_kind,
                            "not_before": not_before.isoformat() if not_before else None}))
    return Queued(campaign, len(groups), [g.title for g in groups])


@outbox.on_failed("announcement")
async def announcement_failed(s: AsyncSession, message: OutboxMessage, reason: str) -> None:
    """A group that is gone (deleted, bot removed) is deactivated and the reason audited."""
    if not reason.startswith(("chat_not_found", "deleted", "kicked")):
        return
    await s.execute(update(CommunityGroup).where(CommunityGroup.chat_id == message.chat_id)
                    .values(active=False).execution_options(synchronize_session=False))
    s.add(AuditLog(actor="worker", action="community.group_unreachable",
                   subject=f"chat:{message.chat_id}", details={"reason": reason}))


# --------------------------------------------------------------------------- drafts


async def start_draft(s: AsyncSession, chat_id: int, staff_user_id: int, options: str,
                      timezone: str) -> tuple[AnnouncementDraft, list[str]]:
    """/announce <segment> [pin=yes] [at=…]: checks the segment now; returns the draft and the
    titles of its groups. Earlier open drafts of this staff member are dropped."""
    segment = parse_segment(options)
    opts = parse_options(options)
    groups = await resolve(s, segment)
    if not groups:
        raise EmptySegment("the segment matches no group")
    await s.execute(update(AnnouncementDraft)
                    .where(AnnouncementDraft.chat_id == chat_id,
                           AnnouncementDraft.staff_user_id == staff_user_id,
                           AnnouncementDraft.status.in_(("content", "preview")))
                    .values(status="cancelled").execution_options(synchronize_session=False))
    draft = AnnouncementDraft(chat_id=chat_id, staff_user_id=staff_user_id, status="content",
                              segment=segment,
                              pin=opts.get("pin", "").lower() in ("yes", "y", "1", "true"),
                              not_before=parse_at(opts.get("at"), timezone))
    s.add(draft)
    await s.flush()
    return draft, [g.title for g in groups]


async def open_draft(s: AsyncSession, chat_id: int, staff_user_id: int
                     ) -> AnnouncementDraft | None:
    """The draft waiting for this staff member's content, if any."""
    return await s.scalar(select(AnnouncementDraft).where(
        AnnouncementDraft.chat_id == chat_id, AnnouncementDraft.staff_user_id == staff_user_id,
        AnnouncementDraft.status == "content").order_by(AnnouncementDraft.id.desc()).limit(1))


async def set_content(s: AsyncSession, draft: AnnouncementDraft, *, text: str,
                      media_kind: str | None, media_ref: str | None) -> list[str]:
    """The content arrived: the draft is ready for its preview; returns the group titles."""
    draft.text = (text or "")[:MAX_TEXT]
    draft.media_kind, draft.media_ref = media_kind, media_ref
    draft.status = "preview"
    return [g.title for g in await resolve(s, draft.segment)]


async def confirm(s: AsyncSession, draft_id: int, staff_user_id: int, *, actor: str,
                  report_chat_id: int | None) -> Queued | None:
    """Queue the previewed draft, once (None when it was confirmed/cancelled already)."""
    won = await s.execute(update(AnnouncementDraft)
                          .where(AnnouncementDraft.id == draft_id,
                                 AnnouncementDraft.staff_user_id == staff_user_id,
                                 AnnouncementDraft.status == "preview")
                          .values(status="sent").execution_options(synchronize_session=False))
    if won.rowcount != 1:
        return None
    draft = await s.get(AnnouncementDraft, draft_id)
    if draft is None:
        raise NotFound("draft gone")
    queued = await announce(s, draft.segment, text=draft.text or "", actor=actor,
                            media_kind=draft.media_kind, media_ref=draft.media_ref,
                            pin=draft.pin, not_before=draft.not_before,
                            report_chat_id=report_chat_id, key=f"d{draft.id}")
    draft.campaign_id = queued.campaign_id
    return queued


async def cancel(s: AsyncSession, draft_id: int, staff_user_id: int) -> bool:
    """Drop a draft (its author only)."""
    won = await s.execute(update(AnnouncementDraft)
                          .where(AnnouncementDraft.id == draft_id,
                                 AnnouncementDraft.staff_user_id == staff_user_id,
                                 AnnouncementDraft.status.in_(("content", "preview")))
                          .values(status="cancelled").execution_options(synchronize_session=False))
    return won.rowcount == 1

"""Dealer community tables: registered groups, members, join decisions, drafts, activity."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, utcnow

# What the bot must be allowed to do in a community group (Bot API admin rights).
REQUIRED_RIGHTS = ("can_invite_users", "can_restrict_members", "can_delete_messages",
                   "can_pin_messages")
DEFAULT_WARN_STEPS = ["warn", "mute:3600", "ban"]


class CommunityGroup(Base):
    """A Telegram group registered for dealers; who may join is decided by tiers and regions
    (empty list = any). Settings are changed by group admins and staff."""

    __tablename__ = "community_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    tiers: Mapped[list[str]] = mapped_column(JSON, default=list)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    locale: Mapped[str] = mapped_column(String(8), default="zh-Hans")
    welcome_text: Mapped[str | None] = mapped_column(Text, default=None)
    rules_text: Mapped[str | None] = mapped_column(Text, default=None)
    blocklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    flood_messages: Mapped[int] = mapped_column(Integer, default=8)
    flood_seconds: Mapped[int] = mapped_column(Integer, default=10)
    mute_seconds: Mapped[int] = mapped_column(Integer, default=600)
    warn_steps: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(DEFAULT_WARN_STEPS))
    log_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    invite_link: Mapped[str | None] = mapped_column(String(300), default=None)
    missing_rights: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_by: Mapped[str] = mapped_column(String(100), default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GroupMember(Base):
    """A Telegram user's standing in one community group (joined, removed, warnings)."""

    __tablename__ = "community_members"
    __table_args__ = (UniqueConstraint("group_id", "telegram_user_id",
                                       name="uq_community_members_group_user"),
                      Index("ix_community_members_customer", "customer_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("community_groups.id", ondelete="CASCADE"))
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"),
                                                    default=None)
    status: Mapped[str] = mapped_column(String(16), default="member")  # member|removed|left|banned
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    removed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JoinDecision(Base):
    """One decision per join request (chat, user, request date): a redelivered request finds
    its decision taken (unique key) and is not decided again."""

    __tablename__ = "community_join_decisions"
    __table_args__ = (UniqueConstraint("chat_id", "telegram_user_id", "request_date",
                                       name="uq_community_join_decisions_request"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    request_date: Mapped[int] = mapped_column(BigInteger)  # the request's unix time
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"),
                                                    default=None)
    approved: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40))
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AnnouncementDraft(Base):
    """A staff member's announcement being prepared in the staff chat (state in the DB)."""

    __tablename__ = "community_announcement_drafts"
    __table_args__ = (Index("ix_community_drafts_author", "chat_id", "staff_user_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    staff_user_id: Mapped[int] = mapped_column(BigInteger)
    # content → preview → sent, or cancelled
    status: Mapped[str] = mapped_column(String(16), default="content")
    segment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    media_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    media_ref: Mapped[str | None] = mapped_column(Text, default=None)
    pin: Mapped[bool] = mapped_column(Boolean, default=False)
    not_before: Mapped[dt.datetime | None] = mapped_column(default=None)
    campaign_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ParticipationDay(Base):
    """Messages of one member in one group on one (local) day: one upsert per message."""

    __tablename__ = "community_participation"
    __table_args__ = (UniqueConstraint("group_id", "telegram_user_id", "day",
                                       name="uq_community_participation_day"),
                      Index("ix_community_participation_day", "day"))

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("community_groups.id", ondelete="CASCADE"))
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"),
                                                    default=None)
    day: Mapped[dt.date] = mapped_column(Date)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class GroupMessage(Base):
    """Message content, kept only when community.store_content is on."""

    __tablename__ = "community_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("community_groups.id", ondelete="CASCADE"),
                                          index=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

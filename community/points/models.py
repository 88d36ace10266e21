"""Reward points tables: an append-only ledger, a balance row per account, rewards, requests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models import Base, Customer, utcnow

ENTRY_KINDS = ("earn", "mature", "spend", "reverse", "expire", "adjust", "refund")
REWARD_KINDS = ("gift", "coupon", "discount")
REDEMPTION_STATUSES = ("pending", "approved", "rejected")


class PointsEntry(Base):
    """One ledger line. Never updated or deleted: corrections are new entries.

    `amount` changes the available balance, `pending` the pending one (order points wait out
    the return window in `pending`, then a `mature` entry moves them). The unique key
    (account, kind, source_key) makes each source event count once, whoever retries it.
    """

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "source_key",
                         name="uq_points_entries_account_kind_source"),
        # Pending order points due to mature, found without scanning the whole ledger.
        Index("ix_points_entries_matures_on", "matures_on"),
        Index("ix_points_entries_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    # Credits to `available` carry the day they expire (FIFO expiry is computed from these).
    expires_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    # Pending earnings carry the day they become available.
    matures_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    actor: Mapped[str] = mapped_column(String(100), default="system")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PointsBalance(Base):
    """An account's balance, kept in step with the ledger in the same transaction.

    `available` is negative only as a visible debt (an order reversed after its points were
    spent); future earnings pay it off first and redemption is blocked meanwhile.
    """

    __tablename__ = "points_balances"

    account_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True,
                                            autoincrement=False)
    available: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(lazy="raise")


class Reward(Base):
    """A catalogue item points buy: a gift (with stock), a coupon or an order discount."""

    __tablename__ = "points_rewards"
    __table_args__ = (CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
                      CheckConstraint("cost > 0", name="cost_positive"))

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    cost: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int | None] = mapped_column(Integer, default=None)  # None: unlimited
    value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), default=None)  # discounts
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RedemptionRequest(Base):
    """Points spent on a reward; pending ones wait for staff to approve or reject."""

    __tablename__ = "points_redemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("points_rewards.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    cost: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    actor: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"), default=None)
    note: Mapped[str] = mapped_column(Text, default="")

    reward: Mapped[Reward] = relationship(lazy="raise")


CHOICE_STATUSES = ("open", "confirmed", "cancelled")


class RedemptionChoice(Base):
    """A reward a chat picked and has not confirmed yet: the confirm button's one-time ticket.

    The confirm button carries this row's id; confirming is one conditional UPDATE
    (open → confirmed, by its owner, before it expires), so a double tap or a replayed callback
    redeems once. `redemption_id` (unique) records what the confirmation bought.
    """

    __tablename__ = "points_choices"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("points_rewards.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    redemption_id: Mapped[int | None] = mapped_column(
        ForeignKey("points_redemptions.id"), default=None, unique=True)


class StaffPrompt(Base):
    """A bot message in the staff group asking for a rejection reason: staff reply to it."""

    __tablename__ = "points_staff_prompts"

    staff_chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    request_id: Mapped[int] = mapped_column(ForeignKey("points_redemptions.id"))
    asked_by: Mapped[int] = mapped_column(BigInteger)  # the staff member's Telegram user id
    post_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # its buttons
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

"""Typed SQLAlchemy 2 models for accounts, Telegram identities, catalogue, stock, orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CUSTOMER_KINDS = ("retailer", "dealer")
DEALER_TIERS = ("key", "potential", "advantage", "general")
STAFF_ROLES = ("admin", "customer_service", "trainer")
ORDER_STATUSES = ("pending", "confirmed", "picking", "shipped", "delivered", "cancelled")
OPEN_ORDER_STATUSES = ("pending", "confirmed", "picking", "shipped")


def utcnow() -> dt.datetime:
    """Timezone-aware now, in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Customer(Base):
    """A retailer (终端门店) or a dealer (经销商), keyed by the operator's code."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40), default="")
    region: Mapped[str] = mapped_column(String(100), default="")
    channel: Mapped[str] = mapped_column(String(60), default="")  # retailers only
    tier: Mapped[str | None] = mapped_column(String(16), default=None)  # dealers only
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StaffMember(Base):
    """Someone who works for the brand: admin, customer service or trainer."""

    __tablename__ = "staff_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TelegramIdentity(Base):
    """A Telegram user as the bot knows them, and the account their chat is linked to."""

    __tablename__ = "telegram_identities"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str | None] = mapped_column(String(64), default=None)
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    locale_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), default=None, index=True
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.id", ondelete="SET NULL"), default=None
    )
    linked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer | None] = relationship(lazy="raise")
    staff: Mapped[StaffMember | None] = relationship(lazy="raise")


class LinkCode(Base):
    """A one-time code staff generate so a Telegram chat can be linked to an account."""

    __tablename__ = "link_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), default=None)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"), default=None)
    created_by: Mapped[str] = mapped_column(String(100), default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    used_by: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Attempts to redeem this code after it was used or expired (a leaked code being tried).
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LinkThrottle(Base):
    """Failed link attempts per Telegram user, to slow down guessing."""

    __tablename__ = "link_throttles"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)


class LinkFailureWindow(Base):
    """Failed link attempts of everybody in one clock hour (pauses linking when too many)."""

    __tablename__ = "link_failure_windows"

    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # unix h
    failures: Mapped[int] = mapped_column(Integer, default=0)


class Product(Base):
    """A catalogue item."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    aliases: Mapped[list[str]] = mapped_column(default=list)
    category: Mapped[str] = mapped_column(String(100), default="")
    unit: Mapped[str] = mapped_column(String(40), default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Warehouse(Base):
    """A place stock is held."""

    __tablename__ = "warehouses"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)


class StockLevel(Base):
    """Quantity of one product in one warehouse, as last imported."""

    __tablename__ = "stock_levels"
    __table_args__ = (UniqueConstraint("product_id", "warehouse_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id", ondelete="CASCADE"))
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Order(Base):
    """A sales order copied from the operator's ERP/DMS."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column()
    promised_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    carrier: Mapped[str] = mapped_column(String(100), default="")
    tracking_no: Mapped[str] = mapped_column(String(100), default="")

    lines: Mapped[list[OrderLine]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="OrderLine.id"
    )


class OrderLine(Base):
    """One product line of an order."""

    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    product: Mapped[Product] = relationship(lazy="raise")


class Promotion(Base):
    """A trade promotion; empty skus/regions/channels mean 'all'."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    skus: Mapped[list[str]] = mapped_column(default=list)
    regions: Mapped[list[str]] = mapped_column(default=list)
    channels: Mapped[list[str]] = mapped_column(default=list)
    min_quantity: Mapped[int] = mapped_column(Integer, default=0)
    benefit_zh: Mapped[str] = mapped_column(Text, default="")
    benefit_en: Mapped[str] = mapped_column(Text, default="")


class ProcessedUpdate(Base):
    """A Telegram update a gateway has claimed: 'processing' under a lease, 'done' once handled.

    A redelivered update is dropped when it is done, or while another attempt holds its lease;
    an attempt that crashed (lease expired, not done) is handled again.
    """

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    state: Mapped[str] = mapped_column(String(16), default="done", server_default="done")
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)


class CallbackPayload(Base):
    """A button payload longer than Telegram's 64-byte callback_data, behind a short key."""

    __tablename__ = "callback_payloads"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ChatLine(Base):
    """A recent line of a private conversation (the last few per chat), for hand-off posts."""

    __tablename__ = "chat_lines"
    __table_args__ = (Index("ix_chat_lines_chat", "chat_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    who: Mapped[str] = mapped_column(String(8))  # user | bot
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Who did what, written in the same transaction as the change itself."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


TICKET_KINDS = ("handoff", "complaint")
# pending: waiting for the staff post to be confirmed sent; open: staff have it (the bot relays
# and stays quiet); unreachable: the staff post failed for good; closed / cancelled: over.
TICKET_STATUSES = ("pending", "open", "unreachable", "closed", "cancelled")
ACTIVE_TICKET_STATUSES = ("pending", "open")


class Ticket(Base):
    """A conversation handed to a person; the bot stays quiet in that chat while it is open."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), default=None)
    kind: Mapped[str] = mapped_column(String(16), default="handoff")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    answered_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __table_args__ = (
        # One active ticket per chat, enforced by the database (double taps, two gateways).
        Index("uq_tickets_active_chat", "telegram_user_id", unique=True,
              sqlite_where=sql_text("status IN ('pending', 'open')"),
              postgresql_where=sql_text("status IN ('pending', 'open')")),
    )


class TicketMessage(Base):
    """A message the bot posted in the staff group for a ticket (staff reply to any of them)."""

    __tablename__ = "ticket_messages"
    __table_args__ = (UniqueConstraint("staff_chat_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           index=True)
    staff_chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)


class StockSubscription(Base):
    """A chat waiting to hear when an out-of-stock product is available again."""

    __tablename__ = "stock_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"),
                                            index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)

    __table_args__ = (
        # One waiting subscription per chat and product, enforced by the database.
        Index("uq_stock_subscriptions_waiting", "telegram_user_id", "product_id", unique=True,
              sqlite_where=sql_text("notified_at IS NULL"),
              postgresql_where=sql_text("notified_at IS NULL")),
    )


OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "cancelled")

# Priorities: a person waiting for an answer comes before a notice, a notice before a broadcast.
PRIORITY_INTERACTIVE = 100
PRIORITY_STAFF = 80
PRIORITY_NOTICE = 50
PRIORITY_BULK = 10


class Campaign(Base):
    """Many messages sent for one reason (an announcement, a lesson push), with one report."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    report_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    reported_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class OutboxMessage(Base):
    """A message to send, written in the same transaction as the change that caused it.

    Content is a template (rendered in `locale` when sent) or ready HTML in `text`. The
    delivery worker claims rows, sends them within Telegram's limits and records the outcome.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(32), default="message")
    priority: Mapped[int] = mapped_column(Integer, default=PRIORITY_NOTICE)
    template: Mapped[str | None] = mapped_column(String(100), default=None)
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    media_kind: Mapped[str | None] = mapped_column(String(16), default=None)  # photo|document
    media_ref: Mapped[str | None] = mapped_column(Text, default=None)  # file_id or path
    copy_from_chat_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    copy_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reply_to_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    pin: Mapped[bool] = mapped_column(Boolean, default=False)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None, unique=True)
    not_before: Mapped[dt.datetime] = mapped_column(default=utcnow)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), default=None, index=True)
    # What the message is about, for after-send effects (e.g. ticket:12 records the staff post).
    ref: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __table_args__ = (
        # The worker's claim: queued rows that are due, most urgent first.
        Index("ix_outbox_due", "status", "priority", "not_before", "id"),
    )


# --- Delivery worker (migration 0005). Appended so the classes above stay untouched. ---

# Set just before the HTTP call: a 'sending' row without it was claimed but never tried, so a
# reclaim after a crash cannot duplicate it; with it, the message may have arrived.
OutboxMessage.in_call_at = mapped_column(DateTime(timezone=True), default=None, nullable=True)
# Parts of a split message already delivered, so a retry does not resend them.
OutboxMessage.parts_sent = mapped_column(Integer, default=0, server_default="0", nullable=False)
# Chat the message was first addressed to when its group migrated to a supergroup.
OutboxMessage.migrated_from = mapped_column(BigInteger, default=None, nullable=True)
# Last progress report of a campaign (progress is reported at most every N seconds).
Campaign.progress_at = mapped_column(DateTime(timezone=True), default=None, nullable=True)


class ChatMigration(Base):
    """A group that became a supergroup: messages for `old_chat_id` go to `new_chat_id`."""

    __tablename__ = "chat_migrations"

    old_chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    new_chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    migrated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DeliveryPace(Base):
    """Shared send slots: every worker reserves its next slot here (one row per limit)."""

    __tablename__ = "delivery_pace"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Unix time (seconds) of the first free slot; floats avoid per-dialect datetime arithmetic.
    next_at: Mapped[float] = mapped_column(default=0.0)

# The reclaim of expired leases (crash recovery) scans 'sending' rows by lease end.
Index("ix_outbox_lease", OutboxMessage.status, OutboxMessage.lease_until)

# --- Dealer community (migration 0010). A dealer no longer trading is deactivated, not deleted:
# its group memberships follow (community/membership.py). dealers.csv may carry `active`.
Customer.active = mapped_column(Boolean, default=True, server_default=sql_text("true"),
                                nullable=False)

class ScheduledRun(Base):
    """One run of a scheduled job for one slot (e.g. points.daily / 2026-11-24).

    The scheduler inserts this row in the same transaction as the job's work: the unique
    (job, slot) key lets exactly one scheduler instance run a slot, and a failed run rolls
    its row back so the slot is tried again (bot/scheduler).
    """

    __tablename__ = "scheduled_runs"
    __table_args__ = (UniqueConstraint("job", "slot", name="uq_scheduled_runs_job_slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    slot: Mapped[str] = mapped_column(String(40))
    instance: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)

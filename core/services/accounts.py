"""Telegram identities, account linking with one-time codes, and per-user locale."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError, LinkCodeInvalid, LinkThrottled, NotFound
from core.i18n import LOCALES
from core.models import (
    AuditLog,
    Customer,
    LinkCode,
    LinkThrottle,
    StaffMember,
    TelegramIdentity,
    utcnow,
)
from core.settings import LinkingSection

# No 0/O, 1/I/L: codes are read aloud and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_DIGITS = "23456789"
_CODE_SHAPE = re.compile(r"^[A-Za-z2-9]{6,16}$")


@dataclass(frozen=True)
class IssuedCode:
    code: str
    account_label: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class IdentityView:
    """What adapters need to know about the person behind a chat."""

    telegram_user_id: int
    first_name: str
    locale: str
    locale_locked: bool
    customer_id: int | None = None
    customer_code: str | None = None
    customer_name: str | None = None
    customer_kind: str | None = None
    customer_region: str | None = None
    customer_channel: str | None = None
    customer_tier: str | None = None
    staff_id: int | None = None
    staff_role: str | None = None

    @property
    def is_linked(self) -> bool:
        """True when the chat belongs to a known customer or staff member."""
        return self.customer_id is not None or self.staff_id is not None


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def looks_like_link_code(text: str, length: int) -> bool:
    """A message that is only a code of the issued shape (letters and at least two digits)."""
    t = text.strip()
    if len(t) != length or not _CODE_SHAPE.match(t):
        return False
    return sum(ch in CODE_DIGITS for ch in t) >= 2


def _new_code(length: int) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
        if sum(ch in CODE_DIGITS for ch in code) >= 2:  # so ordinary words never look like codes
            return code


async def issue_link_code(
    s: AsyncSession,
    linking: LinkingSection,
    *,
    customer_code: str | None = None,
    staff_name: str | None = None,
    staff_role: str | None = None,
    created_by: str = "cli",
) -> IssuedCode:
    """Create a single-use code for a customer (by code) or a staff member (created if new)."""
    code = _new_code(linking.code_length)
    expires = utcnow() + dt.timedelta(hours=linking.code_ttl_hours)
    link = LinkCode(code_hash=_hash(code), expires_at=expires, created_by=created_by)
    if customer_code:
        customer = await s.scalar(select(Customer).where(Customer.code == customer_code))
        if customer is None:
            raise NotFound(f"no retailer or dealer with code {customer_code!r}; "
                           "import it first (python -m core.cli import …)")
        link.customer_id = customer.id
        label = f"{customer.kind} {customer.code} {customer.name}"
    else:
        if not staff_name:
            raise NotFound("give --customer CODE or --staff NAME")
        staff = await s.scalar(select(StaffMember).where(StaffMember.name == staff_name))
        if staff is None:
            staff = StaffMember(name=staff_name, role=staff_role or "customer_service")
            s.add(staff)
            await s.flush()
        link.staff_id = staff.id
        label = f"staff {staff.name} ({staff.role})"
    s.add(link)
    s.add(AuditLog(actor=created_by, action="link_code.issue", subject=label))
    return IssuedCode(code=code, account_label=label, expires_at=expires)


async def touch_identity(
    s: AsyncSession,
    telegram_user_id: int,
    first_name: str = "",
    username: str | None = None,
    language_code: str | None = None,
    detected_locale: str | None = None,
    default_locale: str = "zh-Hans",
) -> IdentityView:
    """Create or refresh the identity; follow the script the user writes in unless locked."""
    from core.i18n import locale_from_language_code

    ident = await s.get(TelegramIdentity, telegram_user_id)
    if ident is None:
        ident = TelegramIdentity(
            telegram_user_id=telegram_user_id,
            first_name=first_name[:200],
            username=username,
            locale=detected_locale or locale_from_language_code(language_code)
            or default_locale,
        )
        s.add(ident)
    else:
        now = utcnow()
        # Seen-at only needs minute precision; skipping the write keeps a turn cheap.
        if now - _aware(ident.last_seen_at) > dt.timedelta(minutes=5):
            ident.last_seen_at = now
        if first_name and ident.first_name != first_name[:200]:
            ident.first_name = first_name[:200]
        if detected_locale and not ident.locale_locked and ident.locale != detected_locale:
            ident.locale = detected_locale
    await s.flush()
    return await _view(s, ident)


async def get_identity(s: AsyncSession, telegram_user_id: int) -> IdentityView | None:
    """The identity for a Telegram user id, or None if the bot never met them."""
    ident = await s.get(TelegramIdentity, telegram_user_id)
    return None if ident is None else await _view(s, ident)


async def set_locale(s: AsyncSession, telegram_user_id: int, locale: str) -> None:
    """Pin the user's reply language (set with /language)."""
    if locale not in LOCALES:
        raise NotFound(f"unknown locale {locale!r}")
    ident = await s.get(TelegramIdentity, telegram_user_id)
    if ident is None:
        ident = TelegramIdentity(telegram_user_id=telegram_user_id)
        s.add(ident)
    ident.locale = locale
    ident.locale_locked = True


@dataclass(frozen=True)
class LinkOutcome:
    """The result of a link attempt: the linked identity, or the error to tell the user.

    A failure is a value, not an exception, so the caller's unit of work still commits the
    failure count that throttles guessing.
    """

    identity: IdentityView | None = None
    error: DomainError | None = None


async def redeem_link_code(
    s: AsyncSession, linking: LinkingSection, telegram_user_id: int, code: str
) -> LinkOutcome:
    """Link the chat to the code's account; wrong guesses are counted and throttled."""
    now = utcnow()
    throttle = await s.get(LinkThrottle, telegram_user_id)
    if throttle and throttle.locked_until and _aware(throttle.locked_until) > now:
        minutes = int((_aware(throttle.locked_until) - now).total_seconds() // 60) + 1
        return LinkOutcome(error=LinkThrottled("too many wrong codes", minutes=minutes))
    link = await s.scalar(select(LinkCode).where(LinkCode.code_hash == _hash(code)))
    valid = link is not None and link.used_at is None and _aware(link.expires_at) > now
    if valid and link is not None:
        ident = await s.get(TelegramIdentity, telegram_user_id)
        if ident is None:
            ident = TelegramIdentity(telegram_user_id=telegram_user_id)
            s.add(ident)
        ident.customer_id = link.customer_id
        ident.staff_id = link.staff_id
        ident.linked_at = now
        link.used_at = now
        link.used_by = telegram_user_id
        if throttle:
            throttle.failures = 0
            throttle.locked_until = None
        s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="account.link",
                       subject=f"customer:{link.customer_id} staff:{link.staff_id}"))
        await s.flush()
        return LinkOutcome(identity=await _view(s, ident))
    # Count the failure; the caller's unit of work commits it with the error reply.
    if throttle is None:
        throttle = LinkThrottle(telegram_user_id=telegram_user_id, failures=0)
        s.add(throttle)
    throttle.failures += 1
    locked = throttle.failures >= linking.max_failed_attempts
    if locked:
        throttle.failures = 0
        throttle.locked_until = now + dt.timedelta(minutes=linking.lockout_minutes)
        s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="account.link_locked"))
    remaining = linking.max_failed_attempts - throttle.failures
    if locked:
        return LinkOutcome(error=LinkThrottled("too many wrong codes",
                                               minutes=linking.lockout_minutes))
    return LinkOutcome(error=LinkCodeInvalid("wrong, used or expired code", remaining=remaining))


async def link_identity_directly(
    s: AsyncSession, telegram_user_id: int, first_name: str, *, customer_code: str | None = None,
    staff_name: str | None = None, staff_role: str = "trainer", locale: str | None = None,
) -> None:
    """Link a known persona without a code (sandbox demo personas only)."""
    ident = await s.get(TelegramIdentity, telegram_user_id)
    if ident is None:
        ident = TelegramIdentity(telegram_user_id=telegram_user_id, first_name=first_name,
                                 locale=locale)
        s.add(ident)
    if customer_code:
        customer = await s.scalar(select(Customer).where(Customer.code == customer_code))
        if customer is None:
            raise NotFound(f"no customer {customer_code!r}")
        ident.customer_id = customer.id
    if staff_name:
        staff = await s.scalar(select(StaffMember).where(StaffMember.name == staff_name))
        if staff is None:
            staff = StaffMember(name=staff_name, role=staff_role)
            s.add(staff)
            await s.flush()
        ident.staff_id = staff.id
    ident.linked_at = ident.linked_at or utcnow()


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def _view(s, ident: TelegramIdentity) -> IdentityView:  # type: ignore[no-untyped-def]
    customer = await s.get(Customer, ident.customer_id) if ident.customer_id else None
    staff = await s.get(StaffMember, ident.staff_id) if ident.staff_id else None
    return IdentityView(
        telegram_user_id=ident.telegram_user_id,
        first_name=ident.first_name,
        locale=ident.locale or "zh-Hans",
        locale_locked=ident.locale_locked,
        customer_id=customer.id if customer else None,
        customer_code=customer.code if customer else None,
        customer_name=customer.name if customer else None,
        customer_kind=customer.kind if customer else None,
        customer_region=customer.region if customer else None,
        customer_channel=customer.channel if customer else None,
        customer_tier=customer.tier if customer else None,
        staff_id=staff.id if staff else None,
        staff_role=staff.role if staff else None,
    )

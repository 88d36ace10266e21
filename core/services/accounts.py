"""Telegram identities, account linking with one-time codes, and per-user locale."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, and_, case, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError, LinkCodeInvalid, LinkThrottled, NotFound
from core.i18n import LOCALES
from core.identity import hash_link_code, link_code_pepper
from core.models import (
    AuditLog,
    Customer,
    LinkCode,
    LinkFailureWindow,
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


def _hash(code: str, pepper: str | None = None) -> str:
    # Keyed (HMAC-SHA256 with a pepper kept outside the database): a leaked table of 8-character
    # codes cannot be brute-forced without the pepper.
    return hash_link_code(pepper or link_code_pepper(), code)


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
    pepper: str | None = None,
) -> IssuedCode:
    """Create a single-use code for a customer (by code) or a staff member (created if new).

    `pepper` defaults to core.identity.link_code_pepper() (LINK_CODE_PEPPER or the data dir's
    pepper file); issuing and redeeming processes must use the same one.
    """
    code = _new_code(linking.code_length)
    expires = utcnow() + dt.timedelta(hours=linking.code_ttl_hours)
    link = LinkCode(code_hash=_hash(code, pepper), expires_at=expires, created_by=created_by)
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
    s: AsyncSession, linking: LinkingSection, telegram_user_id: int, code: str, *,
    pepper: str | None = None,
) -> LinkOutcome:
    """Link the chat to the code's account; wrong guesses are counted and throttled.

    Safe under concurrency (several gateway workers, SQLite or PostgreSQL):

    1. Per user: one conditional `UPDATE link_throttles SET failures = failures + 1 … WHERE
       failures < max AND not locked RETURNING failures` reserves an attempt *before* the code is
       looked at; the attempt that reaches `max_failed_attempts` locks the chat for
       `lockout_minutes`. A locked chat is refused without the code being evaluated, so at most
       `max_failed_attempts` guesses per lockout are ever evaluated, however many arrive at once.
    2. Globally: the same reservation on this clock hour's `link_failure_windows` row; at
       `max_failed_global_per_hour` linking pauses for everyone until the next hour.
    3. The code itself: one `UPDATE link_codes SET used_at, used_by WHERE code_hash AND used_at IS
       NULL AND expires_at > now` — exactly one redemption can win. Success gives both reserved
       attempts back (the user's count is reset).
    4. A guess that matches a used or expired code counts on the code (`failed_attempts`) and
       leaves an audit row; at `max_failed_per_code` such attempts a `link_code.leak_suspected`
       row flags it. (A wrong guess names no code, so guesses cannot be counted per live code;
       the per-user and global budgets bound them instead.)

    Failures are values (LinkOutcome.error), so the caller's unit of work commits the counts.
    """
    now = utcnow()
    uid = telegram_user_id
    # 1. Reserve one attempt for this chat (refused without looking at the code when locked).
    await s.execute(_insert_ignore(s, LinkThrottle, telegram_user_id=uid, failures=0))
    lock_over = and_(LinkThrottle.locked_until.is_not(None), LinkThrottle.locked_until <= now)
    next_failures = case((lock_over, 1), else_=LinkThrottle.failures + 1)
    reserved = await s.scalar(
        update(LinkThrottle)
        .where(LinkThrottle.telegram_user_id == uid,
               or_(LinkThrottle.locked_until.is_(None), lock_over),
               LinkThrottle.failures < linking.max_failed_attempts)
        .values(failures=next_failures,
                locked_until=case(
                    (next_failures >= linking.max_failed_attempts,
                     literal(now + dt.timedelta(minutes=linking.lockout_minutes),
                             DateTime(timezone=True))),
                    else_=None))
        .returning(LinkThrottle.failures)
        .execution_options(synchronize_session=False))
    if reserved is None:
        until = await s.scalar(select(LinkThrottle.locked_until)
                               .where(LinkThrottle.telegram_user_id == uid))
        if until is None:  # counted up to the limit without a lock (limit lowered): lock now
            until = now + dt.timedelta(minutes=linking.lockout_minutes)
            await s.execute(update(LinkThrottle).where(LinkThrottle.telegram_user_id == uid)
                            .values(locked_until=until)
                            .execution_options(synchronize_session=False))
        return LinkOutcome(error=LinkThrottled("too many wrong codes",
                                               minutes=_minutes_until(now, until)))
    # 2. Reserve one attempt in this hour's global budget.
    hour = int(now.timestamp() // 3600)
    await s.execute(_insert_ignore(s, LinkFailureWindow, hour=hour, failures=0))
    global_count = await s.scalar(
        update(LinkFailureWindow)
        .where(LinkFailureWindow.hour == hour,
               LinkFailureWindow.failures < linking.max_failed_global_per_hour)
        .values(failures=LinkFailureWindow.failures + 1)
        .returning(LinkFailureWindow.failures)
        .execution_options(synchronize_session=False))
    if global_count is None:
        next_hour = dt.datetime.fromtimestamp((hour + 1) * 3600, dt.UTC)
        return LinkOutcome(error=LinkThrottled("linking paused: too many wrong codes overall",
                                               minutes=_minutes_until(now, next_hour)))
    if global_count == linking.max_failed_global_per_hour:
        s.add(AuditLog(actor=f"tg:{uid}", action="account.link_paused",
                       subject=f"hour:{hour}",
                       details={"max_failed_global_per_hour":
                                linking.max_failed_global_per_hour}))
    # 3. Redeem: one conditional update, exactly one winner.
    code_hash = _hash(code, pepper)
    won = (await s.execute(
        update(LinkCode)
        .where(LinkCode.code_hash == code_hash, LinkCode.used_at.is_(None),
               LinkCode.expires_at > now)
        .values(used_at=now, used_by=uid)
        .returning(LinkCode.id, LinkCode.customer_id, LinkCode.staff_id)
        .execution_options(synchronize_session=False))).first()
    if won is not None:
        await s.execute(update(LinkThrottle).where(LinkThrottle.telegram_user_id == uid)
                        .values(failures=0, locked_until=None)
                        .execution_options(synchronize_session=False))
        await s.execute(update(LinkFailureWindow).where(LinkFailureWindow.hour == hour)
                        .values(failures=LinkFailureWindow.failures - 1)
                        .execution_options(synchronize_session=False))
        ident = await s.get(TelegramIdentity, uid)
        if ident is None:
            ident = TelegramIdentity(telegram_user_id=uid)
            s.add(ident)
        ident.customer_id = won.customer_id
        ident.staff_id = won.staff_id
        ident.linked_at = now
        s.add(AuditLog(actor=f"tg:{uid}", action="account.link",
                       subject=f"customer:{won.customer_id} staff:{won.staff_id}",
                       details={"link_code_id": won.id}))
        await s.flush()
        return LinkOutcome(identity=await _view(s, ident))
    # 4. A wrong guess. If it names a used or expired code, count that on the code.
    stale = (await s.execute(
        update(LinkCode).where(LinkCode.code_hash == code_hash)
        .values(failed_attempts=LinkCode.failed_attempts + 1)
        .returning(LinkCode.id, LinkCode.failed_attempts)
        .execution_options(synchronize_session=False))).first()
    if stale is not None:
        s.add(AuditLog(actor=f"tg:{uid}", action="link_code.stale_attempt",
                       subject=f"link_code:{stale.id}",
                       details={"failed_attempts": stale.failed_attempts}))
        if stale.failed_attempts == linking.max_failed_per_code:
            # Many chats holding one spent code: it was probably shared or leaked.
            s.add(AuditLog(actor=f"tg:{uid}", action="link_code.leak_suspected",
                           subject=f"link_code:{stale.id}",
                           details={"failed_attempts": stale.failed_attempts}))
    if reserved >= linking.max_failed_attempts:
        s.add(AuditLog(actor=f"tg:{uid}", action="account.link_locked"))
        return LinkOutcome(error=LinkThrottled("too many wrong codes",
                                               minutes=linking.lockout_minutes))
    return LinkOutcome(error=LinkCodeInvalid("wrong, used or expired code",
                                             remaining=linking.max_failed_attempts - reserved))


def _insert_ignore(s: AsyncSession, model: Any, **values: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    dialect = s.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
    return ins.values(**values).on_conflict_do_nothing()


def _minutes_until(now: dt.datetime, until: dt.datetime) -> int:
    return max(1, int((_aware(until) - now).total_seconds() // 60) + 1)


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

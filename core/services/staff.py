"""Who may do staff-only things (close tickets; later community and training moderation).

Two decisions, reusable by every adapter: `require_role` (a staff action in the staff group)
and `require_linked_role` (a staff member's own work in a private chat with the bot: writing
and pushing courses, reading training progress).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import PermissionDenied
from core.models import AuditLog, StaffMember, TelegramIdentity

STAFF_ROLES = frozenset({"admin", "customer_service", "trainer"})
TICKET_ROLES = frozenset({"admin", "customer_service"})


async def staff_linked(s: AsyncSession) -> bool:
    """True once any Telegram account is linked to a staff member with a staff role."""
    found = await s.scalar(
        select(TelegramIdentity.telegram_user_id)
        .join(StaffMember, StaffMember.id == TelegramIdentity.staff_id)
        .where(StaffMember.role.in_(STAFF_ROLES)).limit(1))
    return found is not None


async def require_role(s: AsyncSession, telegram_user_id: int, roles: Iterable[str],
                       chat_id: int | None, *, staff_chat_id: int | None,
                       action: str = "") -> str | None:
    """Allow a staff action, or raise PermissionDenied (after adding an audit row).

    Rules:
    - only in the staff group (`staff_chat_id`); never from a private chat or another group;
    - once any staff member is linked (TelegramIdentity.staff_id), only linked staff whose role
      is in `roles`; before that (a fresh install), any member of the staff group.

    Returns the staff member's role (None while nobody is linked). The audit row of a refusal
    is added to `s`: catch PermissionDenied inside the unit of work so it commits.
    """
    allowed = set(roles)
    reason = ""
    role: str | None = None
    if staff_chat_id is None or chat_id != staff_chat_id:
        reason = "not_staff_chat"
    else:
        role = await s.scalar(
            select(StaffMember.role)
            .join(TelegramIdentity, TelegramIdentity.staff_id == StaffMember.id)
            .where(TelegramIdentity.telegram_user_id == telegram_user_id))
        if role is None and await staff_linked(s):
            reason = "not_staff"
        elif role is not None and role not in allowed:
            reason = "wrong_role"
    if reason:
        s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="permission.denied",
                       subject=action[:200],
                       details={"reason": reason, "chat_id": chat_id, "role": role,
                                "roles": sorted(allowed)}))
        raise PermissionDenied(f"{action or 'staff action'} refused: {reason}", reason=reason)
    return role


async def linked_role(s: AsyncSession, telegram_user_id: int) -> str | None:
    """The staff role of a Telegram user linked to a staff member, else None."""
    return await s.scalar(
        select(StaffMember.role)
        .join(TelegramIdentity, TelegramIdentity.staff_id == StaffMember.id)
        .where(TelegramIdentity.telegram_user_id == telegram_user_id))


async def require_linked_role(s: AsyncSession, telegram_user_id: int, roles: Iterable[str], *,
                              action: str) -> str:
    """The role of a linked staff member whose role is in `roles`, or PermissionDenied after
    an audit row (catch it inside the unit of work so the row commits). Unlike `require_role`
    this holds in any chat: it is for a staff member's own work in their private chat."""
    allowed = set(roles)
    role = await linked_role(s, telegram_user_id)
    if role is not None and role in allowed:
        return role
    reason = "not_staff" if role is None else "wrong_role"
    s.add(AuditLog(actor=f"tg:{telegram_user_id}", action="permission.denied",
                   subject=action[:200],
                   details={"reason": reason, "role": role, "roles": sorted(allowed)}))
    raise PermissionDenied(f"{action} refused: {reason}", reason=reason)

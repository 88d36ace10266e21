"""Staff-only actions: only in the staff group, and once staff are linked only by them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import Database
from core.errors import PermissionDenied
from core.models import AuditLog
from core.services import accounts, staff

STAFF_CHAT = -100777


async def check(db: Database, user_id: int, chat_id: int | None) -> str | None | Exception:
    """require_role in one unit of work; a refusal is returned (its audit row committed)."""
    async with db.transaction() as s:
        try:
            return await staff.require_role(s, user_id, staff.TICKET_ROLES, chat_id,
                                            staff_chat_id=STAFF_CHAT, action="ticket:1:close")
        except PermissionDenied as exc:
            return exc


async def denials(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as s:
        rows = (await s.scalars(select(AuditLog).where(AuditLog.action == "permission.denied")
                                .order_by(AuditLog.id))).all()
    return [(r.actor, r.details["reason"]) for r in rows]


async def test_only_the_staff_chat_and_only_linked_staff_with_a_ticket_role(db: Database) -> None:
    # A fresh install (nobody linked as staff): any member of the staff group, nowhere else.
    assert await check(db, 5, STAFF_CHAT) is None
    assert isinstance(await check(db, 5, 5), PermissionDenied)          # a private chat
    assert isinstance(await check(db, 5, -100999), PermissionDenied)    # another group
    assert isinstance(await check(db, 5, None), PermissionDenied)
    async with db.transaction() as s:
        await accounts.link_identity_directly(s, 10, "客服", staff_name="客服",
                                              staff_role="customer_service")
        await accounts.link_identity_directly(s, 11, "Trainer", staff_name="T",
                                              staff_role="trainer")
    assert await check(db, 10, STAFF_CHAT) == "customer_service"
    assert isinstance(await check(db, 10, 10), PermissionDenied)        # staff, wrong chat
    refused = await check(db, 5, STAFF_CHAT)                            # now unlinked: no
    assert isinstance(refused, PermissionDenied) and refused.vars["reason"] == "not_staff"
    wrong = await check(db, 11, STAFF_CHAT)                             # trainer: wrong role
    assert isinstance(wrong, PermissionDenied) and wrong.vars["reason"] == "wrong_role"
    assert await denials(db) == [
        ("tg:5", "not_staff_chat"), ("tg:5", "not_staff_chat"), ("tg:5", "not_staff_chat"),
        ("tg:10", "not_staff_chat"), ("tg:5", "not_staff"), ("tg:11", "wrong_role")]


@pytest.mark.parametrize("role", ["admin", "customer_service"])
async def test_ticket_roles(db: Database, role: str) -> None:
    async with db.transaction() as s:
        await accounts.link_identity_directly(s, 20, "A", staff_name="A", staff_role=role)
    assert await check(db, 20, STAFF_CHAT) == role

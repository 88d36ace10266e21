"""Moderation decisions: flood, links and forwards from unverified members, the blocklist,
warnings with escalation, reports. The adapter carries them out (delete, mute, ban) and every
automatic action is logged (audit row + the group's log chat) through community.groups.log_action.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from community.groups import log_action
from community.membership import _upsert_member
from community.models import CommunityGroup, GroupMember
from core.i18n import to_simplified
from core.models import PRIORITY_STAFF, Customer, TelegramIdentity
from core.services import outbox

LINK = re.compile(r"(?i)(https?://|www\.|t\.me/|telegram\.me/|tg://)")


class FloodTracker:
    """Recent message times per (chat, user) in this process (the gateway runs updates of one
    chat in order, in one process). Old entries are dropped as they age out."""

    def __init__(self, max_keys: int = 50_000) -> None:
        self._seen: dict[tuple[int, int], deque[float]] = {}
        self.max_keys = max_keys

    def hit(self, chat_id: int, user_id: int, limit: int, seconds: int,
            now: float | None = None) -> bool:
        """Count a message; True when it is over `limit` messages in `seconds`."""
        now = time.monotonic() if now is None else now
        key = (chat_id, user_id)
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) >= self.max_keys:
                self._seen.clear()
            times = self._seen[key] = deque()
        times.append(now)
        while times and times[0] <= now - seconds:
            times.popleft()
        if len(times) > limit:
            times.clear()  # muted now: start counting afresh afterwards
            return True
        return False


def normalise(text: str) -> str:
    """Lower-case Simplified text, so 禁詞 and 禁词 compare equal."""
    return to_simplified(text or "").lower()


def blocked_word(blocklist: list[str], text: str) -> str | None:
    """The first blocklist word found in the text (either script), else None."""
    if not blocklist or not text:
        return None
    plain = normalise(text)
    for word in blocklist:
        if word and normalise(word) in plain:
            return word
    return None


async def verified_dealer(s: AsyncSession, telegram_user_id: int) -> int | None:
    """The customer id of an active dealer this user is linked to, else None."""
    return await s.scalar(
        select(Customer.id).join(TelegramIdentity, TelegramIdentity.customer_id == Customer.id)
        .where(TelegramIdentity.telegram_user_id == telegram_user_id,
               Customer.kind == "dealer", Customer.active.is_(True)))


@dataclass(frozen=True)
class Verdict:
    """What to do with a group message: action None (keep), delete, or mute."""

    action: str | None
    reason: str = ""
    detail: str = ""


def judge(group: CommunityGroup, *, text: str, has_link: bool, forwarded: bool,
          verified: bool, exempt: bool, flooding: bool) -> Verdict:
    """The moderation decision for one message (pure; no I/O)."""
    if exempt:
        return Verdict(None)
    if flooding:
        return Verdict("mute", "flood", f"{group.flood_messages}/{group.flood_seconds}s")
    word = blocked_word(list(group.blocklist or []), text)
    if word:
        return Verdict("delete", "blocklist", word)
    if not verified and (has_link or LINK.search(text or "")):
        return Verdict("delete", "link_unverified")
    if not verified and forwarded:
        return Verdict("delete", "forward_unverified")
    return Verdict(None)


async def record(s: AsyncSession, group: CommunityGroup, verdict: Verdict, user_id: int,
                 *, done: bool, error: str = "") -> None:
    """Log an automatic action (and whether Telegram let the bot do it)."""
    await log_action(s, group, f"auto_{verdict.action}", user_id=user_id,
                     reason=verdict.reason + (f" ({verdict.detail})" if verdict.detail else "")
                     + ("" if done else f" — not done: {error}"),
                     details={"done": done})


def step_for(steps: list[str], warnings: int) -> str:
    """The escalation step of the n-th warning (the last step repeats)."""
    steps = steps or ["warn"]
    return steps[min(warnings, len(steps)) - 1]


async def warn(s: AsyncSession, group: CommunityGroup, target_user_id: int, *, actor: str,
               reason: str = "") -> tuple[int, str]:
    """One more warning for a member; returns (warnings so far, step: warn|mute:N|ban)."""
    member = await s.scalar(select(GroupMember).where(
        GroupMember.group_id == group.id, GroupMember.telegram_user_id == target_user_id))
    if member is None:
        await _upsert_member(s, group.id, target_user_id, None, "member")
        member = await s.scalar(select(GroupMember).where(
            GroupMember.group_id == group.id, GroupMember.telegram_user_id == target_user_id))
    assert member is not None
    member.warnings = (member.warnings or 0) + 1
    step = step_for(list(group.warn_steps or []), member.warnings)
    if step == "ban":
        member.status = "banned"
    await log_action(s, group, "warn", user_id=target_user_id, actor=actor,
                     reason=f"{reason[:200]} → {step} (#{member.warnings})",
                     details={"warnings": member.warnings, "step": step})
    return member.warnings, step


async def report(s: AsyncSession, group: CommunityGroup, *, reporter_id: int, target_id: int,
                 message_id: int, excerpt: str, staff_chat_id: int | None) -> bool:
    """A member reported a message: alert the log chat (or staff). False: nowhere to send."""
    target = group.log_chat_id or staff_chat_id
    await log_action(s, group, "report", user_id=target_id, actor=f"tg:{reporter_id}",
                     reason="reported by a member", details={"message_id": message_id},
                     to_log_chat=False)
    if target is None:
        return False
    link = ""
    if str(group.chat_id).startswith("-100"):
        link = f"https://t.me/c/{str(group.chat_id)[4:]}/{message_id}"
    await outbox.enqueue(s, target, template="community_report_alert", locale=group.locale,
                         variables={"title": group.title, "reporter": reporter_id,
                                    "target": target_id, "excerpt": excerpt[:300],
                                    "link": link},
                         priority=PRIORITY_STAFF, kind="community_log",
                         dedupe_key=f"community:report:{group.id}:{message_id}",
                         ref=f"community:{group.id}")
    return True

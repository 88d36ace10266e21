"""Telegram's flood limits for bots, enforced per bot like api.telegram.org does.

Telegram documents three limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
about 30 messages per second overall, at most 20 messages per minute in one group, and about
one message per second in one private chat, with short bursts tolerated. A refused call gets
HTTP 429 with ``parameters.retry_after``; nothing is sent and the refusal does not count.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

JSON = dict[str, Any]

# Every method that makes a new message appear in a chat. Edits, deletes, chat actions and
# callback answers are not messages and are not limited here.
MESSAGE_METHODS = frozenset({
    "sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendVoice",
    "sendAnimation", "sendSticker", "sendVideoNote", "sendMediaGroup", "sendLocation",
    "sendVenue", "sendContact", "sendPoll", "sendDice", "sendInvoice", "sendGame",
    "sendPaidMedia", "copyMessage", "copyMessages", "forwardMessage", "forwardMessages",
})
GLOBAL_MAX = 30  # messages per GLOBAL_PERIOD per bot, over all chats
GLOBAL_PERIOD = 1.0
GROUP_MAX = 20  # messages per GROUP_PERIOD in one group, supergroup or channel
GROUP_PERIOD = 60.0
# Private chats: "avoid more than one message per second", but Telegram tolerates a short
# burst (a reply split into a few messages arrives at once). A token bucket models that: it
# holds PRIVATE_BURST sends and refills PRIVATE_RATE per second.
PRIVATE_BURST = 3
PRIVATE_RATE = 1.0
LIMIT_KINDS = ("global", "group", "private")


@dataclass
class LimitConfig:
    """The limits in force; changed through ``POST /_emulator/limits`` or ``--no-rate-limits``."""

    enabled: bool = True
    global_max: int = GLOBAL_MAX
    global_period: float = GLOBAL_PERIOD
    group_max: int = GROUP_MAX
    group_period: float = GROUP_PERIOD
    private_burst: int = PRIVATE_BURST
    private_rate: float = PRIVATE_RATE

    def to_json(self) -> JSON:
        """JSON view for the control API."""
        return asdict(self)

    def update(self, changes: JSON) -> None:
        """Apply a partial update; raises ValueError on unknown keys or out-of-range values."""
        unknown = sorted(set(changes) - set(asdict(self)))
        if unknown:
            raise ValueError(f"unknown limit settings: {', '.join(unknown)}")
        merged = {**asdict(self), **changes}
        if not isinstance(merged["enabled"], bool):
            raise ValueError("enabled must be true or false")
        try:
            new = LimitConfig(
                enabled=merged["enabled"],
                global_max=_positive_int(merged["global_max"], "global_max"),
                global_period=_positive_float(merged["global_period"], "global_period"),
                group_max=_positive_int(merged["group_max"], "group_max"),
                group_period=_positive_float(merged["group_period"], "group_period"),
                private_burst=_positive_int(merged["private_burst"], "private_burst"),
                private_rate=_positive_float(merged["private_rate"], "private_rate"),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        self.__dict__.update(asdict(new))


def _positive_int(value: Any, name: str) -> int:
    """An integer >= 1 (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1")
    return value


def _positive_float(value: Any, name: str) -> float:
    """A number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0")
    return float(value)


def _retry_after(seconds: float) -> int:
    """Telegram's retry_after: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds - 1e-9))


@dataclass
class Refusal:
    """Why a send is refused: the binding limit and how long until it would pass."""

    kind: str  # "global" | "group" | "private"
    retry_after: int


@dataclass
class _Bucket:
    """A private chat's token bucket."""

    tokens: float
    at: float


@dataclass
class RateLimiter:
    """Sliding windows (global, per group) and token buckets (per private chat), per bot.

    ``check`` refuses or allows; ``accept`` records a send that was actually made, so that a
    refused or failed call never uses up the allowance. Counters feed ``/_emulator/stats``.
    """

    config: LimitConfig = field(default_factory=LimitConfig)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget windows and counters (the configuration stays)."""
        self._global: dict[int, deque[float]] = {}
        self._group: dict[tuple[int, int], deque[float]] = {}
        self._private: dict[tuple[int, int], _Bucket] = {}
        self.accepted_per_chat: dict[int, int] = {}
        self.refused_per_chat: dict[int, int] = {}
        self.refused: dict[str, int] = dict.fromkeys(LIMIT_KINDS, 0)
        self.first_accepted_at: float | None = None
        self.last_accepted_at: float | None = None

    @staticmethod
    def _window_wait(times: deque[float], limit: int, period: float, now: float) -> float:
        """Seconds until a sliding window of ``period`` holds fewer than ``limit`` sends."""
        while times and times[0] <= now - period:
            times.popleft()
        if len(times) < limit:
            return 0.0
        # The send that must leave the window before one more fits (limits may have shrunk).
        return times[len(times) - limit] + period - now

    def _bucket(self, key: tuple[int, int], now: float) -> _Bucket:
        """The private chat's bucket, refilled up to now."""
        cfg = self.config
        bucket = self._private.get(key)
        if bucket is None:
            bucket = self._private[key] = _Bucket(float(cfg.private_burst), now)
        bucket.tokens = min(float(cfg.private_burst),
                            bucket.tokens + (now - bucket.at) * cfg.private_rate)
        bucket.at = now
        return bucket

    def check(self, bot_id: int, chat_id: int | None, chat_type: str | None) -> Refusal | None:
        """None if the bot may send to the chat now; else the refusal (and count it)."""
        if not self.config.enabled:
            return None
        cfg, now = self.config, self.clock()
        waits = {"global": self._window_wait(self._global.setdefault(bot_id, deque()),
                                             cfg.global_max, cfg.global_period, now)}
        if chat_id is not None and chat_type in ("group", "supergroup", "channel"):
            waits["group"] = self._window_wait(
                self._group.setdefault((bot_id, chat_id), deque()), cfg.group_max,
                cfg.group_period, now)
        elif chat_id is not None and chat_type == "private":
            bucket = self._bucket((bot_id, chat_id), now)
            waits["private"] = 0.0 if bucket.tokens >= 1 else \
                (1 - bucket.tokens) / cfg.private_rate
        kind, wait = max(waits.items(), key=lambda item: item[1])
        if wait <= 0:
            return None
        self.refused[kind] += 1
        if chat_id is not None:
            self.refused_per_chat[chat_id] = self.refused_per_chat.get(chat_id, 0) + 1
        return Refusal(kind, _retry_after(wait))

    def accept(self, bot_id: int, chat_id: int, chat_type: str) -> None:
        """Record a message that was sent (counted even while limits are off, for stats)."""
        now = self.clock()
        if self.config.enabled:
            self._record_window(bot_id, chat_id, chat_type, now)
        self.accepted_per_chat[chat_id] = self.accepted_per_chat.get(chat_id, 0) + 1
        wall = time.time()
        if self.first_accepted_at is None:
            self.first_accepted_at = wall
        self.last_accepted_at = wall

    def _record_window(self, bot_id: int, chat_id: int, chat_type: str, now: float) -> None:
        """Use up one send of the windows/bucket (not while limits are off: switching them
        back on then starts from a clean slate instead of a backlog)."""
        self._global.setdefault(bot_id, deque()).append(now)
        if chat_type == "private":
            self._bucket((bot_id, chat_id), now).tokens -= 1
        else:
            self._group.setdefault((bot_id, chat_id), deque()).append(now)

    def stats(self) -> JSON:
        """Counters for ``GET /_emulator/stats``."""
        accepted = sum(self.accepted_per_chat.values())
        span = None
        if self.first_accepted_at is not None and self.last_accepted_at is not None:
            span = round(self.last_accepted_at - self.first_accepted_at, 6)
        return {
            "limits": self.config.to_json(),
            "accepted": {"total": accepted,
                         "per_chat": {str(k): v for k, v in self.accepted_per_chat.items()}},
            "refused": {"total": sum(self.refused.values()), **self.refused,
                        "per_chat": {str(k): v for k, v in self.refused_per_chat.items()}},
            "first_accepted_at": self.first_accepted_at,
            "last_accepted_at": self.last_accepted_at,
            "span_seconds": span,
        }

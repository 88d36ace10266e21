"""Per-chat pacing inside one worker (the bot-wide rate is shared through the database)."""

from __future__ import annotations

import time
from collections import deque

GROUP_WINDOW_SECONDS = 60.0


def is_group(chat_id: int) -> bool:
    """Groups, supergroups and channels have negative ids; private chats positive."""
    return chat_id < 0


class ChatPacer:
    """Telegram's per-chat limits: `group_per_minute` per group, `private_per_second` per user.

    Groups use a sliding 60-second window (as Telegram counts); private chats a spacing of
    1/rate between messages (a split message's parts go together and count as several).
    A 429 for a chat pauses it for `retry_after`.
    """

    def __init__(self, group_per_minute: int, private_per_second: float,
                 clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.group_per_minute = max(1, group_per_minute)
        self.private_interval = 1.0 / max(private_per_second, 0.001)
        self.clock = clock
        self._group_sends: dict[int, deque[float]] = {}
        self._private_next: dict[int, float] = {}
        self._paused_until: dict[int, float] = {}

    def delay(self, chat_id: int, parts: int = 1) -> float:
        """Seconds until `parts` messages may go to the chat (0 = now)."""
        now = self.clock()
        wait = max(0.0, self._paused_until.get(chat_id, 0.0) - now)
        if is_group(chat_id):
            sends = self._group_sends.get(chat_id)
            if sends:
                while sends and sends[0] <= now - GROUP_WINDOW_SECONDS:
                    sends.popleft()
                over = len(sends) + parts - self.group_per_minute
                if over > 0:
                    oldest = sends[min(over, len(sends)) - 1]
                    wait = max(wait, oldest + GROUP_WINDOW_SECONDS - now)
        else:
            wait = max(wait, self._private_next.get(chat_id, 0.0) - now)
        return wait

    def within_limit(self, chat_id: int) -> bool:
        """True when the chat's own limit allows a message now (used to read a 429)."""
        return self.delay(chat_id) <= 0

    def charge(self, chat_id: int, parts: int = 1) -> None:
        """Count `parts` messages sent to the chat now."""
        now = self.clock()
        if is_group(chat_id):
            self._group_sends.setdefault(chat_id, deque()).extend([now] * parts)
        else:
            start = max(self._private_next.get(chat_id, 0.0), now)
            self._private_next[chat_id] = start + parts * self.private_interval
        if len(self._private_next) > 50_000:  # forget chats whose spacing has passed
            self._private_next = {c: t for c, t in self._private_next.items() if t > now}

    def pause(self, chat_id: int, seconds: float) -> None:
        """Telegram said: nothing to this chat for `seconds`."""
        until = self.clock() + seconds
        self._paused_until[chat_id] = max(self._paused_until.get(chat_id, 0.0), until)


class SendWindow:
    """The bot-wide sliding window, counted on the moments this worker's requests leave.

    The shared slot (store.begin_call) spaces the *reservations*; a sender woken late (busy
    event loop, slow commit, a CPU shared with Rasa) would still put its request next to the
    following, on-time ones, and Telegram counts the requests as they arrive. So just before
    each request the worker checks this window, which holds the instants requests were really
    sent: at most ``limit`` in any ``seconds``. A send that would make it ``limit + 1`` waits
    until the oldest leaves.
    """

    def __init__(self, limit: int, seconds: float, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit = max(1, limit)
        self.seconds = seconds
        self.clock = clock
        self._sent: deque[float] = deque()

    def delay(self, parts: int = 1) -> float:
        """Seconds until `parts` more requests fit in the window (0 = now)."""
        now = self.clock()
        sent = self._sent
        while sent and sent[0] <= now - self.seconds:
            sent.popleft()
        over = len(sent) + min(parts, self.limit) - self.limit
        if over <= 0:
            return 0.0
        return max(0.0, sent[over - 1] + self.seconds - now)

    def charge(self, parts: int = 1) -> None:
        """Count `parts` requests leaving now."""
        now = self.clock()
        self._sent.extend([now] * parts)
        while len(self._sent) > self.limit * 4:  # only the last window matters
            self._sent.popleft()

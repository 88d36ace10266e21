"""What the gateway's handlers share: database, settings, Rasa client, per-chat locks."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.gateway.rasa_client import RasaClient
from bot.gateway.render import CallbackStore
from core.db import Database
from core.models import ProcessedUpdate, utcnow
from core.settings import Settings


@dataclass
class Gateway:
    """Process-wide state of the bot gateway (one per Application)."""

    settings: Settings
    db: Database
    rasa: RasaClient
    callbacks: CallbackStore = field(default_factory=CallbackStore)
    background: list[asyncio.Task] = field(default_factory=list)
    _locks: OrderedDict[int, asyncio.Lock] = field(default_factory=OrderedDict)
    _seen: OrderedDict[int, None] = field(default_factory=OrderedDict)
    _transcripts: OrderedDict[int, deque[tuple[str, str]]] = field(default_factory=OrderedDict)

    def note(self, chat_id: int, who: str, text: str) -> None:
        """Remember a line of a private conversation, for the hand-off transcript."""
        lines = self._transcripts.get(chat_id)
        if lines is None:
            lines = self._transcripts[chat_id] = deque(
                maxlen=self.settings.support.transcript_lines)
            while len(self._transcripts) > 10_000:
                self._transcripts.popitem(last=False)
        lines.append((who, text[:500]))

    def transcript(self, chat_id: int) -> list[tuple[str, str]]:
        """The recent lines of a chat, oldest first."""
        return list(self._transcripts.get(chat_id) or [])

    def chat_lock(self, chat_id: int) -> asyncio.Lock:
        """One lock per chat, so one user's messages are answered in order."""
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
            while len(self._locks) > 10_000:
                old_id, old = next(iter(self._locks.items()))
                if old.locked():
                    break
                del self._locks[old_id]
        else:
            self._locks.move_to_end(chat_id)
        return lock

    async def first_delivery(self, update_id: int) -> bool:
        """Record the update id; False if it was handled before (Telegram redelivers)."""
        if update_id in self._seen:
            return False
        try:
            async with self.db.transaction() as s:
                s.add(ProcessedUpdate(update_id=update_id))
        except IntegrityError:
            return False
        self._seen[update_id] = None
        while len(self._seen) > 50_000:
            self._seen.popitem(last=False)
        return True

    async def prune_processed(self, keep_days: int = 7) -> None:
        """Forget update ids older than Telegram would ever redeliver."""
        cutoff = utcnow() - dt.timedelta(days=keep_days)
        async with self.db.transaction() as s:
            await s.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))

"""The delivery loop: claim → pace → send → record, with N senders and one claimer."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from telegram import Bot
from telegram.request import HTTPXRequest

from bot.delivery import reports, store
from bot.delivery.hooks import load_hook_modules
from bot.delivery.pacing import ChatPacer, SendWindow
from bot.delivery.sender import part_count, send
from core.db import Database
from core.models import OutboxMessage, utcnow
from core.settings import Settings

log = logging.getLogger("bot.delivery")

# Direct gateway replies share the bot's 30 msg/s with the worker; this much is left to them.
GATEWAY_HEADROOM_PER_SECOND = 2.0
# Senders in parallel: covers the HTTP round trip at full rate, and bounds what a kill -9 can
# repeat (only rows in a call may be sent twice).
DEFAULT_CONCURRENCY = 8
PROGRESS_SECONDS = 60.0
# A row whose chat must wait longer than this goes back to the queue instead of holding a sender.
DEFER_SECONDS = 0.5
DB_RETRY_MAX_SECONDS = 5.0
# The send-time window (pacing.SendWindow): Telegram's one second plus this margin, for the
# clocks' granularity and the request reaching Telegram a little later than it left here.
SEND_WINDOW_SECONDS = 1.0
SEND_WINDOW_MARGIN_SECONDS = 0.01
# A bot-wide 429 (the chat was within its own limit): the message waits its retry_after, the
# shared pace row is pushed this far ahead (every worker skips a few slots, the window drains)
# and this worker sends at SLOWDOWN_FACTOR of its rate for SLOWDOWN_SECONDS.
BOT_WIDE_429_PAUSE_SECONDS = 0.25
SLOWDOWN_FACTOR = 0.9
SLOWDOWN_SECONDS = 3.0
# A retry_after longer than this is a real flood wait, not a full window: every worker waits.
LONG_FLOOD_WAIT_SECONDS = 5.0


def default_worker_id() -> str:
    """host:pid, unique among running workers."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_bot(settings: Settings, pool: int) -> Bot:
    """A plain Bot (no PTB rate limiter: the worker paces and honours 429 itself)."""
    tg = settings.telegram
    request = HTTPXRequest(connection_pool_size=pool, connect_timeout=tg.connect_timeout_seconds,
                           read_timeout=tg.read_timeout_seconds,
                           write_timeout=tg.read_timeout_seconds, pool_timeout=30)
    return Bot(settings.bot_token, base_url=settings.bot_api_base_url,
               base_file_url=settings.bot_file_base_url, request=request)


@dataclass(order=True)
class _Item:
    sort: tuple[int, int]
    row: OutboxMessage = field(compare=False)
    lease_end: float = field(compare=False, default=0.0)


@dataclass
class Stats:
    """Counters for the log and the benchmark."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    throttled: int = 0
    deferred: int = 0
    migrated: int = 0


class Worker:
    """One delivery worker process (several may run against one database)."""

    def __init__(self, settings: Settings, db: Database, bot: Bot | None = None, *,
                 worker_id: str | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 headroom: float = GATEWAY_HEADROOM_PER_SECOND,
                 progress_seconds: float = PROGRESS_SECONDS) -> None:
        self.settings = settings
        self.cfg = settings.delivery
        self.db = db
        self.bot = bot or make_bot(settings, concurrency + 4)
        self.own_bot = bot is None
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = max(1, concurrency)
        self.rate = max(0.5, self.cfg.global_per_second - headroom)
        self.progress_seconds = progress_seconds
        self.locale = settings.app.default_locale
        self.pacer = ChatPacer(self.cfg.group_per_minute, self.cfg.private_per_second)
        # The worker's share of the bot's window, counted when requests leave (not reserved).
        self.window = SendWindow(max(1, int(self.rate + 1e-9)),
                                 SEND_WINDOW_SECONDS + SEND_WINDOW_MARGIN_SECONDS)
        self.slow_until = 0.0  # monotonic; after a bot-wide 429
        self.queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self.queued_ids: set[int] = set()
        self.stop_event = asyncio.Event()
        self.stats = Stats()
        self.migrations: dict[int, int] = {}
        # One second of sending, so a claim never holds much that is not being sent.
        # A buffered row this close to its lease end goes back rather than risk a double send.
        self.lease_margin = min(5.0, self.cfg.lease_seconds / 4)
        self.buffer_target = max(self.concurrency, min(self.cfg.batch_size, int(self.rate) + 1))

    # -- running -------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Send until stop() is called; the database or Telegram being down only pauses it."""
        load_hook_modules()
        if self.own_bot:
            await self._start_bot()
        senders = [asyncio.create_task(self._sender(i)) for i in range(self.concurrency)]
        claimer = asyncio.create_task(self._claimer())
        log.info("delivery ready: worker %s, %.1f msg/s, %d senders", self.worker_id,
                 self.rate, self.concurrency)
        print(f"delivery worker ready: {self.worker_id} ({self.rate:g} msg/s, "
              f"{self.concurrency} senders)", flush=True)
        if ready is not None:
            ready.set()
        try:
            await self.stop_event.wait()
        finally:
            claimer.cancel()
            await asyncio.gather(claimer, return_exceptions=True)
            # Untried rows go back at once; senders in a call finish and record it.
            await self._release_buffer()
            for _ in senders:
                self.queue.put_nowait(_Item((1 << 30, 0), None))  # type: ignore[arg-type]
            await asyncio.wait(senders, timeout=self.settings.telegram.read_timeout_seconds + 5)
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            if self.own_bot:
                await self.bot.shutdown()

    def stop(self) -> None:
        """Ask the worker to finish what is in a call and exit."""
        self.stop_event.set()

    async def _start_bot(self) -> None:
        delay = 0.5
        while not self.stop_event.is_set():
            try:
                await self.bot.initialize()
                return
            except Exception as exc:  # Telegram/emulator not reachable yet
                log.warning("Bot API not reachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, DB_RETRY_MAX_SECONDS)

    # -- claiming ------------------------------------------------------------------------

    async def _claimer(self) -> None:
        lease = self.cfg.lease_seconds
        next_reclaim = 0.0
        next_report = 0.0
        failures = 0
        while not self.stop_event.is_set():
            got = 0
            try:
                now = time.monotonic()
                if now >= next_reclaim:
                    next_reclaim = now + max(1.0, lease / 4)
                    reclaimed, in_call = await store.reclaim_expired(self.db)
                    if reclaimed:
                        log.warning("reclaimed %d rows whose lease ran out (%d were in a call "
                                    "and may arrive twice)", reclaimed, in_call)
                # A person waiting is claimed whatever the buffer holds.
                urgent = await store.claim(self.db, self.worker_id, self.cfg.batch_size,
                                           lease, urgent_only=True)
                room = self.buffer_target - self.queue.qsize() - len(urgent)
                rows = urgent + await store.claim(self.db, self.worker_id, room, lease)
                deadline = time.monotonic() + lease
                for row in rows:
                    if row.id in self.queued_ids:
                        continue
                    self.queued_ids.add(row.id)
                    self.queue.put_nowait(_Item((-row.priority, row.id), row, deadline))
                got = len(rows)
                if now >= next_report:
                    next_report = now + 1.0
                    for line in await reports.tick(self.db, self.progress_seconds, self.locale):
                        log.info("%s", line)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database unreachable or locked: wait and try again
                failures += 1
                wait = min(DB_RETRY_MAX_SECONDS, 0.25 * 2 ** failures)
                log.warning("claim failed (%s: %s); retrying in %.1f s", type(exc).__name__,
                            str(exc).splitlines()[0][:200], wait)
                await self._sleep(wait)
                continue
            busy = got > 0 or self.queue.qsize() > 0
            await self._sleep(0.1 if busy else self.cfg.poll_seconds)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop_event.wait(), seconds)
        except TimeoutError:
            pass

    async def _release_buffer(self) -> None:
        ids = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if item.row is not None:
                ids.append(item.row.id)
        self.queued_ids.difference_update(ids)
        if ids:
            try:
                await store.release(self.db, ids, self.worker_id)
            except Exception:  # their leases run out and another worker takes them
                log.warning("could not release %d claimed rows", len(ids), exc_info=True)

    # -- sending -------------------------------------------------------------------------

    async def _sender(self, index: int) -> None:
        while True:
            item = await self.queue.get()
            if item.row is None:
                return
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # never lose a sender; the row's lease brings it back
                log.exception("sender %d: outbox %s", index, item.row.id)
            finally:
                self.queued_ids.discard(item.row.id)

    async def _deliver(self, item: _Item) -> None:
        row = item.row
        chat_id = self.migrations.get(row.chat_id, row.chat_id)
        parts = part_count(row, self.locale)
        wait = self.pacer.delay(chat_id, parts)
        if wait > DEFER_SECONDS or time.monotonic() > item.lease_end - self.lease_margin:
            # The chat must wait (or the lease is nearly over): back to the queue, no sender held.
            self.stats.deferred += 1
            await self._db_retry(store.release, self.db, [row.id], self.worker_id,
                                 utcnow() + dt.timedelta(seconds=wait))
            return
        if wait > 0:
            await asyncio.sleep(wait)
        chat_ready = self.pacer.delay(chat_id, 1) <= 0
        slot = await self._db_retry(store.begin_call, self.db, row.id, self.worker_id,
                                    parts, self.current_rate())
        if slot is None:
            return  # cancelled, or reclaimed by another worker after our lease ran out
        await self._wait_for_slot(slot, row)
        # Paced on the moment the request leaves, not the moment the slot was reserved: a
        # sender woken late must not join the next ones in Telegram's one-second window.
        # No await between this check and send(): nothing else can take the room.
        wait = self.window.delay(parts)
        while wait > 0:
            await asyncio.sleep(wait)
            wait = self.window.delay(parts)
        self.window.charge(parts)
        self.pacer.charge(chat_id, parts)
        outcome = await send(self.bot, row, chat_id, self.locale)
        if outcome.kind == "throttled":
            await self._throttled(chat_id, outcome.retry_after, bot_wide=chat_ready)
        elif outcome.kind == "migrated" and outcome.new_chat_id is not None:
            self.stats.migrated += 1
            self.migrations[row.chat_id] = outcome.new_chat_id
            log.info("chat %s migrated to %s; re-sending", chat_id, outcome.new_chat_id)
        if chat_id != row.chat_id:  # sent under the supergroup id a migration named
            outcome.sent_to = chat_id
        status = await self._record(row, outcome)
        if status == "sent":
            self.stats.sent += 1
        elif status == "failed":
            self.stats.failed += 1
            log.info("outbox %s to %s failed: %s", row.id, chat_id, outcome.error)
        elif outcome.kind == "retry":
            self.stats.retried += 1
            log.info("outbox %s to %s: %s; will retry", row.id, chat_id, outcome.error)

    def current_rate(self) -> float:
        """Messages/s this worker reserves slots at (lower for a while after a 429)."""
        if time.monotonic() < self.slow_until:
            return self.rate * SLOWDOWN_FACTOR
        return self.rate

    async def _wait_for_slot(self, slot: float, row: OutboxMessage) -> None:
        """Sleep until the reserved slot (Unix time) starts."""
        pause = slot - time.time()
        if pause > 0:
            await asyncio.sleep(pause)

    async def _throttled(self, chat_id: int, retry_after: float, bot_wide: bool) -> None:
        """A 429: the chat (and the message, re-queued by record) waits `retry_after`.

        When the chat was within its own limit the 429 was the bot-wide window: every worker
        skips a few slots and this one slows down for a while, instead of all of them stopping
        for the rounded-up second(s) a full window is reported as. A long retry_after is a
        real flood wait and stops every worker for all of it.
        """
        self.stats.throttled += 1
        self.pacer.pause(chat_id, retry_after)
        if bot_wide:
            if retry_after > LONG_FLOOD_WAIT_SECONDS:
                await self._db_retry(store.pause_all, self.db, retry_after)
            else:
                await self._db_retry(store.pause_all, self.db,
                                     min(retry_after, BOT_WIDE_429_PAUSE_SECONDS))
                self.slow_until = time.monotonic() + max(SLOWDOWN_SECONDS, retry_after)
        log.info("429 for chat %s: it waits %.1f s%s", chat_id, retry_after,
                 " (bot-wide: slowing down)" if bot_wide else "")

    async def _record(self, row: OutboxMessage, outcome: store.Outcome) -> str:
        # The message may have arrived: this write is retried until the database takes it,
        # or a re-send after the lease would be a duplicate.
        return await self._db_retry(store.record, self.db, row, self.worker_id, outcome,
                                    self.cfg.max_attempts, self.cfg.backoff_seconds,
                                    forever=True)

    async def _db_retry(self, fn, *args, forever: bool = False):  # type: ignore[no-untyped-def]
        delay = 0.25
        attempt = 0
        while True:
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                if not forever and self.stop_event.is_set() and attempt > 3:
                    raise
                log.warning("database call %s failed (%s: %s); retrying in %.1f s",
                            getattr(fn, "__name__", fn), type(exc).__name__,
                            str(exc).splitlines()[0][:200], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, DB_RETRY_MAX_SECONDS)

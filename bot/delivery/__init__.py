"""The delivery worker: the one safe way to send many messages (`python -m bot.delivery`).

Services write rows to the outbox (core/services/outbox.py) in the transaction that caused
them; this worker sends them through the Bot API and records each outcome exactly once.

Claiming. Due rows (``status='queued' AND not_before <= now``), highest priority first, then
id, are claimed in small batches: ``status='sending'``, ``claimed_by=<worker id>``,
``lease_until=now+lease_seconds``. On PostgreSQL the claim is ``UPDATE … WHERE id IN (SELECT …
FOR UPDATE SKIP LOCKED)`` so several workers share the outbox without taking the same row; on
SQLite (one writer at a time) the ``AND status='queued'`` guard of the same UPDATE does that.
Urgent rows (priority above PRIORITY_BULK) are claimed on every poll whatever is buffered, and
the local buffer is a priority queue, so a person waiting overtakes a broadcast mid-campaign.
The buffer holds about one second of sending, so little is ever claimed but untried.

Pacing. Telegram allows ~30 messages/s per bot, 20/min per group and ~1/s per private chat.
* Global: every worker reserves its send slot from one shared row (``delivery_pace``): in the
  transaction that marks the row as in the HTTP call it locks the pace row, reads the clock
  (after the lock: a slot handed out for a clock read before a wait on the lock would already
  be in the past) and sets ``next_at = max(next_at, now) + 1/rate``. Workers together
  therefore never reserve beyond the rate, however many run (tested with two on PostgreSQL).
* Send time: Telegram counts requests as they arrive, not as slots were reserved. A sender
  woken late (busy event loop, slow commit, a CPU shared with Rasa) would otherwise leave
  together with the next, on-time ones and push a one-second window past 30: that, with
  8 senders, was the cause of the campaign's 429s. So each worker also keeps a sliding window of
  the moments its requests really left (``pacing.SendWindow``): at most ``floor(rate)`` (28)
  in any 1.01 s (one second plus a margin for clock granularity and transit), checked and
  charged right before the HTTP call with no await in between (per worker; across workers
  the shared slots bound the rate).
* Headroom: the gateway answers people directly (not through the outbox) with the same bot, so
  the worker's rate is ``global_per_second - GATEWAY_HEADROOM_PER_SECOND`` (30 - 2 = 28/s;
  ``--headroom`` changes it). Interactive replies always find a free slot.
* Per chat: a local pacer per worker (a sliding 60-s window of ``group_per_minute`` for groups,
  ``private_per_second`` spacing for private chats). A row whose chat is not ready goes back to
  the queue with ``not_before`` set, so it does not hold a sender. Two workers may both send to
  one chat; a 429 then slows them down (accepted: one message per chat is the common case).
* 429: ``retry_after`` is honoured for the chat it was about and is not counted as an
  attempt: the chat is paused and the message re-queued for that long. When the chat was
  within its own limit the 429 was the bot-wide window: the shared pace row is pushed 0.25 s
  ahead (every worker skips a few slots while the window drains) and the worker that got it
  sends at 90 % of its rate for 3 s, instead of every worker stopping for the rounded-up
  second a full window is reported as. A retry_after over 5 s is a real flood wait: every
  worker stops for all of it.

Failures. 5xx, timeouts and network errors are retried with exponential backoff
(``backoff_seconds * 2**(attempt-1)``) up to ``max_attempts``, then ``failed`` with the last
reason. Permanent failures are recorded at once with a reason: ``blocked``, ``kicked``,
``chat_not_found``, ``deleted``, ``forbidden: …``, ``bad_request: …``. A group that became a
supergroup (ChatMigrated) is recorded in ``chat_migrations`` (``outbox.on_migrated`` hooks run,
queued rows for the old id move), and the message is re-sent to the new id at once.

Outcomes. Each row ends exactly once as ``sent`` (telegram_message_id, sent_at), ``failed``
(error) or ``cancelled``; the after-send / after-failure hooks registered with
``outbox.on_sent(kind)`` / ``outbox.on_failed(kind)`` run in the transaction that records it.
The modules that register hooks are imported from one list, ``hooks.HOOK_MODULES``.

Crash policy. The Bot API has no idempotency key: a message in an HTTP call when the worker
dies may or may not have arrived. So: at-least-once for the rows in the call, exact for the
rest. Just before the call the row gets ``in_call_at`` (in the slot-reservation transaction);
after the call its outcome is written, retried until the database answers. After ``kill -9``
the expired leases are reclaimed (``status='sending' AND lease_until < now`` → queued): rows
without ``in_call_at`` were never tried (no duplicate possible); rows with it are sent again
(at most ``--concurrency`` rows, the only possible duplicates). Nothing confirmed is re-sent,
nothing is lost. The database being briefly unreachable only pauses the worker.

Campaigns. While a campaign runs, a progress report goes to its ``report_chat_id`` at most
every ``--progress-seconds``; when no message of it is open, the final report is queued once:
``UPDATE campaigns SET reported_at=now WHERE id=… AND reported_at IS NULL`` decides which
worker writes it, and a dedupe key backs that up. Reports go through the outbox (PRIORITY_STAFF).
"""

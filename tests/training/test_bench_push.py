"""The push benchmark's core on 30 dealers: a real push (training.push) through the emulator,
gateway and worker processes, the counting proven against the emulator's own record — a dealer
who blocked the bot is a loss, a lesson sent twice to a chat is a duplicate — and the quiz
walk the benchmark times (Done → Start the quiz → an answer the database records)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.emulated import start_worker, stop, wait_done
from benchmarks.push import (
    DEALER_BASE,
    answer_idle,
    answers_recorded,
    count,
    prepared,
    push_lesson,
    quiz_takers,
    running_system,
    tally,
)

DEALERS = 30


async def test_push_counts_come_from_the_emulator(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'push.db'}"
    async with running_system(tmp_path / "sys", url, gateway=True) as h:
        db, url = await prepared(h, DEALERS)
        blocked = DEALER_BASE + 7
        await h.control("POST", f"users/{blocked}/block")
        worker = await start_worker(url, h.emulator, "t", env=h.env)
        try:
            cid = await push_lesson(db)
            await wait_done(db, cid, DEALERS, timeout=60)
            got, entries = await count(db, h.emulator, cid)
            # Every dealer had a row queued; the one who blocked the bot never got it.
            assert (got.queued, got.received, got.duplicates, got.losses, got.unexpected) \
                == (DEALERS, DEALERS - 1, 0, 1, 0), got
            assert blocked not in {e["chat_id"] for e in entries}
            assert got.first_at is not None and got.last_at is not None
            assert got.last_at - got.first_at > (DEALERS - 2) / 30  # Telegram's 30/s held

            # The bot sends one dealer the same lesson again (as a repeated send would).
            lesson = entries[3]["message"]
            sent = await h.http.post(
                f"{h.settings.bot_api_base_url}{h.settings.bot_token}/sendPhoto",
                json={"chat_id": lesson["chat"]["id"], "photo": lesson["photo"][-1]["file_id"],
                      "caption": lesson.get("caption", ""),
                      "reply_markup": lesson["reply_markup"]})
            assert sent.status == 200, await sent.text()
            again, _ = await count(db, h.emulator, cid)
            assert (again.duplicates, again.losses, again.received) == (1, 1, DEALERS), again

            times, following = await answer_idle(h, await quiz_takers(h, entries, 3))
            assert len(times) == 3 and all(0 < ms < 5000 for ms in times), times
            assert await answers_recorded(db) == 3
            assert all(q.data.startswith("trn:ans:") for q in following)  # the next questions
        finally:
            await stop(worker)
            await db.dispose()


def test_tally_per_chat() -> None:
    entries = [{"chat_id": c, "time": t} for c, t in ((1, 10.0), (1, 11.0), (3, 12.0))]
    got = tally({1: 1, 2: 1}, entries)
    assert (got.duplicates, got.losses, got.unexpected, got.received) == (1, 1, 1, 3)
    assert (got.first_at, got.last_at) == (10.0, 12.0)

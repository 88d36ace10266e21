# ruff: noqa: E501 - the Markdown report template keeps its table rows on one line each
"""Delivery worker benchmark: a campaign to 500 groups + 2,000 private chats through the emulator
with Telegram's flood limits ON, while a person chats with the assistant.

Usage: flock /tmp/rasa-train.lock .venv/bin/python benchmarks/delivery.py [--quick]
Writes benchmarks/results/delivery.json and delivery.md.

Three runs of the same campaign mix:
1. the full system (sandbox.harness.start_system: emulator, actions, Rasa, gateway, worker);
   rate, duplicates and losses are counted from the emulator's per-chat log, and a persona's
   reply time is measured while the campaign runs (interactive_p95_ms);
2. a worker process killed with SIGKILL at a random moment and restarted (SQLite);
3. two worker processes started at once on PostgreSQL (a fresh database on 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.emulated import (  # noqa: E402
    RESULTS,
    accepted,
    dup_loss,
    log,
    postgres_database,
    refused,
    register_chats,
    start_worker,
    stop,
    wait_done,
)
from benchmarks.latency import MESSAGES, summary  # noqa: E402
from bot.delivery import store  # noqa: E402
from core.db import Database  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import PRIORITY_BULK  # noqa: E402
from core.services import outbox  # noqa: E402
from sandbox.emulator import running_emulator  # noqa: E402
from sandbox.harness import start_system, stop_system  # noqa: E402

ALLOWED_PER_S = 30.0  # Telegram's global limit; one message per chat never meets the others
ASK_EVERY_S = 2.0  # the persona's pace during the full run


def chat_ids(groups: int, privates: int) -> list[int]:
    """The campaign's audience: supergroups (-100…) and private chats."""
    return [-1009_000_000 - i for i in range(groups)] + [5_000_000 + i for i in range(privates)]


async def queue_campaign(db: Database, chats: list[int], title: str) -> int:
    """One bulk message per chat, in one transaction (as a broadcast service would)."""
    async with db.transaction() as s:
        cid = await outbox.start_campaign(s, "promo", title, "benchmark")
        for chat in chats:
            await outbox.enqueue(s, chat, template="back_in_stock", locale="en",
                                 variables={"sku": "BV-4001", "name_zh": "冰红茶",
                                            "name_en": "Iced Tea", "total": 120},
                                 priority=PRIORITY_BULK, campaign_id=cid)
    return cid


# -- run 1: the full system ------------------------------------------------------------------

async def run_full(chats: list[int], tmp: Path) -> dict:
    """Campaign through the whole system, with a persona chatting meanwhile."""
    log("starting the full system (emulator, actions, Rasa, gateway, worker) …")
    system = await start_system(tmp / "full", log=lambda m: log("  " + m))
    try:
        await register_chats(system.emulator, chats)
        db = Database(system.settings.resolved_database_url())
        try:
            await system.say("dealer", "你好")  # warm-up
            cid = await queue_campaign(db, chats, "bench")
            t0 = time.monotonic()  # from the commit of the campaign to its last outcome
            log(f"campaign {cid}: {len(chats)} messages queued")
            done = asyncio.Event()
            latencies: list[float] = []
            unanswered: list[str] = []

            async def persona() -> None:
                # A question every ASK_EVERY_S seconds; the time is from the update's injection
                # to the bot's first reply in the emulator's sent log (emulator clock).
                user = system.user("dealer")
                i = 0
                while not done.is_set():
                    after = await system.last_seq()
                    start = time.time()
                    await system.control("POST", "updates/message",
                                         {"user": user, "text": MESSAGES[i % len(MESSAGES)]})
                    got = await system.control(
                        "GET", f"sent?chat_id={user['id']}&after={after}&timeout=20")
                    if got:
                        latencies.append((float(got[0]["time"]) - start) * 1000)
                    else:
                        unanswered.append(MESSAGES[i % len(MESSAGES)])
                    i += 1
                    await asyncio.sleep(max(0.0, start + ASK_EVERY_S - time.time()))

            chatting = asyncio.create_task(persona())
            await wait_done(db, cid, len(chats), timeout=len(chats) / 10 + 120)
            seconds = time.monotonic() - t0
            done.set()
            await chatting
        finally:
            await db.dispose()
        got = await accepted(system.emulator)
        throttled = await refused(system.emulator)
    finally:
        await stop_system(system)
    dups, losses = dup_loss(got, chats)
    return {"seconds": round(seconds, 2), "achieved_per_s": round(len(chats) / seconds, 2),
            "duplicates": dups, "losses": losses, "campaign_429s": throttled,
            "interactive": summary(latencies), "interactive_unanswered": len(unanswered)}


async def run_rate(chats: list[int], tmp: Path) -> dict:
    """Without Rasa: the campaign through a worker process, with interactive outbox messages
    (PRIORITY_INTERACTIVE) queued meanwhile; their queue-to-arrival time stands in for a reply."""
    from core.models import PRIORITY_INTERACTIVE

    url = f"sqlite+aiosqlite:///{tmp / 'rate.db'}"
    db = Database(url)
    await upgrade(db.engine)
    person = 4_999_999
    try:
        async with running_emulator() as emu:
            await register_chats(emu.url, [*chats, person])
            worker = await start_worker(url, emu.url, "rate", lease=60)
            try:
                cid = await queue_campaign(db, chats, "rate")
                t0 = time.monotonic()  # from the commit of the campaign to its last outcome
                latencies: list[float] = []
                done = asyncio.Event()

                async def persona() -> None:
                    async with aiohttp.ClientSession() as http:
                        while not done.is_set():
                            async with http.get(f"{emu.url}/_emulator/health") as resp:
                                after = int((await resp.json())["last_seq"])
                            start = time.time()
                            async with db.transaction() as s:
                                await outbox.enqueue(s, person, text="your answer",
                                                     priority=PRIORITY_INTERACTIVE)
                            async with http.get(f"{emu.url}/_emulator/sent?chat_id={person}"
                                                f"&after={after}&timeout=20") as resp:
                                got = await resp.json()
                            if got:
                                latencies.append((float(got[0]["time"]) - start) * 1000)
                            await asyncio.sleep(1.5)

                chatting = asyncio.create_task(persona())
                await wait_done(db, cid, len(chats), timeout=len(chats) / 10 + 120)
                seconds = time.monotonic() - t0
                done.set()
                await chatting
            finally:
                await stop(worker)
            got = await accepted(emu.url)
            throttled = await refused(emu.url)
    finally:
        await db.dispose()
    dups, losses = dup_loss(got, chats)
    return {"seconds": round(seconds, 2), "achieved_per_s": round(len(chats) / seconds, 2),
            "duplicates": dups, "losses": losses, "campaign_429s": throttled,
            "interactive": summary(latencies),
            "interactive_source": "outbox PRIORITY_INTERACTIVE message, queue to arrival "
                                  "(no Rasa in this run)"}


async def run_restart(chats: list[int], tmp: Path) -> dict:
    """Kill -9 the worker at a random moment of the campaign, restart it, count what arrived."""
    url = f"sqlite+aiosqlite:///{tmp / 'restart.db'}"
    db = Database(url)
    await upgrade(db.engine)
    try:
        async with running_emulator() as emu:
            await register_chats(emu.url, chats)
            cid = await queue_campaign(db, chats, "restart")
            first = await start_worker(url, emu.url, "first")
            expected = len(chats) / 28
            kill_at = random.uniform(0.15, 0.7) * expected
            await asyncio.sleep(kill_at)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            in_flight = await store.in_call_count(db)
            log(f"worker killed -9 after {kill_at:.1f} s; {in_flight} message(s) were in a call")
            second = await start_worker(url, emu.url, "second")
            try:
                await wait_done(db, cid, len(chats), timeout=expected * 2 + 120)
            finally:
                await stop(second)
            got = await accepted(emu.url)
    finally:
        await db.dispose()
    dups, losses = dup_loss(got, chats)
    return {"restart_in_flight": in_flight, "restart_duplicates": dups,
            "restart_losses": losses, "restart_killed_after_s": round(kill_at, 1)}


async def run_two_workers(chats: list[int]) -> dict:
    """Two worker processes started at once on PostgreSQL share one outbox."""
    async with postgres_database("bench_delivery") as url:
        db = Database(url)
        try:
            await upgrade(db.engine)
            async with running_emulator() as emu:
                await register_chats(emu.url, chats)
                cid = await queue_campaign(db, chats, "two workers")
                t0 = time.monotonic()
                workers = await asyncio.gather(start_worker(url, emu.url, "w1"),
                                               start_worker(url, emu.url, "w2"))
                try:
                    await wait_done(db, cid, len(chats), timeout=len(chats) / 10 + 120)
                finally:
                    await asyncio.gather(*(stop(w) for w in workers))
                seconds = time.monotonic() - t0
                got = await accepted(emu.url)
                throttled = await refused(emu.url)
                async with db.transaction() as s:
                    per_worker = (await s.execute(text(
                        "SELECT count(*) FROM outbox WHERE status = 'sent'"))).scalar()
        finally:
            await db.dispose()
    dups, losses = dup_loss(got, chats)
    return {"two_workers_duplicates": dups, "two_workers_losses": losses,
            "two_workers_per_s": round(len(chats) / seconds, 2), "two_workers_sent": per_worker,
            "two_workers_429s": throttled}


def write_results(result: dict) -> None:
    """delivery.json and a short delivery.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "delivery.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    r = result
    md = f"""# Delivery benchmark

{r['groups']} groups + {r['privates']} private chats, one message each, through the emulator with
Telegram's flood limits on (30/s per bot, 20/min per group, ~1/s per private chat){' — quick run' if r['quick'] else ''}.
The worker paces itself at {r['worker_rate_per_s']:g}/s, leaving {r['headroom_per_s']:g}/s of the bot's 30/s to the
gateway's direct replies: shared send slots, plus a per-worker window on the moments requests
really leave (at most {int(r['worker_rate_per_s'])} in any 1.01 s), so senders woken late do not bunch.

| metric | value | floor / target |
|---|---|---|
| messages | {r['messages']} | |
| seconds | {r['seconds']} | |
| achieved_per_s | {r['achieved_per_s']} | |
| allowed_per_s | {r['allowed_per_s']} | |
| rate_ratio | {r['rate_ratio']} | ≥ 0.90 |
| duplicates / losses | {r['duplicates']} / {r['losses']} | 0 / 0 |
| emulator 429s during the campaign | {r.get('campaign_429s', 'n/a')} | rare |
| interactive_p95_ms | {r['interactive_p95_ms']} | ≤ 1000 |
| interactive p50 ms / replies measured / unanswered | {r['interactive']['p50']} / {r['interactive']['n']} / {r.get('interactive_unanswered', 0)} | |
| restart: in flight at kill -9 / duplicates / losses | {r['restart_in_flight']} / {r['restart_duplicates']} / {r['restart_losses']} | dup ≤ in flight, 0 lost |
| two workers on PostgreSQL: duplicates / losses / 429s | {r['two_workers_duplicates']} / {r['two_workers_losses']} / {r.get('two_workers_429s', 'n/a')} | 0 / 0 / rare |

Interactive: {r.get('interactive_source', '')}.

Run: `make bench-delivery` (`--quick` for a smaller mix). Generated {r['generated_at']}.
"""
    (RESULTS / "delivery.md").write_text(md, encoding="utf-8")


async def main_async(args: argparse.Namespace) -> int:
    """Run the three parts and write the results."""
    groups, privates = (50, 200) if args.quick else (500, 2000)
    chats = chat_ids(groups, privates)
    from bot.delivery.worker import GATEWAY_HEADROOM_PER_SECOND
    result: dict = {"quick": args.quick, "groups": groups, "privates": privates,
                    "messages": len(chats), "allowed_per_s": ALLOWED_PER_S,
                    "headroom_per_s": GATEWAY_HEADROOM_PER_SECOND,
                    "worker_rate_per_s": ALLOWED_PER_S - GATEWAY_HEADROOM_PER_SECOND}
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as d:
        tmp = Path(d)
        if "full" in args.parts:
            full = await run_full(chats, tmp)
            result.update(full)
            result["rate_ratio"] = round(full["achieved_per_s"] / ALLOWED_PER_S, 3)
            result["interactive_p95_ms"] = full["interactive"]["p95"]
            result["interactive_p50_ms"] = full["interactive"]["p50"]
            result["interactive_n"] = full["interactive"]["n"]
            result["interactive_source"] = (
                f"persona chatting with the assistant (gateway + Rasa) every {ASK_EVERY_S:g} s "
                "during the campaign: update injected → first reply in the emulator's log")
            log(f"full: {full}")
        if "rate" in args.parts and "full" not in args.parts:
            rate = await run_rate(chats, tmp)
            result.update(rate)
            result["rate_ratio"] = round(rate["achieved_per_s"] / ALLOWED_PER_S, 3)
            result["interactive_p95_ms"] = rate["interactive"]["p95"]
            result["interactive_p50_ms"] = rate["interactive"]["p50"]
            result["interactive_n"] = rate["interactive"]["n"]
            log(f"rate: {rate}")
        if "restart" in args.parts:
            log("restart run: worker killed with SIGKILL mid-campaign …")
            restart = await run_restart(chats, tmp)
            result.update(restart)
            log(f"restart: {restart}")
        if "two" in args.parts:
            log("two workers on PostgreSQL …")
            two = await run_two_workers(chats)
            result.update(two)
            log(f"two workers: {two}")
    result["generated_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if {"restart", "two"} <= set(args.parts) and {"full", "rate"} & set(args.parts):
        write_results(result)
        log(f"wrote {RESULTS / 'delivery.json'} and delivery.md")
    print(json.dumps(result, indent=2))
    return 0


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/delivery.py",
        description="Delivery worker benchmark (rate, duplicates, losses, kill -9 restart, two "
                    "workers on PostgreSQL, interactive reply time during a campaign). Starts "
                    "Rasa: run it under `flock /tmp/rasa-train.lock`.")
    parser.add_argument("--quick", action="store_true",
                        help="50 groups + 200 private chats instead of 500 + 2,000")
    parser.add_argument("--parts", nargs="+", default=["full", "restart", "two"],
                        choices=["full", "rate", "restart", "two"],
                        help="which runs; 'rate' is 'full' without Rasa (the interactive time "
                             "is then an outbox message's); results are written when a "
                             "full/rate run, restart and two ran")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end reply latency through the emulator, against bare Rasa, plus memory and start time.

Usage: .venv/bin/python benchmarks/latency.py [--seconds 30] [--users 20] [--skip-make-run]
Writes benchmarks/results/latency.json and latency.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import identity  # noqa: E402
from core.db import Database  # noqa: E402
from core.services.accounts import link_identity_directly  # noqa: E402
from sandbox.harness import Harness, free_port, start_system, stop_system  # noqa: E402

MESSAGES = [
    "我的订单到哪了",
    "冰红茶还有货吗",
    "is the mineral water in stock?",
    "这个月有什么促销活动",
    "你们几点上班",
    "where is my order SO20261115-0123",
    "紅燒牛肉麵庫存多少",
    "what payment methods do you accept",
    "你好",
    "BV-4001 有没有货",
]
RESULTS = ROOT / "benchmarks" / "results"


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation (values in ms)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    """p50/p95/p99/mean of a list of milliseconds."""
    return {"n": len(values), "p50": round(pct(values, 50), 1), "p95": round(pct(values, 95), 1),
            "p99": round(pct(values, 99), 1),
            "mean": round(statistics.fmean(values), 1) if values else None}


async def one_turn(h: Harness, user: dict, text: str, after: int) -> tuple[float, int]:
    """Inject a message and wait for the first reply; returns (ms, newest seq)."""
    t0 = time.perf_counter()
    await h.control("POST", "updates/message", {"user": user, "text": text})
    while True:
        batch = await h.control("GET", f"sent?chat_id={user['id']}&after={after}&timeout=20")
        if batch:
            ms = (time.perf_counter() - t0) * 1000
            return ms, max(int(e["seq"]) for e in batch)
        if time.perf_counter() - t0 > 30:
            raise RuntimeError(f"no reply to {text!r} for user {user['id']}")


async def settle(h: Harness, chat_id: int, after: int) -> int:
    """Drain further replies of the same turn so they don't count for the next one."""
    while True:
        batch = await h.control("GET", f"sent?chat_id={chat_id}&after={after}&timeout=0.3")
        if not batch:
            return after
        after = max(int(e["seq"]) for e in batch)


async def concurrent(h: Harness, users: list[dict], seconds: float, interval: float
                     ) -> list[float]:
    """Each user sends a message every `interval` seconds for `seconds`."""
    start_after = await h.last_seq()
    latencies: list[float] = []

    async def run_user(idx: int, user: dict) -> None:
        after = start_after
        await asyncio.sleep(interval * idx / len(users))  # spread the users over the interval
        t_end = time.perf_counter() + seconds
        i = idx
        while time.perf_counter() < t_end:
            tick = time.perf_counter()
            ms, after = await one_turn(h, user, MESSAGES[i % len(MESSAGES)], after)
            latencies.append(ms)
            i += 1
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - tick)))
            after = await settle_quick(h, user["id"], after)

    await asyncio.gather(*(run_user(i, u) for i, u in enumerate(users)))
    return latencies


async def settle_quick(h: Harness, chat_id: int, after: int) -> int:
    """Skip replies already delivered (no waiting)."""
    batch = await h.control("GET", f"sent?chat_id={chat_id}&after={after}&timeout=0")
    return max([after, *(int(e["seq"]) for e in batch)])


async def bare_turn(http: aiohttp.ClientSession, h: Harness, sender: str, text: str) -> float:
    """One message straight to Rasa's REST channel (no Telegram, no gateway), in ms."""
    # Signed like the gateway's messages, so Rasa's actions do the same work for both.
    proof = identity.sign(h.env["IDENTITY_SIGNING_KEY"], sender)
    t0 = time.perf_counter()
    async with http.post(f"{h.rasa_url}/webhooks/rest/webhook",
                         json={"sender": sender, "message": text,
                               "metadata": {identity.METADATA_KEY: proof}}) as resp:
        await resp.read()
    return (time.perf_counter() - t0) * 1000


async def paired(h: Harness, user: dict, rounds: int) -> tuple[list[float], list[float]]:
    """Each message once through the whole chain and once straight to Rasa, alternately.

    Alternating keeps both under the same machine conditions, so the ratio is fair. The bare
    sender is the same user's id, so Rasa sees the same conversation length in both.
    """
    full, bare = [], []
    after = await h.last_seq()
    async with aiohttp.ClientSession() as http:
        for i in range(rounds):
            text = MESSAGES[i % len(MESSAGES)]
            ms, after = await one_turn(h, user, text, after)
            after = await settle(h, user["id"], after)
            full.append(ms)
            bare.append(await bare_turn(http, h, f"bare-{user['id']}", text))
    return full, bare


def rss_mb(h: Harness) -> dict[str, float]:
    """Resident memory of each process (with its children), in MB."""
    out = {}
    for proc in h.stack.procs:
        if not proc.process:
            continue
        try:
            p = psutil.Process(proc.process.pid)
            total = p.memory_info().rss + sum(c.memory_info().rss
                                              for c in p.children(recursive=True))
            out[proc.name] = round(total / 1e6, 1)
        except psutil.NoSuchProcess:
            out[proc.name] = None
    return out


def time_make_run(timeout: float = 600) -> float | None:
    """Seconds from `make run` to its 'ready' line, with warm installs and a cached model."""
    env = dict(os.environ)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    tmp = tempfile.mkdtemp(prefix="bench-run-")
    env.update({"APP_DATA_DIR": tmp, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/app.db",
                "RASA_PORT": str(free_port()), "ACTIONS_PORT": str(free_port()),
                "SANDBOX_PORT": str(free_port())})
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ready = None
    assert proc.stdout
    for line in proc.stdout:
        if re.search(r"^ready in [0-9.]+ s", line.strip()):
            ready = time.perf_counter() - t0
            break
        if time.perf_counter() - t0 > timeout:
            break
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    return round(ready, 1) if ready else None


async def link_users(h: Harness, n: int) -> list[dict]:
    """n extra retailers' chats, linked to demo retailer accounts."""
    db = Database(h.settings.resolved_database_url())
    users = []
    try:
        for i in range(n):
            uid = 900_000 + i
            async with db.transaction() as s:
                await link_identity_directly(s, uid, f"Bench{i}",
                                             customer_code=f"R00{1 + i % 6}")
            users.append({"id": uid, "first_name": f"Bench{i}", "language_code": "zh-hans",
                          "is_bot": False})
    finally:
        await db.dispose()
    return users


async def main_async(args: argparse.Namespace) -> dict:
    """Run every scenario and return the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    print("starting the system (emulator, actions, Rasa, gateway) …", flush=True)
    h = await start_system(tmp, log=lambda m: print("  " + m, flush=True))
    try:
        users = await link_users(h, args.users)
        print("warming up …", flush=True)
        await paired(h, users[-1], 10)
        print(f"1 retailer, {args.rounds} messages one after another, each also sent straight "
              "to Rasa …", flush=True)
        one, bare = await paired(h, users[0], args.rounds)
        print(f"{args.users} retailers, one message each every {args.interval} s for "
              f"{args.seconds} s …", flush=True)
        many = await concurrent(h, users, args.seconds, args.interval)
        memory = rss_mb(h)
    finally:
        await stop_system(h)
    make_run = None if args.skip_make_run else time_make_run()
    s1, sb, s20 = summary(one), summary(bare), summary(many)
    return {
        "p50_ms_1user": s1["p50"], "p95_ms_1user": s1["p95"], "p99_ms_1user": s1["p99"],
        "p50_ms_20users": s20["p50"], "p95_ms_20users": s20["p95"],
        "p99_ms_20users": s20["p99"],
        "messages_20users": s20["n"],
        "throughput_msgs_per_s_20users": round(s20["n"] / args.seconds, 2),
        "bare_rasa_p50_ms": sb["p50"], "bare_rasa_p95_ms": sb["p95"],
        "overhead_ratio_p50": round(s1["p50"] / sb["p50"], 3),
        "rss_mb": memory,
        "make_run_ready_seconds": make_run,
        "config": {"rounds_1user": args.rounds, "users": args.users,
                   "interval_s": args.interval, "seconds": args.seconds,
                   "cpus": os.cpu_count()},
    }


def write(result: dict) -> None:
    """JSON for machines, Markdown for people."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(result, indent=2) + "\n")
    r = result
    md = f"""# End-to-end latency (emulator → PTB gateway → Rasa → actions → DB → emulator)

| scenario | p50 ms | p95 ms | p99 ms |
|---|---|---|---|
| 1 retailer, sequential | {r['p50_ms_1user']} | {r['p95_ms_1user']} | {r['p99_ms_1user']} |
| {r['config']['users']} retailers, 1 msg / {r['config']['interval_s']} s each \
({r['throughput_msgs_per_s_20users']} msg/s) | {r['p50_ms_20users']} | {r['p95_ms_20users']} | \
{r['p99_ms_20users']} |
| bare Rasa REST channel, sequential | {r['bare_rasa_p50_ms']} | {r['bare_rasa_p95_ms']} | |

Gateway overhead at p50: **{r['overhead_ratio_p50']}×** bare Rasa.

Resident memory (MB): {', '.join(f'{k} {v}' for k, v in r['rss_mb'].items())}.

`make run` from warm install to "ready": {r['make_run_ready_seconds']} s.

Machine: {r['config']['cpus']} cores. Reproduce: `make bench-latency`.
"""
    (RESULTS / "latency.md").write_text(md)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100, help="sequential messages (100)")
    parser.add_argument("--users", type=int, default=20, help="concurrent retailers (20)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between a "
                        "retailer's messages (2)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the concurrent "
                        "run (30)")
    parser.add_argument("--skip-make-run", action="store_true",
                        help="do not time `make run` to ready")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    write(result)
    print(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'latency.json'} and latency.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

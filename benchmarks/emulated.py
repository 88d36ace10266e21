"""Shared machinery of the benchmarks that drive delivery worker processes against the
Telegram emulator (benchmarks/delivery.py, benchmarks/push.py): progress lines, chats the
emulator knows, the emulator's counters, a campaign's outcomes in the outbox, worker processes
started and killed, and a throw-away PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import Database
from core.models import OutboxMessage

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
_DRAINS: set[asyncio.Task] = set()  # output readers of running workers (kept referenced)
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def log(msg: str) -> None:
    """Progress line with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict:
    """What the figures were measured on (for the reports)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
            "load_1min_at_start": round(load, 2) if load is not None else None}


async def register_chats(emulator_url: str, chats: list[int]) -> None:
    """Tell the emulator about the groups (negative ids; bot is admin) and the users who wrote
    to the bot (positive ids: their private chats)."""
    async with aiohttp.ClientSession() as http:
        sem = asyncio.Semaphore(16)

        async def one(cid: int) -> None:
            body = ({"id": cid, "type": "supergroup", "title": f"Dealers {cid}"} if cid < 0
                    else {"id": cid, "type": "private", "first_name": f"U{cid}"})
            async with sem, http.post(f"{emulator_url}/_emulator/chats", json=body) as resp:
                assert resp.status < 400, await resp.text()

        await asyncio.gather(*(one(c) for c in chats))


async def emulator_stats(emulator_url: str) -> dict:
    """The emulator's counters: messages accepted per chat, 429s given."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator_url}/_emulator/stats") as resp:
            return await resp.json()


async def accepted(emulator_url: str) -> dict[int, int]:
    """What the emulator accepted, per chat."""
    stats = await emulator_stats(emulator_url)
    return {int(k): int(v) for k, v in stats["accepted"]["per_chat"].items()}


async def refused(emulator_url: str) -> int:
    """429s the emulator gave (all chats)."""
    return int((await emulator_stats(emulator_url))["refused"]["total"])


async def sent_log(emulator_url: str, after: int = 0) -> list[dict]:
    """Every message the bot sent, edited or deleted after sequence number `after` (the
    emulator keeps the newest 10,000)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator_url}/_emulator/sent?after={after}") as resp:
            return await resp.json()


def dup_loss(got: dict[int, int], chats: list[int]) -> tuple[int, int]:
    """(duplicates, losses) of one-message-per-chat."""
    return (sum(max(0, got.get(c, 0) - 1) for c in chats),
            sum(1 for c in chats if got.get(c, 0) == 0))


async def open_count(db: Database, cid: int) -> int:
    """Messages of the campaign not yet at an outcome."""
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.campaign_id == cid,
            OutboxMessage.status.in_(("queued", "sending")))) or 0)


async def wait_done(db: Database, cid: int, total: int, timeout: float) -> None:
    """Wait until every message of the campaign has an outcome, printing progress."""
    deadline = time.monotonic() + timeout
    last = 0.0
    while time.monotonic() < deadline:
        left = await open_count(db, cid)
        if left == 0:
            return
        if time.monotonic() - last > 5:
            log(f"  campaign {cid}: {total - left}/{total} done")
            last = time.monotonic()
        await asyncio.sleep(0.25)
    raise RuntimeError(f"campaign {cid} not finished after {timeout:.0f} s")


async def start_worker(db_url: str, emulator_url: str, name: str, lease: float = 3.0,
                       env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`python -m bot.delivery` pointed at the emulator and database (on top of `env`, or this
    process's environment); waits for its ready line."""
    base = os.environ if env is None else env
    penv = {k: v for k, v in base.items() if k != "TELEGRAM_BOT_TOKEN"}
    penv.update({"DATABASE_URL": db_url, "SANDBOX_HOST": "127.0.0.1",
                 "SANDBOX_PORT": emulator_url.rsplit(":", 1)[1], "PYTHONUNBUFFERED": "1",
                 "APP__DELIVERY__LEASE_SECONDS": str(lease)})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.delivery", "--worker-id", name, "--log-level", "WARNING",
        cwd=ROOT, env=penv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            raise RuntimeError(f"worker {name} exited while starting")
        if "delivery worker ready" in line:
            break

    async def drain() -> None:
        assert proc.stdout is not None
        while raw := await proc.stdout.readline():
            line = raw.decode().rstrip()
            if "WARNING" in line or "ERROR" in line:
                log(f"  {name}: {line[:160]}")

    task = asyncio.get_running_loop().create_task(drain())
    _DRAINS.add(task)
    task.add_done_callback(_DRAINS.discard)
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM and wait."""
    if proc.returncode is None:
        proc.terminate()
        await proc.wait()


@asynccontextmanager
async def postgres_database(prefix: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database (on BENCH_POSTGRES_URL's server) for one run; its URL.
    Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        await admin.dispose()
        raise RuntimeError(f"cannot create a PostgreSQL database via {PG_ADMIN} ({exc}); start "
                           "PostgreSQL or set BENCH_POSTGRES_URL") from exc
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

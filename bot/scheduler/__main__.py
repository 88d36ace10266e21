"""Run the scheduler: python -m bot.scheduler [--once] [--now ISO-TIME] [--list]."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
import socket
import sys

from bot.scheduler import loop, run_due
from bot.scheduler.jobs import default_jobs
from core.db import Database
from core.settings import ConfigError, load_settings


async def main_async(args: argparse.Namespace) -> int:
    """Tick until SIGINT/SIGTERM (or once with --once)."""
    settings = load_settings()
    jobs = default_jobs(settings)
    if args.list:
        for job in jobs:
            state = "on" if job.enabled(settings) else "off"
            print(f"{job.name:24} {job.schedule} catch-up {job.catch_up} [{state}]")
        return 0
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    instance = f"{socket.gethostname()}:{os.getpid()}"
    try:
        if args.once:
            now = dt.datetime.fromisoformat(args.now) if args.now else None
            for o in await run_due(db, settings, jobs, now=now, instance=instance):
                print(f"{o.job} {o.slot}: {o.status}{' ' + str(o.result) if o.result else ''}")
            return 0
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, stop.set)
        print(f"scheduler ready: {len(jobs)} jobs ({', '.join(j.name for j in jobs)}), "
              f"tick {settings.scheduler.tick_seconds:g} s, timezone {settings.app.timezone}",
              flush=True)
        await loop(db, settings, jobs, stop, instance=instance)
        return 0
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.scheduler",
        description="Run scheduled jobs (points maturing/expiry daily, monthly statements, "
                    "optional leaderboard posts) exactly once per slot, however many "
                    "schedulers run and however often they restart (scheduled_runs table).")
    parser.add_argument("--once", action="store_true", help="one tick, then exit")
    parser.add_argument("--now", help="with --once: pretend it is this time (ISO, with zone)")
    parser.add_argument("--list", action="store_true", help="list the jobs and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s scheduler %(levelname)s %(message)s")
    try:
        return asyncio.run(main_async(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

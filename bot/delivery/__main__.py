"""`python -m bot.delivery`: run one delivery worker until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from bot.delivery.worker import (
    DEFAULT_CONCURRENCY,
    GATEWAY_HEADROOM_PER_SECOND,
    PROGRESS_SECONDS,
    Worker,
    default_worker_id,
)
from core.db import Database
from core.settings import ConfigError, load_settings


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the worker."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.delivery",
        description="Send the outbox within Telegram's limits: claims due messages (most "
                    "urgent first), paces them, retries 5xx/timeouts, records each outcome "
                    "once and reports campaigns. Several workers may share one database. "
                    "Limits and retries come from the delivery: section of config.yml.")
    parser.add_argument("--worker-id", default=None,
                        help="name recorded in claimed rows (default: host:pid)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"messages in a Telegram call at once (default "
                             f"{DEFAULT_CONCURRENCY}); also the most a kill -9 can repeat")
    parser.add_argument("--headroom", type=float, default=GATEWAY_HEADROOM_PER_SECOND,
                        help="messages/s of the bot's global limit left to the gateway's "
                             f"direct replies (default {GATEWAY_HEADROOM_PER_SECOND:g})")
    parser.add_argument("--progress-seconds", type=float, default=PROGRESS_SECONDS,
                        help=f"campaign progress reports at most this often "
                             f"(default {PROGRESS_SECONDS:g})")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def main_async(args: argparse.Namespace) -> int:
    """Run the worker until a signal arrives."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    worker = Worker(settings, db, worker_id=args.worker_id or default_worker_id(),
                    concurrency=args.concurrency, headroom=args.headroom,
                    progress_seconds=args.progress_seconds)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await db.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

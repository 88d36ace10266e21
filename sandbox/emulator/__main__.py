"""Run the emulator: ``python -m sandbox.emulator [--host 127.0.0.1] [--port 8081]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from sandbox.emulator.server import DEFAULT_PERSONAS, start_emulator, validate_personas


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.emulator",
        description="Local Telegram Bot API emulator with a sandbox chat page. Point "
        "python-telegram-bot at it with base_url=<url>/bot and base_file_url=<url>/file/bot.",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1; the control API has no auth)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081, 0 = any)")
    parser.add_argument("--personas-json", type=Path, metavar="FILE",
                        help="JSON list of personas {key,label,user_id,first_name,language_code}")
    parser.add_argument("--bot-username", default="sandbox_bot",
                        help="username the bot reports in getMe (default sandbox_bot)")
    parser.add_argument("--no-rate-limits", dest="rate_limits", action="store_false",
                        help="do not enforce Telegram's flood limits (30 msg/s per bot, 20 "
                        "msg/min per group, ~1 msg/s per private chat); they are on by default "
                        "and can also be changed with POST /_emulator/limits")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT/SIGTERM."""
    personas = DEFAULT_PERSONAS
    if args.personas_json is not None:
        personas = validate_personas(json.loads(args.personas_json.read_text(encoding="utf-8")))
    emulator = await start_emulator(args.host, args.port, personas, args.bot_username,
                                    rate_limits=args.rate_limits)
    print(f"Telegram Bot API emulator running on {emulator.url}", flush=True)
    print(f"  sandbox chat page: {emulator.url}/", flush=True)
    print(f"  PTB: base_url={emulator.bot_base_url} base_file_url={emulator.file_base_url}",
          flush=True)
    print(f"  Telegram flood limits: {'on' if args.rate_limits else 'OFF'}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

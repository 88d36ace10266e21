"""Run the Telegram gateway: python -m bot.gateway."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.gateway.app import run
from core.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    """Start the gateway; without TELEGRAM_BOT_TOKEN it talks to the local emulator."""
    argparse.ArgumentParser(
        prog="python -m bot.gateway",
        description="The Telegram bot gateway (python-telegram-bot). Reads config.yml; set "
                    "TELEGRAM_BOT_TOKEN to use real Telegram, otherwise it runs in sandbox mode "
                    "against the emulator at sandbox.host:sandbox.port.",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

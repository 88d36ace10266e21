"""Run the action server: python -m bot.actions [--host H] [--port P]."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from bot.actions.sdk import ActionContext
from bot.actions.server import create_app
from core.db import Database
from core.settings import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    """Start the action server (the shared secret comes from ACTION_SERVER_TOKEN)."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.actions",
        description="Rasa custom action server. Needs ACTION_SERVER_TOKEN in the environment; "
                    "Rasa must send the same token (var/endpoints.yml, written by the launcher). "
                    "Needs IDENTITY_SIGNING_KEY, the gateway's key for proving who is asking.",
    )
    parser.add_argument("--host", help="bind address (default: actions.host in config.yml)")
    parser.add_argument("--port", type=int, help="port (default: actions.port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s actions %(levelname)s %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    token = settings.secrets.action_server_token
    if not token:
        print("ACTION_SERVER_TOKEN is not set: the action server refuses to run without a shared "
              "secret. Set it (make run does this for you).", file=sys.stderr)
        return 2
    if not settings.secrets.identity_signing_key:
        print("IDENTITY_SIGNING_KEY is not set: the action server could not tell a real user "
              "from anyone posting to Rasa's REST channel. Set it to the same random value as "
              "the gateway's (make run does this for you).", file=sys.stderr)
        return 2
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    app = create_app(ActionContext(db=db, settings=settings), token)

    async def _close(_app: web.Application) -> None:
        await db.dispose()

    app.on_cleanup.append(_close)
    host = args.host or settings.actions.host
    port = args.port or settings.actions.port
    web.run_app(app, host=host, port=port, access_log=None,
                print=lambda *_: print(f"action server ready on http://{host}:{port}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build and run the python-telegram-bot Application (polling or webhook)."""

from __future__ import annotations

import asyncio
import logging
import signal

from telegram import BotCommand, Update
from telegram.ext import AIORateLimiter, Application

from bot.gateway import (
    assistant,
    groups,
    handoff,
    housekeeping,
    language,
    points,
    restock,
    turns,
)
from bot.gateway.context import GATEWAY, Gateway
from bot.gateway.rasa_client import RasaClient
from community import telegram as community_telegram
from core.db import Database
from core.settings import Settings
from training import telegram as training_telegram

log = logging.getLogger(__name__)


def register_features(app: Application) -> None:
    """Every feature's handlers, in the order they are tried (first match wins in group 0).

    A feature adds its handlers with its own `register(app)`; to plug one in, add a line here.
    """
    # 1. Every update: claimed once and identified first, marked done last; the error handler.
    turns.register(app)
    # 2. Hand-off: the staff group (replies, /close, close button) and the customer's /cancel.
    handoff.register(app)
    # 3. Commands and buttons that need no NLU.
    assistant.register_commands(app)  # /start, /help
    language.register(app)            # /language and its buttons
    restock.register(app)             # "tell me when it's back"
    points.register(app)              # /points /redeem /top, pts: buttons, staff decisions
    training_telegram.register(app)   # trainers' /newcourse /push /progress; dealers' trn: buttons
    # 4. Group chats: community/ and training/ register here, before groups' catch-all.
    community_telegram.register(app)  # dealer groups: joins, moderation, /groups, /announce
    groups.register(app)
    # 5. Private catch-alls: other buttons and free text to the assistant, unknown commands.
    assistant.register(app)


def build_application(settings: Settings, db: Database) -> Application:
    """The Application with every feature registered."""
    tg = settings.telegram
    app = (
        Application.builder()
        .token(settings.bot_token)
        .base_url(settings.bot_api_base_url)
        .base_file_url(settings.bot_file_base_url)
        # The one retry policy for direct sends: the limiter waits out 429s, three times.
        .rate_limiter(AIORateLimiter(max_retries=3))
        # Concurrent across chats, in order within one (per-process locks; see README).
        .concurrent_updates(turns.ChatOrderedProcessor(256))
        .connection_pool_size(64)
        .connect_timeout(tg.connect_timeout_seconds)
        .read_timeout(tg.read_timeout_seconds)
        .write_timeout(tg.read_timeout_seconds)
        .get_updates_read_timeout(40)
        .build()
    )
    app.bot_data[GATEWAY] = Gateway(
        settings=settings, db=db,
        rasa=RasaClient(settings.rasa.url, settings.rasa.timeout_seconds,
                        signing_key=settings.secrets.identity_signing_key),
    )
    register_features(app)
    return app


async def _post_init(app: Application) -> None:
    gateway: Gateway = app.bot_data[GATEWAY]
    await gateway.rasa.start()
    gateway.background.append(asyncio.create_task(housekeeping.loop(gateway)))
    try:
        await app.bot.set_my_commands([
            BotCommand("start", "Start / 开始"),
            BotCommand("help", "Help / 帮助"),
            BotCommand("language", "Language / 语言"),
            BotCommand("cancel", "Cancel hand-off / 取消转人工"),
            BotCommand("points", "My points / 我的积分"),
            BotCommand("redeem", "Redeem points / 积分兑换"),
            BotCommand("top", "Leaderboard / 排行榜"),
            BotCommand("courses", "My courses / 我的课程"),
            BotCommand("next", "Next lesson / 下一课"),
            BotCommand("verify", "Check a certificate / 验证证书"),
        ])
    except Exception:  # a cosmetic call; never block start-up on it
        log.warning("setMyCommands failed", exc_info=True)


async def _post_shutdown(app: Application) -> None:
    gateway: Gateway = app.bot_data[GATEWAY]
    for task in gateway.background:
        task.cancel()
    await gateway.rasa.close()


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM when run as a process)."""
    db = Database(settings.resolved_database_url(), echo=settings.database.echo)
    app = build_application(settings, db)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with app:
        # post_init/post_shutdown hooks only run under run_polling(); we manage the lifecycle.
        await _post_init(app)
        await app.start()
        assert app.updater is not None
        tg = settings.telegram
        if tg.mode == "webhook" and not settings.sandbox_mode:
            await app.updater.start_webhook(
                listen=tg.webhook_listen, port=tg.webhook_port, url_path="telegram",
                webhook_url=tg.webhook_url, secret_token=settings.secrets.telegram_webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )
            where = f"webhook {tg.webhook_url}"
        else:
            await app.updater.start_polling(allowed_updates=Update.ALL_TYPES, timeout=30,
                                            poll_interval=0.0)
            where = f"polling {settings.bot_api_base_url}"
        me = app.bot.username
        print(f"gateway ready: @{me} via {where}"
              + (" (sandbox mode)" if settings.sandbox_mode else ""), flush=True)
        await stop.wait()
        await app.updater.stop()
        await app.stop()
        await _post_shutdown(app)
    await db.dispose()

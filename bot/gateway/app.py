"""Build and run the python-telegram-bot Application (polling or webhook)."""

from __future__ import annotations

import asyncio
import logging
import signal

from telegram import BotCommand, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.gateway import handlers as h
from bot.gateway import handoff
from bot.gateway.context import Gateway
from bot.gateway.rasa_client import RasaClient
from core.db import Database
from core.settings import Settings

log = logging.getLogger(__name__)


def build_application(settings: Settings, db: Database) -> Application:
    """The Application with every handler registered, in the order they are tried."""
    tg = settings.telegram
    app = (
        Application.builder()
        .token(settings.bot_token)
        .base_url(settings.bot_api_base_url)
        .base_file_url(settings.bot_file_base_url)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(256)  # per-chat order is kept by Gateway.chat_lock
        .connection_pool_size(64)
        .connect_timeout(tg.connect_timeout_seconds)
        .read_timeout(tg.read_timeout_seconds)
        .write_timeout(tg.read_timeout_seconds)
        .get_updates_read_timeout(40)
        .build()
    )
    app.bot_data[h.GATEWAY] = Gateway(
        settings=settings, db=db,
        rasa=RasaClient(settings.rasa.url, settings.rasa.timeout_seconds,
                        signing_key=settings.secrets.identity_signing_key),
    )
    # Edited messages are not re-answered: only new messages in private chats.
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    # 1. Every update: drop redeliveries before anything else runs.
    app.add_handler(TypeHandler(Update, h.drop_duplicates), group=-1)
    # 2. The staff group: replies to a ticket go to the customer; buttons close tickets.
    if settings.staff_chat_id is not None:
        app.add_handler(MessageHandler(filters.Chat(settings.staff_chat_id) & filters.REPLY,
                                       handoff.on_staff_reply))
    app.add_handler(CallbackQueryHandler(handoff.on_close_button, pattern=r"^ticket:close:"))
    # 3. Commands and buttons that need no NLU.
    app.add_handler(CommandHandler("start", h.start, filters=private))
    app.add_handler(CommandHandler("help", h.help_command, filters=private))
    app.add_handler(CommandHandler("language", h.language, filters=private))
    app.add_handler(CallbackQueryHandler(h.on_language_button, pattern=r"^lang:"))
    app.add_handler(CallbackQueryHandler(h.on_notify_button, pattern=r"^notify:"))
    app.add_handler(CallbackQueryHandler(h.on_button))
    app.add_handler(MessageHandler(private & filters.COMMAND, h.unknown_command))
    # 4. Free text goes to the assistant; anything else gets told what the bot reads.
    app.add_handler(MessageHandler(private & filters.TEXT, h.on_text))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL,
                                   h.on_non_text))
    app.add_error_handler(h.on_error)
    return app


async def _post_init(app: Application) -> None:
    gateway: Gateway = app.bot_data[h.GATEWAY]
    await gateway.rasa.start()
    await gateway.prune_processed()
    try:
        await app.bot.set_my_commands([
            BotCommand("start", "Start / 开始"),
            BotCommand("help", "Help / 帮助"),
            BotCommand("language", "Language / 语言"),
        ])
    except Exception:  # a cosmetic call; never block start-up on it
        log.warning("setMyCommands failed", exc_info=True)


async def _post_shutdown(app: Application) -> None:
    gateway: Gateway = app.bot_data[h.GATEWAY]
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

"""A real python-telegram-bot Application polling the emulator, as the gateway does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from sandbox.emulator import RunningEmulator
from tests.emulator.conftest import RITA, TOKEN, Control

seen: list[int] = []


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet with HTML and a keyboard."""
    seen.append(update.update_id)
    name = update.effective_user.first_name
    await update.message.reply_html(
        f"<b>Hello</b>, {name}!",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Stock", callback_data="stock"),
                                            InlineKeyboardButton("Orders", callback_data="ord")]]))


async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer the button and edit the message in place."""
    query = update.callback_query
    await query.answer("One moment…")
    await query.edit_message_text(f"You chose <i>{query.data}</i>", parse_mode="HTML")


@pytest_asyncio.fixture
async def application(emu: RunningEmulator) -> AsyncIterator[Application]:
    """The PTB Application, built exactly like the gateway builds it, polling the emulator."""
    app = (Application.builder().token(TOKEN).base_url(emu.bot_base_url)
           .base_file_url(emu.file_base_url).build())
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    seen.clear()
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=1,
                                        allowed_updates=Update.ALL_TYPES)
        await app.start()
        yield app
        await app.updater.stop()
        await app.stop()


async def test_command_reply_button_and_edit(application: Application, ctl: Control) -> None:
    await ctl.say(RITA, "/start")
    replies = await ctl.get(f"sent?chat_id={RITA['id']}&after=0&timeout=5")
    assert len(replies) == 1
    reply = replies[0]["message"]
    assert reply["text"] == "Hello, Rita!"
    assert reply["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
    await ctl.post("updates/callback", {"user": RITA, "chat_id": RITA["id"],
                                        "message_id": reply["message_id"], "data": "stock"})
    after = replies[-1]["seq"]
    edits = await ctl.get(f"sent?chat_id={RITA['id']}&after={after}&timeout=5")
    assert [e["method"] for e in edits] == ["editMessageText"]
    assert edits[0]["message"]["text"] == "You chose stock"
    assert edits[0]["message"]["message_id"] == reply["message_id"]
    assert "reply_markup" not in edits[0]["message"]  # edit without markup drops the keyboard
    everything = await ctl.get(f"sent?chat_id={RITA['id']}&all=1")
    assert "answerCallbackQuery" in [e["method"] for e in everything]


async def test_redelivered_update_reaches_the_application_again(
    application: Application, ctl: Control
) -> None:
    injected = await ctl.say(RITA, "/start")
    first = await ctl.get(f"sent?chat_id={RITA['id']}&after=0&timeout=5")
    await ctl.post("updates/redeliver", {"update_id": injected["update_id"]})
    second = await ctl.get(f"sent?chat_id={RITA['id']}&after={first[-1]['seq']}&timeout=5")
    # PTB does not deduplicate: the bot itself must make handling idempotent
    assert seen == [injected["update_id"], injected["update_id"]]
    assert len(second) == 1

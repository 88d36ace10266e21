"""The real chat page scripts, run under node against a live emulator and a PTB Application."""

from __future__ import annotations

import asyncio
import html
import json
import shutil
from pathlib import Path

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from sandbox.emulator import RunningEmulator
from tests.emulator.conftest import TOKEN, Control

HERE = Path(__file__).resolve().parent
STATIC = HERE.parents[1] / "sandbox" / "emulator" / "static"
PERSONAS = [{"key": "retailer", "label": "Demo retailer", "user_id": 1001, "first_name": "Rita",
             "language_code": "en"}]

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Echo the user's text inside HTML, with a button."""
    await update.message.reply_html(
        f"<b>Echo</b>: {html.escape(update.message.text)}",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Pick", callback_data="pick")]]))


async def pick(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Toast and edit in place."""
    await update.callback_query.answer("noted")
    await update.callback_query.edit_message_text(f"Chose {update.callback_query.data}")


async def test_page_script_chats_with_a_real_bot(emu: RunningEmulator, ctl: Control) -> None:
    app = (Application.builder().token(TOKEN).base_url(emu.bot_base_url)
           .base_file_url(emu.file_base_url).build())
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.add_handler(CallbackQueryHandler(pick))
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                "node", str(HERE / "page_driver.js"), emu.url, str(STATIC),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            personas = json.dumps(PERSONAS).encode()
            out, err = await asyncio.wait_for(proc.communicate(personas), 20)
        finally:
            await app.updater.stop()
            await app.stop()
    assert proc.returncode == 0, err.decode()
    page = json.loads(out)
    assert page["bubbles"][0].startswith("hi <script>alert(1)</script>")
    # the page's own POSTs (same origin, JSON) pass the emulator's cross-origin guards
    assert page["bubbles"][1].startswith("Chose pick")  # edited in place, not appended
    assert len(page["bubbles"]) == 2 and [str(i) for i in page["ids"]] == ["1", "2"]
    # user text became a text node: serialised escaped, never a <script> element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page["html"][0]
    assert "<script>" not in "".join(page["html"])
    assert page["toast"] == "noted" and page["alerts"] == []
    # reply bar: hidden, shown for the clicked message, × hides it, shown, sending hides it
    assert page["replyStates"] == [True, False, "Replying to: Chose pick", True, False, True]
    history = await ctl.get("chats/1001/history")
    assert [m["text"] for m in history["messages"]] == [
        "hi <script>alert(1)</script>", "Chose pick", "about that", "Echo: about that"]
    assert history["messages"][2]["reply_to_message"]["text"] == "Chose pick"

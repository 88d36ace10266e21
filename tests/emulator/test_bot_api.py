"""The Bot API as python-telegram-bot 22 sees it: messages, updates, callbacks, files."""

from __future__ import annotations

import asyncio
import time

import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    MessageEntity,
    ReplyKeyboardMarkup,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict

from sandbox.emulator import RunningEmulator
from tests.emulator.conftest import BOT_ID, DAN, RITA, Control, make_bot

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Stock", callback_data="stock:42"),
                                  InlineKeyboardButton("Site", url="https://example.com")]])


async def test_get_me_derives_the_bot_from_the_token(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == BOT_ID and me.is_bot and me.username == "sandbox_bot"


async def test_other_tokens_are_other_bots(emu: RunningEmulator) -> None:
    second = make_bot(emu, "42:another")
    async with second:
        assert (await second.get_me()).id == 42


async def test_send_message_html_and_inline_keyboard(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hello")
    sent = await bot.send_message(
        RITA["id"], "  <b>Stock</b> for <i>SKU 42</i> &amp; more  ",
        parse_mode=ParseMode.HTML, reply_markup=KEYBOARD)
    assert sent.text == "Stock for SKU 42 & more"  # tags parsed, surrounding space trimmed
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        (MessageEntity.BOLD, 0, 5), (MessageEntity.ITALIC, 10, 6)]
    assert sent.reply_markup == KEYBOARD
    assert sent.from_user.id == BOT_ID and sent.chat.id == RITA["id"]
    assert sent.message_id == 2  # message ids are per chat; Rita's "hello" was 1

    log = await ctl.get(f"sent?chat_id={RITA['id']}")
    assert [e["method"] for e in log] == ["sendMessage"]
    assert log[0]["message"]["text"] == "Stock for SKU 42 & more"
    assert log[0]["params"]["parse_mode"] == "HTML"
    assert log[0]["params"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "stock:42"


async def test_unknown_chat_is_chat_not_found(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999_999, "hi")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": ""}, "Message text is empty"),
        ({"text": "   \n "}, "Message text is empty"),
        ({"text": "<b></b>", "parse_mode": "HTML"}, "Message text is empty"),
        ({"text": "x" * 4097}, "Message is too long"),
        ({"text": "<b>" + "x" * 4097 + "</b>", "parse_mode": "HTML"}, "Message is too long"),
        ({"text": "<b>unclosed", "parse_mode": "HTML"},
         "Can't parse entities: can't find end tag corresponding to start tag \"b\""),
        ({"text": "a<br>b", "parse_mode": "HTML"},
         'Can\'t parse entities: unsupported start tag "br" at byte offset 1'),
        ({"text": "<b><i>x</b></i>", "parse_mode": "HTML"},
         "Can't parse entities: unmatched end tag"),
        ({"text": "1.5", "parse_mode": "MarkdownV2"}, "Can't parse entities: character '.'"),
        ({"text": "x", "reply_markup": InlineKeyboardMarkup(
            [[InlineKeyboardButton("too long", callback_data="d" * 65)]])},
         "Button_data_invalid"),
        ({"text": "x", "parse_mode": "BBCode"}, "Unsupported parse_mode"),
    ],
)
async def test_send_message_validation(bot: Bot, ctl: Control, kwargs: dict, error: str) -> None:
    await ctl.say(RITA, "hi")
    with pytest.raises(BadRequest) as info:
        await bot.send_message(RITA["id"], **kwargs)
    # PTB strips "Bad Request: " and capitalises the first letter of Telegram's description
    assert info.value.message.lower().startswith(error.lower()), info.value.message
    assert await ctl.get(f"sent?chat_id={RITA['id']}") == []


async def test_length_limit_counts_text_after_entity_parsing(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    sent = await bot.send_message(RITA["id"], "<b>" + "x" * 4096 + "</b>",
                                  parse_mode=ParseMode.HTML)
    assert len(sent.text) == 4096
    ok = await bot.send_message(RITA["id"], "d" * 64, reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("64 bytes is fine", callback_data="é" * 32)]]))
    assert ok.reply_markup is not None


async def test_reply_keyboard_is_accepted_but_not_echoed(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    sent = await bot.send_message(RITA["id"], "pick", reply_markup=ReplyKeyboardMarkup([["A"]]))
    assert sent.reply_markup is None  # Telegram only returns inline keyboards
    log = await ctl.get(f"sent?chat_id={RITA['id']}")
    assert log[-1]["params"]["reply_markup"]["keyboard"] == [[{"text": "A"}]]


async def test_reply_to_missing_message(bot: Bot, ctl: Control) -> None:
    first = await ctl.say(RITA, "question")
    answer = await bot.send_message(RITA["id"], "answer",
                                    reply_to_message_id=first["message"]["message_id"])
    assert answer.reply_to_message.text == "question"
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(RITA["id"], "x", reply_to_message_id=999)


async def test_injected_text_arrives_through_get_updates(bot: Bot, ctl: Control) -> None:
    injected = await ctl.say(RITA, "/start promo")
    assert injected["queued"] is True
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [injected["update_id"]]
    message = updates[0].message
    assert message.text == "/start promo" and message.from_user.username == "rita_shop"
    assert message.chat.type == "private" and message.chat.id == RITA["id"]
    assert message.entities[0].type == MessageEntity.BOT_COMMAND
    assert message.entities[0].length == len("/start")
    # not confirmed yet: the same update comes again until an offset passes it
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [injected["update_id"]]
    assert await bot.get_updates(offset=injected["update_id"] + 1, timeout=0) == ()


async def test_long_poll_returns_as_soon_as_an_update_arrives(bot: Bot, ctl: Control) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=4))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await ctl.say(DAN, "price list?")
    updates = await poll
    elapsed = time.monotonic() - started
    assert [u.message.text for u in updates] == ["price list?"]
    assert elapsed < 1.5, elapsed


async def test_long_poll_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 2.5


async def test_limit_and_negative_offset(bot: Bot, ctl: Control) -> None:
    ids = [(await ctl.say(RITA, f"m{i}"))["update_id"] for i in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2, timeout=0)] == ids[:2]
    # a negative offset keeps only the newest |offset| updates
    assert [u.update_id for u in await bot.get_updates(offset=-1, timeout=0)] == ids[-1:]


async def test_allowed_updates_filters_at_creation_like_telegram(
    bot: Bot, ctl: Control
) -> None:
    await ctl.group()
    # default allowed_updates excludes chat_member updates entirely
    dropped = await ctl.post("updates/chat_member",
                             {"user": DAN, "chat": {"id": -1001234567890}, "status": "member"})
    assert dropped["queued"] is False
    assert await bot.get_updates(timeout=0, allowed_updates=["message", "chat_member"]) == ()
    kept = await ctl.post("updates/chat_member",
                          {"user": RITA, "chat": {"id": -1001234567890}, "status": "member"})
    assert kept["queued"] is True
    assert (await ctl.say(RITA, "hi"))["queued"] is True
    assert (await ctl.post("updates/join_request", {
        "user": {"id": 77, "first_name": "X"}, "chat": {"id": -1001234567890}}))["queued"] is False
    updates = await bot.get_updates(timeout=0)
    assert [u.chat_member.new_chat_member.user.id for u in updates if u.chat_member] == [1001]
    assert len(updates) == 2


async def test_second_poller_terminates_the_first(bot: Bot, emu: RunningEmulator) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=3))
    await asyncio.sleep(0.2)
    async with make_bot(emu) as other:
        assert await other.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first


async def test_callback_query_round_trip(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "menu")
    menu = await bot.send_message(RITA["id"], "Menu", reply_markup=KEYBOARD)
    await bot.get_updates(offset=-1, timeout=0)
    clicked = await ctl.post("updates/callback", {
        "user": RITA, "chat_id": RITA["id"], "message_id": menu.message_id, "data": "stock:42"})
    updates = await bot.get_updates(offset=clicked["update_id"], timeout=0)
    query = updates[-1].callback_query
    assert query.id == clicked["callback_query_id"] and query.data == "stock:42"
    assert query.message.message_id == menu.message_id and query.from_user.id == RITA["id"]
    assert await query.answer("Checking stock…") is True
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query.id)  # a query can be answered only once
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query("123")
    answers = await ctl.get(f"sent?chat_id={RITA['id']}&all=1")
    assert answers[-1]["method"] == "answerCallbackQuery"
    assert answers[-1]["params"]["text"] == "Checking stock…"
    # only buttons that are really on the message can be pressed (unless forced)
    await ctl.post("updates/callback", {"user": RITA, "chat_id": RITA["id"],
                                        "message_id": menu.message_id, "data": "forged"},
                   expect=409)
    forged = await ctl.post("updates/callback", {"user": RITA, "chat_id": RITA["id"],
                                                 "message_id": menu.message_id,
                                                 "data": "forged", "force": True})
    assert forged["queued"] is True


async def test_edits_not_modified_and_keyboard_removal(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    msg = await bot.send_message(RITA["id"], "<b>v1</b>", parse_mode="HTML",
                                 reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<b>v1</b>", RITA["id"], msg.message_id, parse_mode="HTML",
                                    reply_markup=KEYBOARD)
    # same text but without parse_mode differs (entities change) and drops the keyboard
    edited = await bot.edit_message_text("v1", RITA["id"], msg.message_id)
    assert edited.text == "v1" and not edited.entities and edited.reply_markup is None
    assert edited.edit_date is not None
    with_kb = await bot.edit_message_reply_markup(RITA["id"], msg.message_id,
                                                  reply_markup=KEYBOARD)
    assert with_kb.reply_markup == KEYBOARD
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(RITA["id"], msg.message_id, reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", RITA["id"], 9999)
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", RITA["id"], 1)  # Rita's own message
    log = await ctl.get(f"sent?chat_id={RITA['id']}")
    assert [e["method"] for e in log] == ["sendMessage", "editMessageText",
                                          "editMessageReplyMarkup"]
    assert all(e["message"]["message_id"] == msg.message_id for e in log)
    assert log[0]["message"]["text"] == "v1" and "edit_date" not in log[0]["message"]


async def test_delete_message_and_chat_action(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    msg = await bot.send_message(RITA["id"], "temp")
    assert await bot.send_chat_action(RITA["id"], "typing") is True
    with pytest.raises(BadRequest, match="Wrong parameter action"):
        await bot.send_chat_action(RITA["id"], "dancing")
    assert await bot.delete_message(RITA["id"], msg.message_id) is True
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(RITA["id"], msg.message_id)
    plain = await ctl.get(f"sent?chat_id={RITA['id']}")
    assert [e["method"] for e in plain] == ["sendMessage", "deleteMessage"]
    everything = await ctl.get(f"sent?chat_id={RITA['id']}&all=1")
    assert "sendChatAction" in [e["method"] for e in everything]


async def test_send_document_get_file_and_download(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "send me the price list")
    content = b"sku,price\n42,9.90\n"
    sent = await bot.send_document(RITA["id"], InputFile(content, filename="prices.csv"),
                                   caption="<b>Prices</b>", parse_mode="HTML")
    doc = sent.document
    assert doc.file_name == "prices.csv" and doc.file_size == len(content)
    assert doc.mime_type == "text/csv"
    assert sent.caption == "Prices" and sent.caption_entities[0].type == "bold"
    file = await bot.get_file(doc.file_id)
    assert bytes(await file.download_as_bytearray()) == content
    # re-sending by file_id reuses the stored file, like Telegram
    again = await bot.send_document(RITA["id"], doc.file_id)
    assert again.document.file_id == doc.file_id
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_document(RITA["id"], "no-such-file-id")
    log = await ctl.get("calls?method=sendDocument")
    assert log[0]["params"]["document"] == {"file_name": "prices.csv",
                                            "content_type": "text/csv", "size": len(content)}


async def test_user_documents_can_be_downloaded_by_the_bot(bot: Bot, ctl: Control) -> None:
    injected = await ctl.post("updates/message", {
        "user": DAN, "kind": "document", "text": "my order",
        "document": {"file_name": "order.txt", "content": "SKU42 x 10"}})
    update = (await bot.get_updates(timeout=0))[0]
    assert update.update_id == injected["update_id"]
    assert update.message.caption == "my order"
    file = await update.message.document.get_file()
    assert bytes(await file.download_as_bytearray()) == b"SKU42 x 10"


async def test_other_message_kinds(bot: Bot, ctl: Control) -> None:
    for kind, extra in [("photo", {}), ("sticker", {"sticker": {"emoji": "🔥"}}),
                        ("voice", {"voice": {"duration": 4}}),
                        ("location", {"location": {"latitude": 31.2, "longitude": 121.5}}),
                        ("contact", {"contact": {"phone_number": "+861", "first_name": "R"}})]:
        await ctl.post("updates/message", {"user": RITA, "kind": kind, **extra})
    messages = [u.message for u in await bot.get_updates(timeout=0)]
    assert messages[0].photo[-1].width == 1 and messages[1].sticker.emoji == "🔥"
    assert messages[2].voice.file_id and messages[2].voice.to_dict()["duration"] == 4
    assert messages[3].location.latitude == 31.2 and messages[4].contact.phone_number == "+861"
    await ctl.post("updates/message", {"user": RITA, "kind": "text"}, expect=400)


async def test_send_photo_checks_the_image(bot: Bot, ctl: Control) -> None:
    await ctl.say(RITA, "hi")
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000002000000030806000000"
    ) + b"\x00" * 16
    sent = await bot.send_photo(RITA["id"], InputFile(png, filename="p.png"))
    assert (sent.photo[-1].width, sent.photo[-1].height) == (2, 3)
    with pytest.raises(BadRequest, match="Image_process_failed"):
        await bot.send_photo(RITA["id"], InputFile(b"not an image", filename="x.png"))


async def test_copy_and_forward(bot: Bot, ctl: Control) -> None:
    original = await ctl.say(RITA, "order #7 please")
    await ctl.say(DAN, "hi")
    copied = await bot.copy_message(DAN["id"], RITA["id"], original["message"]["message_id"])
    forwarded = await bot.forward_message(DAN["id"], RITA["id"],
                                          original["message"]["message_id"])
    assert forwarded.text == "order #7 please"
    assert forwarded.forward_origin.sender_user.id == RITA["id"]
    log = await ctl.get(f"sent?chat_id={DAN['id']}")
    assert [e["method"] for e in log] == ["copyMessage", "forwardMessage"]
    assert log[0]["message"]["message_id"] == copied.message_id
    assert log[0]["message"]["text"] == "order #7 please"
    with pytest.raises(BadRequest, match="Message to copy not found"):
        await bot.copy_message(DAN["id"], RITA["id"], 999)


async def test_commands_and_menu_button(bot: Bot) -> None:
    assert await bot.set_my_commands([("start", "Start"), ("stock", "Check stock")])
    assert await bot.set_my_commands([("start", "开始")], language_code="zh")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "stock"]
    assert [c.description for c in await bot.get_my_commands(language_code="zh")] == ["开始"]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Bad-Command", "x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    assert await bot.set_chat_menu_button() is True
    assert (await bot.get_chat_menu_button()).type == "commands"
    assert await bot.log_out() is True


async def test_raw_protocol_variants(emu: RunningEmulator, ctl: Control, http) -> None:
    await ctl.say(RITA, "hi")
    base = f"{emu.url}/bot1:x"
    # JSON body, case-insensitive method name
    async with http.post(f"{base}/SENDMESSAGE", json={"chat_id": RITA["id"], "text": "json"}) \
            as resp:
        assert resp.status == 200
        assert (await resp.json())["result"]["text"] == "json"
    # query string on POST
    async with http.post(f"{base}/sendMessage", params={"chat_id": str(RITA["id"]),
                                                        "text": "query"}) as resp:
        assert (await resp.json())["result"]["text"] == "query"
    # a GET that changes state could come from any web page's <img> or link: refused
    async with http.get(f"{base}/sendMessage", params={"chat_id": str(RITA["id"]),
                                                       "text": "get"}) as resp:
        assert resp.status == 405
        assert (await resp.json())["description"] == \
            "Method Not Allowed: sendMessage must be called with POST"
    async with http.get(f"{base}/noSuchMethod") as resp:
        assert resp.status == 404
        assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    async with http.get(f"{emu.url}/botnot-a-token/getMe") as resp:
        assert resp.status == 404
    async with http.post(f"{base}/sendMessage", json={"chat_id": 5, "text": "x"}) as resp:
        body = await resp.json()
        assert resp.status == 400
        assert body == {"ok": False, "error_code": 400,
                        "description": "Bad Request: chat not found"}
    calls = await ctl.get("calls")
    assert [c["method"] for c in calls] == ["sendMessage", "sendMessage", "sendMessage",
                                            "noSuchMethod", "getMe", "sendMessage"]
    assert [c["status"] for c in calls] == [200, 200, 405, 404, 404, 400]
    assert [e["message"]["text"] for e in await ctl.get("sent")] == ["json", "query"]
    assert calls[0]["params"] == {"chat_id": RITA["id"], "text": "json"}

"""The retailer assistant through the whole chain: stock, promotions, FAQ, languages, restock."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import Product, StockLevel
from core.services.catalogue import RECHECK_SECONDS
from core.services.importer import import_paths
from sandbox.harness import Harness, buttons, texts

pytestmark = pytest.mark.asyncio(loop_scope="session")
DEMO_PROMOTIONS = Path(__file__).resolve().parents[2] / "data" / "demo" / "promotions.csv"


async def total_stock(system: Harness, sku: str) -> int:
    """The imported total for a product (what the bot should report)."""
    db = Database(system.settings.resolved_database_url())
    try:
        async with db.transaction() as s:
            return int(await s.scalar(
                select(func.coalesce(func.sum(StockLevel.quantity), 0))
                .join(Product).where(Product.sku == sku)) or 0)
    finally:
        await db.dispose()


async def test_stock_in_simplified_traditional_and_english(system: Harness) -> None:
    total = await total_stock(system, "BV-4031")
    zh = "\n".join(texts(await system.say("retailer", "矿泉水还有货吗")))
    assert "BV-4031" in zh and str(total) in zh
    hant = "\n".join(texts(await system.say("retailer_hk", "礦泉水還有貨嗎")))
    assert "BV-4031" in hant and "礦泉水" in hant
    en = "\n".join(texts(await system.say("dealer", "is the mineral water in stock?")))
    assert "BV-4031" in en and "Natural Mineral Water" in en


async def test_out_of_stock_offers_alternatives_and_notifies_on_restock(
        system: Harness, tmp_path: Path) -> None:
    sent = await system.say("dealer", "do you have Jasmine Honey Tea in stock?")
    text = "\n".join(texts(sent))
    assert "BV-4022" in text and "out of stock" in text
    notify = [(label, data) for label, data in buttons(sent) if data == "notify:BV-4022"]
    assert notify, buttons(sent)
    message = next(e["message"] for e in sent if e["message"].get("reply_markup"))
    ok = "\n".join(texts(await system.click("dealer", message, "notify:BV-4022")))
    assert "BV-4022" in ok

    after = await system.last_seq()
    stock = tmp_path / "stock.csv"
    with stock.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sku", "warehouse", "quantity"])
        w.writerow(["BV-4022", "上海仓", "120"])
    db = Database(system.settings.resolved_database_url())
    try:
        report = await import_paths(db, [stock])
    finally:
        await db.dispose()
    assert "BV-4022" in report.restocked
    user_id = system.user("dealer")["id"]
    got = await system.replies(user_id, after, timeout=15)
    assert any("back in stock" in t and "120" in t for t in texts(got)), texts(got)
    # Sent once, not on every poll.
    await asyncio.sleep(2.5)
    assert await system.replies(user_id, max(e["seq"] for e in got), timeout=1) == []


async def test_new_product_is_found_without_retraining(system: Harness, tmp_path: Path) -> None:
    products = tmp_path / "products.csv"
    products.write_text(
        "sku,name_zh,name_en,aliases,category,unit,price\n"
        "TE-7001,桂花乌龙茶 500ml,Osmanthus Oolong Tea,桂花乌龙|桂花烏龍,茶饮料,箱(15瓶),52.00\n",
        encoding="utf-8")
    (tmp_path / "stock.csv").write_text(
        "sku,warehouse,quantity\nTE-7001,成都仓,333\n", encoding="utf-8")
    db = Database(system.settings.resolved_database_url())
    try:
        await import_paths(db, [products, tmp_path / "stock.csv"])
    finally:
        await db.dispose()
    # Another process (the action server) notices a catalogue change within RECHECK_SECONDS.
    await asyncio.sleep(RECHECK_SECONDS + 0.5)
    text = "\n".join(texts(await system.say("retailer", "桂花乌龙茶还有货吗")))
    assert "TE-7001" in text and "333" in text
    text = "\n".join(texts(await system.say("retailer_hk", "桂花烏龍庫存多少")))
    assert "TE-7001" in text


async def test_ambiguous_product_offers_a_choice(system: Harness) -> None:
    # 茉莉 names two products (茉莉清茶 BV-4021, 茉莉蜜茶 BV-4022) and neither is the default.
    # (牛肉面, used before, is an alias the operator gave NO-2001: a unique answer is right.)
    sent = await system.say("retailer", "茉莉有货吗")
    offered = [(label, data) for label, data in buttons(sent) if data.startswith("/stock_query")]
    # A pick-list naming each candidate product and its SKU.
    assert "几个产品都符合" in "\n".join(texts(sent)), texts(sent)
    skus = {re.search(r"\((BV-\d{4})\)", label).group(1) for label, _ in offered
            if "茉莉" in label and re.search(r"\((BV-\d{4})\)", label)}
    assert skus == {"BV-4021", "BV-4022"}, offered
    assert all(sku in data for label, data in offered for sku in skus if sku in label)


async def test_unknown_product_says_so(system: Harness) -> None:
    text = "\n".join(texts(await system.say("retailer", "榴莲味薯片还有货吗")))
    assert "没有找到" in text


def running_promotions(region: str, channel: str) -> list[str]:
    """Titles of the demo promotions running today for a retailer's region and channel."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    with DEMO_PROMOTIONS.open(encoding="utf-8") as f:
        return [row["title_zh"] for row in csv.DictReader(f)
                if row["starts_on"] <= today <= row["ends_on"]
                and (not row["regions"] or region in row["regions"].split("|"))
                and (not row["channels"] or channel in row["channels"].split("|"))]


async def test_promotions_for_the_retailer(system: Harness) -> None:
    titles = running_promotions("华东", "便利店")  # R001, the demo retailer
    text = "\n".join(texts(await system.say("retailer", "这个月有什么促销活动")))
    assert "没有适用" not in text  # the "no promotions" reply also says 促销
    assert titles, "demo data has no promotion running today"
    for title in titles:
        assert title in text, (title, text)


async def test_faq_answers_in_the_users_language(system: Harness) -> None:
    en = "\n".join(texts(await system.say("dealer", "what payment methods do you accept?")))
    # The payment-methods answer itself, in English (core/locales/en/dialogue.yml).
    assert "Payment methods" in en and "bank transfer" in en, en
    assert not re.search(r"[\u4e00-\u9fff]", en), en
    zh = "\n".join(texts(await system.say("retailer", "你们支持哪些付款方式")))
    assert "付款方式" in zh and "对公转账" in zh, zh


async def test_language_command_pins_the_language(system: Harness) -> None:
    user = {"id": 888001, "first_name": "Pin", "language_code": "zh-hans", "is_bot": False}
    sent = await system.say(user, "/language en")
    assert "English" in texts(sent)[0]
    text = "\n".join(texts(await system.say(user, "/help")))
    assert "I can help with" in text

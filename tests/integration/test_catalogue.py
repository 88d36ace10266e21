"""Product resolution against a catalogue imported moments ago, and stock answers.

The catalogue here is made up for the tests (names the NLU model and the demo data have never
seen), so every match comes from the live catalogue, not from training data.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import insert

from core.db import Database
from core.models import Product
from core.services import catalogue
from core.services.catalogue import ProductRef, resolve_product, similar_in_stock, stock_for
from core.services.importer import import_paths
from tests.conftest import uow

HEADER = "sku,name_zh,name_en,aliases,category,unit,price\n"
PRODUCTS = HEADER + (
    "TE-7001,桂花乌龙茶 500ml,Osmanthus Oolong Tea 500ml,桂花烏龍|花香乌龙,茶饮料,箱(15瓶),52.00\n"
    "TE-7002,白桃乌龙茶 500ml,White Peach Oolong Tea 500ml,白桃烏龍,茶饮料,箱(15瓶),52.00\n"
    "TE-7003,大麦茶 1L,Barley Tea 1L,麦茶,茶饮料,箱(12瓶),40.00\n"
    "MI-8101,藤椒牛肉面 袋装,Green Pepper Beef Noodles (bag),藤椒面,方便面,箱(24袋),60.00\n"
    "MI-8102,麻辣牛肉面 桶装,Mala Beef Noodles (cup),麻辣桶面,方便面,箱(12桶),55.00\n"
    'MI-8103,<b>限量</b>老卤面,"<script>alert(1)</script> Braised Noodles",,方便面,箱,50.00\n'
    "MI-8104,酸汤肥牛面 袋装,Sour Soup Beef Noodles (bag),,方便面,箱(24袋),58.00\n"
)
STOCK = "sku,warehouse,quantity\n" + (
    "TE-7001,上海仓,300\nTE-7001,广州仓,120\n"
    "TE-7002,上海仓,10\nTE-7002,广州仓,0\n"
    "TE-7003,上海仓,0\nTE-7003,广州仓,0\n"
    "MI-8101,上海仓,80\n"
    "MI-8102,上海仓,0\n"
    "MI-8103,广州仓,5\n"
)


def _write(folder: Path, products: str, stock: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "products.csv").write_text(products, encoding="utf-8")
    if stock is not None:
        (folder / "stock.csv").write_text(stock, encoding="utf-8")
    return folder


@pytest.fixture
async def shop(db: Database, tmp_path: Path) -> Database:
    """The database with the test catalogue and its stock imported."""
    await import_paths(db, [_write(tmp_path / "catalogue", PRODUCTS, STOCK)])
    return db


async def _ref(db: Database, sku: str) -> ProductRef:
    res = await uow(db, resolve_product, sku)
    assert res.unique is not None and res.unique.sku == sku
    return res.unique


@pytest.mark.parametrize("phrase", [
    "桂花乌龙茶还有货吗",  # Simplified name in a question
    "桂花乌龙茶 500ml",  # the full name
    "桂花烏龍茶庫存多少",  # Traditional, never written that way in the catalogue
    "桂花烏龍有嗎",  # the Traditional alias
    "花香乌龙",  # the other alias
    "is the Osmanthus Oolong Tea in stock?",  # English
    "osmanthus oolong",  # part of the English name
    "TE-7001",  # SKU as written
    "te7001 有货吗",
    "te 7001",
    "ＴＥ－７００１",  # full-width
    "桂花乌龙荼",  # typo (荼 for 茶)
    "osmanthis oolong tea",  # English typo
    "oolong osmanthus",  # words out of order
])
async def test_a_product_imported_just_now_is_found_every_way(shop: Database, phrase: str) -> None:
    res = await uow(shop, resolve_product, phrase)
    assert res.unique is not None, (phrase, res)
    assert res.unique.sku == "TE-7001"
    assert res.unique.name_zh == "桂花乌龙茶 500ml"
    assert res.unique.name_en == "Osmanthus Oolong Tea 500ml"


@pytest.mark.parametrize(("phrase", "skus"), [
    ("牛肉面有货吗", {"MI-8101", "MI-8102"}),  # 酸汤肥牛面 is 肥牛, not 牛肉
    ("beef noodles", {"MI-8101", "MI-8102", "MI-8104"}),
    ("乌龙茶还有吗", {"TE-7001", "TE-7002"}),
])
async def test_an_ambiguous_mention_offers_every_fitting_product(shop: Database, phrase: str,
                                                                 skus: set[str]) -> None:
    res = await uow(shop, resolve_product, phrase)
    assert res.unique is None
    assert {p.sku for p in res.matches} == skus


@pytest.mark.parametrize(("phrase", "sku"), [
    ("藤椒牛肉面", "MI-8101"),  # naming the flavour settles it
    ("麻辣的牛肉面还有吗", "MI-8102"),
    ("beef noodles cup", "MI-8102"),  # the only cup
])
async def test_more_words_pick_one_of_the_ambiguous(shop: Database, phrase: str, sku: str) -> None:
    res = await uow(shop, resolve_product, phrase)
    assert res.unique is not None and res.unique.sku == sku


async def test_a_close_miss_gets_suggestions_but_no_match(shop: Database) -> None:
    res = await uow(shop, resolve_product, "桂花奶茶")  # not sold; 桂花乌龙茶 is close
    assert res.matches == [] and res.unique is None
    assert "TE-7001" in [p.sku for p in res.suggestions]


@pytest.mark.parametrize("phrase", ["xyzzy qwerty", "可口可乐还有货吗", "你好", "", "   "])
async def test_nonsense_matches_nothing(shop: Database, phrase: str) -> None:
    res = await uow(shop, resolve_product, phrase)
    assert res.matches == [] and res.suggestions == []


async def test_a_flavour_or_size_the_catalogue_lacks_is_not_guessed(shop: Database) -> None:
    # 番茄 (tomato) is no flavour of ours, and TE-7001 comes in 500ml only.
    for phrase in ("番茄牛肉面", "桂花乌龙茶 2L"):
        res = await uow(shop, resolve_product, phrase)
        assert res.unique is None, phrase
    sized = await uow(shop, resolve_product, "桂花乌龙茶 2L")
    assert "TE-7001" in [p.sku for p in sized.suggestions]


async def test_an_unknown_sku_does_not_match(shop: Database) -> None:
    res = await uow(shop, resolve_product, "TE-7999 有货吗")
    assert res.matches == []


async def test_stock_status_and_quantities_per_warehouse(shop: Database) -> None:
    available = await uow(shop, stock_for, await _ref(shop, "TE-7001"), low_threshold=50)
    assert available.status == "available"
    assert available.total == 420
    assert available.by_warehouse == [("上海仓", 300), ("广州仓", 120)]

    low = await uow(shop, stock_for, await _ref(shop, "TE-7002"), low_threshold=50)
    assert low.status == "low"
    assert low.total == 10
    assert low.by_warehouse == [("上海仓", 10), ("广州仓", 0)]

    out = await uow(shop, stock_for, await _ref(shop, "TE-7003"), low_threshold=50)
    assert out.status == "out" and out.total == 0
    assert sorted(out.by_warehouse) == [("上海仓", 0), ("广州仓", 0)]

    never_stocked = await uow(shop, stock_for, await _ref(shop, "MI-8104"))
    assert never_stocked.status == "out" and never_stocked.by_warehouse == []

    assert available.as_vars()["warehouses"] == [
        {"name": "上海仓", "quantity": 300}, {"name": "广州仓", "quantity": 120}]


async def test_similar_in_stock_is_same_category_and_in_stock(shop: Database) -> None:
    barley = await _ref(shop, "TE-7003")  # out of stock
    assert [p.sku for p in await uow(shop, similar_in_stock, barley)] == ["TE-7001", "TE-7002"]
    mala = await _ref(shop, "MI-8102")  # out of stock
    assert [p.sku for p in await uow(shop, similar_in_stock, mala)] == ["MI-8101", "MI-8103"]
    assert [p.sku for p in await uow(shop, similar_in_stock, mala, limit=1)] == ["MI-8101"]


async def test_html_in_names_is_kept_as_data(shop: Database) -> None:
    for phrase in ("MI-8103", "老卤面还有吗"):
        res = await uow(shop, resolve_product, phrase)
        assert res.unique is not None and res.unique.sku == "MI-8103", phrase
        assert res.unique.name_zh == "<b>限量</b>老卤面"
        assert res.unique.name_en == "<script>alert(1)</script> Braised Noodles"
    answer = await uow(shop, stock_for, res.unique)
    assert answer.as_vars()["name_en"] == "<script>alert(1)</script> Braised Noodles"
    assert answer.total == 5


async def test_a_product_imported_after_a_lookup_is_found(shop: Database, tmp_path: Path) -> None:
    assert (await uow(shop, resolve_product, "桂花乌龙茶")).unique is not None  # index built
    before = await uow(shop, resolve_product, "茉莉龙井还有货吗")
    assert before.matches == []

    await import_paths(shop, [_write(tmp_path / "later", HEADER + (
        "TE-7009,茉莉龙井 500ml,Jasmine Longjing 500ml,茉莉龍井,茶饮料,箱(15瓶),58.00\n"
        "TE-7001,桂花乌龙茶 500ml,Osmanthus Oolong Tea 500ml,桂花烏龍|秋香茶,茶饮料,箱,52.00\n"
    ))])

    after = await uow(shop, resolve_product, "茉莉龙井还有货吗")
    assert after.unique is not None and after.unique.sku == "TE-7009"
    assert (await uow(shop, resolve_product, "jasmine longjing")).unique.sku == "TE-7009"
    # An existing product's new alias counts at once, and its dropped alias no longer does.
    assert (await uow(shop, resolve_product, "秋香茶有吗")).unique.sku == "TE-7001"
    assert (await uow(shop, resolve_product, "花香乌龙")).unique is None


async def test_a_write_by_another_process_is_seen_after_the_recheck_interval(
        shop: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await uow(shop, resolve_product, "桂花乌龙茶")).unique is not None  # index built
    # A plain connection, as another process's import would look from here: no session events.
    async with shop.engine.begin() as conn:
        await conn.execute(insert(Product.__table__).values(
            sku="TE-7010", name_zh="陈皮普洱 500ml", name_en="Tangerine Peel Pu-erh 500ml",
            aliases=[], category="茶饮料", unit="箱", price=Decimal("60.00")))
    monkeypatch.setattr(catalogue, "RECHECK_SECONDS", 0.0)
    res = await uow(shop, resolve_product, "陈皮普洱")
    assert res.unique is not None and res.unique.sku == "TE-7010"


async def test_an_empty_catalogue_matches_nothing(db: Database) -> None:
    res = await uow(db, resolve_product, "桂花乌龙茶")
    assert res.matches == [] and res.suggestions == []

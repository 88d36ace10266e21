"""Importing operator CSV files into the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import (
    AuditLog,
    Base,
    Customer,
    Order,
    OrderLine,
    Product,
    Promotion,
    StockLevel,
    Warehouse,
)
from core.services.importer import COLUMNS, ImportRejected, import_paths

PRODUCTS = """sku,name_zh,name_en,aliases,category,unit,price
BV-4001,冰红茶 500ml,Iced Tea 500ml,冰红茶|冰紅茶|康师傅冰红茶,茶饮料,箱(15瓶),45.00
BV-4011,绿茶 500ml,Green Tea 500ml,绿茶|綠茶,茶饮料,箱(15瓶),45
NO-2001,"<b>红烧牛肉面</b>, 袋装",Braised Beef Noodles,红烧牛肉面|紅燒牛肉麵,方便面,箱(24袋),62.40
"""
STOCK = """sku,warehouse,quantity
BV-4001,上海仓,120
BV-4001,广州仓,0
BV-4011,上海仓,0
NO-2001,成都仓,35
"""
RETAILERS = """code,name,phone,region,channel
R001,好邻居便利店（徐汇店）,13800138001,华东,便利店
R002,惠民超市,13800138002,华东,超市
"""
DEALERS = """code,name,phone,region,tier
D001,上海恒通商贸有限公司,021-64001234,华东,key
D002,成都川味源商贸,028-85551234,西南,重点
"""
ORDERS = ",".join(COLUMNS["orders"]) + """
SO20261115-0123,R001,shipped,2026-11-15 10:00,2026-11-20,顺丰,SF1428833105621,BV-4001,10,45.00
SO20261115-0123,R001,shipped,2026-11-15 10:00,2026-11-20,顺丰,SF1428833105621,NO-2001,5,62.40
SO20261116-0124,D001,pending,2026-11-16T09:30:00+00:00,,,,BV-4011,200,39.60
"""
PROMOTIONS = ",".join(COLUMNS["promotions"]) + """
PR-ICETEA,冰红茶买十送一,"Iced Tea: Buy 10, Get 1 Free",2026-11-01,2026-12-31,BV-4001,,,10,\
买10送1,"buy 10, get 1 free"
PR-EAST,华东牛肉面9折,East: 10% off,2026-11-10,2026-12-20,NO-2001,华东,便利店|超市,0,9折,10% off
"""
ALL = {"products": PRODUCTS, "stock": STOCK, "retailers": RETAILERS, "dealers": DEALERS,
       "orders": ORDERS, "promotions": PROMOTIONS}
TABLES = [Product, Warehouse, StockLevel, Customer, Order, OrderLine, Promotion]


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, text in files.items():
        (folder / f"{kind}.csv").write_text(text, encoding="utf-8")
    return folder


async def row_counts(db: Database) -> dict[str, int]:
    async with db.transaction() as s:
        return {m.__tablename__: await s.scalar(select(func.count()).select_from(m))
                for m in [*TABLES, AuditLog]}


async def snapshot(db: Database) -> dict[str, list[tuple]]:
    """Every row of every imported table, to prove a rejected import touched nothing."""
    out: dict[str, list[tuple]] = {}
    async with db.transaction() as s:
        for model in TABLES:
            table = Base.metadata.tables[model.__tablename__]
            rows = (await s.execute(select(table).order_by(table.c.id))).all()
            out[model.__tablename__] = [tuple(r) for r in rows]
    return out


async def test_good_import_stores_what_the_operator_sent(db: Database, tmp_path: Path) -> None:
    report = await import_paths(db, [write(tmp_path / "in", **ALL)], actor="ops:alice",
                                timezone="Asia/Shanghai")

    assert {k: c.created for k, c in report.counts.items()} == {
        "products": 3, "retailers": 2, "dealers": 2, "stock": 4, "orders": 2, "promotions": 2}
    assert report.restocked == []  # a first import brings nothing "back in stock"
    async with db.transaction() as s:
        tea = await s.scalar(select(Product).where(Product.sku == "BV-4001"))
        noodles = await s.scalar(select(Product).where(Product.sku == "NO-2001"))
        dealer = await s.scalar(select(Customer).where(Customer.code == "D002"))
        order = await s.scalar(select(Order).where(Order.order_no == "SO20261115-0123"))
        lines = (await s.execute(select(OrderLine).where(OrderLine.order_id == order.id))).all()
        promo = await s.scalar(select(Promotion).where(Promotion.code == "PR-EAST"))
        audit = (await s.scalars(select(AuditLog))).all()
    assert tea.aliases == ["冰红茶", "冰紅茶", "康师傅冰红茶"]
    assert tea.price == Decimal("45.00")
    assert noodles.name_zh == "<b>红烧牛肉面</b>, 袋装"  # stored as-is; escaping is rendering's job
    assert (dealer.kind, dealer.tier) == ("dealer", "key")
    # 10:00 without an offset is Shanghai time, i.e. 02:00 UTC.
    created = order.created_at.replace(tzinfo=order.created_at.tzinfo or dt.UTC)
    assert created == dt.datetime(2026, 11, 15, 2, 0, tzinfo=dt.UTC)
    assert order.promised_date == dt.date(2026, 11, 20)
    assert (order.status, order.carrier) == ("shipped", "顺丰")
    assert order.tracking_no == "SF1428833105621"
    assert len(lines) == 2
    assert (promo.regions, promo.channels) == (["华东"], ["便利店", "超市"])
    assert promo.skus == ["NO-2001"]
    assert len(audit) == 1
    assert (audit[0].actor, audit[0].action) == ("ops:alice", "import")
    assert audit[0].details["orders"] == {"created": 2, "updated": 0, "unchanged": 0}


async def test_reimport_changes_nothing(db: Database, tmp_path: Path) -> None:
    folder = write(tmp_path / "in", **ALL)
    await import_paths(db, [folder])
    before = await snapshot(db)

    report = await import_paths(db, [folder])

    assert all(c.created == 0 and c.updated == 0 for c in report.counts.values())
    assert report["stock"].unchanged == 4 and report["orders"].unchanged == 2
    assert report.restocked == []
    assert "nothing changed" in report.summary()
    assert await snapshot(db) == before


async def test_changed_rows_are_updated_and_others_left_alone(
        db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "a", **ALL)])
    newer = PRODUCTS.replace("Green Tea 500ml,绿茶|綠茶,茶饮料,箱(15瓶),45",
                             "Green Tea 500ml,绿茶|綠茶|绿荼,茶饮料,箱(15瓶),46.50")
    report = await import_paths(db, [write(tmp_path / "b", products=newer)])
    assert (report["products"].updated, report["products"].unchanged) == (1, 2)
    async with db.transaction() as s:
        tea = await s.scalar(select(Product).where(Product.sku == "BV-4011"))
        n_orders = await s.scalar(select(func.count()).select_from(Order))
    assert tea.price == Decimal("46.50") and tea.aliases[-1] == "绿荼"
    assert n_orders == 2  # files not in this import are untouched


async def test_bad_rows_reject_the_whole_import_and_change_nothing(
        db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "first", **ALL)])
    counts, before = await row_counts(db), await snapshot(db)
    bad_products = PRODUCTS + "BV-4099,新品冰红茶,,,,,-1\n"  # line 5
    bad_stock = STOCK + "XX-1,上海仓,5\nBV-4011,广州仓,lots\n"  # lines 6, 7
    bad_orders = ORDERS + (
        "SO20261117-0125,R999,pending,2026-11-17 09:00,,,,BV-4001,1,45\n"  # line 5
        "SO20261117-0126,R001,pending,2026-11-17 09:00,,,,XX-1,1,45\n"  # line 6
    )
    folder = write(tmp_path / "second", **{**ALL, "products": bad_products,
                                           "stock": bad_stock, "orders": bad_orders})

    with pytest.raises(ImportRejected) as caught:
        await import_paths(db, [folder])

    assert [str(e) for e in caught.value.errors] == [
        "products.csv:5: price -1 must not be negative",
        "stock.csv:6: unknown sku 'XX-1'",
        "stock.csv:7: quantity 'lots' is not a whole number",
        "orders.csv:5: unknown customer code 'R999' (not a retailer or dealer)",
        "orders.csv:6: unknown sku 'XX-1'",
    ]
    assert await row_counts(db) == counts
    assert await snapshot(db) == before


async def test_only_items_that_ran_out_come_back_in_stock(db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "a", **ALL)])
    restock = "sku,warehouse,quantity\nBV-4011,上海仓,30\nBV-4001,广州仓,5\n"
    report = await import_paths(db, [write(tmp_path / "b", stock=restock)])
    # BV-4011 had 0 everywhere and now has 30; BV-4001 was in stock all along.
    assert report.restocked == ["BV-4011"]


async def test_references_may_point_at_rows_already_stored(db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "a", products=PRODUCTS, retailers=RETAILERS,
                                  dealers=DEALERS)])
    report = await import_paths(db, [write(tmp_path / "b", stock=STOCK, orders=ORDERS)])
    assert report["stock"].created == 4 and report["orders"].created == 2


async def test_a_retailer_code_cannot_become_a_dealer(db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "a", retailers=RETAILERS)])
    dealers = "code,name,phone,region,tier\nR001,好邻居,,华东,general\n"
    with pytest.raises(ImportRejected) as caught:
        await import_paths(db, [write(tmp_path / "b", dealers=dealers)])
    assert [str(e) for e in caught.value.errors] == [
        "dealers.csv:2: code 'R001' is a retailer in the database, not a dealer"]


async def test_order_lines_are_replaced_by_the_files_lines(db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "a", **ALL)])
    header = ORDERS.splitlines()[0]
    # SO…0123: NO-2001 dropped, BV-4001 quantity changed, BV-4011 added; SO…0124 not in file.
    orders = header + "\n" + (
        "SO20261115-0123,R001,delivered,2026-11-15 10:00,2026-11-20,顺丰,SF1428833105621,"
        "BV-4001,12,45.00\n"
        "SO20261115-0123,R001,delivered,2026-11-15 10:00,2026-11-20,顺丰,SF1428833105621,"
        "BV-4011,3,45.00\n"
    )
    report = await import_paths(db, [write(tmp_path / "b", orders=orders)])
    assert (report["orders"].created, report["orders"].updated) == (0, 1)
    async with db.transaction() as s:
        order = await s.scalar(select(Order).where(Order.order_no == "SO20261115-0123"))
        lines = (await s.execute(
            select(Product.sku, OrderLine.quantity).join(Product)
            .where(OrderLine.order_id == order.id).order_by(Product.sku))).all()
        other = await s.scalar(select(Order).where(Order.order_no == "SO20261116-0124"))
        other_lines = await s.scalar(
            select(func.count()).select_from(OrderLine).where(OrderLine.order_id == other.id))
    assert order.status == "delivered"
    assert [tuple(r) for r in lines] == [("BV-4001", 12), ("BV-4011", 3)]
    assert other_lines == 1  # orders missing from the file are left alone


async def test_restocked_lists_skus_that_went_from_zero_to_some(
        db: Database, tmp_path: Path) -> None:
    await import_paths(db, [write(tmp_path / "a", **ALL)])
    stock = (
        "sku,warehouse,quantity\n"
        "BV-4001,上海仓,0\n"    # 120 → 0: sold out, not restocked
        "BV-4011,广州仓,48\n"   # 0 everywhere → 48 in a new warehouse row
        "NO-2001,成都仓,40\n"   # 35 → 40: was already in stock
    )
    report = await import_paths(db, [write(tmp_path / "b", stock=stock)])
    assert report.restocked == ["BV-4011"]
    assert (report["stock"].created, report["stock"].updated) == (1, 2)
    assert "back in stock: BV-4011" in report.summary()


async def test_progress_is_reported_until_done(db: Database, tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    await import_paths(db, [write(tmp_path / "a", **ALL)],
                       progress=lambda label, done, total: calls.append((label, done, total)))
    finished = {label for label, done, total in calls if done == total}
    assert "checking products.csv" in finished and "writing orders" in finished
    assert all(0 <= done <= total for _, done, total in calls)


async def test_an_unreadable_file_does_not_cascade_into_unknown_skus(
        db: Database, tmp_path: Path) -> None:
    broken = PRODUCTS.replace("price", "cost", 1)
    bad_price = PRODUCTS.replace("62.40", "sixty")
    with pytest.raises(ImportRejected) as caught:
        await import_paths(db, [write(tmp_path / "a", products=broken, stock=STOCK)])
    assert [str(e) for e in caught.value.errors] == [
        "products.csv:1: missing column(s): price; unexpected column(s): cost; expected "
        "exactly: sku,name_zh,name_en,aliases,category,unit,price"]
    with pytest.raises(ImportRejected) as caught:
        await import_paths(db, [write(tmp_path / "b", products=bad_price, stock=STOCK)])
    assert [str(e) for e in caught.value.errors] == [
        "products.csv:4: price 'sixty' is not a number (use digits and a '.')"]
    assert (await row_counts(db))["products"] == 0

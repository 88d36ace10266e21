"""Importer row validation without a database: every bad row is listed with file and line."""

from __future__ import annotations

from pathlib import Path

from core.services.importer import ImportReport, KindCounts, check_paths

PRODUCTS = "sku,name_zh,name_en,aliases,category,unit,price\n"
STOCK = "sku,warehouse,quantity\n"
RETAILERS = "code,name,phone,region,channel\n"
DEALERS = "code,name,phone,region,tier\n"
ORDERS = ("order_id,customer_code,status,created_at,promised_date,carrier,tracking_no,"
          "sku,quantity,unit_price\n")
PROMOTIONS = ("code,title_zh,title_en,starts_on,ends_on,skus,regions,channels,min_quantity,"
              "benefit_zh,benefit_en\n")


def problems(folder: Path, **files: str) -> list[str]:
    for kind, text in files.items():
        (folder / f"{kind}.csv").write_text(text, encoding="utf-8")
    return [str(p) for p in check_paths([folder])]


def test_product_values_are_checked(tmp_path: Path) -> None:
    text = PRODUCTS + (
        "BV-1,冰红茶,Iced tea,冰紅茶|康师傅冰红茶,茶饮料,箱,45.00\n"
        ",无编号,,,,,1\n"
        "BV-2,,,,,,1\n"
        "BV-3,绿茶,,,,,-2.50\n"
        "BV-4,绿茶,,,,,1.005\n"
        "BV-5,绿茶,,,,,¥3\n"
        "BV-1,冰红茶 重复,,,,,45\n"
        "BV|6,绿茶,,,,,1\n"
    )
    assert problems(tmp_path, products=text) == [
        "products.csv:3: sku is empty",
        "products.csv:4: name_zh is empty",
        "products.csv:5: price -2.50 must not be negative",
        "products.csv:6: price 1.005 has more than 2 decimal places",
        "products.csv:7: price '¥3' is not a number (use digits and a '.')",
        "products.csv:8: sku 'BV-1' appears twice (lines 2 and 8)",
        "products.csv:9: sku 'BV|6' must not contain '|'",
    ]


def test_html_in_names_is_not_a_problem(tmp_path: Path) -> None:
    text = PRODUCTS + 'BV-1,"<script>alert(1)</script>冰红茶","<b>Tea</b>",,,,1\n'
    assert problems(tmp_path, products=text) == []


def test_too_long_text_is_reported_before_postgres_sees_it(tmp_path: Path) -> None:
    text = PRODUCTS + f"BV-1,{'茶' * 201},,,,,1\n"
    assert problems(tmp_path, products=text) == [
        "products.csv:2: name_zh is too long (201 characters, at most 200)"
    ]


def test_stock_quantities_and_duplicates(tmp_path: Path) -> None:
    text = STOCK + (
        "BV-1,上海仓,10\n"
        "BV-1,广州仓,ten\n"
        "BV-1,成都仓,-3\n"
        "BV-1,上海仓,12\n"
        "BV-1,北京仓,1.5\n"
    )
    assert problems(tmp_path, products=PRODUCTS + "BV-1,冰红茶,,,,,1\n", stock=text) == [
        "stock.csv:3: quantity 'ten' is not a whole number",
        "stock.csv:4: quantity -3 must not be negative",
        "stock.csv:5: sku 'BV-1' in warehouse '上海仓' appears twice (lines 2 and 5)",
        "stock.csv:6: quantity '1.5' is not a whole number",
    ]


def test_customers_tier_and_codes(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        retailers=RETAILERS + "R001,好邻居便利店,138,华东,便利店\nR002,,,华东,超市\n",
        dealers=DEALERS + "D001,恒通商贸,,华东,key\nD002,粤达,,华南,gold\n"
                          "D003,川味源,,西南,重点\nR001,重复编号,,华东,general\n",
    )
    assert found == [
        "retailers.csv:3: name is empty",
        "dealers.csv:3: tier is unknown: 'gold'; use one of key, potential, advantage, general",
        "dealers.csv:5: code 'R001' is also a retailer in retailers.csv (line 2); "
        "a code can't be both",
    ]


def test_order_rows_are_checked(tmp_path: Path) -> None:
    products = PRODUCTS + "BV-1,冰红茶,,,,,45\nBV-2,绿茶,,,,,45\n"
    retailers = RETAILERS + "R001,好邻居便利店,,华东,便利店\n"
    orders = ORDERS + (
        "SO-1,R001,shipped,2026-11-15 10:00,2026-11-20,顺丰,SF1,BV-1,2,45\n"      # 2 ok
        "SO-1,R001,delivered,2026-11-15 10:00,2026-11-20,顺丰,SF1,BV-2,1,45\n"    # 3 status
        "SO-1,R001,shipped,2026-11-15 10:00,2026-11-20,顺丰,SF1,BV-1,1,45\n"      # 4 dup sku
        "SO-2,R001,lost,2026-11-31 10:00,20261120,,,BV-1,0,45\n"                  # 5 several
        "SO-3,R001,已发货,2026/11/16T09:30:00+08:00,,,,BV-1,1,45\n"              # 6 ok
        "SO-4,R001,pending,yesterday,,,,BV-1,1,45\n"                             # 7 date
    )
    assert problems(tmp_path, products=products, retailers=retailers, orders=orders) == [
        "orders.csv:3: order 'SO-1': status 'delivered' differs from line 2 ('shipped')",
        "orders.csv:4: sku 'BV-1' appears twice in order 'SO-1' (lines 2 and 4)",
        "orders.csv:5: status is unknown: 'lost'; use one of pending, confirmed, picking, "
        "shipped, delivered, cancelled",
        "orders.csv:5: created_at '2026-11-31 10:00' is not a real date",
        "orders.csv:5: promised_date '20261120' is not a date (use YYYY-MM-DD)",
        "orders.csv:5: quantity 0 must be at least 1",
        "orders.csv:7: created_at 'yesterday' is not a date-time "
        "(use YYYY-MM-DD HH:MM or ISO 8601)",
    ]


def test_promotion_rows_are_checked(tmp_path: Path) -> None:
    text = PROMOTIONS + (
        'PR-1,买十送一,"Buy 10, get 1",2026-11-01,2026-12-31,BV-1,,,10,"满10箱送1箱","x"\n'
        "PR-2,过期,,2026-12-01,2026-11-01,,,,0,,\n"
        "PR-3,坏日期,,2026-13-01,,,,,many,,\n"
        "PR-1,重复,,2026-11-01,2026-11-02,,,,,,\n"
        "PR-5,年份,,0226-11-01,2026-11-02,,,,,,\n"
    )
    assert problems(tmp_path, products=PRODUCTS + "BV-1,冰红茶,,,,,45\n", promotions=text) == [
        "promotions.csv:3: ends_on 2026-11-01 is before starts_on 2026-12-01",
        "promotions.csv:4: starts_on '2026-13-01' is not a real date",
        "promotions.csv:4: ends_on is empty",
        "promotions.csv:4: min_quantity 'many' is not a whole number",
        "promotions.csv:5: code 'PR-1' appears twice (lines 2 and 5)",
        "promotions.csv:6: starts_on '0226-11-01': the year 226 looks wrong",
    ]


def test_problems_come_in_dependency_then_line_order(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        stock=STOCK + "BV-1,上海仓,x\n",
        products=PRODUCTS + "BV-1,,,,,,1\n",
    )
    assert found == ["products.csv:2: name_zh is empty",
                     "stock.csv:2: quantity 'x' is not a whole number"]


def test_summary_reads_like_an_operator_report() -> None:
    report = ImportReport(
        counts={"products": KindCounts(created=2, updated=1, unchanged=5),
                "stock": KindCounts(unchanged=3)},
        restocked=["BV-4001"], files=["products.csv", "stock.csv"], rows=11, seconds=0.25,
    )
    text = report.summary()
    assert "2 file(s), 11 row(s)" in text
    assert "products" in text and "2 created" in text and "1 updated" in text
    assert "back in stock: BV-4001" in text
    quiet = ImportReport(counts={"stock": KindCounts(unchanged=3)}, files=["stock.csv"])
    assert "nothing changed" in quiet.summary()

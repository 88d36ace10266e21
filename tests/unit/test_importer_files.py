"""Importer file handling without a database: names, encodings, headers, CSV shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.services.importer import ImportProblem, check_paths, kind_of

PRODUCTS_HEADER = "sku,name_zh,name_en,aliases,category,unit,price\n"


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def messages(problems: list[ImportProblem]) -> list[str]:
    return [str(p) for p in problems]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("products.csv", "products"),
        ("2026-11-products.csv", "products"),
        ("STOCK.CSV", "stock"),
        ("dealers.csv", "dealers"),
        ("erp_orders.csv", "orders"),
        ("product.csv", None),
        ("products.xlsx", None),
    ],
)
def test_kind_is_recognised_by_file_name(name: str, kind: str | None) -> None:
    assert kind_of(Path(name)) == kind


def test_unknown_file_name_is_rejected_listing_the_accepted_names(tmp_path: Path) -> None:
    write(tmp_path, "customers.csv", "code,name\nR001,x\n")
    [problem] = check_paths([tmp_path])
    assert problem.file == "customers.csv"
    assert "products.csv" in problem.reason and "promotions.csv" in problem.reason


def test_excel_workbook_is_told_to_save_as_csv_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "products.xlsx", "PK\x03\x04")
    [problem] = check_paths([path])
    assert "CSV UTF-8" in problem.reason


def test_missing_path_and_empty_folder_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    found = messages(check_paths([tmp_path / "nope.csv", tmp_path / "empty"]))
    assert any("no such file" in m for m in found)
    assert any("no .csv files" in m for m in found)


def test_two_files_of_one_kind_are_rejected(tmp_path: Path) -> None:
    a = write(tmp_path, "a-products.csv", PRODUCTS_HEADER)
    b = write(tmp_path, "b-products.csv", PRODUCTS_HEADER)
    [problem] = check_paths([a, b])
    assert "second products file" in problem.reason


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "products.csv", "\ufeff" + PRODUCTS_HEADER + "BV-1,冰红茶,,,,,3.50\n")
    assert check_paths([tmp_path]) == []


def test_gbk_file_is_rejected_with_save_as_utf8_and_the_line(tmp_path: Path) -> None:
    write(tmp_path, "products.csv", PRODUCTS_HEADER + "BV-1,冰红茶,,,,,3.50\n", "gbk")
    [problem] = check_paths([tmp_path])
    assert problem.line == 2
    assert "save it as UTF-8" in problem.reason and "GBK" in problem.reason


def test_utf16_file_is_rejected_with_save_as_utf8(tmp_path: Path) -> None:
    write(tmp_path, "products.csv", "\ufeff" + PRODUCTS_HEADER, "utf-16-le")
    [problem] = check_paths([tmp_path])
    assert "UTF-16" in problem.reason and "save it as UTF-8" in problem.reason


def test_empty_file_is_rejected_naming_the_expected_header(tmp_path: Path) -> None:
    write(tmp_path, "stock.csv", "")
    [problem] = check_paths([tmp_path])
    assert "empty" in problem.reason and "sku,warehouse,quantity" in problem.reason


def test_header_only_file_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "stock.csv", "sku,warehouse,quantity\n\n")
    assert check_paths([tmp_path]) == []


def test_missing_and_extra_columns_are_named(tmp_path: Path) -> None:
    write(tmp_path, "products.csv", "sku,name_zh,name_en,aliases,category,unit,cost\n")
    [problem] = check_paths([tmp_path])
    assert str(problem).startswith("products.csv:1: ")
    assert "missing column(s): price" in problem.reason
    assert "unexpected column(s): cost" in problem.reason


def test_columns_may_come_in_any_order_and_case(tmp_path: Path) -> None:
    write(tmp_path, "stock.csv", "Quantity, SKU ,warehouse\n5,BV-1,上海仓\n")
    write(tmp_path, "products.csv", PRODUCTS_HEADER + "BV-1,冰红茶,,,,,1\n")
    assert check_paths([tmp_path]) == []


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_wrong_delimiter_is_explained(tmp_path: Path, sep: str, word: str) -> None:
    write(tmp_path, "stock.csv", sep.join(["sku", "warehouse", "quantity"]) + "\n")
    [problem] = check_paths([tmp_path])
    assert word in problem.reason and "comma" in problem.reason


def test_blank_lines_are_skipped_and_lines_are_physical(tmp_path: Path) -> None:
    text = (
        PRODUCTS_HEADER
        + "\n"                                               # 2: blank
        + 'BV-1,"冰红茶\n大瓶",,,,,1.00\n'                    # 3-4: quoted newline
        + ",,,,,,\n"                                         # 5: empty cells, skipped
        + "BV-2,绿茶,,,,,abc\n"                              # 6: bad price
    )
    write(tmp_path, "products.csv", text)
    assert messages(check_paths([tmp_path])) == [
        "products.csv:6: price 'abc' is not a number (use digits and a '.')"
    ]


def test_quoted_commas_and_whitespace_are_handled(tmp_path: Path) -> None:
    write(tmp_path, "products.csv",
          PRODUCTS_HEADER + '  BV-1 , "Tea, iced" ,"Iced tea, 500ml", a | b ,, 箱 , 3.5 \n')
    assert check_paths([tmp_path]) == []


def test_unquoted_extra_comma_is_reported_with_a_hint(tmp_path: Path) -> None:
    write(tmp_path, "products.csv", PRODUCTS_HEADER + "BV-1,冰红茶,Tea, iced,,,,1\n")
    [problem] = check_paths([tmp_path])
    assert problem.line == 2 and "8 values, expected 7" in problem.reason
    assert "double quotes" in problem.reason


def test_nul_bytes_reject_the_row_not_the_reader(tmp_path: Path) -> None:
    write(tmp_path, "products.csv",
          PRODUCTS_HEADER + "BV-1,冰\x00红茶,,,,,1\nBV-2,绿茶,,,,,-1\n")
    assert messages(check_paths([tmp_path])) == [
        "products.csv:2: contains NUL bytes (a binary or UTF-16 file?)",
        "products.csv:3: price -1 must not be negative",
    ]


def test_unclosed_quote_is_reported(tmp_path: Path) -> None:
    # An unclosed quote swallows the rest of the file into one oversized field.
    write(tmp_path, "products.csv", PRODUCTS_HEADER + 'BV-1,"冰红茶,,,,,1\n' + "x" * 200_000)
    problems = check_paths([tmp_path])
    assert problems and all(p.file == "products.csv" for p in problems)
    assert any("quote" in p.reason or "values" in p.reason for p in problems)


def test_problem_reads_file_line_reason() -> None:
    assert str(ImportProblem("orders.csv", 17, "unknown sku 'XX-1'")) == (
        "orders.csv:17: unknown sku 'XX-1'"
    )
    assert str(ImportProblem("x.csv", None, "unknown file name")) == "x.csv: unknown file name"

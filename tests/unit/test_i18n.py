"""Script detection, conversion and per-locale rendering."""

import pytest

from core.i18n import (
    LOCALES,
    Renderer,
    detect_script,
    locale_from_language_code,
    normalize_locale,
    to_simplified,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("請問我的訂單什麼時候發貨", "zh-Hant"),
    ("请问我的订单什么时候发货", "zh-Hans"),
    ("is the iced tea in stock", "en"),
    ("SO20261115-0123", None),
    ("BV-4001", None),
    ("BV-4001 有没有货", "zh-Hans"),
])
def test_detect_script(text: str, expected: str | None) -> None:
    assert detect_script(text) == expected


def test_traditional_is_converted_for_the_model() -> None:
    assert to_simplified("紅燒牛肉麵庫存多少") == "红烧牛肉面库存多少"
    assert to_simplified("SO20261115-0123") == "SO20261115-0123"


def test_language_codes_and_names() -> None:
    assert locale_from_language_code("zh-TW") == "zh-Hant"
    assert locale_from_language_code("zh-hans") == "zh-Hans"
    assert locale_from_language_code("en-US") == "en"
    assert locale_from_language_code("fr") is None
    assert normalize_locale("繁體") == "zh-Hant"
    assert normalize_locale("English") == "en"


def test_every_template_exists_in_every_locale() -> None:
    r = Renderer()
    keys = set()
    for loc in LOCALES:
        keys |= set(r.envs[loc].loader.mapping())  # type: ignore[union-attr]
    missing = {loc: sorted(k for k in keys if k not in r.envs[loc].loader.mapping())  # type: ignore[union-attr]
               for loc in LOCALES}
    assert missing == {loc: [] for loc in LOCALES}


def test_variables_are_escaped_and_converted_for_traditional() -> None:
    r = Renderer()
    out = r.render("link_success", "zh-Hant", account="<b>冰红茶店</b>", code="R9",
                   kind="retailer", role="")
    assert "&lt;b&gt;冰紅茶店&lt;/b&gt;" in out
    assert "綁定" in out

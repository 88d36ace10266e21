"""Script detection, the Traditional convention, and small wrong answers (no Rasa needed)."""

from __future__ import annotations

import pytest

from bot.actions.catalogue import _mention, untagged
from bot.actions.sdk import Tracker
from core.i18n import Renderer, detect_script, to_simplified, to_traditional


# ------------------------------------------------------------------ item 15a: neutral text
@pytest.mark.parametrize("text", ["你好", "好的", "可以", "不是", "BV-4001", "12", "50",
                                  "SO20261115-0123", "👍", "你好!"])
def test_script_neutral_text_gives_no_locale(text: str) -> None:
    assert detect_script(text) is None


@pytest.mark.parametrize(("text", "locale"), [
    ("我的訂單到哪了", "zh-Hant"), ("我的订单到哪了", "zh-Hans"), ("有冇貨", "zh-Hant"),
    ("where is my order", "en"), ("謝謝", "zh-Hant"), ("谢谢", "zh-Hans"),
])
def test_script_specific_text_gives_its_locale(text: str, locale: str) -> None:
    assert detect_script(text) == locale


def test_a_traditional_user_stays_traditional_through_neutral_messages() -> None:
    """What touch_identity does with each detection: neutral text keeps the locale."""
    remembered = "zh-Hant"
    for text in ["我想查訂單", "好的", "SO20261115-0123", "你好", "50", "可以"]:
        detected = detect_script(text)
        if detected:  # accounts.touch_identity only switches on a detected script
            remembered = detected
    assert remembered == "zh-Hant"


# -------------------------------------------------------------- item 15b: tw / hk output
@pytest.mark.parametrize("convention", ["tw", "hk"])
def test_product_and_brand_names_in_their_usual_traditional_form(convention: str) -> None:
    noodles = to_traditional("红烧牛肉面", convention)
    brand = to_traditional("雪峰矿泉水", convention)
    assert noodles == "紅燒牛肉麵" and "麪" not in noodles
    assert brand.startswith("雪峰") and "峯" not in brand
    assert to_traditional("香菇炖鸡面 袋装", convention) == "香菇燉雞麵 袋裝"


def test_conventions_differ_where_taiwan_and_hong_kong_do() -> None:
    assert to_traditional("台湾", "tw") == "臺灣"
    assert to_traditional("台湾", "hk") == "台灣"
    assert to_traditional("里面", "tw") == "裡面"
    assert to_traditional("里面", "hk") == "裏面"


@pytest.mark.parametrize("convention", ["tw", "hk"])
def test_renderer_uses_the_convention_for_data_names(convention: str) -> None:
    text = Renderer(convention=convention).render(
        "stock_answer", "zh-Hant", sku="NO-2001", name_zh="红烧牛肉面 袋装", name_en="",
        status="available", total=5, unit="箱", show_quantities=False, warehouses=[],
        similar=[{"sku": "XF-1", "name_zh": "雪峰矿泉水"}])
    assert "紅燒牛肉麵" in text and "麪" not in text
    assert "峯" not in text


def test_unknown_convention_is_refused() -> None:
    with pytest.raises(ValueError, match="traditional_convention"):
        Renderer(convention="cn")


def test_cantonese_characters_survive_t2s() -> None:
    """OpenCC maps 餸/嗰/喎 to rare forms outside everyday fonts; they are kept as typed."""
    assert to_simplified("今晚食咩餸，嗰個喎") == "今晚食咩餸，嗰个喎"
    assert to_simplified("有冇貨？唔該") == "有冇货？唔该"


# ------------------------------------------------------------- item 17: small wrong answers
@pytest.mark.parametrize("locale", ["en", "zh-Hans", "zh-Hant"])
def test_did_you_mean_only_when_something_follows(locale: str) -> None:
    r = Renderer(convention="tw")
    bare = r.render("product_not_found", locale, given="可口可乐")
    offered = r.render("product_not_found", locale, given="可口可乐", suggested=True)
    for phrase in ("Did you mean", "您是不是要找"):
        assert phrase not in bare
    assert any(p in offered for p in ("Did you mean", "您是不是要找"))
    if locale == "en":
        assert '". Did you mean' in offered  # a space after the period


@pytest.mark.parametrize("locale", ["en", "zh-Hans", "zh-Hant"])
def test_order_not_found_does_not_repeat_the_number(locale: str) -> None:
    r = Renderer(convention="tw")
    same = r.render("order_not_found", locale, order_no="SO20261115-0123",
                    given="SO20261115-0123")
    assert same.count("SO20261115-0123") == 1
    typed = r.render("order_not_found", locale, order_no="SO20261115-0123",
                     given="so 20261115 0123")
    assert "so 20261115 0123" in typed and typed.count("SO20261115-0123") == 1


def test_html_tags_are_not_a_product_name() -> None:
    assert untagged("<b>is</b> the mineral water in stock") == "is the mineral water in stock"
    tracker = Tracker(sender_id="1", latest_message={
        "text": "<b>is</b> the mineral water in stock",
        "entities": [{"entity": "product", "value": "<b>mineral water</b>"}]})
    assert _mention(tracker) == "mineral water"
    no_entity = Tracker(sender_id="1", latest_message={"text": "<i>冰红茶</i>还有吗"})
    assert _mention(no_entity) == "冰红茶 还有吗"
    assert untagged("1 < 2 and 3 > 2") == "1 < 2 and 3 > 2"  # not a tag: left alone

"""Entity post-processing (nlu/components/entity_rules.py), without Rasa."""

from __future__ import annotations

from nlu.components.entity_rules import canonical_order_id, clean_entities

DIET, REGEX = "DIETClassifier", "RegexEntityExtractor"


def ent(text, start, end, name, extractor=DIET):
    return {"entity": name, "start": start, "end": end, "value": text[start:end],
            "extractor": extractor}


def test_canonical_order_id():
    for typed in ("SO20261115-0123", "so202611150123", "so 20261115 0123", "So-20261115_0123"):
        assert canonical_order_id(typed) == "SO20261115-0123"
    assert canonical_order_id("BV-4001") == "BV-4001"
    assert canonical_order_id(None) is None


def test_regex_order_id_wins_over_overlapping_diet_entities():
    text = "订单so 20261115 0123到哪了"
    out = clean_entities([ent(text, 2, 10, "order_id"), ent(text, 2, 18, "order_id", REGEX),
                          ent(text, 11, 18, "product")], text)
    assert out == [{"entity": "order_id", "start": 2, "end": 18, "value": "SO20261115-0123",
                    "extractor": REGEX}]


def test_product_pieces_are_joined_but_lists_are_not():
    text = "is iced lemon tea in stock"
    out = clean_entities([ent(text, 3, 7, "product"), ent(text, 14, 17, "product")], text)
    assert [e["value"] for e in out] == ["iced lemon tea"]
    text = "香菇炖鸡面缺货吗"
    out = clean_entities([ent(text, 0, 2, "product"), ent(text, 4, 5, "product")], text)
    assert [e["value"] for e in out] == ["香菇炖鸡面"]
    text = "冰红茶和绿茶有货吗"
    out = clean_entities([ent(text, 0, 3, "product"), ent(text, 4, 6, "product")], text)
    assert [e["value"] for e in out] == ["冰红茶", "绿茶"]
    text = "iced tea and green tea"
    out = clean_entities([ent(text, 0, 8, "product"), ent(text, 13, 22, "product")], text)
    assert [e["value"] for e in out] == ["iced tea", "green tea"]


def test_sku_from_regex_is_kept_and_diet_duplicate_dropped():
    text = "BV-4001还有多少"
    out = clean_entities([ent(text, 0, 7, "product", REGEX), ent(text, 0, 2, "product"),
                          ent(text, 7, 9, "quantity")], text)
    assert [(e["value"], e["extractor"]) for e in out] == [("BV-4001", REGEX), ("还有", DIET)]


def test_order_id_only_from_the_regex_and_no_punctuation_entities():
    text = "thanks so much - 30 days"
    out = clean_entities([ent(text, 7, 9, "order_id"), ent(text, 15, 16, "product"),
                          ent(text, 17, 19, "quantity")], text)
    assert [(e["entity"], e["value"]) for e in out] == [("quantity", "30")]

"""Entity post-processing rules, free of Rasa imports (unit-tested from our venv).

* Regex matches (order numbers, SKUs) are exact, so any entity from another extractor
  that overlaps one of them is dropped (DIET sometimes tags half of ``SO20261115-0123``
  or labels an order number as a product).
* ``order_id`` comes from the regex only: its shapes are exactly known, and DIET, which
  also learns from those annotations, tags stray "so", "-" or "30" as order numbers.
* Entities without a letter, digit or CJK character (a lone "-") are dropped.
* Overlapping duplicates are removed (first one wins, i.e. the regex one).
* Pieces of one product name that DIET tagged separately ("iced" … "tea",
  "香菇" … "面") are joined when only a short gap without a conjunction separates them.
* ``order_id`` values are normalised to the canonical ``SO20261115-0123`` shape, whatever
  the user typed (``so202611150123``, ``so 20261115 0123``); ``start``/``end`` still point
  at the text as typed.
"""

from __future__ import annotations

import re
from typing import Any

REGEX_EXTRACTOR = "RegexEntityExtractor"
REGEX_ONLY_ENTITIES = {"order_id"}
_MEANINGFUL = re.compile(r"[0-9A-Za-z\u3400-\u9fff]")
# A copy of core/order_numbers.py DEFAULT_PATTERN: this module runs in Rasa's own venv,
# which cannot import our packages. tests/nlu/test_order_numbers.py proves the copies (and
# the `order_id` regex in data/nlu/orders.yml) equal. A configured orders.number_pattern
# is applied by the order action on the raw text, not here (see nlu/README.md).
ORDER_ID_PATTERN = (
    r"(?<![A-Za-z])(?P<prefix>[A-Za-z]{1,4})[\s_-]*(?P<date>\d{8})[\s_-]*(?P<seq>\d{3,6})(?!\d)"
)
_ORDER_ID = re.compile(ORDER_ID_PATTERN, re.IGNORECASE)


def canonical_order_id(value: Any) -> Any:
    """``so 20261115 0123`` -> ``SO20261115-0123``; other values unchanged."""
    if not isinstance(value, str):
        return value
    match = _ORDER_ID.fullmatch(value.strip())
    if not match:
        return value
    return f"{match['prefix'].upper()}{match['date']}-{match['seq']}"


# Text between two product pieces that means "two products", not "one name".
_SEPARATOR = re.compile(r"[,，、/;；和跟与及或]|还有|以及|\band\b|\bor\b|&", re.IGNORECASE)
MAX_GAP_CJK = 3  # characters, e.g. 香菇[炖鸡]面
MAX_GAP_WORD = 12  # one Latin word, e.g. iced [lemon] tea


def _joinable_gap(gap: str) -> bool:
    word = gap.strip()
    if _SEPARATOR.search(gap) or len(word.split()) > 1:
        return False
    if not word:
        return len(gap) <= 2
    limit = MAX_GAP_WORD if word.isascii() else MAX_GAP_CJK
    return len(word) <= limit


def merge_product_pieces(
    entities: list[dict[str, Any]], text: str | None
) -> list[dict[str, Any]]:
    """Join DIET product fragments separated by at most a short, conjunction-free gap."""
    if not text:
        return entities
    merged: list[dict[str, Any]] = []
    for entity in entities:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and entity.get("entity") == "product" == prev.get("entity")
            and entity.get("extractor") != REGEX_EXTRACTOR
            and prev.get("extractor") != REGEX_EXTRACTOR
            and entity.get("start") is not None and prev.get("end") is not None
            and entity["start"] >= prev["end"]
        ):
            if _joinable_gap(text[prev["end"]:entity["start"]]):
                start, end = prev["start"], entity["end"]
                merged[-1] = {**prev, "end": end, "value": text[start:end]}
                continue
        merged.append(entity)
    return merged


def clean_entities(
    entities: list[dict[str, Any]], text: str | None = None
) -> list[dict[str, Any]]:
    """Drop entities overlapping a regex match or an earlier entity; canonicalise ids."""
    regex_spans = [
        (e["start"], e["end"]) for e in entities if e.get("extractor") == REGEX_EXTRACTOR
    ]
    kept: list[dict[str, Any]] = []
    for entity in sorted(
        entities, key=lambda e: (e.get("extractor") != REGEX_EXTRACTOR, e.get("start", 0))
    ):
        start, end = entity.get("start"), entity.get("end")
        if start is None or end is None:
            kept.append(entity)
            continue
        from_regex = entity.get("extractor") == REGEX_EXTRACTOR
        if not from_regex and (
            entity.get("entity") in REGEX_ONLY_ENTITIES
            or any(start < r_end and r_start < end for r_start, r_end in regex_spans)
            or not _MEANINGFUL.search(str(entity.get("value") or ""))
        ):
            continue
        if any(
            start < k["end"] and k["start"] < end
            for k in kept
            if k.get("start") is not None and k.get("entity") == entity.get("entity")
        ):
            continue
        if entity.get("entity") == "order_id":
            entity = {**entity, "value": canonical_order_id(entity.get("value"))}
        kept.append(entity)
    kept.sort(key=lambda e: e.get("start") if e.get("start") is not None else -1)
    return merge_product_pieces(kept, text)

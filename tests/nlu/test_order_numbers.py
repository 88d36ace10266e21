"""One order-number grammar (core/order_numbers.py) used by the service, the action and the
NLU; no Rasa needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from core import order_numbers
from core.order_numbers import DEFAULT_PATTERN, OrderNumberGrammar
from core.services.orders import normalize_order_no
from nlu.components import entity_rules

NLU = Path(__file__).resolve().parents[2] / "nlu"
DEFAULT = OrderNumberGrammar()

SHAPES = {
    "so 20261115 0123": "SO20261115-0123",
    "SO20261115-0123": "SO20261115-0123",
    "SO202611150123": "SO20261115-0123",
    "so-20261115-0123": "SO20261115-0123",
    "So20261115_0123": "SO20261115-0123",
    "PO20261115-0007": "PO20261115-0007",
    "po 20261115 00071": "PO20261115-00071",
    "A20261115-123": "A20261115-123",
    "ERPX20261115-123456": "ERPX20261115-123456",
}


@pytest.mark.parametrize(("typed", "canonical"), SHAPES.items())
def test_normalize_every_shape(typed: str, canonical: str) -> None:
    assert DEFAULT.normalize(typed) == canonical
    assert DEFAULT.normalize(f"  {typed} ") == canonical


@pytest.mark.parametrize("raw", ["", "hello", "SO2026", "12345", "BV-4001", "SO20261115-12",
                                 "SO20261115-1234567", "ABCDE20261115-0123",
                                 "'; DROP TABLE orders;--", "订单SO20261115-0123"])
def test_normalize_rejects_what_is_not_one_order_number(raw: str) -> None:
    assert DEFAULT.normalize(raw) is None


@pytest.mark.parametrize(("text", "found"), [
    ("订单SO20261115-0123到哪了", ["SO20261115-0123"]),  # no \b between 单 and SO
    ("订单so 20261115 0123到哪了", ["SO20261115-0123"]),
    ("PO20261115-0007发货了吗", ["PO20261115-0007"]),
    ("where is SO202611150123?", ["SO20261115-0123"]),
    ("SO20261125-0311和so202611250312都到了吗", ["SO20261125-0311", "SO20261125-0312"]),
    ("查SO20261115-0123，再查一次SO20261115-0123", ["SO20261115-0123"]),
    ("BV-4001还有货吗", []),
    ("电话13800138000", []),
    ("orderSO20261115-0123", []),  # letters glued to letters are not a prefix
])
def test_find_all_in_text(text: str, found: list[str]) -> None:
    assert DEFAULT.find_all(text) == found


def test_a_configured_pattern_finds_other_shapes() -> None:
    inv = OrderNumberGrammar(r"(?<![A-Za-z])(?P<prefix>INV)[\s_-]*(?P<seq>\d{6})(?!\d)")
    assert inv.find_all("发票单inv 123456到了吗") == ["INV-123456"]
    assert inv.normalize("INV123456") == "INV-123456"
    assert inv.normalize("SO20261115-0123") is None


def test_a_pattern_without_named_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="named groups"):
        OrderNumberGrammar(r"SO\d+")


def test_service_uses_the_grammar() -> None:
    for typed, canonical in SHAPES.items():
        assert normalize_order_no(typed) == canonical
    assert order_numbers.grammar().pattern == DEFAULT_PATTERN  # config.yml leaves it empty


def test_rasa_component_copy_equals_the_default() -> None:
    """entity_rules runs in Rasa's venv and keeps a copy of the pattern: it must not drift."""
    assert entity_rules.ORDER_ID_PATTERN == DEFAULT_PATTERN
    for typed, canonical in SHAPES.items():
        assert entity_rules.canonical_order_id(typed) == canonical


def test_training_data_regex_is_the_default_without_group_names() -> None:
    data = yaml.safe_load((NLU / "data" / "nlu" / "orders.yml").read_text(encoding="utf-8"))
    (block,) = [b for b in data["nlu"] if b.get("regex") == "order_id"]
    (pattern,) = [line[2:] for line in block["examples"].splitlines() if line.startswith("- ")]
    assert pattern == re.sub(r"\?P<\w+>", "", DEFAULT_PATTERN)


# ------------------------------------------------------------------------- the action
class _Ctx:
    """An ActionContext stand-in: a linked customer, no database."""

    db = None
    s = None  # the session of the call; the lookups below are test doubles
    settings = None

    async def sender(self, tracker):  # noqa: ANN001, ANN201 - test double
        from types import SimpleNamespace

        return SimpleNamespace(customer_id=7)


@pytest.mark.parametrize(("text", "expected"), [
    ("订单SO20261115-0123到哪了", "SO20261115-0123"),  # the old `\b` regex missed this
    ("PO20261115-0007发货了吗", "PO20261115-0007"),
    ("so 20261115 0123 到哪了", "SO20261115-0123"),
])
def test_action_finds_the_number_in_raw_text_without_an_entity(
        monkeypatch: pytest.MonkeyPatch, text: str, expected: str) -> None:
    import asyncio

    from bot.actions import orders as order_actions
    from bot.actions.sdk import Dispatcher, Tracker

    looked_up: list[str] = []

    async def fake_find(db, customer_id, raw):  # noqa: ANN001, ANN202 - test double
        looked_up.append(normalize_order_no(raw))
        return None

    monkeypatch.setattr(order_actions.orders, "find_order", fake_find)
    dispatcher = Dispatcher()
    tracker = Tracker(sender_id="1", latest_message={"text": text, "entities": []})
    asyncio.run(order_actions.ActionOrderStatus().run(_Ctx(), dispatcher, tracker, {}))
    assert looked_up == [expected]
    (message,) = dispatcher.messages
    assert message["custom"]["template"] == "order_not_found"
    assert message["custom"]["vars"]["order_no"] == expected

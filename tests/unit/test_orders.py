"""Order numbers as people type them."""

import pytest

from core.services.orders import normalize_order_no


@pytest.mark.parametrize("raw", [
    "SO20261115-0123", "so20261115-0123", "SO202611150123", "so 20261115 0123",
    " SO-20261115-0123 ",
])
def test_order_number_shapes(raw: str) -> None:
    assert normalize_order_no(raw) == "SO20261115-0123"


@pytest.mark.parametrize("raw", ["", "hello", "SO2026", "12345", "'; DROP TABLE orders;--"])
def test_not_order_numbers(raw: str) -> None:
    assert normalize_order_no(raw) is None

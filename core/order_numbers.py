"""One order-number grammar for the whole product: the service, the action and the NLU.

An order number is whatever matches one regular expression, configurable as
``orders.number_pattern`` in config.yml. The canonical form (how numbers are stored and
shown) is built from the pattern's named groups, in order, upper-cased, with a hyphen
before the group called ``seq``. The default accepts today's shapes — 1–4 letters, an
8-digit date and 3–6 digits, with optional spaces, hyphens or underscores between them —
and writes them ``SO20261115-0123``::

    so 20261115 0123 / SO20261115-0123 / SO202611150123 → SO20261115-0123
    PO20261115-0007                                      → PO20261115-0007

The pattern must not rely on ``\\b``: Chinese characters are word characters for Python's
``re``, so ``订单SO20261115-0123到哪了`` has no word boundary around the number. The
default uses look-arounds instead (no letter before, no digit after).

nlu/components/entity_rules.py (Rasa's own venv, which cannot import this package) keeps
a copy of DEFAULT_PATTERN; tests/nlu/test_order_numbers.py proves the copies equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_PATTERN = (
    r"(?<![A-Za-z])(?P<prefix>[A-Za-z]{1,4})[\s_-]*(?P<date>\d{8})[\s_-]*(?P<seq>\d{3,6})(?!\d)"
)


@dataclass(frozen=True)
class OrderNumberGrammar:
    """Finds and canonicalises order numbers with one compiled pattern."""

    pattern: str = DEFAULT_PATTERN

    def __post_init__(self) -> None:
        compiled = re.compile(self.pattern, re.IGNORECASE)
        if not compiled.groupindex:
            raise ValueError(
                f"orders.number_pattern {self.pattern!r} needs named groups, e.g. "
                "(?P<prefix>[A-Za-z]{1,4})[\\s_-]*(?P<date>\\d{8})[\\s_-]*(?P<seq>\\d{3,6})"
            )
        object.__setattr__(self, "_regex", compiled)

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled, case-insensitive pattern."""
        return self._regex  # type: ignore[attr-defined,no-any-return]

    def _canonical(self, match: re.Match[str]) -> str:
        parts = []
        for name, value in match.groupdict().items():
            if value is None:
                continue
            parts.append(("-" if name == "seq" and parts else "") + value.upper())
        return "".join(parts)

    def find_all(self, text: str | None) -> list[str]:
        """Canonical order numbers found anywhere in text, in order, without repeats."""
        found: list[str] = []
        for match in self.regex.finditer(text or ""):
            number = self._canonical(match)
            if number not in found:
                found.append(number)
        return found

    def normalize(self, raw: str | None) -> str | None:
        """The canonical number when raw is exactly one order number (blanks around
        allowed), else None."""
        match = self.regex.fullmatch((raw or "").strip())
        return self._canonical(match) if match else None


@lru_cache(maxsize=8)
def grammar(pattern: str | None = None) -> OrderNumberGrammar:
    """The grammar for a pattern (default: the configured ``orders.number_pattern``)."""
    if pattern is None:
        pattern = _configured_pattern()
    return OrderNumberGrammar(pattern)


def _configured_pattern() -> str:
    """orders.number_pattern from the settings; the default when settings cannot load."""
    from core.settings import load_settings

    return load_settings().orders.number_pattern or DEFAULT_PATTERN


def find_all(text: str | None) -> list[str]:
    """Canonical order numbers in text, with the configured grammar."""
    return grammar().find_all(text)


def normalize(raw: str | None) -> str | None:
    """Canonical form of one typed order number, with the configured grammar, or None."""
    return grammar().normalize(raw)

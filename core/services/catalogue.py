"""Product resolution against the live catalogue, and stock answers.

Products are matched at question time (SKU, names in both scripts and English, aliases, small
typos), so a product imported a minute ago is found without retraining the NLU model.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from sqlalchemy import func, select

from core.db import Database
from core.i18n import to_simplified
from core.models import Product, StockLevel, Warehouse

_SKU = re.compile(r"\b([A-Za-z]{1,4})\s*-?\s*(\d{2,6})\b")
_PUNCT = re.compile(r"[\s\-_/·,.，。、!?！？:：;；'\"“”‘’()（）\[\]【】]+")
# Words people wrap around a product name; removed before fuzzy matching.
_FILLER = re.compile(
    r"(还有货吗|有没有货|有货吗|有没有|还有吗|库存多少|库存|多少|现货|请问|查一下|查查|帮我|一下|"
    r"is the|are the|in stock|stock|do you have|have you got|any|how many|how much|left|please|"
    r"check|the|of|for|is|are|there)",
    re.IGNORECASE,
)


def norm(text: str) -> str:
    """Lower-case, Simplified, without spaces and punctuation: the form names are compared in."""
    return _PUNCT.sub("", to_simplified(text or "")).lower()


def sku_in(text: str) -> str | None:
    """An SKU-shaped token in the text, canonicalised (bv 4001 → BV-4001)."""
    m = _SKU.search(text or "")
    return f"{m.group(1).upper()}-{m.group(2)}" if m else None


@dataclass(frozen=True)
class ProductRef:
    id: int
    sku: str
    name_zh: str
    name_en: str
    category: str
    unit: str


@dataclass(frozen=True)
class Resolution:
    """The outcome of matching a phrase: one product, several to pick from, or suggestions."""

    matches: list[ProductRef] = field(default_factory=list)
    suggestions: list[ProductRef] = field(default_factory=list)

    @property
    def unique(self) -> ProductRef | None:
        """The product, when exactly one matched."""
        return self.matches[0] if len(self.matches) == 1 else None


class _Index:
    """Normalised names of every product, rebuilt when the catalogue changes."""

    def __init__(self) -> None:
        self.version: tuple | None = None
        self.products: dict[int, ProductRef] = {}
        self.by_sku: dict[str, int] = {}
        self.keys: list[str] = []  # a normalised name or alias
        self.owners: list[int] = []  # product id of each key
        self.lock = asyncio.Lock()


_indexes: dict[str, _Index] = {}


async def _index(db: Database) -> _Index:
    idx = _indexes.setdefault(db.url, _Index())
    async with db.transaction() as s:
        version = tuple(await s.execute(
            select(func.count(Product.id), func.max(Product.updated_at), func.max(Product.id))
        ).one())
        if version == idx.version:
            return idx
        async with idx.lock:
            if version == idx.version:
                return idx
            rows = (await s.scalars(select(Product))).all()
            products, by_sku, keys, owners = {}, {}, [], []
            for p in rows:
                products[p.id] = ProductRef(p.id, p.sku, p.name_zh, p.name_en, p.category, p.unit)
                by_sku[p.sku.upper()] = p.id
                by_sku[norm(p.sku)] = p.id
                for name in {p.name_zh, p.name_en, p.sku, *(p.aliases or [])}:
                    key = norm(name)
                    if key:
                        keys.append(key)
                        owners.append(p.id)
            idx.products, idx.by_sku, idx.keys, idx.owners = products, by_sku, keys, owners
            idx.version = version
    return idx


async def resolve_product(db: Database, phrase: str, limit: int = 5) -> Resolution:
    """Match a product mention (or a whole question) against the catalogue."""
    idx = await _index(db)
    if not idx.products or not phrase or not phrase.strip():
        return Resolution()
    sku = sku_in(phrase)
    if sku and sku.upper() in idx.by_sku:
        return Resolution(matches=[idx.products[idx.by_sku[sku.upper()]]])
    query = norm(phrase)
    if query in idx.by_sku:
        return Resolution(matches=[idx.products[idx.by_sku[query]]])
    stripped = norm(_FILLER.sub(" ", to_simplified(phrase))) or query

    # 1. Exact name or alias.
    exact = {idx.owners[i] for i, k in enumerate(idx.keys) if k in (query, stripped)}
    if exact:
        return Resolution(matches=[idx.products[i] for i in sorted(exact)])
    # 2. A known name contained in the question ("冰红茶还有货吗"), longest names first.
    contained = [(len(k), idx.owners[i]) for i, k in enumerate(idx.keys)
                 if len(k) >= 2 and k in query]
    if contained:
        best_len = max(n for n, _ in contained)
        ids = sorted({pid for n, pid in contained if n == best_len})
        return Resolution(matches=[idx.products[i] for i in ids])
    # 3. The question's words inside a longer name ("牛肉面" → both beef noodle products).
    if len(stripped) >= 2:
        inside = sorted({idx.owners[i] for i, k in enumerate(idx.keys) if stripped in k})
        if inside:
            return Resolution(matches=[idx.products[i] for i in inside[:limit]])
    # 4. Small typos: fuzzy similarity on names and aliases.
    scored = process.extract(stripped, idx.keys, scorer=fuzz.ratio, limit=limit * 4)
    best: dict[int, float] = {}
    for _key, score, pos in scored:
        pid = idx.owners[pos]
        best[pid] = max(best.get(pid, 0.0), score)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    if ranked and ranked[0][1] >= 66:
        top = ranked[0][1]
        close = [pid for pid, sc in ranked if sc >= 66 and top - sc < 5]
        return Resolution(matches=[idx.products[i] for i in close[:limit]])
    return Resolution(suggestions=[idx.products[pid] for pid, sc in ranked[:3] if sc >= 30])


@dataclass(frozen=True)
class StockAnswer:
    product: ProductRef
    total: int
    by_warehouse: list[tuple[str, int]]
    status: str  # available | low | out

    def as_vars(self, show_quantities: bool = True) -> dict:
        """Plain values for templates."""
        return {
            "sku": self.product.sku, "name_zh": self.product.name_zh,
            "name_en": self.product.name_en, "unit": self.product.unit,
            "total": self.total, "status": self.status, "show_quantities": show_quantities,
            "warehouses": [{"name": w, "quantity": q} for w, q in self.by_warehouse],
        }


async def stock_for(db: Database, product: ProductRef, low_threshold: int = 50) -> StockAnswer:
    """Quantities per warehouse and a status word for one product."""
    async with db.transaction() as s:
        rows = (await s.execute(
            select(Warehouse.code, StockLevel.quantity)
            .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
            .where(StockLevel.product_id == product.id)
            .order_by(StockLevel.quantity.desc(), Warehouse.code)
        )).all()
    by_wh = [(str(code), int(q)) for code, q in rows]
    total = sum(q for _, q in by_wh)
    status = "out" if total <= 0 else "low" if total < low_threshold else "available"
    return StockAnswer(product, total, by_wh, status)


async def similar_in_stock(db: Database, product: ProductRef, limit: int = 3) -> list[ProductRef]:
    """Products of the same category that are in stock now."""
    async with db.transaction() as s:
        rows = (await s.execute(
            select(Product)
            .join(StockLevel, StockLevel.product_id == Product.id)
            .where(Product.category == product.category, Product.id != product.id)
            .group_by(Product.id)
            .having(func.sum(StockLevel.quantity) > 0)
            .order_by(func.sum(StockLevel.quantity).desc())
            .limit(limit)
        )).scalars().all()
    return [ProductRef(p.id, p.sku, p.name_zh, p.name_en, p.category, p.unit) for p in rows]

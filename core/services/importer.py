"""Import operator CSV exports (ERP/DMS): check every file first, then upsert in one transaction.

The operator's ERP/DMS stays the source of truth; this module keeps a copy. An import is
all-or-nothing: if any row of any file is bad, `ImportRejected` lists every bad row and the
database is not touched. Files are streamed twice (check, then write) instead of being held in
memory, so a 50 MB export costs a few dictionaries of keys, not a copy of every row.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.models import (
    DEALER_TIERS,
    ORDER_STATUSES,
    AuditLog,
    Customer,
    Order,
    OrderLine,
    Product,
    Promotion,
    StockLevel,
    Warehouse,
    utcnow,
)
from core.services import notifications
from core.settings import ConfigError, load_settings

Progress = Callable[[str, int, int], None]
T = TypeVar("T")

# Dependency order: stock and orders refer to products and customers imported before them.
KINDS = ("products", "retailers", "dealers", "stock", "orders", "promotions")
COLUMNS: dict[str, tuple[str, ...]] = {
    "products": ("sku", "name_zh", "name_en", "aliases", "category", "unit", "price"),
    "stock": ("sku", "warehouse", "quantity"),
    "retailers": ("code", "name", "phone", "region", "channel"),
    "dealers": ("code", "name", "phone", "region", "tier", "active"),
    "orders": (
        "order_id", "customer_code", "status", "created_at", "promised_date", "carrier",
        "tracking_no", "sku", "quantity", "unit_price",
    ),
    "promotions": (
        "code", "title_zh", "title_en", "starts_on", "ends_on", "skus", "regions", "channels",
        "min_quantity", "benefit_zh", "benefit_en",
    ),
}
# Columns a file may leave out (files written before they existed stay valid); a missing one
# reads as empty, which leaves the stored value alone.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"dealers": ("active",)}
MISSING = "\x00"  # the value of an optional column the file does not have (NUL never is one)
ACTIVE_SYNONYMS = {"yes": True, "y": True, "true": True, "1": True, "是": True, "启用": True,
                   "啟用": True, "active": True, "no": False, "n": False, "false": False,
                   "0": False, "否": False, "停用": False, "inactive": False}
ACCEPTED_NAMES = ", ".join(f"{kind}.csv" for kind in KINDS)
LIST_SEPARATOR = "|"
CHUNK = 500  # rows per query; well under SQLite's bound-parameter limit
PROGRESS_EVERY = 500
MAX_PROBLEMS_PER_FILE = 10_000  # past this the file is clearly the wrong one; stop listing
DEFAULT_TIMEZONE = "Asia/Shanghai"
SAVE_AS_UTF8 = "save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8 (Comma delimited)')"

# Chinese labels ERP exports commonly use, accepted next to the canonical English values.
TIER_SYNONYMS = {
    "重点": "key", "重点客户": "key", "重點": "key", "重點客戶": "key",
    "潜力": "potential", "潜力客户": "potential", "潛力": "potential",
    "优势": "advantage", "优势客户": "advantage", "優勢": "advantage",
    "一般": "general", "一般客户": "general", "普通": "general",
}
STATUS_SYNONYMS = {
    "待处理": "pending", "待确认": "pending", "待處理": "pending", "待確認": "pending",
    "已确认": "confirmed", "已確認": "confirmed",
    "拣货中": "picking", "备货中": "picking", "揀貨中": "picking", "備貨中": "picking",
    "已发货": "shipped", "已發貨": "shipped", "运输中": "shipped", "運輸中": "shipped",
    "已签收": "delivered", "已送达": "delivered", "已簽收": "delivered", "已送達": "delivered",
    "已取消": "cancelled", "canceled": "cancelled",
}

_INT_RE = re.compile(r"[+-]?[0-9]+")
_MULTILINE = re.compile(r"[\r\n\t]")
_DEC_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE_RE = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
_CENT = Decimal("0.01")
_MAX_PRICE = Decimal("9999999999.99")  # Numeric(12, 2)
_MAX_INT = 2**31 - 1


def _length(column: Any) -> int:
    return int(column.type.length)


# Text limits come from the models so PostgreSQL never sees a value too long for its column.
LIMITS: dict[str, int] = {
    "sku": _length(Product.__table__.c.sku),
    "name_zh": _length(Product.__table__.c.name_zh),
    "name_en": _length(Product.__table__.c.name_en),
    "category": _length(Product.__table__.c.category),
    "unit": _length(Product.__table__.c.unit),
    "warehouse": _length(Warehouse.__table__.c.code),
    "code": _length(Customer.__table__.c.code),
    "name": _length(Customer.__table__.c.name),
    "phone": _length(Customer.__table__.c.phone),
    "region": _length(Customer.__table__.c.region),
    "channel": _length(Customer.__table__.c.channel),
    "order_id": _length(Order.__table__.c.order_no),
    "customer_code": _length(Customer.__table__.c.code),
    "carrier": _length(Order.__table__.c.carrier),
    "tracking_no": _length(Order.__table__.c.tracking_no),
    "title_zh": _length(Promotion.__table__.c.title_zh),
    "title_en": _length(Promotion.__table__.c.title_en),
    "aliases": _length(Product.__table__.c.name_zh),
}


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ImportProblem:
    """One reason an import was rejected: file name, physical line (header = 1) and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class ImportRejected(Exception):
    """Nothing was imported; `errors` lists every problem found, in file and line order."""

    def __init__(self, errors: Sequence[ImportProblem]) -> None:
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in self.errors[:20])
        more = f"\n  … and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"import rejected, {len(self.errors)} problem(s):\n{shown}{more}")


@dataclass
class KindCounts:
    """Rows of one kind created, updated and left unchanged (orders count orders, not lines)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Rows of this kind in the import."""
        return self.created + self.updated + self.unchanged

    def as_dict(self) -> dict[str, int]:
        """Plain counts, for the audit log."""
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass
class ImportReport:
    """What an import did: counts per kind, SKUs back in stock, files read."""

    counts: dict[str, KindCounts] = field(default_factory=dict)
    restocked: list[str] = field(default_factory=list)
    notices: int = 0  # back-in-stock notices queued for people who asked
    files: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0

    def __getitem__(self, kind: str) -> KindCounts:
        return self.counts.get(kind, KindCounts())

    @property
    def changed(self) -> bool:
        """True when anything was created or updated."""
        return any(c.created or c.updated for c in self.counts.values())

    def summary(self) -> str:
        """A readable multi-line summary for the operator."""
        out = [f"imported {len(self.files)} file(s), {self.rows} row(s) in {self.seconds:.1f}s"]
        for kind in KINDS:
            if kind in self.counts:
                c = self.counts[kind]
                out.append(
                    f"  {kind:<11} {c.created:>6} created {c.updated:>6} updated "
                    f"{c.unchanged:>6} unchanged"
                )
        if self.restocked:
            shown = ", ".join(self.restocked[:15])
            more = f" and {len(self.restocked) - 15} more" if len(self.restocked) > 15 else ""
            out.append(f"  back in stock: {shown}{more}")
        if not self.changed:
            out.append("  nothing changed: the database already matched these files")
        return "\n".join(out)


# --------------------------------------------------------------------------- records


class ProductRec(NamedTuple):
    sku: str
    name_zh: str
    name_en: str
    aliases: list[str]
    category: str
    unit: str
    price: Decimal


class StockRec(NamedTuple):
    sku: str
    warehouse: str
    quantity: int


class CustomerRec(NamedTuple):
    code: str
    kind: str
    name: str
    phone: str
    region: str
    channel: str
    tier: str | None
    active: bool | None = None  # dealers.csv's optional `active`; None = leave as stored


class OrderLineRec(NamedTuple):
    order_no: str
    customer_code: str
    status: str
    created_at: dt.datetime | None  # UTC
    promised_date: dt.date | None
    carrier: str
    tracking_no: str
    sku: str
    quantity: int
    unit_price: Decimal


class PromotionRec(NamedTuple):
    code: str
    title_zh: str
    title_en: str
    starts_on: dt.date | None
    ends_on: dt.date | None
    skus: list[str]
    regions: list[str]
    channels: list[str]
    min_quantity: int
    benefit_zh: str
    benefit_en: str


ORDER_HEADER = ("customer_code", "status", "created_at", "promised_date", "carrier", "tracking_no")


def _show(value: object) -> str:
    shown = str(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "…"
    return repr(shown)


class _Row:
    """One data row's values by column, collecting every problem found in it."""

    __slots__ = ("values", "reasons")

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reasons: list[str] = []

    def text(self, col: str, required: bool = False) -> str:
        value = self.values[col]
        if required and not value:
            self.reasons.append(f"{col} is empty")
        limit = LIMITS.get(col)
        if limit and len(value) > limit:
            self.reasons.append(f"{col} is too long ({len(value)} characters, at most {limit})")
        return value

    def key(self, col: str) -> str:
        value = self.text(col, required=True)
        if _MULTILINE.search(value):
            self.reasons.append(f"{col} {_show(value)} must be on one line")
        elif LIST_SEPARATOR in value:
            # Keys are referenced in '|'-separated lists (promotions.skus), so they can't hold one.
            self.reasons.append(f"{col} {_show(value)} must not contain '{LIST_SEPARATOR}'")
        return value

    def items(self, col: str) -> list[str]:
        seen: dict[str, None] = {}
        limit = LIMITS.get(col)
        for item in self.values[col].split(LIST_SEPARATOR):
            item = item.strip()
            if not item:
                continue
            if limit and len(item) > limit:
                self.reasons.append(f"{col}: {_show(item)} is too long (at most {limit})")
            seen.setdefault(item, None)
        return list(seen)

    def integer(self, col: str, minimum: int = 0, default: int | None = None) -> int:
        value = self.values[col]
        if not value:
            if default is not None:
                return default
            self.reasons.append(f"{col} is empty")
            return 0
        if not _INT_RE.fullmatch(value):
            self.reasons.append(f"{col} {_show(value)} is not a whole number")
            return 0
        number = int(value)
        if number < minimum:
            what = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
            self.reasons.append(f"{col} {number} {what}")
        elif number > _MAX_INT:
            self.reasons.append(f"{col} {number} is too large")
        return number

    def decimal(self, col: str) -> Decimal:
        value = self.values[col]
        if not value:
            self.reasons.append(f"{col} is empty")
            return Decimal(0)
        if not _DEC_RE.fullmatch(value):
            self.reasons.append(f"{col} {_show(value)} is not a number (use digits and a '.')")
            return Decimal(0)
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            self.reasons.append(f"{col} {_show(value)} is not a number")
            return Decimal(0)
        if number < 0:
            self.reasons.append(f"{col} {value} must not be negative")
        elif number != number.quantize(_CENT):
            self.reasons.append(f"{col} {value} has more than 2 decimal places")
        elif number > _MAX_PRICE:
            self.reasons.append(f"{col} {value} is too large")
        return number.quantize(_CENT) if number == number.quantize(_CENT) else number

    def date(self, col: str, required: bool = True) -> dt.date | None:
        value = self.values[col]
        if not value:
            if required:
                self.reasons.append(f"{col} is empty")
            return None
        match = _DATE_RE.fullmatch(value)
        if not match:
            self.reasons.append(f"{col} {_show(value)} is not a date (use YYYY-MM-DD)")
            return None
        return self._ymd(col, value, match)

    def _ymd(self, col: str, value: str, match: re.Match[str]) -> dt.date | None:
        year, month, day = (int(g) for g in match.groups())
        try:
            date = dt.date(year, month, day)
        except ValueError:
            self.reasons.append(f"{col} {_show(value)} is not a real date")
            return None
        if not 2000 <= year <= 2099:  # catches 0026 / 2206-style typos before they're stored
            self.reasons.append(f"{col} {_show(value)}: the year {year} looks wrong")
            return None
        return date

    def moment(self, col: str, tz: dt.tzinfo) -> dt.datetime | None:
        value = self.values[col]
        if not value:
            self.reasons.append(f"{col} is empty")
            return None
        match = _DATE_RE.match(value)
        bad = f"{col} {_show(value)} is not a date-time (use YYYY-MM-DD HH:MM or ISO 8601)"
        if not match:
            self.reasons.append(bad)
            return None
        date = self._ymd(col, value, match)
        if date is None:
            return None
        rest = value[match.end():]
        try:
            moment = dt.datetime.fromisoformat(date.isoformat() + rest)
        except ValueError:
            self.reasons.append(bad)
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        # Stored as UTC: SQLite keeps the wall-clock digits only, so everything shares one zone.
        return moment.astimezone(dt.UTC)

    def choice(self, col: str, allowed: Sequence[str], synonyms: dict[str, str]) -> str:
        value = self.values[col]
        folded = value.lower()
        if folded in allowed:
            return folded
        if value in synonyms:
            return synonyms[value]
        if folded in synonyms:
            return synonyms[folded]
        what = "empty" if not value else f"unknown: {_show(value)}"
        self.reasons.append(f"{col} is {what}; use one of {', '.join(allowed)}")
        return folded


def _product(r: _Row) -> ProductRec:
    return ProductRec(
        sku=r.key("sku"), name_zh=r.text("name_zh", required=True), name_en=r.text("name_en"),
        aliases=r.items("aliases"), category=r.text("category"), unit=r.text("unit"),
        price=r.decimal("price"),
    )


def _stock(r: _Row) -> StockRec:
    return StockRec(sku=r.key("sku"), warehouse=r.key("warehouse"),
                    quantity=r.integer("quantity"))


def _retailer(r: _Row) -> CustomerRec:
    return CustomerRec(
        code=r.key("code"), kind="retailer", name=r.text("name", required=True),
        phone=r.text("phone"), region=r.text("region"), channel=r.text("channel"), tier=None,
    )


def _dealer(r: _Row) -> CustomerRec:
    return CustomerRec(
        code=r.key("code"), kind="dealer", name=r.text("name", required=True),
        phone=r.text("phone"), region=r.text("region"), channel="",
        tier=r.choice("tier", DEALER_TIERS, TIER_SYNONYMS), active=_active(r),
    )


def _active(r: _Row) -> bool | None:
    value = r.values.get("active", MISSING).strip().lower()
    if value == MISSING:
        return None
    if not value:
        return True
    if value not in ACTIVE_SYNONYMS:
        r.reasons.append(f"active is unknown: {_show(value)}; use yes or no")
        return None
    return ACTIVE_SYNONYMS[value]


def _order_line(r: _Row, tz: dt.tzinfo) -> OrderLineRec:
    return OrderLineRec(
        order_no=r.key("order_id"), customer_code=r.key("customer_code"),
        status=r.choice("status", ORDER_STATUSES, STATUS_SYNONYMS),
        created_at=r.moment("created_at", tz), promised_date=r.date("promised_date", False),
        carrier=r.text("carrier"), tracking_no=r.text("tracking_no"), sku=r.key("sku"),
        quantity=r.integer("quantity", minimum=1), unit_price=r.decimal("unit_price"),
    )


def _promotion(r: _Row) -> PromotionRec:
    rec = PromotionRec(
        code=r.key("code"), title_zh=r.text("title_zh", required=True),
        title_en=r.text("title_en"), starts_on=r.date("starts_on"), ends_on=r.date("ends_on"),
        skus=r.items("skus"), regions=r.items("regions"), channels=r.items("channels"),
        min_quantity=r.integer("min_quantity", default=0), benefit_zh=r.text("benefit_zh"),
        benefit_en=r.text("benefit_en"),
    )
    if rec.starts_on and rec.ends_on and rec.ends_on < rec.starts_on:
        r.reasons.append(f"ends_on {rec.ends_on} is before starts_on {rec.starts_on}")
    return rec


# --------------------------------------------------------------------------- reading files


def kind_of(path: Path) -> str | None:
    """The kind a file holds, from its name (`2026-11-products.csv` → products), else None."""
    name = path.name.lower()
    return next((kind for kind in KINDS if name.endswith(f"{kind}.csv")), None)


@dataclass
class _Source:
    path: Path
    kind: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


class _FileFatal(Exception):
    """The file can't be read as a whole (encoding, header); one problem, no row checks."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _encoding_reason(raw: bytes, exc: UnicodeDecodeError) -> str:
    hint = ""
    try:
        raw.decode("gb18030")
        hint = " (it looks like GBK/GB18030, the Chinese Windows default)"
    except UnicodeDecodeError:
        pass
    return f"not UTF-8 text: byte 0x{raw[exc.start]:02x} is invalid{hint}; {SAVE_AS_UTF8}"


class _Reader:
    """Streams one CSV file's data rows as (line, values in the kind's column order, problem)."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.columns = COLUMNS[source.kind]
        self.optional = OPTIONAL_COLUMNS.get(source.kind, ())
        self.width = len(self.columns)
        self.line = 0  # physical lines consumed so far
        self.bytes_read = 0
        self._nul = False

    def _lines(self, fh: Iterable[bytes]) -> Iterator[str]:
        # Decoding line by line gives exact line numbers for encoding errors and NUL bytes.
        for raw in fh:
            self.line += 1
            self.bytes_read += len(raw)
            if self.line == 1:
                if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    raise _FileFatal(1, f"the file is UTF-16 ('Unicode text'); {SAVE_AS_UTF8}")
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
            if b"\x00" in raw:
                self._nul = True
                raw = raw.replace(b"\x00", b"")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _FileFatal(self.line, _encoding_reason(raw, exc)) from None

    def rows(self) -> Iterator[tuple[int, list[str] | None, str | None]]:
        """Yield (line, values, None) for good rows and (line, None, reason) for malformed ones."""
        index: list[int] | None = None
        end = 0
        with self.source.path.open("rb") as fh:
            reader = csv.reader(self._lines(fh), skipinitialspace=True)
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise _FileFatal(
                        end + 1, f"unreadable CSV ({exc}); look for an unclosed quote (\")"
                    ) from None
                start, end = end + 1, self.line
                nul, self._nul = self._nul, False
                if not any(v.strip() for v in record):
                    continue  # blank line, or a row of empty cells as spreadsheets export
                if index is None:
                    if nul:
                        raise _FileFatal(start, f"the header contains NUL bytes; {SAVE_AS_UTF8}")
                    index = self._header(start, record)
                    continue
                if nul:
                    yield start, None, "contains NUL bytes (a binary or UTF-16 file?)"
                elif len(record) != self.width:
                    hint = " (a value with a comma must be in double quotes)" \
                        if len(record) > self.width else ""
                    yield start, None, (
                        f"has {len(record)} values, expected {self.width}{hint}"
                    )
                else:
                    yield start, [record[i].strip() if i >= 0 else MISSING for i in index], None
        if index is None:
            raise _FileFatal(None, f"the file is empty; expected a header row: "
                                   f"{','.join(self.columns)}")

    def _header(self, line: int, record: list[str]) -> list[int]:
        names = [name.strip().lower() for name in record]
        expected = ",".join(self.columns)
        if len(names) == 1:
            for sep, label in ((";", "semicolons"), ("\t", "tabs")):
                if sep in names[0]:
                    raise _FileFatal(line, f"columns are separated by {label}, not commas; "
                                           f"export as CSV with comma separators")
        missing = [c for c in self.columns if c not in names and c not in self.optional]
        extra = [n or "(empty name: a trailing comma?)" for n in names if n not in self.columns]
        repeated = sorted({n for n in names if n and names.count(n) > 1})
        if missing or extra or repeated:
            parts = []
            if missing:
                parts.append(f"missing column(s): {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected column(s): {', '.join(extra)}")
            if repeated:
                parts.append(f"repeated column(s): {', '.join(repeated)}")
            raise _FileFatal(line, f"{'; '.join(parts)}; expected exactly: {expected}")
        self.width = len(names)
        return [names.index(c) if c in names else -1 for c in self.columns]


def _records(
    source: _Source, parse: Callable[[_Row], T], reader: _Reader | None = None
) -> Iterator[tuple[int, T | None, list[str]]]:
    """Parse each data row; yields (line, record, reasons) — record is None if unreadable."""
    columns = COLUMNS[source.kind]
    for line, values, problem in (reader or _Reader(source)).rows():
        if values is None:
            yield line, None, [problem or "unreadable row"]
            continue
        row = _Row(dict(zip(columns, values, strict=True)))
        rec = parse(row)
        yield line, rec, row.reasons


def _collect(paths: Iterable[Path | str]) -> tuple[list[_Source], list[ImportProblem]]:
    problems: list[ImportProblem] = []
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() == ".csv"
                           and not f.name.startswith((".", "~$")))
            if not found:
                problems.append(ImportProblem(str(p), None, "no .csv files in this folder"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(ImportProblem(str(p), None, "no such file or folder"))
    by_kind: dict[str, _Source] = {}
    seen: set[Path] = set()
    for f in files:
        if f.resolve() in seen:
            continue
        seen.add(f.resolve())
        kind = kind_of(f)
        if kind is None:
            if f.suffix.lower() in {".xlsx", ".xls", ".numbers", ".ods"}:
                reason = f"this is a spreadsheet, not CSV; {SAVE_AS_UTF8}"
            else:
                reason = (f"unknown file name; accepted names: {ACCEPTED_NAMES} "
                          f"(a prefix is fine, e.g. 2026-11-products.csv)")
            problems.append(ImportProblem(f.name, None, reason))
            continue
        if kind in by_kind:
            problems.append(ImportProblem(
                f.name, None,
                f"a second {kind} file (with {by_kind[kind].path}); import one at a time",
            ))
            continue
        stat = f.stat()
        by_kind[kind] = _Source(f, kind, stat.st_size, stat.st_mtime_ns)
    return [by_kind[k] for k in KINDS if k in by_kind], problems


# --------------------------------------------------------------------------- checking


@dataclass
class _Order:
    """One order gathered from its lines (kept in memory: its lines must be compared anyway)."""

    line: int
    header: tuple[Any, ...]
    # sku → (quantity, unit price, line)
    lines: dict[str, tuple[int, Decimal, int]] = field(default_factory=dict)


class _Check:
    """Everything learnt while checking the files; needs no database."""

    def __init__(self, tz: dt.tzinfo, progress: Progress) -> None:
        self.tz = tz
        self.progress = progress
        self.problems: list[ImportProblem] = []
        self.rows: dict[str, int] = {}  # data rows per kind
        self.product_skus: dict[str, int] = {}
        self.customers: dict[str, tuple[str, str, int]] = {}  # code → kind, file, line
        self.stock_keys: dict[tuple[str, str], int] = {}
        self.stock_skus: set[str] = set()
        self.warehouses: set[str] = set()
        self.orders: dict[str, _Order] = {}
        self.promotion_codes: dict[str, int] = {}
        # References the batch can't satisfy: looked up in the database later.
        self.refs: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self.unreadable: set[str] = set()  # kinds whose file couldn't be read at all

    def problem(self, source: _Source, line: int | None, reason: str) -> None:
        self.problems.append(ImportProblem(source.name, line, reason))

    def run(self, source: _Source) -> None:
        before = len(self.problems)
        label = f"checking {source.name}"
        count = 0
        parse, add = self._handlers(source)
        reader = _Reader(source)
        try:
            for line, rec, reasons in _records(source, parse, reader):
                count += 1
                if rec is not None:
                    # Keys of rows with other problems still count, so a bad price on a
                    # product doesn't also make every stock row of that SKU "unknown".
                    add(source, line, rec, reasons)
                for reason in reasons:
                    self.problem(source, line, reason)
                if count % PROGRESS_EVERY == 0:
                    self.progress(label, min(reader.bytes_read, source.size), source.size)
                if len(self.problems) - before >= MAX_PROBLEMS_PER_FILE:
                    self.problem(source, line, "too many problems; stopped checking this file")
                    self.unreadable.add(source.kind)
                    break
        except _FileFatal as exc:
            self.problem(source, exc.line, exc.reason)
            self.unreadable.add(source.kind)
        except OSError as exc:
            self.problem(source, None, f"can't read the file: {exc.strerror or exc}")
            self.unreadable.add(source.kind)
        self.rows[source.kind] = count
        self.progress(label, source.size, source.size)

    def _handlers(self, source: _Source) -> tuple[Callable[[_Row], Any], Callable[..., None]]:
        tz = self.tz
        return {
            "products": (_product, self._add_product),
            "retailers": (_retailer, self._add_customer),
            "dealers": (_dealer, self._add_customer),
            "stock": (_stock, self._add_stock),
            "orders": (lambda r: _order_line(r, tz), self._add_order_line),
            "promotions": (_promotion, self._add_promotion),
        }[source.kind]

    def _unique(self, seen: dict[Any, int], key: Any, label: str, line: int,
                reasons: list[str]) -> bool:
        if not all(key if isinstance(key, tuple) else (key,)):
            return False  # an empty key is already reported as empty
        first = seen.setdefault(key, line)
        if first != line:
            reasons.append(f"{label} appears twice (lines {first} and {line})")
            return False
        return True

    def _ref(self, what: str, value: str, source: _Source, line: int) -> None:
        self.refs.setdefault((what, value), []).append((source.name, line))

    def _add_product(self, source: _Source, line: int, rec: ProductRec, reasons: list[str]) -> None:
        self._unique(self.product_skus, rec.sku, f"sku {_show(rec.sku)}", line, reasons)

    def _add_customer(self, source: _Source, line: int, rec: CustomerRec,
                      reasons: list[str]) -> None:
        if not rec.code:
            return
        other = self.customers.get(rec.code)
        if other and other[1] != source.name:
            reasons.append(f"code {_show(rec.code)} is also a {other[0]} in {other[1]} "
                           f"(line {other[2]}); a code can't be both")
            return
        if other:
            reasons.append(f"code {_show(rec.code)} appears twice (lines {other[2]} and {line})")
            return
        self.customers[rec.code] = (rec.kind, source.name, line)

    def _add_stock(self, source: _Source, line: int, rec: StockRec, reasons: list[str]) -> None:
        label = f"sku {_show(rec.sku)} in warehouse {_show(rec.warehouse)}"
        if self._unique(self.stock_keys, (rec.sku, rec.warehouse), label, line, reasons):
            self.warehouses.add(rec.warehouse)
            self.stock_skus.add(rec.sku)
        if rec.sku and rec.sku not in self.product_skus:
            self._ref("sku", rec.sku, source, line)

    def _add_order_line(self, source: _Source, line: int, rec: OrderLineRec,
                        reasons: list[str]) -> None:
        if reasons:  # a half-read line would only produce misleading "differs" reports
            for what, value in (("customer", rec.customer_code), ("sku", rec.sku)):
                known = self.customers if what == "customer" else self.product_skus
                if value and value not in known:
                    self._ref(what, value, source, line)
            return
        header = tuple(getattr(rec, name) for name in ORDER_HEADER)
        order = self.orders.get(rec.order_no)
        if rec.customer_code not in self.customers:
            self._ref("customer", rec.customer_code, source, line)
        if order is None:
            order = self.orders[rec.order_no] = _Order(line, header)
        else:
            for name, mine, theirs in zip(ORDER_HEADER, header, order.header, strict=True):
                if mine != theirs:
                    reasons.append(
                        f"order {_show(rec.order_no)}: {name} {_show(self._raw(name, mine))} "
                        f"differs from line {order.line} ({_show(self._raw(name, theirs))})"
                    )
            if reasons:
                return
        if rec.sku in order.lines:
            reasons.append(f"sku {_show(rec.sku)} appears twice in order {_show(rec.order_no)} "
                           f"(lines {order.lines[rec.sku][2]} and {line})")
            return
        order.lines[rec.sku] = (rec.quantity, rec.unit_price, line)
        if rec.sku not in self.product_skus:
            self._ref("sku", rec.sku, source, line)

    def _raw(self, name: str, value: Any) -> Any:
        if name == "created_at" and value is not None:
            return value.astimezone(self.tz).isoformat(sep=" ")
        return "" if value is None else value

    def _add_promotion(self, source: _Source, line: int, rec: PromotionRec,
                       reasons: list[str]) -> None:
        self._unique(self.promotion_codes, rec.code, f"code {_show(rec.code)}", line, reasons)
        for sku in rec.skus:
            if sku not in self.product_skus:
                self._ref("sku", sku, source, line)


def _chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _zone(name: str | None) -> dt.tzinfo:
    if name is None:
        try:
            name = load_settings().app.timezone
        except (ConfigError, OSError, ValueError):  # a broken config must not stop an import
            name = DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _sort_key(problem: ImportProblem) -> tuple[int, str, int]:
    path = Path(problem.file)
    kind = kind_of(path) if path.suffix else None
    order = KINDS.index(kind) if kind else -1
    return order, problem.file, problem.line or 0


def _checked(sources: list[_Source], tz: dt.tzinfo, progress: Progress) -> _Check:
    check = _Check(tz, progress)
    for source in sources:
        check.run(source)
    return check


def check_paths(
    paths: Sequence[Path | str], timezone: str | None = DEFAULT_TIMEZONE
) -> list[ImportProblem]:
    """Problems found without a database (all but references to rows already stored)."""
    sources, problems = _collect(paths)
    check = _checked(sources, _zone(timezone), lambda *_: None)
    return sorted(problems + check.problems, key=_sort_key)


# --------------------------------------------------------------------------- database


async def _existing(session: AsyncSession, key: Any, values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(set(values))):
        found.update((await session.execute(select(key).where(key.in_(chunk)))).scalars())
    return found


async def _id_map(session: AsyncSession, model: Any, key: Any,
                  values: Iterable[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for chunk in _chunks(sorted(set(values))):
        rows = await session.execute(select(key, model.id).where(key.in_(chunk)))
        ids.update({k: i for k, i in rows.tuples()})
    return ids


async def _check_references(session: AsyncSession, check: _Check) -> list[ImportProblem]:
    problems: list[ImportProblem] = []
    # If the file that could define them was unreadable, "unknown" would only be noise.
    skip = {"sku"} if "products" in check.unreadable else set()
    if check.unreadable & {"retailers", "dealers"}:
        skip.add("customer")
    skus = {v for (what, v) in check.refs if what == "sku"}
    codes = {v for (what, v) in check.refs if what == "customer"}
    known_skus = await _existing(session, Product.sku, skus)
    known_codes = await _existing(session, Customer.code, codes)
    for (what, value), places in check.refs.items():
        if what in skip:
            continue
        if (what == "sku" and value not in known_skus) or (
                what == "customer" and value not in known_codes):
            reason = (f"unknown sku {_show(value)}" if what == "sku"
                      else f"unknown customer code {_show(value)} (not a retailer or dealer)")
            problems.extend(ImportProblem(file, line, reason) for file, line in places)
    # A code can't silently turn a stored retailer into a dealer (or back).
    for chunk in _chunks(sorted(check.customers)):
        rows = await session.execute(
            select(Customer.code, Customer.kind).where(Customer.code.in_(chunk)))
        for code, kind in rows.tuples():
            new_kind, file, line = check.customers[code]
            if kind != new_kind:
                problems.append(ImportProblem(
                    file, line, f"code {_show(code)} is a {kind} in the database, not a {new_kind}"
                ))
    return problems


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        return Decimal(str(value)).quantize(_CENT)
    if isinstance(value, dt.datetime):
        # SQLite hands back naive UTC; PostgreSQL an aware value.
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, tuple):
        return list(value)
    return value


def _differs(old: Any, values: dict[str, Any]) -> bool:
    for name, value in values.items():
        stored = getattr(old, name)
        # Cheap equality first; normalising (Decimal scale, UTC) only when that says "differs".
        if stored != value and _norm(stored) != _norm(value):
            return True
    return False


class _Writer:
    """Applies checked files in one session, batching every query."""

    def __init__(self, session: AsyncSession, check: _Check, progress: Progress) -> None:
        self.session = session
        self.check = check
        self.progress = progress
        self.now = utcnow()
        self.product_ids: dict[str, int] = {}

    async def upsert(self, source: _Source, parse: Callable[[_Row], Any], model: Any,
                     key: str, values: Callable[[Any], dict[str, Any]]) -> KindCounts:
        """Insert new rows and update changed ones, keyed by `key`, in chunks."""
        counts = KindCounts()
        total = self.check.rows.get(source.kind, 0)
        label = f"writing {source.kind}"
        key_col = getattr(model, key)
        done = 0
        self.progress(label, 0, total)
        for chunk in _chunks(self._reread(source, parse)):
            wanted = [values(rec) for rec in chunk]
            cols = [model.id, key_col, *(getattr(model, c) for c in wanted[0] if c != key)]
            rows = await self.session.execute(
                select(*cols).where(key_col.in_([w[key] for w in wanted])))
            existing = {getattr(r, key): r for r in rows}
            inserts, updates = [], []
            for w in wanted:
                old = existing.get(w[key])
                if old is None:
                    inserts.append(w)
                elif _differs(old, w):
                    extra = {"updated_at": self.now} if hasattr(model, "updated_at") else {}
                    updates.append({"id": old.id, **w, **extra})
                else:
                    counts.unchanged += 1
            if inserts:
                await self.session.execute(insert(model), inserts)
            if updates:
                await self.session.execute(update(model), updates)
            counts.created += len(inserts)
            counts.updated += len(updates)
            done += len(chunk)
            if done < total:  # the final call after the loop ends the bar once
                self.progress(label, done, total)
        self.progress(label, total, total)
        return counts

    def _reread(self, source: _Source, parse: Callable[[_Row], T]) -> Iterator[T]:
        stat = source.path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (source.size, source.mtime_ns):
            raise ImportRejected([ImportProblem(
                source.name, None, "the file changed while it was being imported; run it again")])
        for line, rec, reasons in _records(source, parse):
            if rec is None or reasons:  # only possible if the file changed under us
                raise ImportRejected([ImportProblem(
                    source.name, line, "the file changed while it was being imported")])
            yield rec

    async def stock(self, source: _Source) -> tuple[KindCounts, list[str]]:
        """Upsert stock levels by (sku, warehouse); return counts and SKUs back in stock."""
        session, check = self.session, self.check
        counts = KindCounts()
        warehouse_ids = await _id_map(session, Warehouse, Warehouse.code, check.warehouses)
        missing = sorted(check.warehouses - set(warehouse_ids))
        if missing:
            await session.execute(insert(Warehouse), [{"code": code} for code in missing])
            warehouse_ids = await _id_map(session, Warehouse, Warehouse.code, check.warehouses)
        before = await self._totals(check.stock_skus)
        total = check.rows.get("stock", 0)
        label = "writing stock"
        done = 0
        self.progress(label, 0, total)
        for chunk in _chunks(self._reread(source, _stock)):
            need = {r.sku for r in chunk} - set(self.product_ids)
            if need:
                self.product_ids.update(await _id_map(session, Product, Product.sku, need))
            pids = sorted({self.product_ids[r.sku] for r in chunk})
            rows = await session.execute(
                select(StockLevel.id, StockLevel.product_id, StockLevel.warehouse_id,
                       StockLevel.quantity).where(StockLevel.product_id.in_(pids)))
            existing = {(r.product_id, r.warehouse_id): (r.id, r.quantity) for r in rows}
            inserts, updates = [], []
            for rec in chunk:
                pid, wid = self.product_ids[rec.sku], warehouse_ids[rec.warehouse]
                old = existing.get((pid, wid))
                if old is None:
                    inserts.append({"product_id": pid, "warehouse_id": wid,
                                    "quantity": rec.quantity})
                elif old[1] != rec.quantity:
                    updates.append({"id": old[0], "quantity": rec.quantity,
                                    "updated_at": self.now})
                else:
                    counts.unchanged += 1
            if inserts:
                await session.execute(insert(StockLevel), inserts)
            if updates:
                await session.execute(update(StockLevel), updates)
            counts.created += len(inserts)
            counts.updated += len(updates)
            done += len(chunk)
            if done < total:  # the final call after the loop ends the bar once
                self.progress(label, done, total)
        self.progress(label, total, total)
        after = await self._totals(check.stock_skus)
        # Only items that were stocked before and ran out count as back: the first import
        # into an empty database brings nothing "back".
        restocked = sorted(s for s in check.stock_skus
                           if s in before and before[s] <= 0 < after.get(s, 0))
        return counts, restocked

    async def _totals(self, skus: Iterable[str]) -> dict[str, int]:
        totals: dict[str, int] = {}
        for chunk in _chunks(sorted(skus)):
            rows = await self.session.execute(
                select(Product.sku, func.sum(StockLevel.quantity))
                .join(StockLevel, StockLevel.product_id == Product.id)
                .where(Product.sku.in_(chunk))
                .group_by(Product.sku))
            totals.update({sku: int(q or 0) for sku, q in rows.tuples()})
        return totals

    async def orders(self) -> KindCounts:
        """Upsert orders by order number and replace each order's lines with the file's."""
        session, check = self.session, self.check
        counts = KindCounts()
        customer_ids = await _id_map(session, Customer, Customer.code,
                                     (o.header[0] for o in check.orders.values()))
        skus = {sku for o in check.orders.values() for sku in o.lines}
        need = skus - set(self.product_ids)
        if need:
            self.product_ids.update(await _id_map(session, Product, Product.sku, need))
        pid = self.product_ids
        total = len(check.orders)
        label = "writing orders"
        done = 0
        self.progress(label, 0, total)
        for chunk in _chunks(list(check.orders.items())):
            rows = await session.execute(
                select(Order.id, Order.order_no, Order.customer_id, Order.status,
                       Order.created_at, Order.promised_date, Order.carrier, Order.tracking_no)
                .where(Order.order_no.in_([no for no, _ in chunk])))
            existing = {r.order_no: r for r in rows}
            headers: dict[str, dict[str, Any]] = {}
            new, changed = [], []
            for order_no, order in chunk:
                code, status, created_at, promised, carrier, tracking = order.header
                header = {
                    "order_no": order_no, "customer_id": customer_ids[code], "status": status,
                    "created_at": created_at, "promised_date": promised, "carrier": carrier,
                    "tracking_no": tracking,
                }
                headers[order_no] = header
                old = existing.get(order_no)
                if old is None:
                    new.append(header)
                elif _differs(old, header):
                    changed.append({"id": old.id, **header})
            if new:
                await session.execute(insert(Order), new)
            if changed:
                await session.execute(update(Order), changed)
            order_ids = {no: r.id for no, r in existing.items()}
            if new:
                order_ids.update(await _id_map(session, Order, Order.order_no,
                                               (h["order_no"] for h in new)))
            old_lines: dict[int, dict[int, Any]] = {}
            if existing:
                rows = await session.execute(
                    select(OrderLine.id, OrderLine.order_id, OrderLine.product_id,
                           OrderLine.quantity, OrderLine.unit_price)
                    .where(OrderLine.order_id.in_([r.id for r in existing.values()])))
                for r in rows:
                    old_lines.setdefault(r.order_id, {})[r.product_id] = r
            changed_nos = {c["order_no"] for c in changed}
            deletes: list[int] = []
            line_inserts: list[dict[str, Any]] = []
            line_updates: list[dict[str, Any]] = []
            for order_no, order in chunk:
                oid = order_ids[order_no]
                have = old_lines.get(oid, {})
                touched = False
                for sku, (quantity, price, _line) in order.lines.items():
                    old = have.pop(pid[sku], None)
                    if old is None:
                        line_inserts.append({"order_id": oid, "product_id": pid[sku],
                                             "quantity": quantity, "unit_price": price})
                        touched = True
                    elif old.quantity != quantity or _norm(old.unit_price) != _norm(price):
                        line_updates.append({"id": old.id, "quantity": quantity,
                                             "unit_price": price})
                        touched = True
                if have:  # lines the ERP no longer has for this order
                    deletes.extend(r.id for r in have.values())
                    touched = True
                if order_no not in existing:
                    counts.created += 1
                elif touched or order_no in changed_nos:
                    counts.updated += 1
                else:
                    counts.unchanged += 1
            for ids in _chunks(deletes):
                await session.execute(delete(OrderLine).where(OrderLine.id.in_(ids)))
            if line_updates:
                await session.execute(update(OrderLine), line_updates)
            if line_inserts:
                await session.execute(insert(OrderLine), line_inserts)
            done += len(chunk)
            if done < total:
                self.progress(label, done, total)
        self.progress(label, total, total)
        return counts


def _columns(rec: ProductRec | CustomerRec | PromotionRec) -> dict[str, Any]:
    """A record's values by model attribute (record fields are named after them)."""
    values = rec._asdict()
    if values.get("active", False) is None:  # no `active` given: keep what is stored
        del values["active"]
    return values


async def import_paths(
    db: Database,
    paths: Sequence[Path | str],
    progress: Progress | None = None,
    actor: str = "cli",
    *,
    timezone: str | None = None,
) -> ImportReport:
    """Check every file, then upsert them all in one transaction; raise ImportRejected if bad.

    `timezone` interprets created_at values without an offset; None means the configured one.
    """
    started = time.perf_counter()
    report_progress: Progress = progress or (lambda *_: None)
    sources, problems = _collect(paths)
    if not sources and not problems:
        problems.append(ImportProblem("(no files)", None, f"nothing to import; give files "
                                                          f"named {ACCEPTED_NAMES}"))
    check = _checked(sources, _zone(timezone), report_progress)
    problems += check.problems
    async with db.transaction() as session:
        if not db.is_sqlite:
            # asyncpg reuses prepared statements; a generic plan for `key IN ($1…$500)` built
            # while a table was nearly empty turns into a seq scan with a 500-way compare per
            # row (≈50x slower re-imports). Custom plans cost ~0.2 ms each to make.
            await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        problems += await _check_references(session, check)
        if problems:
            raise ImportRejected(sorted(problems, key=_sort_key))
        writer = _Writer(session, check, report_progress)
        report = ImportReport(files=[s.name for s in sources], rows=sum(check.rows.values()))
        for source in sources:
            if source.kind == "products":
                report.counts["products"] = await writer.upsert(
                    source, _product, Product, "sku", _columns)
            elif source.kind == "retailers":
                report.counts["retailers"] = await writer.upsert(
                    source, _retailer, Customer, "code", _columns)
            elif source.kind == "dealers":
                report.counts["dealers"] = await writer.upsert(
                    source, _dealer, Customer, "code", _columns)
                # Group memberships follow the dealer records, in the same transaction.
                from community.membership import after_dealer_import
                await after_dealer_import(session, actor=actor, changed_since=writer.now)
            elif source.kind == "stock":
                report.counts["stock"], report.restocked = await writer.stock(source)
                report.notices = await notifications.queue_restock_notices(session)
            elif source.kind == "orders":
                report.counts["orders"] = await writer.orders()
                # Reward points follow delivered/cancelled orders, in the same transaction.
                from community.points.ledger import apply_order_changes
                await apply_order_changes(session, (await _id_map(
                    session, Order, Order.order_no, check.orders)).values(), actor=actor)
            elif source.kind == "promotions":
                report.counts["promotions"] = await writer.upsert(
                    source, _promotion, Promotion, "code", _columns)
        session.add(AuditLog(
            actor=actor, action="import", subject=", ".join(report.files)[:200],
            details={kind: counts.as_dict() for kind, counts in report.counts.items()},
        ))
    report.seconds = time.perf_counter() - started
    return report


__all__ = [
    "ACCEPTED_NAMES",
    "COLUMNS",
    "KINDS",
    "ImportProblem",
    "ImportRejected",
    "ImportReport",
    "KindCounts",
    "check_paths",
    "import_paths",
    "kind_of",
]

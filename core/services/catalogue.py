"""Product resolution against the live catalogue, and stock answers.

Products are matched at question time (SKU, names in both scripts and English, aliases, small
typos), so a product imported a minute ago is found without retraining the NLU model.

Text is compared as a sequence of *units*: one unit per Chinese character (Traditional folded to
Simplified), one per Latin word (lower case, naive singular, "and"/"&" dropped) and one per
number with its size (1.5升, 1.5 litres → 1.5l). Stock-question filler (还有货吗, is … in stock)
is marked and never matched on its own. The resolver stops at the first stage that finds
something:

1. an SKU in any shape (BV-4001, bv4001, BV 4001, ＢＶ－４００１);
2. a name or alias equal to the mention;
3. names and aliases written inside the question, longest first, refined by the rest of it
   (冰红茶 + 罐装 → the can; 矿泉水 + 1.5L → the 1.5L bottle). A size no variant comes in, or an
   unknown modifier right before the name (麻|辣牛肉面), gives suggestions, not a guess;
4. the mention inside a longer name (mineral water → Natural Mineral Water 550ml);
5. every unit of the mention in one product's names, in any order (tomato noodles);
6. stages 2–5 again after correcting misspelt English words against the catalogue's words;
7. a name within a small edit distance of the whole mention (冰虹茶 → 冰红茶), never changing a
   number; this also settles a tie from the stages above when it picks one of the tied.

Ties between size variants of one product line go to the variant whose own names are the stem
of the others' (the alias 冰红茶 on the 500ml bottle makes it the default for "iced tea"); other
ties are returned as several matches for the user to pick from. When nothing matches, the
closest names come back as suggestions.

The index is rebuilt only when the catalogue changes: at once after this process commits a
write to products, and within RECHECK_SECONDS after another process's import.
"""
from __future__ import annotations

import asyncio
import re
import time
import unicodedata
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, Levenshtein
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from core.i18n import to_simplified
from core.models import Product, StockLevel, Warehouse
from core.settings import StockSection

_SKU = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,4})[\s\-_.]*(\d{2,6})(?![0-9])")
_PUNCT = re.compile(r"[\s\-_/·,.，。、!?！？:：;；'\"“”‘’()（）\[\]【】]+")

_CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")
# Sizes are normalised so 1.5升, 1.5 L and 1.5l are the same unit.
_SIZE_NAMES = {"毫升": "ml", "ml": "ml", "公升": "l", "升": "l", "l": "l", "千克": "kg",
               "公斤": "kg", "kg": "kg", "克": "g", "g": "g", "cl": "cl", "oz": "oz"}
_SIZE_WORDS = {"millilitre": "ml", "milliliter": "ml", "litre": "l", "liter": "l",
               "kilogram": "kg", "kilo": "kg", "gram": "g"}
_SIZE_IN_TEXT = re.compile(
    r"(\d+(?:\.\d+)?)\s*(millilit(?:re|er)s?|lit(?:re|er)s?|kilograms?|kilos?|grams?|"
    r"毫升|公升|千克|公斤|ml|kg|cl|oz|升|克|l|g)(?![a-z])")
_ZH_NUMBER = {"一": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5", "六": "6",
              "七": "7", "八": "8", "九": "9", "十": "10", "半": "0.5"}
_DIGIT_OR_ZH_SIZE = re.compile(r"[0-9升克斤]")
_ZH_SIZE = re.compile(r"([一二两三四五六七八九十半])(?=毫升|公升|升|千克|公斤|克)")
_SIZE_UNIT = re.compile(r"\d+(?:\.\d+)?(?:ml|l|kg|g|cl|oz)")
_UNIT = re.compile(f"\\d+(?:\\.\\d+)?[a-z]*|[a-z]+|[{_CJK_RANGES}]")
_ALNUM_RUN = re.compile(r"[a-z0-9]+")
# An SKU-shaped token that is not in the catalogue (BV-9999), removed before matching names.
_SKU_TEXT = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,6}[\-_.]?\d{2,}(?![0-9A-Za-z])")
_SKU_SHAPED = re.compile(r"^[a-z]{1,6}\d{2,}$|^\d{4,}$")
_NO_SINGULAR = {"this", "does", "plus", "yes", "its", "gas", "bus", "series", "species"}

# Words wrapped around a product name in stock questions; never part of a match on their own.
_FILLER_ZH = (
    "还有货吗 有没有货 还有没有 有没有 有货吗 有货么 有货没 还有吗 还有么 还有多少箱 还有多少 "
    "还剩多少 还剩几箱 还剩 剩多少 剩下 多少箱 几箱 多少件 多少钱 库存多少 库存还有 库存 存货 "
    "现货 有货 到货 缺货 断货 请问 麻烦 帮我 帮忙 查一下 查查 查询 看一下 看看 一下 你们 我们 "
    "我想 我要 想要 想订点 想订 订点 要订 能不能 可不可以 可以 是否 仓库里 仓库 里面 那个 这个 "
    "一些 一点 现在 都要 都行 都可以 或者 以及 还是 和 跟 与 或 还 有 吗 么 呢 吧 啊 呀 了 的 是 查"
).split()
_FILLER_EN = (
    "is are am was were be the a an in on at of for to do does did you your we i me my our "
    "have has had got get any some how many much left remaining please pls plz check checking "
    "available availability there still stock inventory qty quantity sku item product what "
    "whats it about need want order hi hello thank thanks with warehouse more enough or also "
    "can_you could_you can_i can_we in_stock how_many how_much"
).split()


@dataclass(frozen=True)
class ProductRef:
    """A catalogue product as the resolver returns it (names exactly as imported)."""

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


# --------------------------------------------------------------------------- text


def norm(text: str) -> str:
    """Lower-case, Simplified, without spaces and punctuation: the form names are compared in."""
    text = unicodedata.normalize("NFKC", text or "")
    return _PUNCT.sub("", to_simplified(text)).lower()


def sku_in(text: str) -> str | None:
    """An SKU-shaped token in the text, canonicalised (bv 4001 → BV-4001)."""
    m = _SKU.search(unicodedata.normalize("NFKC", text or ""))
    return f"{m.group(1).upper()}-{m.group(2)}" if m else None


_simplified: dict[int, str] = {}  # code point → Simplified, grown as characters are seen


def _simplify(text: str) -> str:
    # Character by character with a translate table: the same folding for names and
    # questions, and fast enough to index tens of thousands of names.
    for ch in set(_CJK_CHAR.findall(text)):
        if ord(ch) not in _simplified:
            _simplified[ord(ch)] = to_simplified(ch)
    return text.translate(_simplified)


def _size_name(word: str) -> str:
    if word in _SIZE_NAMES:
        return _SIZE_NAMES[word]
    return next(v for k, v in _SIZE_WORDS.items() if word.startswith(k))


def _is_cjk(unit: str) -> bool:
    # Units are ASCII words or numbers, or single CJK characters (all from U+3400 up).
    return unit >= "\u3400"


def _singular(word: str) -> str:
    if (len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is"))
            and word not in _NO_SINGULAR):
        return word[:-1]
    return word


def _units(text: str) -> list[str]:
    """The comparison units of a text: CJK characters, Latin words, numbers with sizes."""
    t = _simplify(unicodedata.normalize("NFKC", text or "").lower()).replace("&", " and ")
    if _DIGIT_OR_ZH_SIZE.search(t):
        t = _ZH_SIZE.sub(lambda m: _ZH_NUMBER[m[1]], t)
        t = _SIZE_IN_TEXT.sub(lambda m: f" {m[1]}{_size_name(m[2])} ", t)
    return [_singular(u) if "a" <= u[0] <= "z" else u for u in _UNIT.findall(t) if u != "and"]


_CJK_GAP = re.compile(f"(?<=[{_CJK_RANGES}]) (?=[{_CJK_RANGES}])")


def _spaced(units: Sequence[str]) -> str:
    """Units joined as one string: CJK runs without spaces, a space everywhere else."""
    return _CJK_GAP.sub("", " ".join(units))


def _at_boundary(key: str, start: int, end: int) -> bool:
    """Whether key[start:end] begins and ends on unit boundaries (not inside a Latin word)."""
    return (start == 0 or key[start - 1] == " " or _is_cjk(key[start])) and (
        end == len(key) or key[end] == " " or _is_cjk(key[end - 1]))


def _within(needle: str, key: str) -> bool:
    """Whether a spaced key contains another as whole units (tea in iced tea, not in steam)."""
    pos = key.find(needle)
    while pos >= 0:
        if _at_boundary(key, pos, pos + len(needle)):
            return True
        pos = key.find(needle, pos + 1)
    return False


def _filler_phrases() -> dict[tuple[str, ...], None]:
    phrases = [tuple(_units(p)) for p in _FILLER_ZH]
    phrases += [tuple(_units(p.replace("_", " "))) for p in _FILLER_EN]
    return dict.fromkeys(p for p in phrases if p)


_FILLER = _filler_phrases()
_FILLER_MAX = max(len(p) for p in _FILLER)


def _filler_mask(units: Sequence[str]) -> list[bool]:
    """True for units that belong to a filler phrase (longest phrase first, left to right)."""
    mask = [False] * len(units)
    i = 0
    while i < len(units):
        for n in range(min(_FILLER_MAX, len(units) - i), 0, -1):
            if tuple(units[i:i + n]) in _FILLER:
                mask[i:i + n] = [True] * n
                i += n
                break
        else:
            i += 1
    return mask


def _allowed_edits(text: str) -> int:
    n = len(text.replace(" ", ""))
    return 0 if n < 3 else 1 if n < 7 else 2


# --------------------------------------------------------------------------- index


class _Index:
    """Every product's names in comparison form, rebuilt when the catalogue changes."""

    def __init__(self) -> None:
        self.version: tuple | None = None
        self.checked_at = 0.0  # monotonic time of the last version check
        self.generation = -1  # _generation at that check
        self.lock = asyncio.Lock()
        self.products: dict[int, ProductRef] = {}
        self.by_sku: dict[str, int] = {}
        self.primary: dict[str, list[int]] = {}  # name or alias → product ids
        self.derived: dict[str, list[int]] = {}  # name without its size → product ids
        self.keys: list[str] = []  # every distinct primary or derived key
        self.by_length: dict[int, list[str]] = {}  # keys by length, for typo search
        self.joined = ""  # keys joined by newlines, for substring search
        self.starts: list[int] = []
        self.own_keys: dict[int, list[str]] = {}  # product id → its primary keys
        self.names: dict[int, list[str]] = {}  # the same without the SKU
        self.bases: dict[int, set[str]] = {}  # product id → names without size (product line)
        self.vocab: dict[str, int] = {}  # Latin words in names → how many keys use them
        self.postings: dict[str, list[int]] = {}  # unit → key positions (for suggestions)
        self.max_units = 1
        self.parsed: dict[int, _Parsed] = {}  # reused by the next rebuild for unchanged rows
        self._unit_sets: dict[int, tuple[set[str], set[str]]] = {}

    def owners(self, key: str) -> list[int]:
        """Products a key belongs to: its primary owners, else those it was derived from."""
        return self.primary.get(key) or self.derived.get(key) or []

    def unit_sets(self, pid: int) -> tuple[set[str], set[str]]:
        """A product's Latin words / numbers and its CJK character pairs, over all its names."""
        cached = self._unit_sets.get(pid)
        if cached is None:
            words: set[str] = set()
            pairs: set[str] = set()
            for key in self.own_keys.get(pid, []):
                for run in key.split(" "):
                    if _is_cjk(run):
                        pairs.update(run[i:i + 2] for i in range(len(run) - 1))
                    else:
                        words.add(run)
            cached = self._unit_sets[pid] = (words, pairs)
        return cached

    def containing(self, needle: str, cap: int = 20000) -> Iterable[int]:
        """Positions of keys that contain `needle` at unit boundaries."""
        if not needle:
            return
        pos, found, joined = self.joined.find(needle), 0, self.joined
        while pos >= 0 and found < cap:
            k = bisect_right(self.starts, pos) - 1
            start, key = self.starts[k], self.keys[k]
            s, e = pos - start, pos - start + len(needle)
            if e <= len(key) and _at_boundary(key, s, e):
                found += 1
                yield k
            pos = joined.find(needle, pos + 1)


# row, own keys, own keys but the SKU, names without size (bases), derived keys
_Parsed = tuple[tuple, list[str], list[str], set[str], list[str]]


def _parse(row: tuple) -> _Parsed:
    """One product's names in comparison form."""
    _pid, sku, name_zh, name_en, aliases, _category, _unit = row
    own: dict[str, None] = {}
    names: dict[str, None] = {}
    bases: set[str] = set()
    derived: list[str] = []
    for n, name in enumerate((name_zh, name_en, sku, *(aliases or []))):
        units = _units(name or "")
        key = _spaced(units)
        if not key:
            continue
        own[key] = None
        if n != 2:
            names[key] = None
        if n < 2:  # the names without their size: the product line, and a derived key
            base = [u for u in units if not _SIZE_UNIT.fullmatch(u)]
            if base:
                bases.add(_spaced(base))
            if len(base) >= 2 and len(base) < len(units):
                derived.append(_spaced(base))
    return row, list(own), list(names), bases, derived


def _build(rows: Sequence[tuple], previous: dict[int, _Parsed] | None = None) -> _Index:
    idx = _Index()
    primary: dict[str, dict[int, None]] = {}
    derived: dict[str, dict[int, None]] = {}
    previous = previous or {}
    for row in rows:
        pid, sku, name_zh, name_en, _aliases, category, unit = row
        old = previous.get(pid)
        parsed = old if old is not None and old[0] == row else _parse(row)
        idx.parsed[pid] = parsed
        idx.products[pid] = ProductRef(pid, sku, name_zh, name_en or "", category or "",
                                       unit or "")
        idx.by_sku["".join(_ALNUM_RUN.findall(norm(sku)))] = pid
        _, own, names, bases, base_keys = parsed
        for key in own:
            primary.setdefault(key, {})[pid] = None
        for key in base_keys:
            derived.setdefault(key, {})[pid] = None
        idx.own_keys[pid], idx.names[pid], idx.bases[pid] = own, names, bases
    idx.primary = {k: list(v) for k, v in primary.items()}
    idx.derived = {k: list(v) for k, v in derived.items() if k not in primary or
                   set(v) - set(primary[k])}
    idx.keys = list(dict.fromkeys([*idx.primary, *idx.derived]))
    pos = 0
    for key in idx.keys:
        idx.starts.append(pos)
        pos += len(key) + 1
    idx.joined = "\n".join(idx.keys)
    for key in idx.keys:
        idx.by_length.setdefault(len(key), []).append(key)
    vocab: Counter[str] = Counter()
    postings: dict[str, list[int]] = {}
    for k, key in enumerate(idx.keys):
        runs = key.split(" ")
        words = [r for r in runs if not _is_cjk(r)]
        chars = [c for r in runs if _is_cjk(r) for c in r]
        for w in words:
            vocab[w] += 1
        for u in dict.fromkeys([*words, *chars]):
            postings.setdefault(u, []).append(k)
        idx.max_units = max(idx.max_units, len(words) + len(chars))
    idx.vocab = {w: n for w, n in vocab.items() if w.isalpha()}
    idx.postings = postings
    return idx


# Writes to the products table committed by this process bump the generation, so the next
# lookup re-reads the catalogue version at once; writes by another process (an operator's CLI
# import) are noticed by the version check, made at most every RECHECK_SECONDS.
RECHECK_SECONDS = 2.0
_generation = 0


@event.listens_for(Session, "do_orm_execute")
def _note_product_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) == Product.__tablename__:
            state.session.info["catalogue_changed"] = True


@event.listens_for(Session, "after_flush")
def _note_product_flush(session: Session, _context: object) -> None:
    if any(isinstance(o, Product) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info["catalogue_changed"] = True


@event.listens_for(Session, "after_commit")
def _product_commit(session: Session) -> None:
    global _generation
    if session.info.pop("catalogue_changed", False):
        _generation += 1


@event.listens_for(Session, "after_rollback")
def _product_rollback(session: Session) -> None:
    session.info.pop("catalogue_changed", None)


_indexes: weakref.WeakKeyDictionary[AsyncEngine, _Index] = weakref.WeakKeyDictionary()


_VERSION = select(func.count(Product.id), func.max(Product.updated_at), func.max(Product.id))
_ROWS = select(Product.id, Product.sku, Product.name_zh, Product.name_en, Product.aliases,
               Product.category, Product.unit)


async def _index(s: AsyncSession) -> _Index:
    # One index per database (engine), shared by every session of the process.
    engine = s.bind
    idx = _indexes.get(engine)
    if idx is None:
        idx = _indexes[engine] = _Index()
    now = time.monotonic()
    if idx.generation == _generation and now - idx.checked_at < RECHECK_SECONDS:
        return idx
    generation = _generation
    version = tuple((await s.execute(_VERSION)).one())
    if version == idx.version:
        idx.checked_at, idx.generation = now, generation
        return idx
    if idx.lock.locked() and idx.version is not None:
        return idx  # being rebuilt by another lookup: answer from the previous catalogue
    async with idx.lock:
        current = _indexes[engine]
        if version != current.version:
            # Version before rows: a write in between costs one more rebuild, never a miss.
            version = tuple((await s.execute(_VERSION)).one())
            rows = [tuple(r) for r in (await s.execute(_ROWS)).all()]
            fresh = await asyncio.to_thread(_build, rows, current.parsed)
            fresh.version, fresh.lock = version, current.lock
            current = _indexes[engine] = fresh
        current.checked_at, current.generation = now, generation
    return current


# --------------------------------------------------------------------------- matching


def _line_default(idx: _Index, pids: list[int]) -> int | None:
    """Of size variants of one product line, the one whose names are the stem of the others'."""
    if len(pids) < 2 or len(pids) > 12:
        return None
    common = set.intersection(*(idx.bases[p] for p in pids))
    if not common:
        return None

    def stem_of(a: int, b: int) -> bool:
        return any(ka != kb and _within(ka, kb) for ka in idx.names[a] for kb in idx.names[b])

    winners = [g for g in pids if all(stem_of(g, o) and not stem_of(o, g)
                                      for o in pids if o != g)]
    return winners[0] if len(winners) == 1 else None


def _decide(idx: _Index, pids: Iterable[int], limit: int) -> Resolution:
    ranked = list(dict.fromkeys(pids))
    if len(ranked) > 1:
        default = _line_default(idx, ranked)
        if default is not None:
            ranked = [default]
    return Resolution(matches=[idx.products[p] for p in ranked[:limit]])


def _sku_hit(idx: _Index, text: str) -> tuple[int | None, list[str]]:
    """A catalogue SKU written in any shape (BV-4001, bv4001, BV 4001, ＢＶ－４００１)."""
    runs = _ALNUM_RUN.findall(unicodedata.normalize("NFKC", text).lower())
    unknown = []
    for i in range(len(runs)):
        for j in range(i + 1, min(i + 3, len(runs)) + 1):
            cand = "".join(runs[i:j])
            if not any(c.isdigit() for c in cand):
                continue
            if cand in idx.by_sku:
                return idx.by_sku[cand], []
            if _SKU_SHAPED.match(cand):
                unknown.append(cand)
    return None, unknown


def _runs(units: Sequence[str], used: Sequence[bool]) -> list[list[str]]:
    """Unused units grouped into CJK runs and single Latin words or numbers."""
    runs: list[list[str]] = []
    run: list[str] = []
    for u, taken in zip(units, used, strict=True):
        if run and (taken or not (_is_cjk(u) and _is_cjk(run[-1]))):
            runs.append(run)
            run = []
        if not taken:
            run.append(u)
    if run:
        runs.append(run)
    return runs


def _explained(idx: _Index, pid: int, rest: list[list[str]]) -> int:
    """How many leftover units a product's names account for (CJK by pairs, others as words)."""
    words, pairs = idx.unit_sets(pid)
    total = 0
    for run in rest:
        if _is_cjk(run[0]):
            hit = [False] * len(run)
            for i in range(len(run) - 1):
                if run[i] + run[i + 1] in pairs:
                    hit[i] = hit[i + 1] = True
            total += sum(hit)
        else:
            total += sum(1 for u in run if u in words)
    return total


def _contained(idx: _Index, units: list[str], filler: list[bool], limit: int) -> Resolution | None:
    """Names and aliases written inside the question, longest first, refined by the rest."""
    spans: list[tuple[int, int, str]] = []
    n = len(units)
    for i in range(n):
        for j in range(i + 1, min(n, i + idx.max_units) + 1):
            if all(filler[i:j]):
                continue
            if j - i == 1 and (_is_cjk(units[i]) or len(units[i]) < 3):
                continue
            key = _spaced(units[i:j])
            if key in idx.primary or key in idx.derived:
                spans.append((i, j, key))
    if not spans:
        return None
    spans = [s for s in spans
             if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    found = list(dict.fromkeys(p for _, _, key in spans for p in idx.owners(key)))
    used = list(filler)
    for i, j, _ in spans:
        used[i:j] = [True] * (j - i)
    rest = [r for r in _runs(units, used) if len(r) >= 2 or not _is_cjk(r[0])]
    # Chinese puts modifiers first: an unknown word right before a name (麻|辣牛肉面,
    # 统一|冰红茶) makes it another product, unless some variant's names explain it.
    lead: list[tuple[list[str], int, int]] = []
    for i, j, _ in spans:
        k = i
        while k > 0 and not used[k - 1] and _is_cjk(units[k - 1]):
            k -= 1
        if k < i and _is_cjk(units[i]):
            lead.append((units[k:i], i, j))
    if not rest and not lead:
        return _decide(idx, found, limit)
    # The rest of the question may name the variant (冰红茶 + 罐装, 矿泉水 + 1.5L): look at
    # every product with a name containing a matched one, and keep those explaining most.
    family = dict.fromkeys(found)
    for _, _, key in spans:
        for k in idx.containing(key, cap=2000):
            family.update(dict.fromkeys(idx.owners(idx.keys[k])))
    scores = {p: _explained(idx, p, rest) for p in family}
    best = max(scores.values())
    chosen = [p for p in family if scores[p] == best] if best > 0 else found
    ranked = sorted(family, key=lambda p: -scores[p])
    for run, i, j in lead:
        if all(_explained(idx, p, [run]) == len(run) for p in chosen):
            continue
        # The modifier may be a typo of a variant's (老坛酸彩 → 老坛酸菜), within the same
        # tolerance as any typo; a short one (麻 of 麻辣) gets none.
        allowed = _allowed_edits(_spaced(run))
        phrase = _spaced([*run, *units[i:j]])
        close = [p for p in family if allowed and any(
            OSA.distance(phrase, k, score_cutoff=allowed) <= allowed for k in idx.own_keys[p])]
        if not close:
            lead = [(run, i, j)]
            break
        chosen, lead = close, []
        break
    sizes = [[u] for r in rest for u in r if _SIZE_UNIT.fullmatch(u)]
    if lead or any(_explained(idx, p, sizes) < len(sizes) for p in chosen):
        # A size the line does not come in, or a modifier no variant has: offer, don't pick.
        return Resolution(suggestions=[idx.products[p] for p in ranked[:limit]])
    if best < sum(len(r) for r in rest) and len(chosen) > 1:
        # Words left over that no variant explains: let the user pick rather than guess.
        return Resolution(matches=[idx.products[p] for p in chosen[:limit]])
    return _decide(idx, chosen, limit)


def _inside(idx: _Index, core: str, limit: int) -> Resolution | None:
    """The mention as part of a longer name (mineral water → Natural Mineral Water 550ml)."""
    compact = core.replace(" ", "")
    if len(compact) < 2 or (not _CJK_CHAR.search(core) and len(compact) < 4):
        return None
    coverage: dict[int, float] = {}
    for k in idx.containing(core):
        share = len(core) / len(idx.keys[k])
        for p in idx.owners(idx.keys[k]):
            coverage[p] = max(coverage.get(p, 0.0), share)
    if not coverage:
        return None
    return _decide(idx, sorted(coverage, key=lambda p: (-coverage[p], p)), limit)


def _all_words(idx: _Index, core_units: list[str], limit: int) -> Resolution | None:
    """Every word of the mention in one product's names, in any order (tomato noodles)."""
    if len(core_units) < 2:
        return None
    rest = _runs(core_units, [False] * len(core_units))
    need = sum(len(r) for r in rest)
    # Each unit must occur in a product that explains them all: start from the rarest.
    rarest = min(set(core_units), key=lambda u: len(idx.postings.get(u, ())))
    cands = dict.fromkeys(p for k in idx.postings.get(rarest, []) for p in idx.owners(idx.keys[k]))
    full = [p for p in cands if _explained(idx, p, rest) == need]
    if not full:
        return None
    size = {p: min(len(k) for k in idx.own_keys[p]) for p in full}
    return _decide(idx, sorted(full, key=lambda p: (size[p], p)), limit)


def _corrected(idx: _Index, units: list[str], filler: list[bool]) -> list[str] | None:
    """The units with misspelt English words replaced by the closest catalogue word."""
    vocab = list(idx.vocab)
    changed, out = False, []
    for u, f in zip(units, filler, strict=True):
        if not f and u.isalpha() and u.isascii() and len(u) >= 5 and u not in idx.vocab:
            hits = process.extract(u, vocab, scorer=OSA.distance, limit=5,
                                   score_cutoff=1 if len(u) < 8 else 2)
            if hits:
                best = min(h[1] for h in hits)
                words = [h[0] for h in hits if h[1] == best]
                word = max(words, key=lambda w: idx.vocab[w])
                out.append(word)
                changed = True
                continue
        out.append(u)
    return out if changed else None


def _by_words(idx: _Index, units: list[str], filler: list[bool],
              limit: int) -> Resolution | None:
    core_units = [u for u, f in zip(units, filler, strict=True) if not f]
    core = _spaced(core_units)
    full = _spaced(units)
    for text in dict.fromkeys(t for t in (core, full) if t):
        if text in idx.primary or text in idx.derived:
            return _decide(idx, idx.owners(text), limit)
    res = _contained(idx, units, filler, limit)
    if res is None and core:
        res = _inside(idx, core, limit)
    if res is None and core:
        res = _all_words(idx, core_units, limit)
    return res


def _fuzzy(idx: _Index, core: str, limit: int) -> Resolution | None:
    """Whole-mention typos within a small edit distance of a name (冰虹茶 → 冰红茶)."""
    allowed = _allowed_edits(core)
    if not allowed:
        return None
    n = len(core)
    # Pigeonhole: an edit breaks at most two units, so a key within `allowed` edits keeps one
    # of any 2*allowed+1 of the mention's units; the rarest ones give a short candidate list.
    units = sorted(set(core.split(" ")) | {c for c in core if _is_cjk(c)} - {""},
                   key=lambda u: len(idx.postings.get(u, ())))
    if len(units) > 2 * allowed:
        keys = {k for u in units[:2 * allowed + 1] for k in idx.postings.get(u, ())}
        pool = [idx.keys[k] for k in keys if abs(len(idx.keys[k]) - n) <= allowed]
    else:
        pool = [k for m in range(n - allowed, n + allowed + 1) for k in idx.by_length.get(m, ())]
    hits = process.extract(core, pool, scorer=Levenshtein.distance, score_cutoff=allowed,
                           limit=50)
    numbers = {u for u in core.split(" ") if u[:1].isdigit()}
    # A typo never changes a number: 冰红茶2L is not 冰红茶1L.
    hits = [h for h in hits if h[1] <= _allowed_edits(h[0])
            and numbers <= set(h[0].split(" "))]
    if not hits:
        return None
    best = min(h[1] for h in hits)
    keys = [h[0] for h in hits if h[1] == best]
    prim = [p for k in keys for p in idx.primary.get(k, [])]
    return _decide(idx, prim or [p for k in keys for p in idx.owners(k)], limit)


def _suggest(idx: _Index, core: str, unknown_skus: list[str], limit: int = 3) -> list[ProductRef]:
    """Closest products when nothing matched: names sharing characters or words, then ratio."""
    out: dict[int, float] = {}
    skus = list(idx.by_sku)
    for cand in unknown_skus:
        for sku, dist, _ in process.extract(cand, skus, scorer=OSA.distance, score_cutoff=1):
            out.setdefault(idx.by_sku[sku], 100.0 - dist)
    if core:
        units = set(core.split(" ")) | {c for c in core if _is_cjk(c)}
        common = Counter[int]()
        too_common = max(200, len(idx.keys) // 5)
        for u in units:
            posting = idx.postings.get(u, [])
            if len(posting) <= too_common:
                common.update(posting)
        cands = [idx.keys[k] for k, _ in common.most_common(300)]
        for key, score, _ in process.extract(core, cands, scorer=fuzz.ratio, limit=limit * 4,
                                             score_cutoff=50):
            for p in idx.owners(key):
                out[p] = max(out.get(p, 0.0), score)
    ranked = sorted(out, key=lambda p: -out[p])[:limit]
    return [idx.products[p] for p in ranked]


async def resolve_product(s: AsyncSession, phrase: str, limit: int = 5) -> Resolution:
    """Match a product mention (or a whole question) against the catalogue."""
    idx = await _index(s)
    if not idx.products or not phrase or not phrase.strip():
        return Resolution()
    pid, unknown = _sku_hit(idx, phrase)
    if pid is not None:
        return Resolution(matches=[idx.products[pid]])
    # An SKU that is not ours is dropped; the rest of the question may still name a product.
    units = _units(_SKU_TEXT.sub(" ", unicodedata.normalize("NFKC", phrase)))
    filler = _filler_mask(units)
    res = _by_words(idx, units, filler, limit)
    if res is None:
        fixed = _corrected(idx, units, filler)
        if fixed is not None:
            units = fixed
            res = _by_words(idx, units, filler, limit)
    core = _spaced([u for u, f in zip(units, filler, strict=True) if not f])
    if core and (res is None or len(res.matches) > 1):
        # Nothing matched, or several did: a name within a typo or two of the whole mention
        # decides (but only among the products already matched, if any).
        close = _fuzzy(idx, core, limit)
        if close is not None and (res is None or (close.unique and close.unique in res.matches)):
            res = close
    if res is not None:
        return res
    return Resolution(suggestions=_suggest(idx, core, unknown))


# --------------------------------------------------------------------------- stock


@dataclass(frozen=True)
class StockAnswer:
    """Stock of one product: total, per warehouse, and available / low / out."""

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


async def stock_for(s: AsyncSession, product: ProductRef, low_threshold: int = 50
                    ) -> StockAnswer:
    """Quantities per warehouse and a status word for one product."""
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


async def similar_in_stock(s: AsyncSession, product: ProductRef, limit: int = 3
                           ) -> list[ProductRef]:
    """Products of the same category that are in stock now."""
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


async def catalogue_is_empty(s: AsyncSession) -> bool:
    """True before any product has been imported."""
    return await s.scalar(select(Product.id).limit(1)) is None


@dataclass(frozen=True)
class StockReply:
    """What to say about a stock question: a template and its variables, products to offer
    as "ask about this one" buttons, the SKU for a back-in-stock button when it is out, and
    whether to offer a person."""

    template: str
    vars: dict = field(default_factory=dict)
    choices: list[ProductRef] = field(default_factory=list)
    notify_sku: str | None = None
    offer_handoff: bool = False


def product_vars(p: ProductRef) -> dict[str, str]:
    """Names of a product for templates."""
    return {"sku": p.sku, "name_zh": p.name_zh, "name_en": p.name_en}


async def answer_stock_question(s: AsyncSession, mention: str, whole_text: str,
                                cfg: StockSection) -> StockReply:
    """Resolve the product a stock question names and say how much there is where.

    `mention` is the product entity when the model found one, else the whole question.
    """
    res = await resolve_product(s, mention)
    if res.unique is None and mention != whole_text and whole_text:
        # The model sometimes tags only the head noun (香菇炖鸡面 → 面); the whole question
        # may still name exactly one product.
        whole = await resolve_product(s, whole_text)
        if whole.unique is not None:
            res = whole
    if not res.matches and await catalogue_is_empty(s):
        return StockReply("catalogue_empty", offer_handoff=True)
    if res.unique is None and not res.matches:
        return StockReply("product_not_found",
                          {"given": mention[:60], "suggested": bool(res.suggestions)},
                          choices=list(res.suggestions))
    if res.unique is None:
        return StockReply("product_pick", choices=list(res.matches))
    answer = await stock_for(s, res.unique, cfg.low_threshold)
    if answer.status != "out":
        return StockReply("stock_answer", {"similar": [],
                                           **answer.as_vars(show_quantities=cfg.show_quantities)})
    similar = [product_vars(p) for p in await similar_in_stock(s, res.unique)]
    return StockReply("stock_answer",
                      {"similar": similar, **answer.as_vars(show_quantities=cfg.show_quantities)},
                      notify_sku=res.unique.sku)

"""Product resolution quality on the demo catalogue, and lookup speed on a synthetic 20k one.

Usage: .venv/bin/python benchmarks/product_resolution.py [--phrasings FILE] [--catalogue DIR]
       [--perf-products 20000] [--perf-lookups 600] [--skip-perf] [--no-write]
Writes benchmarks/results/product_resolution.json and product_resolution.md.

Importable: `evaluate()` returns {"precision", "recall", "n", "ambiguous", "failures", ...}
for the phrasings in benchmarks/data/product_phrasings.yml against data/demo.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.db import Database  # noqa: E402
from core.i18n import to_traditional  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.services import catalogue  # noqa: E402
from core.services.catalogue import resolve_product  # noqa: E402
from core.services.importer import import_paths  # noqa: E402

PHRASINGS = ROOT / "benchmarks" / "data" / "product_phrasings.yml"
CATALOGUE = ROOT / "data" / "demo"
# A second catalogue the resolver was never tuned on, and phrasings written against it
# after the resolver was frozen (do not change the resolver to fit them).
HOLDOUT_CATALOGUE = ROOT / "benchmarks" / "data" / "holdout_catalogue.csv"
HOLDOUT_PHRASINGS = ROOT / "benchmarks" / "data" / "holdout_phrasings.yml"
RESULTS = ROOT / "benchmarks" / "results"
FLOOR = 0.95


def load_phrasings(path: Path = PHRASINGS) -> list[dict[str, Any]]:
    """The phrasing list: dicts with text, sku (or None), kind and optional ambiguous."""
    items = yaml.safe_load(path.read_text(encoding="utf-8"))["phrasings"]
    for item in items:
        item["text"] = str(item["text"])
        item["sku"] = str(item["sku"]) if item.get("sku") else None
        item.setdefault("kind", "other")
        item["ambiguous"] = bool(item.get("ambiguous", False))
    return items


async def _fresh_db(folder: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    await upgrade(db.engine)
    return db


def _catalogue_files(catalogue: Path) -> list[Path]:
    # Only products and stock: the resolver needs nothing else, and orders need a timezone.
    return [p for p in (catalogue / "products.csv", catalogue / "stock.csv") if p.exists()]


def _score(items: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    unique_made = correct = 0
    expected = sum(1 for it in items if it["sku"])
    ambiguous = ambiguous_ok = 0
    failures: list[dict[str, Any]] = []
    by_kind: dict[str, Counter[str]] = {}
    for it, out in zip(items, outcomes, strict=True):
        k = by_kind.setdefault(it["kind"], Counter())
        k["n"] += 1
        got = out["unique"]
        if got is not None:
            unique_made += 1
        if len(out["matches"]) > 1:
            ambiguous += 1
            ambiguous_ok += it["ambiguous"]
        ok = got == it["sku"] if it["sku"] else got is None
        if it["ambiguous"]:
            ok = ok and len(out["matches"]) > 1
        if it["sku"] and got == it["sku"]:
            correct += 1
        k["ok"] += ok
        if not ok:
            failures.append({"text": it["text"], "kind": it["kind"], "expected": it["sku"],
                             "expected_ambiguous": it["ambiguous"], **out})
    precision = correct / unique_made if unique_made else 1.0
    recall = correct / expected if expected else 1.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "n": len(items),
        "with_expected_sku": expected,
        "unique_resolutions": unique_made,
        "correct": correct,
        "wrong_unique": unique_made - correct,
        "ambiguous": ambiguous,
        "ambiguous_expected_and_given": ambiguous_ok,
        "ambiguous_expected": sum(1 for it in items if it["ambiguous"]),
        "by_kind": {kind: {"n": c["n"], "ok": c["ok"]} for kind, c in sorted(by_kind.items())},
        "failures": failures,
    }


async def evaluate_async(phrasings: Path = PHRASINGS, catalogue: Path = CATALOGUE) -> dict:
    """Resolve every phrasing against a fresh SQLite copy of the catalogue and score it."""
    items = load_phrasings(phrasings)
    with tempfile.TemporaryDirectory(prefix="prodres-") as tmp:
        db = await _fresh_db(Path(tmp))
        try:
            await import_paths(db, _catalogue_files(catalogue), actor="benchmark")
            outcomes = []
            for it in items:
                async with db.transaction() as s:
                    res = await resolve_product(s, it["text"])
                outcomes.append({
                    "unique": res.unique.sku if res.unique else None,
                    "matches": [p.sku for p in res.matches],
                    "suggestions": [p.sku for p in res.suggestions],
                })
        finally:
            await db.dispose()
    return _score(items, outcomes)


def evaluate(phrasings: Path = PHRASINGS, catalogue: Path = CATALOGUE) -> dict:
    """Precision/recall of product resolution on the phrasing list (safe inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(evaluate_async(phrasings, catalogue))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, evaluate_async(phrasings, catalogue)).result()


def evaluate_holdout(phrasings: Path = HOLDOUT_PHRASINGS,
                     catalogue_csv: Path = HOLDOUT_CATALOGUE) -> dict:
    """Precision/recall on the held-out catalogue (a products.csv file of its own)."""
    with tempfile.TemporaryDirectory(prefix="prodres-holdout-") as tmp:
        folder = Path(tmp)
        # The importer recognises a file by its name: give the CSV the products.csv name.
        (folder / "products.csv").write_bytes(catalogue_csv.read_bytes())
        return evaluate(phrasings, folder)


# --------------------------------------------------------------------------- synthetic catalogue

_BRANDS = [("康乐", "Kangle"), ("统好", "Tonghao"), ("今味", "Jinwei"), ("白鹤", "Baihe"),
           ("农源", "Nongyuan"), ("娃乐", "Wale"), ("怡泉", "Yiquan"), ("元禾", "Yuanhe"),
           ("东鹏岭", "Dongpengling"), ("金山", "Jinshan"), ("华润泽", "Huarunze"),
           ("青岭", "Qingling"), ("南湖", "Nanhu"), ("北塬", "Beiyuan"), ("喜旺", "Xiwang"),
           ("盛丰", "Shengfeng"), ("鑫达", "Xinda"), ("百味", "Baiwei"), ("优品", "Youpin"),
           ("福临", "Fulin")]
_FLAVOURS = [("柠檬", "Lemon"), ("蜂蜜", "Honey"), ("桂花", "Osmanthus"), ("荔枝", "Lychee"),
             ("芒果", "Mango"), ("葡萄", "Grape"), ("草莓", "Strawberry"), ("西柚", "Grapefruit"),
             ("菊花", "Chrysanthemum"), ("红枣", "Red Date"), ("椰子", "Coconut"),
             ("香草", "Vanilla"), ("黑糖", "Brown Sugar"), ("玫瑰", "Rose"), ("薄荷", "Mint"),
             ("青梅", "Green Plum"), ("山楂", "Hawthorn"), ("百香果", "Passion Fruit"),
             ("海盐", "Sea Salt"), ("麻辣", "Mala"), ("番茄", "Tomato"), ("咖喱", "Curry"),
             ("酸辣", "Hot Sour"), ("香菇", "Mushroom"), ("牛肉", "Beef")]
_KINDS = [("乌龙茶", "Oolong Tea", "茶饮料"), ("红茶", "Black Tea", "茶饮料"),
          ("绿茶", "Green Tea", "茶饮料"), ("果汁", "Juice", "果味饮料"),
          ("苏打水", "Soda Water", "包装饮用水"), ("酸奶", "Yogurt Drink", "乳饮料"),
          ("豆奶", "Soy Milk", "乳饮料"), ("拉面", "Ramen", "方便面"),
          ("拌面", "Mixed Noodles", "方便面"), ("米粉", "Rice Noodles", "方便面"),
          ("饼干", "Biscuits", "饼干"), ("薯片", "Crisps", "零食"), ("瓜子", "Seeds", "零食"),
          ("面包", "Bread", "烘焙"), ("果冻", "Jelly", "零食"), ("火腿肠", "Ham Sausage", "肉制品"),
          ("辣条", "Spicy Strips", "零食"), ("咖啡", "Coffee", "咖啡"),
          ("奶茶", "Milk Tea", "茶饮料"),
          ("能量饮料", "Energy Drink", "功能饮料")]
_SIZES = ["250ml", "330ml", "500ml", "1L", "1.5L", "2L", "60g", "100g", "120g", "5-pack"]


def synthetic_products(n: int, seed: int = 7) -> list[dict[str, str]]:
    """n distinct products from brand × flavour × kind × size, with aliases in both scripts."""
    rng = random.Random(seed)
    combos = [(b, f, k, s) for b in _BRANDS for f in _FLAVOURS for k in _KINDS for s in _SIZES]
    rng.shuffle(combos)
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} synthetic products")
    rows = []
    for i, ((bz, be), (fz, fe), (kz, ke, cat), size) in enumerate(combos[:n]):
        name_zh = f"{bz}{fz}{kz} {size}"
        aliases = [f"{bz}{fz}{kz}{size}", to_traditional(f"{bz}{fz}{kz}"), f"{fz}{kz}{size}"]
        rows.append({"sku": f"SY-{10000 + i}", "name_zh": name_zh,
                     "name_en": f"{be} {fe} {ke} {size}", "aliases": "|".join(aliases),
                     "category": cat, "unit": "箱", "price": f"{rng.randint(10, 99)}.00"})
    return rows


def _typo(text: str, rng: random.Random) -> str:
    chars = list(text)
    spots = [i for i, c in enumerate(chars) if c.isalpha()]
    if not spots:
        return text
    i = rng.choice(spots)
    chars[i] = "荼" if "\u4e00" <= chars[i] <= "\u9fff" else ("a" if chars[i] != "a" else "e")
    return "".join(chars)


def perf_queries(rows: list[dict[str, str]], lookups: int,
                 seed: int = 11) -> list[tuple[str, str | None]]:
    """A realistic mix of questions about random synthetic products (with the SKU meant)."""
    rng = random.Random(seed)
    shapes = [
        lambda r: f"{r['name_zh']}还有货吗",
        lambda r: f"{to_traditional(r['name_zh'])}庫存多少",
        lambda r: f"is the {r['name_en']} in stock?",
        lambda r: r["sku"].lower().replace("-", " "),
        lambda r: _typo(r["name_zh"], rng),
        lambda r: _typo(r["name_en"], rng),
        lambda r: r["aliases"].split("|")[1] + "有吗",  # no size: several products fit
        lambda r: "可口可乐还有货吗",  # not in the catalogue
    ]
    out: list[tuple[str, str | None]] = []
    for i in range(lookups):
        r = rng.choice(rows)
        out.append((shapes[i % len(shapes)](r), None if i % len(shapes) == 7 else r["sku"]))
    return out


async def _timed(db: Database, queries: list[tuple[str, str | None]]) -> tuple[list[float], int,
                                                                                 int]:
    times, unique, wrong = [], 0, 0
    for text, expected in queries:
        t0 = time.perf_counter()
        async with db.transaction() as s:
            res = await resolve_product(s, text)
        times.append((time.perf_counter() - t0) * 1000)
        if res.unique is not None:
            unique += 1
            wrong += res.unique.sku != expected
    return sorted(times), unique, wrong


async def perf_async(products: int = 20000, lookups: int = 600) -> dict:
    """Mean/p95 ms per lookup against a synthetic catalogue, after the index is built."""
    rows = synthetic_products(products)
    queries = perf_queries(rows, lookups)
    with tempfile.TemporaryDirectory(prefix="prodres-perf-") as tmp:
        folder = Path(tmp)
        with (folder / "products.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        db = await _fresh_db(folder)
        try:
            t0 = time.perf_counter()
            await import_paths(db, [folder / "products.csv"], actor="benchmark")
            import_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            async with db.transaction() as s:
                await resolve_product(s, "warm-up")
            build_ms = (time.perf_counter() - t0) * 1000
            times, unique, wrong = await _timed(db, queries)
            # The same lookups, re-reading the catalogue version from the database every time.
            saved, catalogue.RECHECK_SECONDS = catalogue.RECHECK_SECONDS, 0.0
            try:
                checked, _, _ = await _timed(db, queries)
            finally:
                catalogue.RECHECK_SECONDS = saved
        finally:
            await db.dispose()
    return {
        "products": products, "lookups": len(times), "import_s": round(import_s, 2),
        "index_build_ms": round(build_ms, 1),
        "mean_ms": round(statistics.fmean(times), 2),
        "p50_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[int(len(times) * 0.95)], 2),
        "max_ms": round(times[-1], 2),
        "mean_ms_version_check_every_lookup": round(statistics.fmean(checked), 2),
        "p95_ms_version_check_every_lookup": round(checked[int(len(checked) * 0.95)], 2),
        "recheck_seconds": catalogue.RECHECK_SECONDS,
        "unique": unique,
        "wrong_unique": wrong,
        "precision": round((unique - wrong) / unique, 4) if unique else 1.0,
    }


def perf(products: int = 20000, lookups: int = 600) -> dict:
    """Synchronous wrapper of perf_async."""
    return asyncio.run(perf_async(products, lookups))


# --------------------------------------------------------------------------- report


def markdown(result: dict) -> str:
    """A short human-readable report."""
    q = result["quality"]
    ok = q["precision"] >= FLOOR and q["recall"] >= FLOOR
    lines = [
        "# Product resolution",
        "",
        f"Demo catalogue, {q['n']} phrasings ({q['with_expected_sku']} naming a product).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| precision | {q['precision']:.3f} |",
        f"| recall | {q['recall']:.3f} |",
        f"| unique resolutions | {q['unique_resolutions']} ({q['wrong_unique']} wrong) |",
        f"| ambiguous (pick-list) | {q['ambiguous']} "
        f"({q['ambiguous_expected_and_given']}/{q['ambiguous_expected']} expected) |",
        f"| floor {FLOOR} | {'met' if ok else 'NOT met'} |",
        "",
        "| kind | ok / n |",
        "|---|---|",
        *[f"| {k} | {v['ok']} / {v['n']} |" for k, v in q["by_kind"].items()],
        "",
    ]
    if q["failures"]:
        lines += ["Failures:", ""]
        for f in q["failures"]:
            got = f["unique"] or (f"pick {', '.join(f['matches'])}" if f["matches"] else "none")
            lines.append(f"- `{f['text']}` expected {f['expected'] or 'none'}, got {got}")
        lines.append("")
    p = result.get("perf")
    if p:
        lines += [
            f"Speed, synthetic catalogue of {p['products']} products, {p['lookups']} lookups: "
            f"mean {p['mean_ms']} ms, p50 {p['p50_ms']} ms, p95 {p['p95_ms']} ms, "
            f"max {p['max_ms']} ms per lookup (catalogue version re-read at most every "
            f"{p['recheck_seconds']} s, and at once after a write by this process); "
            f"re-reading it on every lookup: mean {p['mean_ms_version_check_every_lookup']} ms, "
            f"p95 {p['p95_ms_version_check_every_lookup']} ms. Index build "
            f"{p['index_build_ms']} ms (only after a catalogue change). Precision on these "
            f"lookups: {p['precision']:.3f} ({p['wrong_unique']} wrong of {p['unique']} unique).",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phrasings", type=Path, default=PHRASINGS, help="YAML phrasing list")
    ap.add_argument("--catalogue", type=Path, default=CATALOGUE,
                    help="folder with products.csv (and stock.csv)")
    ap.add_argument("--perf-products", type=int, default=20000,
                    help="size of the synthetic catalogue for the speed run")
    ap.add_argument("--perf-lookups", type=int, default=600, help="lookups in the speed run")
    ap.add_argument("--skip-perf", action="store_true", help="quality only")
    ap.add_argument("--no-write", action="store_true", help="print only, write no result files")
    args = ap.parse_args(argv)

    result: dict[str, Any] = {"quality": evaluate(args.phrasings, args.catalogue)}
    if not args.skip_perf:
        result["perf"] = perf(args.perf_products, args.perf_lookups)
    report = markdown(result)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "product_resolution.json").write_text(
            json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        (RESULTS / "product_resolution.md").write_text(report, encoding="utf-8")
    q = result["quality"]
    return 0 if q["precision"] >= FLOOR and q["recall"] >= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())

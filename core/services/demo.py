"""Demo data: import data/demo/*.csv (promotions kept current), the demo training course, and
link the sandbox personas.

The demo CSVs are written around DEMO_ANCHOR (2026-11-23). Orders are history and keep their
dates, but promotions are about "now": `seed_demo` moves every demo promotion by a whole number
of weeks so that DEMO_ANCHOR's week maps onto the current week. The promotion that is active on
DEMO_ANCHOR is therefore active today, the expired one is still expired and the future one still
lies ahead. Shifting by whole weeks (not days) means re-running the seed within the same week
changes nothing; in the anchor week itself the CSV is imported exactly as it is on disk.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from core.db import Database
from core.services.importer import Progress, import_paths, kind_of
from core.settings import PROJECT_ROOT, Settings

DEMO_ANCHOR = dt.date(2026, 11, 23)
# Reward points in the demo: the rewards catalogue, and an opening balance for the demo dealer
# (its delivered demo order also earns points, but they stay pending for the return window).
DEMO_REWARDS = "points/rewards.csv"
DEMO_OPENING_POINTS = {"D001": 2000}


def demo_data_dir(settings: Settings) -> Path:
    """The folder holding the bundled demo CSV files."""
    path = Path(settings.import_.demo_data_dir)
    return path if path.is_absolute() else PROJECT_ROOT / path


def promotion_shift(today: dt.date) -> dt.timedelta:
    """How far demo promotions move: whole weeks from DEMO_ANCHOR to `today`."""
    return dt.timedelta(weeks=(today - DEMO_ANCHOR).days // 7)


def shift_promotions(source: Path, target: Path, shift: dt.timedelta) -> None:
    """Copy a promotions CSV, moving starts_on and ends_on by `shift`."""
    with source.open(encoding="utf-8-sig", newline="") as src, \
            target.open("w", encoding="utf-8", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []),
                                lineterminator="\n")
        writer.writeheader()
        for row in reader:
            for col in ("starts_on", "ends_on"):
                row[col] = (dt.date.fromisoformat(row[col].strip()) + shift).isoformat()
            writer.writerow(row)


async def seed_demo(
    db: Database,
    settings: Settings,
    progress: Progress | None = None,
    *,
    today: dt.date | None = None,
) -> str:
    """Import the bundled demo data (idempotent) and return the import summary."""
    folder = demo_data_dir(settings)
    if today is None:
        today = dt.datetime.now(ZoneInfo(settings.app.timezone)).date()
    shift = promotion_shift(today)
    files = sorted(p for p in folder.glob("*.csv") if kind_of(p))
    with tempfile.TemporaryDirectory(prefix="demo-seed-") as tmp:
        paths: list[Path] = []
        for path in files:
            if kind_of(path) == "promotions" and shift:
                shifted = Path(tmp) / path.name
                shift_promotions(path, shifted, shift)
                path = shifted
            paths.append(path)
        report = await import_paths(db, paths or [folder], progress, actor="seed-demo",
                                    timezone=settings.app.timezone)
    lines = [report.summary()]
    if shift:
        lines.append(f"  demo promotions moved by {shift.days} days so they are current")
    lines.append(await seed_demo_points(db, folder))
    lines.append(await seed_demo_course(db, settings))
    return "\n".join(lines)


async def seed_demo_course(db: Database, settings: Settings) -> str:
    """The demo training course (training.demo_bundle); an unchanged bundle keeps its
    version. Nobody is enrolled here."""
    from training.bundle import import_bundle

    folder = Path(settings.training.demo_bundle)
    folder = folder if folder.is_absolute() else PROJECT_ROOT / folder
    async with db.transaction() as s:
        result = await import_bundle(s, folder, settings, actor="seed-demo")
        course = result.course
        return (f"  demo course {course.code}: "
                f"{'saved' if result.saved else 'unchanged'}, version {course.version}")


async def seed_demo_points(db: Database, folder: Path) -> str:
    """The demo rewards catalogue and the demo dealer's opening points (idempotent)."""
    from sqlalchemy import select

    from community.points import ledger, rewards
    from core.models import Customer

    path = folder / DEMO_REWARDS
    async with db.transaction() as s:
        n = await rewards.import_rewards_csv(s, path, actor="seed-demo") if path.exists() else 0
        granted = 0
        for code, points in DEMO_OPENING_POINTS.items():
            account = await s.scalar(select(Customer.id).where(Customer.code == code))
            if account is not None and await ledger.grant(
                    s, account, points, "demo-opening", "demo opening balance",
                    actor="seed-demo"):
                granted += points
    return f"  demo points: {n} rewards, {granted} opening points granted"

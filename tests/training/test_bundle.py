"""Course bundles: the demo course imports; every bad bundle is refused with its reasons and
leaves nothing behind; Markdown becomes safe Telegram HTML; the CLI; re-import keeps progress."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import training.models  # noqa: F401 - the training tables are part of the metadata
from core.db import Database
from core.migrate import upgrade
from core.models import AuditLog, Base, Customer
from core.services.demo import seed_demo_course
from core.settings import PROJECT_ROOT, Settings, load_settings
from tests.conftest import uow
from training import bundle, content, courses
from training.cli import build_parser, run
from training.markdown import to_telegram_html
from training.models import CourseItem, ItemProgress

DEMO = PROJECT_ROOT / "data/demo/training/product-basics"
TRAINING_TABLES = sorted(t for t in Base.metadata.tables if t.startswith("training_"))


def settings_for(tmp_path: Path) -> Settings:
    """Settings whose data folder (and CLI database) live in tmp_path."""
    return load_settings(env={"APP_DATA_DIR": str(tmp_path / "data"),
                              "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"})


def copy_demo(tmp_path: Path) -> Path:
    """A copy of the demo bundle a test may break."""
    return Path(shutil.copytree(DEMO, tmp_path / "product-basics"))


def edit(path: Path, old: str, new: str) -> None:
    """Replace one piece of a bundle file (it must be there)."""
    body = path.read_text(encoding="utf-8")
    assert old in body, (path, old)
    path.write_text(body.replace(old, new, 1), encoding="utf-8")


async def row_counts(db: Database) -> dict[str, int]:
    """Rows in every training table, and the training audit entries."""
    async with db.transaction() as s:
        counts = {t: await s.scalar(text(f"SELECT count(*) FROM {t}")) for t in TRAINING_TABLES}
        counts["audit"] = await s.scalar(select(func.count()).select_from(AuditLog)
                                         .where(AuditLog.action.like("training.%")))
    return counts


def stored_files(settings: Settings) -> list[Path]:
    """Every file in the training files folder."""
    root = bundle.files_root(settings)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- the demo course --------------------------------------------------------------------

async def test_demo_bundle_imports_with_its_outline(db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    result = await uow(db, bundle.import_bundle, DEMO, settings, actor="t")
    assert result.saved and result.course.version == 1
    assert result.course.code == "product-basics" and result.course.locale == "zh-Hans"
    async with db.transaction() as s:
        items = await courses.items(s, result.course.id)
        quiz = items[-1]
        pool = await courses.questions(s, quiz.id)
    assert [(i.key, i.kind) for i in items] == [
        ("noodles", "lesson"), ("drinks", "lesson"), ("display", "lesson"), ("quiz", "quiz")]
    assert "<b>红烧牛肉面</b>" in items[0].body and "• 袋装" in items[0].body
    kinds = [[a["kind"] for a in i.attachments] for i in items]
    assert kinds == [["photo"], ["document"], ["link"], []]
    photo, document = items[0].attachments[0], items[1].attachments[0]
    root = bundle.files_root(settings)
    for ref in (photo["ref"], document["ref"]):
        assert Path(ref).is_absolute() and Path(ref).is_file() and Path(ref).is_relative_to(root)
        assert Path(ref).parent.stat().st_mode & 0o777 == 0o700
    assert Path(document["ref"]).name == "饮料产品资料卡.pdf"  # the name the dealer sees
    assert Path(photo["ref"]).read_bytes() == (DEMO / "images/noodle-lineup.png").read_bytes()
    assert items[2].attachments[0]["ref"].startswith("https://")
    assert (quiz.pass_mark, quiz.draw, quiz.max_attempts, len(pool)) == (60, 3, 3, 5)
    assert sum(q.multi for q in pool) == 1 and all(q.correct and q.explanation for q in pool)
    for path in DEMO.rglob("*"):
        assert path.stat().st_size < 50_000, path


async def test_seeding_twice_keeps_the_version(db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert "product-basics: saved, version 1" in await seed_demo_course(db, settings)
    before = await row_counts(db)
    assert "product-basics: unchanged, version 1" in await seed_demo_course(db, settings)
    assert await row_counts(db) == before
    assert before["training_enrollments"] == 0  # the seed enrols nobody


# --- bad bundles: refused with the reason, nothing half-imported --------------------------

def _drop_answer(b: Path) -> None:
    edit(b / "04-quiz.yml", "    answer: C\n", "")


def _symlink_out(b: Path) -> None:
    (b.parent / "outside.png").write_bytes((b / "images/noodle-lineup.png").read_bytes())
    (b / "images/noodle-lineup.png").unlink()
    (b / "images/noodle-lineup.png").symlink_to(b.parent / "outside.png")


BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing item file": (lambda b: (b / "02-drinks.md").unlink(),
                          "02-drinks.md does not exist"),
    "missing attachment": (lambda b: (b / "files/product-sheet.pdf").unlink(),
                           "02-drinks.md attachment 1: files/product-sheet.pdf does not exist"),
    "no correct answer": (_drop_answer, "04-quiz.yml question 1: no correct answer is marked"),
    "pass mark above 100": (lambda b: edit(b / "04-quiz.yml", "pass_mark: 60", "pass_mark: 120"),
                            "04-quiz.yml: pass mark 120% is not between 0 and 100"),
    "malformed yaml": (lambda b: edit(b / "course.yml", "locale: zh-Hans", "locale: [zh-Hans"),
                       "course.yml: not valid YAML at line 7 (in what starts at line 6)"),
    "path escapes": (lambda b: edit(b / "01-noodles.md", "images/noodle-lineup.png",
                                    "../outside.png"),
                     "../outside.png is outside the course folder"),
    "symlink escapes": (_symlink_out, "is a link to a file outside the course folder"),
    "unknown key": (lambda b: edit(b / "04-quiz.yml", "pass_mark:", "pass_mrak:"),
                    "04-quiz.yml: unknown key 'pass_mrak' (did you mean 'pass_mark'?)"),
    "not utf-8": (lambda b: (b / "03-display.md").write_bytes("陈列".encode("gbk")),
                  "03-display.md: not UTF-8"),
    "photo not a picture": (lambda b: edit(b / "01-noodles.md", "images/noodle-lineup.png",
                                           "files/product-sheet.pdf"),
                            "files/product-sheet.pdf is not a JPEG, PNG or WebP picture"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_bundle_is_refused_and_leaves_nothing(db: Database, tmp_path: Path,
                                                        case: str) -> None:
    break_it, reason = BAD[case]
    folder = copy_demo(tmp_path)
    break_it(folder)
    settings = settings_for(tmp_path)
    with pytest.raises(courses.CourseInvalid) as info:
        await uow(db, bundle.import_bundle, folder, settings, actor="t")
    assert any(reason in p for p in info.value.problems), info.value.problems
    assert set((await row_counts(db)).values()) == {0}
    assert stored_files(settings) == []


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    folder = copy_demo(tmp_path)
    for case in ("missing attachment", "no correct answer", "unknown key", "not utf-8"):
        BAD[case][0](folder)
    found = bundle.load(folder).problems
    for case in ("missing attachment", "no correct answer", "unknown key", "not utf-8"):
        assert any(BAD[case][1] in p for p in found), (case, found)


async def test_a_failed_save_leaves_no_row(db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await bundle.import_bundle(s, DEMO, settings, actor="t")
            raise RuntimeError("the caller's transaction fails after the import")
    assert set((await row_counts(db)).values()) == {0}
    assert len(stored_files(settings)) == 2  # content-addressed copies: harmless
    blocked = settings_for(tmp_path / "blocked")
    bundle.files_root(blocked).parent.mkdir(parents=True)
    bundle.files_root(blocked).write_text("a file where the folder should be")
    with pytest.raises(bundle.StorageError, match="make that folder writable"):
        await uow(db, bundle.import_bundle, DEMO, blocked, actor="t")
    assert set((await row_counts(db)).values()) == {0}


def test_formats_answers_titles_and_keys(tmp_path: Path) -> None:
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "course.yml").write_text("title: 迷你课\nitems: [1-hello.md, 2-check.yaml]\n",
                                       encoding="utf-8")
    (folder / "1-hello.md").write_text("# 你好\n\n正文", encoding="utf-8")
    (folder / "2-check.yaml").write_text(
        "title: 测\nquestions:\n"
        "  - {text: 一, options: [a, b, c], answer: [0, 2]}\n"
        "  - {text: 二, options: [a, b, c], answer: AC}\n"
        "  - {text: 三, options: [a, b], answer: 1, multi: true}\n", encoding="utf-8")
    loaded = bundle.load(folder)
    assert loaded.problems == []
    spec = loaded.spec
    assert spec.code == "mini" and [i.key for i in spec.items] == ["hello", "check"]
    assert (spec.items[0].title, spec.items[0].body) == ("你好", "正文")
    q1, q2, q3 = spec.items[1].questions
    assert q1.correct == q2.correct == [0, 2] and q1.multi and q2.multi
    assert q3.correct == [1] and q3.multi


# --- Markdown ---------------------------------------------------------------------------

def test_markdown_becomes_safe_telegram_html() -> None:
    html = to_telegram_html(
        "## 新品\n\n**红烧**牛肉面 [资料](https://example.com/a?x=1&y=2) "
        "[坏](javascript:alert(1)) <script>alert(1)</script> `a<b`\n\n"
        "- 袋装\n- 桶装\n\n> 提示\n\n```\nx < y\n```")
    assert html.splitlines()[0] == "<b>新品</b>"
    assert "<b>红烧</b>牛肉面" in html
    assert '<a href="https://example.com/a?x=1&amp;y=2">资料</a>' in html
    assert "javascript" not in html.split("<a ")[-1].split(">")[0]  # no such link
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "<code>a&lt;b</code>" in html
    assert "• 袋装\n• 桶装" in html
    assert "<blockquote>提示</blockquote>" in html and "<pre>x &lt; y</pre>" in html


# --- the command line -----------------------------------------------------------------------

async def _cli(settings: Settings, *argv: str) -> int:
    return await run(settings, build_parser().parse_args(list(argv)))


@pytest.mark.parametrize("argv", [["--help"], ["import", "--help"], ["courses", "--help"]])
def test_cli_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 0 and "usage: python -m training" in capsys.readouterr().out


async def test_cli_dry_run_import_and_refusal(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(tmp_path)
    assert await _cli(settings, "import", str(DEMO), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "4. quiz   04-quiz.yml  产品知识小测验  — 5 question(s) (1 multiple choice)" in out
    assert "photo: images/noodle-lineup.png" in out and "nothing was saved" in out
    assert stored_files(settings) == []
    assert await _cli(settings, "courses") == 0
    assert "no courses yet" in capsys.readouterr().out

    bad = copy_demo(tmp_path)
    BAD["pass mark above 100"][0](bad)
    BAD["missing attachment"][0](bad)
    assert await _cli(settings, "import", str(bad)) == 1
    err = capsys.readouterr().err
    assert "2 problem(s); nothing was saved" in err
    assert BAD["pass mark above 100"][1] in err and BAD["missing attachment"][1] in err

    assert await _cli(settings, "import", str(DEMO)) == 0
    assert "saved course product-basics version 1" in capsys.readouterr().out
    assert await _cli(settings, "courses") == 0
    assert capsys.readouterr().out.startswith(
        "product-basics\t产品基础：方便面与饮料\tv1\t4 item(s)\t0 enrolled")


# --- re-import ----------------------------------------------------------------------------

async def test_reimport_changes_text_and_keeps_progress(db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    folder = copy_demo(tmp_path)
    first = await uow(db, bundle.import_bundle, folder, settings, actor="t")
    async with db.transaction() as s:
        s.add(Customer(code="D1", kind="dealer", name="上海恒通", tier="key", region="华东"))
    async with db.transaction() as s:
        customer = await s.scalar(select(Customer.id))
        enrollment, _ = await content.enroll(s, first.course.id, customer)
        lesson = (await courses.items(s, first.course.id))[0]
        await content.mark_delivered(s, enrollment.id, lesson.id)
        progress_id = await s.scalar(select(ItemProgress.id))
    edit(folder / "01-noodles.md", "卖得最好的产品", "全国销量第一的产品")
    again = await uow(db, bundle.import_bundle, folder, settings, actor="t")
    assert again.saved and again.course.id == first.course.id and again.course.version == 2
    async with db.transaction() as s:
        now = await s.get(CourseItem, lesson.id)
        assert now is not None and now.active and "全国销量第一的产品" in now.body
        rows = (await s.execute(select(ItemProgress.id, ItemProgress.item_id))).all()
    assert rows == [(progress_id, lesson.id)]


async def test_cli_database_is_migrated_on_first_use(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    db = Database(settings.resolved_database_url())
    await upgrade(db.engine)  # an already migrated database is fine too
    await db.dispose()
    assert await _cli(settings, "courses") == 0

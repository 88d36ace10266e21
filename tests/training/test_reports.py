"""Progress reports: the numbers staff see per course, group and dealer, the CSV they open
in Excel (a hostile name stays text), and who may ask."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sqlalchemy import select

from core.errors import PermissionDenied
from core.i18n import renderer
from core.models import AuditLog, StaffMember, TelegramIdentity
from tests.conftest import uow
from tests.training.progress_fixture import (
    EVIL,
    GROUP_CHAT,
    GROUP_TITLE,
    build,
    settings_for,
)
from training import certificates, reports


async def test_course_numbers(db) -> None:  # type: ignore[no-untyped-def]
    await build(db)
    summary, group = await uow(db, reports.course_report, "basics")
    assert group is None
    assert (summary.items, summary.enrolled, summary.started, summary.completed,
            summary.passed) == (3, 4, 3, 2, 1)
    assert (summary.avg_score, summary.best_score) == (65.0, 90)
    screen = await uow(db, reports.course_screen, "basics")
    text = renderer().render(screen.template, "en", **screen.vars)
    assert "enrolled 4 · started 3 · completed 2 · passed 1" in text, text
    assert "average 65.0%, best 90%" in text
    assert "D1</code> 甲商贸: 3/3 · 90% · ✅ passed" in text, text
    assert "D3</code> 丙商贸: 0/3 · –" in text, text


async def test_group_counts_only_its_members(db) -> None:  # type: ignore[no-untyped-def]
    await build(db)
    for name in (str(GROUP_CHAT), GROUP_TITLE):
        summary, title = await uow(db, reports.course_report, "basics", group=name)
        assert title == GROUP_TITLE
        assert [r.dealer_code for r in summary.rows] == ["D1", "D2"]  # D3 left the group
        assert (summary.enrolled, summary.started, summary.completed, summary.passed) == \
            (2, 2, 1, 1)
    screen = await uow(db, reports.course_screen, "basics", group=GROUP_TITLE)
    assert "group 华东经销商群" in renderer().render(screen.template, "en", **screen.vars)


async def test_dealer_view_has_certificate_code(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    cert = await uow(db, certificates.issue, world.enrollments["D1"],
                     settings=settings_for(tmp_path))
    screen = await uow(db, reports.dealer_screen, "D1")
    text = renderer().render(screen.template, "zh-Hans", **screen.vars)
    assert "产品基础：3/3 · 测验 90% · ✅ 已通过" in text, text
    assert cert.code in text


async def test_unknown_names_are_named(db) -> None:  # type: ignore[no-untyped-def]
    await build(db)
    for call, kwargs, what in ((reports.course_screen, {"course_code": "nope"}, "course"),
                               (reports.course_screen,
                                {"course_code": "basics", "group": "no such group"}, "group"),
                               (reports.dealer_screen, {"dealer_code": "D999"}, "dealer")):
        with pytest.raises(Exception) as info:
            await uow(db, call, **kwargs)
        assert info.value.vars["what"] == what


async def test_csv_parses_back_and_neutralises_formulas(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db, now=dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC))
    cert = await uow(db, certificates.issue, world.enrollments["D1"],
                     settings=settings_for(tmp_path))
    name, data, count = await uow(db, reports.csv_for, course="basics",
                                  timezone="Asia/Shanghai")
    assert name == "training-basics.csv" and count == 4
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese right
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    by_code = {r["dealer_code"]: r for r in table}
    assert by_code["D1"]["dealer_name"] == "甲商贸"
    assert by_code["D1"]["certificate_code"] == cert.code
    assert by_code["D1"]["enrolled_at"] == "2026-11-14 10:00:00"  # Shanghai time
    assert (by_code["D1"]["items_done"], by_code["D1"]["items_total"]) == ("3", "3")
    assert by_code["D4"]["quiz_scores"] == "40"
    assert by_code["D4"]["dealer_name"] == "'" + EVIL  # shown as text, never run
    assert by_code["D2"]["passed_at"] == "" and by_code["D2"]["started"] == "yes"
    _, dealer_csv, one = await uow(db, reports.csv_for, dealer="D4")
    assert one == 1 and b"'=HYPERLINK" in dealer_csv


def test_query_grammar() -> None:
    q = reports.parse_query
    assert q("basics") == reports.ProgressQuery(course="basics")
    assert q('basics group="华东 经销商群" csv') == reports.ProgressQuery(
        course="basics", group="华东 经销商群", csv=True)
    assert q("basics group=-100500") == reports.ProgressQuery(course="basics", group="-100500")
    assert q("dealer＝D001") == reports.ProgressQuery(dealer="D001")  # full-width =
    for bad in ("", "csv", "a b", "dealer=D1 basics", "basics colour=red"):
        assert q(bad) is None, bad


STAFF_CHAT = -1009


async def test_only_report_roles_in_the_staff_group_or_their_own_chat(db) -> None:  # type: ignore[no-untyped-def]
    await build(db)
    async with db.transaction() as s:
        for user, name, role in ((3001, "Zhao", "trainer"), (3002, "Li", "customer_service")):
            staff = StaffMember(name=name, role=role)
            s.add(staff)
            await s.flush()
            s.add(TelegramIdentity(telegram_user_id=user, first_name=name, staff_id=staff.id))
    roles = ["admin", "trainer"]
    for chat in (STAFF_CHAT, 3001):  # the trainer in the staff group and in a private chat
        await uow(db, reports.require_reporter, 3001, chat, roles=roles,
                  staff_chat_id=STAFF_CHAT)
    refusals = ((3002, STAFF_CHAT),  # staff, but not a report role
                (3002, 3002),        # … nor in their private chat
                (2001, STAFF_CHAT),  # a dealer
                (2001, 2001),        # a dealer in a private chat
                (3001, -100999))     # the trainer, in some other group
    for user, chat in refusals:
        with pytest.raises(PermissionDenied) as info:
            await uow(db, reports.require_reporter, user, chat, roles=roles,
                      staff_chat_id=STAFF_CHAT)
        words = renderer().render(info.value.template, "en", **info.value.vars)
        assert "training staff (admin, trainer)" in words, words
    async with db.transaction() as s:  # a refusal caught inside the unit of work is audited
        try:
            await reports.require_reporter(s, 3002, STAFF_CHAT, roles=roles,
                                           staff_chat_id=STAFF_CHAT)
        except PermissionDenied:
            pass
    async with db.transaction() as s:
        audited = (await s.execute(select(AuditLog.actor, AuditLog.subject)
                                   .where(AuditLog.action == "permission.denied"))).all()
    assert ("tg:3002", "training:progress") in [tuple(r) for r in audited]

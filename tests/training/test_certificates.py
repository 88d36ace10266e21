"""Certificates: once per enrolment, a PDF a person can read (Chinese included), a code
anyone can check however they type it, and one outbox document per certificate."""

from __future__ import annotations

import asyncio
import io
import stat

from pypdf import PdfReader
from sqlalchemy import func, select

from core.i18n import renderer
from core.models import OutboxMessage
from tests.conftest import uow
from tests.training.progress_fixture import build, settings_for
from training import certificates
from training.content import Target
from training.models import Certificate


def pdf_text(data: bytes) -> str:
    """The text a PDF reader extracts from every page."""
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_issued_once_with_one_code(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    settings = settings_for(tmp_path)
    first = await uow(db, certificates.issue, world.enrollments["D1"], settings=settings)
    again = await uow(db, certificates.issue, world.enrollments["D1"], settings=settings)
    assert (again.id, again.code) == (first.id, first.code)
    assert certificates.normalise_code(first.code) == first.code
    assert len(first.code) == 14 and first.code.count("-") == 2
    assert first.holder_name == "张三" and first.company == "甲商贸"
    assert first.course_title == "产品基础"
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Certificate)) == 1


async def test_concurrent_issue_makes_one(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    settings = settings_for(tmp_path)
    got = await asyncio.gather(*(uow(db, certificates.issue, world.enrollments["D4"],
                                     settings=settings) for _ in range(3)),
                               return_exceptions=True)
    codes = {c.code for c in got if isinstance(c, Certificate)}
    assert len(codes) == 1, got
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Certificate)) == 1


async def test_holder_falls_back_to_company(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    cert = await uow(db, certificates.issue, world.enrollments["D3"],
                     settings=settings_for(tmp_path))
    assert cert.holder_name == "丙商贸"  # nobody of D3 is linked


async def test_pdf_shows_chinese_name_course_and_code(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    settings = settings_for(tmp_path)
    cert = await uow(db, certificates.issue, world.enrollments["D1"], settings=settings)
    path = certificates.pdf_path(cert, settings)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    box = reader.pages[0].mediabox
    assert float(box.width) > float(box.height)  # landscape
    text = pdf_text(data)
    for shown in ("张三", "甲商贸", "产品基础", "结业证书", cert.code, "/verify",
                  settings.training.certificate_issuer.split()[0]):
        assert shown in text, (shown, text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_traditional_text_uses_the_traditional_font(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    cert = Certificate(id=1, code="ABCD-EFGH-JKMN", holder_name="陳大文", company="香港貿易",
                       course_title="產品陳列與銷售", issued_on=dt.date(2026, 11, 24),
                       enrollment_id=1)
    data = certificates.pdf_bytes(cert, settings_for(tmp_path))
    assert b"MSung-Light" in data
    text = pdf_text(data)
    assert "產品陳列與銷售" in text and "結業證書" in text and "陳大文" in text


async def test_verify_forgives_typing(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    cert = await uow(db, certificates.issue, world.enrollments["D1"],
                     settings=settings_for(tmp_path))
    raw = cert.code.replace("-", "")
    typed = [cert.code, cert.code.lower(), " ".join(raw[i:i + 3] for i in range(0, 12, 3)),
             raw.replace("0", "o").replace("1", "l").lower(),
             "".join(chr(ord(c) + 0xFEE0) for c in raw)]  # full-width, as a Chinese IME types
    for t in typed:
        screen = await uow(db, certificates.verify, t)
        assert screen.template == "training_verify_valid", t
        assert screen.vars["name"] == "张三" and screen.vars["course"] == "产品基础"
    shown = renderer().render(screen.template, "en", **screen.vars)
    assert "张三" in shown and "甲商贸" in shown and str(cert.issued_on) in shown


async def test_unknown_code_says_only_not_valid(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    cert = await uow(db, certificates.issue, world.enrollments["D1"],
                     settings=settings_for(tmp_path))
    wrong_last = cert.code[:-1] + ("Z" if cert.code[-1] != "Z" else "Y")
    for t in (wrong_last, "hello", "", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMU"):
        screen = await uow(db, certificates.verify, t)
        assert screen.template == "training_verify_unknown" and screen.vars == {}, t


async def test_queued_once_as_a_document(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = await build(db)
    settings = settings_for(tmp_path)
    cert = await uow(db, certificates.issue, world.enrollments["D1"], settings=settings)
    for _ in range(2):
        await uow(db, certificates.queue_certificate, cert, Target(2001, "zh-Hans"))
    await uow(db, certificates.queue_certificate, cert, Target(2001, "zh-Hans"),
              settings=settings, dedupe_key=f"trn:cert:{cert.id}:again:1")
    async with db.transaction() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert len(rows) == 2
    assert rows[0].media_kind == "document"
    assert rows[0].media_ref == str(certificates.pdf_path(cert, settings))
    assert rows[0].dedupe_key == f"trn:cert:{cert.id}"
    caption = renderer().render(rows[0].template, "zh-Hans", **rows[0].variables)
    assert cert.code in caption and "产品基础" in caption

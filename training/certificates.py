"""Certificates: issued once when a dealer passes a course, a PDF, and a verification code.

- `issue` creates the enrolment's certificate once (unique by enrolment: insert … on conflict
  do nothing, then select) and writes its PDF. Learning calls it when a dealer passes.
- The verification code is 12 random Crockford base32 characters (60 bits: unguessable),
  shown as `XXXX-XXXX-XXXX`; typing it back forgives case, spaces, dashes, full-width
  characters and the O/0, I/L/1 confusions (`normalise_code`).
- Holder name: the certificate is for the person who did the course, and the enrolment is
  the dealer company's (Customer.name is the company). The person is the Telegram identity
  linked to the dealer — the one who finished (`holder_user_id`, passed by learning) or else
  the first one linked — by its Telegram name; with no linked identity the company's name
  stands in. Company = Customer.name.
- `render_pdf` draws an A4 landscape page with ReportLab's built-in CID fonts (no system fonts
  needed): STSong-Light for Simplified Chinese, MSung-Light for Traditional, Helvetica for
  Latin; the file lives at `<data>/<training.files_dir>/certificates/<code>.pdf` (0700/0600).
- `verify` answers anyone's `/verify <code>` with the holder, company, course and date, or a
  plain "not a valid certificate" (no hint which character was wrong).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import unicodedata
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import insert_for
from core.errors import NotFound
from core.i18n import detect_script, renderer
from core.models import Customer, TelegramIdentity, utcnow
from core.screens import Screen
from core.services.outbox import enqueue
from core.settings import Settings, load_settings
from training.content import Target
from training.models import Certificate, Course, Enrollment

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_LENGTH = 12
_CONFUSED = str.maketrans({"O": "0", "I": "1", "L": "1"})
# The settings each certificate's PDF was written with, in this process (queue_certificate
# without settings finds the file where issue put it).
_written: dict[str, Settings] = {}
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


def _remember(code: str, settings: Settings) -> None:
    if len(_written) >= 4096:
        _written.pop(next(iter(_written)))
    _written[code] = settings


def new_code() -> str:
    """A fresh random code, `XXXX-XXXX-XXXX` (60 bits from `secrets`)."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return format_code(raw)


def format_code(raw: str) -> str:
    """`ABCDEFGHJKMN` → `ABCD-EFGH-JKMN`."""
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def normalise_code(typed: str) -> str | None:
    """The stored form of a typed code, or None if it cannot be one.

    Forgives full-width characters, case, spaces, dashes and Crockford's confusions
    (O→0, I/L→1)."""
    text = unicodedata.normalize("NFKC", typed or "").upper()
    text = re.sub(r"[\s\-_.·]+", "", text).translate(_CONFUSED)
    if len(text) != CODE_LENGTH or any(ch not in ALPHABET for ch in text):
        return None
    return format_code(text)


async def _holder(s: AsyncSession, customer: Customer, holder_user_id: int | None) -> str:
    """The certificate holder's name (see the module doc)."""
    q = select(TelegramIdentity.first_name).where(TelegramIdentity.customer_id == customer.id)
    name = None
    if holder_user_id is not None:
        name = await s.scalar(q.where(TelegramIdentity.telegram_user_id == holder_user_id))
    if not name:
        name = await s.scalar(q.where(TelegramIdentity.first_name != "")
                              .order_by(TelegramIdentity.linked_at,
                                        TelegramIdentity.telegram_user_id).limit(1))
    return (name or customer.name or customer.code).strip()[:200]


async def issue(s: AsyncSession, enrollment_id: int, *, settings: Settings,
                holder_user_id: int | None = None) -> Certificate:
    """The enrolment's certificate, created once (unique by enrolment); its PDF is written.

    `holder_user_id`: the Telegram user who finished the course (their name goes on the
    certificate if they are linked to the dealer). A second call returns the same row and code.
    NotFound if the enrolment does not exist."""
    existing = await s.scalar(select(Certificate)
                              .where(Certificate.enrollment_id == enrollment_id))
    if existing is None:
        row = (await s.execute(
            select(Enrollment, Course, Customer)
            .join(Course, Course.id == Enrollment.course_id)
            .join(Customer, Customer.id == Enrollment.customer_id)
            .where(Enrollment.id == enrollment_id))).first()
        if row is None:
            raise NotFound(f"no enrolment {enrollment_id}", what="enrolment",
                           ref=str(enrollment_id))
        _enrollment, course, customer = row
        values = dict(
            enrollment_id=enrollment_id, holder_name=await _holder(s, customer, holder_user_id),
            company=(customer.name or "")[:200], course_title=course.title[:200],
            issued_on=utcnow().astimezone(ZoneInfo(settings.app.timezone)).date(),
            issued_at=utcnow())
        for _ in range(5):  # a code collision (2^-60) just draws another code
            await s.execute(insert_for(s, Certificate).values(code=new_code(), **values)
                            .on_conflict_do_nothing())
            existing = await s.scalar(select(Certificate)
                                      .where(Certificate.enrollment_id == enrollment_id))
            if existing is not None:
                break
        assert existing is not None, "five code collisions in a row"
    _remember(existing.code, settings)
    if not pdf_path(existing, settings).is_file():
        render_pdf(existing, settings)
    return existing


def pdf_path(cert: Certificate, settings: Settings) -> Path:
    """Where the certificate's PDF lives."""
    return (settings.data_path / settings.training.files_dir / "certificates"
            / f"{cert.code}.pdf")


def _font(text: str) -> str:
    if not _CJK.search(text):
        return "Helvetica"
    return "MSung-Light" if detect_script(text) == "zh-Hant" else "STSong-Light"


def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    registered = pdfmetrics.getRegisteredFontNames()
    for name in ("STSong-Light", "MSung-Light"):
        if name not in registered:
            pdfmetrics.registerFont(UnicodeCIDFont(name))


def pdf_bytes(cert: Certificate, settings: Settings) -> bytes:
    """The certificate as a PDF (A4 landscape), without writing it anywhere."""
    from reportlab.lib.colors import HexColor
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.pdfgen import canvas

    _register_fonts()
    traditional = any(detect_script(t) == "zh-Hant"
                      for t in (cert.course_title, cert.holder_name, cert.company))
    zh = "zh-Hant" if traditional else "zh-Hans"
    r = renderer()

    def label(key: str, **variables: object) -> str:
        return f"{r.render(key, zh, **variables)}  {r.render(key, 'en', **variables)}"

    buf = io.BytesIO()
    width, height = landscape(A4)
    c = canvas.Canvas(buf, pagesize=(width, height))
    c.setTitle(f"{r.render('training_cert_pdf_title', 'en')} {cert.code}")
    c.setAuthor(settings.training.certificate_issuer)
    c.setStrokeColor(HexColor("#8a6d3b"))
    c.setLineWidth(3)
    c.rect(28, 28, width - 56, height - 56)
    c.setLineWidth(1)
    c.rect(38, 38, width - 76, height - 76)

    def line(text: str, y: float, size: int, color: str = "#222222") -> None:
        font = _font(text)
        while size > 8 and stringWidth(text, font, size) > width - 120:
            size -= 1  # a long course title shrinks to fit inside the border
        c.setFillColor(HexColor(color))
        c.setFont(font, size)
        c.drawCentredString(width / 2, y, text)

    line(r.render("training_cert_pdf_title", zh), height - 110, 40, "#8a6d3b")
    line(r.render("training_cert_pdf_title", "en"), height - 140, 18, "#8a6d3b")
    line(label("training_cert_pdf_certifies"), height - 190, 13, "#555555")
    line(cert.holder_name, height - 235, 30)
    if cert.company:
        line(cert.company, height - 265, 16, "#444444")
    line(label("training_cert_pdf_completed"), height - 305, 13, "#555555")
    line(cert.course_title, height - 345, 24)
    line(label("training_cert_pdf_date", date=cert.issued_on.isoformat()), height - 390, 13)
    line(settings.training.certificate_issuer, height - 420, 14)
    line(label("training_cert_pdf_code", code=cert.code), 100, 12, "#333333")
    line(r.render("training_cert_pdf_verify", zh, code=cert.code), 80, 10, "#666666")
    line(r.render("training_cert_pdf_verify", "en", code=cert.code), 64, 10, "#666666")
    c.showPage()
    c.save()
    return buf.getvalue()


def render_pdf(cert: Certificate, settings: Settings) -> bytes:
    """Render the certificate's PDF, write it to `pdf_path` (dir 0700, file 0600) and return
    its bytes."""
    data = pdf_bytes(cert, settings)
    path = pdf_path(cert, settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # readers never see half a file; two writers write the same thing
    _remember(cert.code, settings)
    return data


async def queue_certificate(s: AsyncSession, certificate: Certificate, target: Target, *,
                            settings: Settings | None = None,
                            dedupe_key: str | None = None) -> None:
    """Queue the certificate PDF to the dealer's chat (once per certificate).

    Dedupe key `trn:cert:<certificate id>`; a "send it again" passes its own `dedupe_key`.
    Pass `settings` where you have them (the PDF's place depends on app.data_dir); without
    them, the place this process wrote the PDF to, else the configured one. A missing file
    is rendered again."""
    if settings is not None:
        path = pdf_path(certificate, settings)
    else:
        settings = _written.get(certificate.code) or load_settings()
        path = pdf_path(certificate, settings)
    if not path.is_file():
        render_pdf(certificate, settings)
    await enqueue(
        s, target.chat_id, template="training_certificate_caption", locale=target.locale,
        variables={"name": certificate.holder_name, "company": certificate.company,
                   "course": certificate.course_title, "code": certificate.code,
                   "date": certificate.issued_on.isoformat()},
        media_kind="document", media_ref=str(path),
        dedupe_key=dedupe_key or f"trn:cert:{certificate.id}",
        ref=f"training:certificate:{certificate.code}")


async def by_code(s: AsyncSession, typed: str) -> Certificate | None:
    """The certificate a typed code names (normalised), or None."""
    code = normalise_code(typed)
    if code is None:
        return None
    return await s.scalar(select(Certificate).where(Certificate.code == code))


async def verify(s: AsyncSession, code: str) -> Screen:
    """Anyone's check of a code: the holder, company, course and date, or "not valid"."""
    cert = await by_code(s, code)
    if cert is None:
        return Screen("training_verify_unknown")
    return Screen("training_verify_valid", {
        "name": cert.holder_name, "company": cert.company, "course": cert.course_title,
        "date": cert.issued_on.isoformat(), "code": cert.code})

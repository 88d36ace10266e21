"""Certificates: issued once when a dealer passes a course, a PDF, and a verification code.

(Interface fixed for the parallel work; the implementation lands with the certificates work.)
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from training.content import Target
from training.models import Certificate


async def issue(s: AsyncSession, enrollment_id: int, *, settings: Settings) -> Certificate:
    """The enrolment's certificate, created once (unique by enrolment); its PDF is written."""
    raise NotImplementedError


async def queue_certificate(s: AsyncSession, certificate: Certificate, target: Target) -> None:
    """Queue the certificate PDF to the dealer's chat (once per certificate)."""
    raise NotImplementedError

"""Campaign progress and final reports, queued to the campaign's report chat via the outbox."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from core.db import Database
from core.models import PRIORITY_STAFF, Campaign, utcnow
from core.services import outbox


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they are UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


async def tick(db: Database, progress_seconds: float, locale: str) -> list[str]:
    """Queue due progress reports and final reports; returns what was queued (for the log)."""
    done: list[str] = []
    async with db.transaction() as s:
        open_ids = list((await s.scalars(
            select(Campaign.id).where(Campaign.reported_at.is_(None),
                                      Campaign.status.in_(("running", "cancelled")))
            .order_by(Campaign.id))).all())
    for campaign_id in open_ids:
        async with db.transaction() as s:
            campaign = await s.get(Campaign, campaign_id)
            if campaign is None or campaign.reported_at is not None:
                continue
            report = await outbox.campaign_report(s, campaign_id)
            now = utcnow()
            if report.open == 0 and (report.total > 0 or campaign.status == "cancelled"):
                final_status = "cancelled" if campaign.status == "cancelled" else "finished"
                # One-time by the database: only the worker whose UPDATE matches sends it.
                won = await s.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id, Campaign.reported_at.is_(None))
                    .values(reported_at=now, status=final_status,
                            finished_at=campaign.finished_at or now)
                    .execution_options(synchronize_session=False))
                if won.rowcount == 1 and campaign.report_chat_id is not None:
                    report.status = final_status
                    await outbox.enqueue(
                        s, campaign.report_chat_id, template="campaign_final", locale=locale,
                        variables=report.variables(), priority=PRIORITY_STAFF,
                        dedupe_key=f"campaign:{campaign_id}:final", kind="campaign_report",
                        ref=f"campaign:{campaign_id}")
                if won.rowcount == 1:
                    done.append(f"campaign {campaign_id} {final_status}")
                continue
            if campaign.report_chat_id is None or report.open == 0:
                continue
            last = _aware(campaign.progress_at) or _aware(campaign.created_at) or now
            if (now - last).total_seconds() < progress_seconds:
                continue
            won = await s.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id,
                       (Campaign.progress_at.is_(None)) | (Campaign.progress_at < now))
                .where(Campaign.progress_at.is_(None) if campaign.progress_at is None
                       else Campaign.progress_at == campaign.progress_at)
                .values(progress_at=now)
                .execution_options(synchronize_session=False))
            if won.rowcount == 1:
                await outbox.enqueue(
                    s, campaign.report_chat_id, template="campaign_progress", locale=locale,
                    variables=report.variables(), priority=PRIORITY_STAFF,
                    kind="campaign_report", ref=f"campaign:{campaign_id}")
                done.append(f"campaign {campaign_id} progress {report.sent}/{report.total}")
    return done

"""Scheduled database maintenance: analytics view refresh, monthly partitions twelve months
ahead, retention (of partitions, and of free text), and statistics of the hot tables.

Each task is a plain async function acting as `service_role` through the SECURITY DEFINER
entry points of migration 0007, so the job worker and `slotease db maintenance` run the same
code. The `*_CRON` constants are their schedules (for procrastinate's periodic tasks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slotease.config import Settings
from slotease.db.database import SERVICE, Database
from slotease.ops import repository

log = logging.getLogger(__name__)

# Hourly; `refresh_views_if_due` skips the hours outside SLOTEASE_ANALYTICS_REFRESH_HOURS.
REFRESH_CRON = "5 * * * *"
PARTITIONS_CRON = "30 3 * * *"
ANALYZE_CRON = "15 */6 * * *"
TEXT_RETENTION_CRON = "45 3 * * *"

PARTITION_MONTHS_AHEAD = 12
# The tables whose statistics drift fastest: written all day, read by date-bounded queries.
HOT_TABLES = (
    "public.appointments",
    "public.tickets",
    "public.analytics_events",
    "public.notifications",
    "public.audit_log",
)


@dataclass
class MaintenanceReport:
    refreshed: bool = False
    partitions_created: dict[str, int] = field(default_factory=dict)
    partitions_dropped: dict[str, list[str]] = field(default_factory=dict)
    anonymized: dict[str, int] = field(default_factory=dict)
    text_erased: dict[str, int] = field(default_factory=dict)
    analyzed: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"views refreshed: {'yes' if self.refreshed else 'no (outside refresh hours)'}"]
        out += [f"partitions created for {t}: {n}" for t, n in self.partitions_created.items()]
        out += [
            f"partitions dropped from {t}: {', '.join(names) or 'none'}"
            for t, names in self.partitions_dropped.items()
        ]
        out += [f"rows anonymized in {t}: {n}" for t, n in self.anonymized.items()]
        out += [f"{kind} past retention erased: {n}" for kind, n in self.text_erased.items()]
        out.append(f"analyzed: {', '.join(self.analyzed)}")
        return out


def months_before(now: datetime, months: int) -> datetime:
    """The first instant (UTC) of the month `months` before the month of `now`."""
    index = now.astimezone(UTC).year * 12 + now.astimezone(UTC).month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def refresh_due(now: datetime, hours: tuple[int, int]) -> bool:
    first, last = hours
    return first <= now.hour <= last


async def refresh_views(db: Database) -> None:
    async with db.transaction(SERVICE) as conn:
        await repository.refresh_analytics_views(conn)


async def refresh_views_if_due(db: Database, settings: Settings, now: datetime) -> bool:
    """The hourly task: refresh within the configured hours (server local time)."""
    if not refresh_due(now, settings.analytics_refresh_hours):
        return False
    await refresh_views(db)
    return True


async def ensure_partitions(
    db: Database, months_ahead: int = PARTITION_MONTHS_AHEAD
) -> dict[str, int]:
    """Monthly partitions from this month to `months_ahead` months ahead, for every
    partitioned table; returns how many each table gained."""
    created: dict[str, int] = {}
    async with db.transaction(SERVICE) as conn:
        for parent in await repository.partitioned_tables(conn):
            created[parent] = await repository.ensure_monthly_partitions(conn, parent, months_ahead)
    return created


def retention_months(settings: Settings) -> dict[str, int]:
    """Tables whose old partitions are dropped, and after how many months. Appointments are
    never dropped: tickets and feedback refer to them and the history views need them; they
    are anonymized instead (see `anonymize`)."""
    return {
        "public.audit_log": settings.retention_months_audit_log,
        "public.notifications": settings.retention_months_notifications,
        "public.analytics_events": settings.retention_months_analytics_events,
    }


async def apply_retention(db: Database, settings: Settings, now: datetime) -> dict[str, list[str]]:
    dropped: dict[str, list[str]] = {}
    async with db.transaction(SERVICE) as conn:
        for table, months in retention_months(settings).items():
            dropped[table] = await repository.drop_partitions_before(
                conn, table, months_before(now, months)
            )
    return dropped


async def anonymize(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    """Past `anonymize_after_months`, events lose who did them and appointments their free-text
    notes; the counts the analytics need stay. (An appointment keeps its customer: deleting
    the account removes the person's appointments.)"""
    cutoff = months_before(now, settings.anonymize_after_months)
    async with db.transaction(SERVICE) as conn:
        return {
            "public.analytics_events": await repository.anonymize_events(conn, cutoff),
            "public.appointments": await repository.anonymize_appointment_notes(conn, cutoff),
        }


async def apply_text_retention(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    """Free text past its SLOTEASE_RETENTION_* period loses its words; by kind, how many rows."""
    async with db.transaction(SERVICE) as conn:
        return await repository.apply_text_retention(
            conn,
            webhook_payloads_before=now - settings.retention_webhook_payloads,
            report_contents_before=now - settings.retention_report_contents,
            notification_bodies_before=now - settings.retention_notification_bodies,
            feedback_comments_before=now - settings.retention_feedback_comments,
        )


async def analyze_hot_tables(db: Database) -> tuple[str, ...]:
    async with db.transaction(SERVICE) as conn:
        await repository.analyze_tables(conn, HOT_TABLES)
    return HOT_TABLES


async def maintain_partitions(db: Database, settings: Settings, now: datetime) -> MaintenanceReport:
    """The daily task: months ahead, then retention."""
    return MaintenanceReport(
        partitions_created=await ensure_partitions(db),
        partitions_dropped=await apply_retention(db, settings, now),
        anonymized=await anonymize(db, settings, now),
    )


async def run_all(db: Database, settings: Settings, now: datetime) -> MaintenanceReport:
    """Every task once (`slotease db maintenance`); the views are refreshed whatever the hour."""
    report = await maintain_partitions(db, settings, now)
    report.text_erased = await apply_text_retention(db, settings, now)
    await refresh_views(db)
    report.refreshed = True
    report.analyzed = await analyze_hot_tables(db)
    return report

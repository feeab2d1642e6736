"""Point-in-time recovery with the scripts of scripts/pitr (docs/operations.md): WAL archived by
`archive-wal`, a base backup by `base-backup`, bookings made through the API, then more
bookings and an accidental deletion; `recover` to the time in between brings back exactly the
bookings made before it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import anyio
import psycopg
import pytest

from slotease.app import create_app
from slotease.migrations import runner
from tests.appointments.arrange import book, make_clinic, soon
from tests.clusters.pgcluster import Cluster, hand_over, run_as_server_account
from tests.conftest import app_client, settings_for
from tests.factories import make_user

pytestmark = pytest.mark.anyio

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "pitr"


def _appointment_ids(conninfo: str) -> set[uuid.UUID]:
    with psycopg.connect(conninfo) as conn:
        return {row[0] for row in conn.execute("select id from public.appointments").fetchall()}


def _wait_archived(conn: psycopg.Connection[tuple[object, ...]], segment: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        row = conn.execute(
            "select last_archived_wal, failed_count from pg_stat_archiver"
        ).fetchone()
        assert row is not None
        if row[0] is not None and str(row[0]) >= segment:
            return
        assert time.monotonic() < deadline, f"{segment} never archived ({row[1]} failures)"
        time.sleep(0.1)


def _wait_promoted(cluster: Cluster) -> None:
    deadline = time.monotonic() + 120
    while True:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            row = conn.execute("select pg_is_in_recovery()").fetchone()
        if row == (False,):
            return
        assert time.monotonic() < deadline, f"never promoted: {cluster.log.read_text()[-2000:]}"
        time.sleep(0.2)


async def test_recovery_to_a_time_holds_exactly_the_bookings_made_before_it(
    scratch: Path,
) -> None:
    archive = hand_over(scratch / "wal-archive")
    primary = Cluster.create(
        scratch,
        wal_level="replica",
        archive_mode="on",
        archive_command=f"'{SCRIPTS / 'archive-wal'} {archive} %p %f'",
    )
    primary.start()
    recovered = Cluster(scratch / "recovered")
    try:
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute("create database slotease")
        source = primary.url("slotease")
        runner.upgrade(source)
        with psycopg.connect(source, autocommit=True) as owner:
            clinic = make_clinic(owner)
            customer = make_user(owner, name="Customer")
        run_as_server_account(str(SCRIPTS / "base-backup"), str(scratch / "base"), primary.url())

        day = soon(clinic, days=7)
        settings = settings_for(source, scratch / "data")
        async with app_client(create_app(settings)) as client:
            before = []
            for hh_mm in ("09:00", "09:30", "10:00"):
                answer = await book(client, customer, clinic, clinic.at(day, hh_mm))
                assert answer.status_code == 201, answer.text
                before.append(uuid.UUID(answer.json()["id"]))
            with psycopg.connect(source, autocommit=True) as owner:
                row = owner.execute("select clock_timestamp()::text").fetchone()
            assert row is not None
            target_time = str(row[0])
            await anyio.sleep(0.2)
            for hh_mm in ("10:30", "11:00"):
                answer = await book(client, customer, clinic, clinic.at(day, hh_mm))
                assert answer.status_code == 201, answer.text
        with psycopg.connect(source, autocommit=True) as owner:
            owner.execute("delete from public.appointments where id = %s", (before[0],))
            segment = owner.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
            assert segment is not None
            _wait_archived(owner, str(segment[0]))
        assert len(_appointment_ids(source)) == 4

        run_as_server_account(
            str(SCRIPTS / "recover"),
            str(scratch / "base"),
            str(archive),
            str(recovered.data_dir),
            target_time,
        )
        recovered.start()
        _wait_promoted(recovered)
        assert _appointment_ids(recovered.url("slotease")) == set(before)
    finally:
        recovered.stop("immediate")
        primary.stop("immediate")

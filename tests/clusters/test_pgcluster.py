"""The harness itself: a cluster starts, answers, survives a crash and a standby streams from it."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.clusters.pgcluster import Cluster


def test_a_cluster_restarts_after_a_crash_with_its_data(primary: Cluster) -> None:
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        conn.execute("create table kept (n int)")
        conn.execute("insert into kept values (1), (2)")
    primary.kill()
    assert not primary.running()
    primary.start()
    with psycopg.connect(primary.url()) as conn:
        row = conn.execute("select sum(n) from kept").fetchone()
    assert row == (3,)


def test_a_standby_replays_what_the_primary_writes(primary: Cluster, scratch: Path) -> None:
    standby = primary.base_backup(scratch, "standby", standby=True)
    standby.start()
    try:
        with psycopg.connect(primary.url(), autocommit=True) as conn:
            conn.execute("create table replicated as select 42 as answer")
        deadline = time.monotonic() + 30
        while True:
            with psycopg.connect(standby.url(), autocommit=True) as conn:
                in_recovery = conn.execute("select pg_is_in_recovery()").fetchone()
                exists = conn.execute("select to_regclass('replicated') is not null").fetchone()
                if exists == (True,):
                    answer = conn.execute("select answer from replicated").fetchone()
                    break
            assert time.monotonic() < deadline, "the standby never replayed the table"
            time.sleep(0.1)
        assert in_recovery == (True,)
        assert answer == (42,)
    finally:
        standby.stop("immediate")

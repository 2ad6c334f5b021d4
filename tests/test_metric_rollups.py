"""get_metric_stats() over toolsdb.metric_rollups: whole past days from their
rollups (toolsdb.metrics_build_rollups, run by maintain), the rest scanned.
The stated bound: count, min and max exact, avg to 1e-9 (relative), p50, p95
and p99 within 1% (relative) of percentile_disc's value; a window with no
rolled-up day, and a caller under row-level security, get the exact scan
(percentile_cont). Each way the rows can change (a late measurement, a
delete, a truncate, retention) leaves the figures exact."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from .conftest import Pg
from .test_migration_model import current_xid, rows_written_since

DAYS = 10
ROWS = 60_000

EXACT = """
select count(*), avg(metric_value), min(metric_value), max(metric_value),
    percentile_disc(0.5) within group (order by metric_value),
    percentile_disc(0.95) within group (order by metric_value),
    percentile_disc(0.99) within group (order by metric_value),
    percentile_cont(0.5) within group (order by metric_value),
    percentile_cont(0.95) within group (order by metric_value),
    percentile_cont(0.99) within group (order by metric_value)
from toolsdb.metrics
where metric_name = %s and created_at >= coalesce(%s::timestamptz, '-infinity')
    and created_at < coalesce(%s::timestamptz, 'infinity')
"""
STATS = "select count, avg, min, max, p50, p95, p99 from toolsdb.get_metric_stats(%s, %s::timestamptz, %s::timestamptz)"


@pytest.fixture
def conn(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    """The superuser on a database holding DAYS days of measurements of three
    metrics (negative, zero and positive values over six orders of
    magnitude), each day in its own partition."""
    with psycopg.connect(pg.conninfo(db), autocommit=True) as conn:
        conn.execute("select setseed(0.42)")
        conn.execute("select toolsdb.create_session('rollup-session')")
        # One row per past day, then metrics_create_partitions() gives each day its partition.
        conn.execute(
            "insert into toolsdb.metrics (metric_name, metric_value, created_at)"
            " select 'seed', 0, now() - make_interval(days => d) from generate_series(0, %s) as d",
            (DAYS,),
        )
        conn.execute("select toolsdb.metrics_create_partitions(0)")
        conn.execute(
            "insert into toolsdb.metrics (metric_name, metric_value, session_id, created_at)"
            " select 'm.' || (g %% 3), case when g %% 97 = 0 then 0 else (random() - 0.1) * exp(random() * 14) end,"
            " case when g %% 2 = 0 then 'rollup-session' end,"
            " now() - make_interval(days => %s) * (1 - g::float8 / %s)"
            " from generate_series(1, %s) as g",
            (DAYS, ROWS, ROWS),
        )
        yield conn


def check(conn: psycopg.Connection, name: str, since: datetime | None, until: datetime | None, exact: bool) -> None:
    got = conn.execute(STATS, (name, since, until)).fetchone()
    want = conn.execute(EXACT, (name, since, until)).fetchone()
    where = f"{name} [{since}, {until})"
    assert got[0] == want[0], where
    assert (got[2], got[3]) == (want[2], want[3]), where
    assert got[1] == pytest.approx(want[1], rel=1e-9), where
    if exact:  # the exact scan: percentile_cont itself
        assert list(got[4:]) == pytest.approx(list(want[7:]), rel=1e-12), where
    else:
        for estimate, disc in zip(got[4:], want[4:7], strict=True):
            assert abs(estimate - disc) <= 0.01 * abs(disc) + 1e-12, f"{where}: {estimate} for {disc}"


def windows(conn: psycopg.Connection) -> list[tuple[datetime | None, datetime | None]]:
    now = conn.execute("select now()").fetchone()[0]
    return [
        (None, None),
        (now - timedelta(days=7), None),
        (now - timedelta(days=8), now - timedelta(days=2)),
        (now - timedelta(days=3, hours=5), now),
    ]


def rollups(conn: psycopg.Connection) -> int:
    return conn.execute("select count(*) from toolsdb.metric_rollups").fetchone()[0]


def test_stats_from_rollups_keep_the_stated_bound(conn: psycopg.Connection) -> None:
    built = conn.execute("select toolsdb.metrics_build_rollups()").fetchone()[0]
    # Every closed day of the three metrics (and the seed rows' one metric).
    assert built == rollups(conn) and built >= 3 * (DAYS - 1)
    buckets = conn.execute("select max(cardinality(buckets)) from toolsdb.metric_rollups").fetchone()[0]
    assert 100 < buckets < 3000  # 1% buckets over six orders of magnitude, both signs
    for name in ("m.0", "m.1", "m.2"):
        for since, until in windows(conn):
            check(conn, name, since, until, exact=False)
    # The rollups were used: the percentiles are the values that stand for their buckets.
    p50, p95 = conn.execute("select p50, p95 from toolsdb.get_metric_stats('m.0')").fetchone()
    for estimate in (p50, p95):
        represents = "select toolsdb_private.metric_bucket_value(toolsdb_private.metric_bucket(%s))"
        assert conn.execute(represents, (estimate,)).fetchone()[0] == pytest.approx(estimate, rel=1e-12)
    assert conn.execute(STATS, ("never.measured", None, None)).fetchone() == (0, None, None, None, None, None, None)


def test_a_window_without_a_rolled_day_and_a_row_secured_caller_get_the_exact_scan(conn: psycopg.Connection) -> None:
    conn.execute("select toolsdb.metrics_build_rollups()")
    now = conn.execute("select now()").fetchone()[0]
    check(conn, "m.1", now - timedelta(hours=5), None, exact=True)  # today only: nothing rolled up
    # A window that ends before it starts holds nothing.
    empty = (0, None, None, None, None, None, None)
    assert conn.execute(STATS, ("m.1", now, now - timedelta(days=3))).fetchone() == empty
    with conn.transaction():
        conn.execute("set local role toolsdb_app")
        conn.execute("select set_config('toolsdb.session_id', 'rollup-session', true)")
        assert conn.execute("select row_security_active('toolsdb.metrics')").fetchone()[0]
        # The app sees its session's rows and the global ones: here every row but the seeds'.
        check(conn, "m.1", now - timedelta(days=7), None, exact=True)
        conn.execute("select set_config('toolsdb.session_id', 'another-session', true)")
        seen = conn.execute(STATS, ("m.1", None, None)).fetchone()[0]
    everyone = conn.execute(STATS, ("m.1", None, None)).fetchone()[0]
    assert 0 < seen < everyone, "another session sees only the global rows, not the rollups' total"


def test_late_rows_deletes_truncate_and_retention_leave_the_figures_exact(conn: psycopg.Connection) -> None:
    conn.execute("select toolsdb.metrics_build_rollups()")
    since = conn.execute("select now() - interval '8 days'").fetchone()[0]
    # A late measurement of a rolled-up day: that day is scanned again, the figures stay exact.
    conn.execute("select toolsdb.insert_metric('m.1', 1e9, null, '{}', now() - interval '4 days')")
    check(conn, "m.1", since, None, exact=False)
    assert conn.execute(STATS, ("m.1", since, None)).fetchone()[3] == 1e9
    assert conn.execute("select toolsdb.metrics_build_rollups()").fetchone()[0] > 0  # that day, built again
    check(conn, "m.1", since, None, exact=False)
    # A session's delete cascades to its metrics: the rollups of those days go.
    before = rollups(conn)
    conn.execute("delete from toolsdb.sessions where session_id = 'rollup-session'")
    assert rollups(conn) < before
    for name in ("m.0", "m.2"):
        check(conn, name, since, None, exact=False)
    conn.execute("select toolsdb.metrics_build_rollups()")
    check(conn, "m.0", since, None, exact=False)
    # Retention drops whole days, and their rollups.
    conn.execute("select toolsdb.metrics_apply_retention(interval '5 days')")
    oldest = conn.execute("select min(day) from toolsdb.metric_rollups").fetchone()[0]
    assert oldest >= conn.execute("select ((now() - interval '5 days') at time zone 'UTC')::date").fetchone()[0]
    check(conn, "m.2", None, None, exact=False)
    conn.execute("truncate toolsdb.metrics")
    assert rollups(conn) == 0
    assert conn.execute(STATS, ("m.2", None, None)).fetchone()[0] == 0


def test_building_again_writes_nothing(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    assert conn.execute("select toolsdb.metrics_build_rollups()").fetchone()[0] > 0
    since = current_xid(pg, db)
    assert conn.execute("select toolsdb.metrics_build_rollups()").fetchone()[0] == 0
    assert rows_written_since(pg, db, since) == ""


def test_a_measurement_committed_while_a_day_is_built_is_in_it_or_makes_it_stale(
    pg: Pg, db: str, conn: psycopg.Connection
) -> None:
    # A late measurement's transaction is open when the build starts: the build
    # waits for it (share lock on the day's partition), so the day's rollups
    # include it.
    with psycopg.connect(pg.conninfo(db)) as writer:
        writer.execute("select toolsdb.insert_metric('m.0', 777, null, '{}', now() - interval '3 days')")
        builder = psycopg.connect(pg.conninfo(db), autocommit=True)
        try:
            builder.execute("set lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                builder.execute("select toolsdb.metrics_build_rollups()")
        finally:
            builder.close()
        writer.commit()
    conn.execute("select toolsdb.metrics_build_rollups()")
    since = conn.execute("select now() - interval '8 days'").fetchone()[0]
    check(conn, "m.0", since, None, exact=False)


def test_the_buckets_are_in_value_order_and_within_one_percent() -> None:
    # The bound of the buckets themselves, over the whole range of doubles.
    gamma = 1.01 / 0.99
    values = [1e-300, 1e-9, 0.5, 1.0, 1.0202, 3.14, 1e6, 1e300, 1.7e308]
    for value in values:
        k = math.ceil(math.log(value) / math.log(gamma))
        estimate = 2 * gamma**k / (gamma + 1) if k < 35000 else math.exp(k * math.log(gamma) + math.log(0.99))
        assert abs(estimate - value) <= 0.01 * value * (1 + 1e-9)


def test_the_sql_buckets_agree_with_the_bound(conn: psycopg.Connection) -> None:
    values = "-1.7e308, -1e6, -1, -1e-300, 0, 1e-300, 1e-9, 0.5, 1, 3.14, 1e6, 1e300, 1.7e308"
    rows = conn.execute(
        "select v, b, toolsdb_private.metric_bucket_value(b)"
        f" from (select v, toolsdb_private.metric_bucket(v) as b from unnest(array[{values}]::float8[]) as v) as s"
        " order by v"
    ).fetchall()
    ids = [r[1] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for value, _, estimate in rows:
        assert abs(estimate - value) <= 0.01 * abs(value) * (1 + 1e-9), (value, estimate)

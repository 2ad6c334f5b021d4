"""Operations on a real server: the toolsdb_monitoring views see real lock
waits, long queries, open transactions, dead rows and statements; the churn
tables carry their storage settings; toolsdb.maintain() and the CLI's
maintain, monitor, health and stats commands report what they see, with one
line and exit 1 on bad input or an unhealthy database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from toolsdb import migrate as engine
from toolsdb.target import Target

from .conftest import Pg, run_cli

VIEWS = (
    "index_usage",
    "unused_indexes",
    "table_sizes",
    "vacuum_health",
    "oldest_transactions",
    "long_running_queries",
    "lock_waits",
    "slow_statements",
)


def wait_for(fetch: Callable[[], list], what: str, timeout: float = 20.0) -> list:
    """Poll ``fetch`` until it returns rows (the statistics are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not show up within {timeout:.0f} s")
        time.sleep(0.05)


@pytest.fixture
def su(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as connection:
        yield connection


@contextmanager
def in_thread(pg: Pg, db: str, statement: str) -> Iterator[int]:
    """Run ``statement`` on a new connection in a thread; yields its backend pid."""
    conn = psycopg.connect(pg.conninfo(db), autocommit=True)
    pid = conn.info.backend_pid
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:  # cancelled at the end
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield pid
    finally:
        with psycopg.connect(pg.conninfo(db), autocommit=True) as killer:
            killer.execute("select pg_cancel_backend(%s)", (pid,))
        thread.join(30)
        conn.close()


# -- the views ----------------------------------------------------------------------------
def test_every_monitoring_view_is_commented_invoker_and_readable_by_readonly(su: psycopg.Connection) -> None:
    views = su.execute(
        """
        select c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''),
               coalesce('security_invoker=true' = any(c.reloptions), false),
               (select count(*) from pg_attribute a where a.attrelid = c.oid and a.attnum > 0
                  and coalesce(col_description(c.oid, a.attnum), '') = '')
        from pg_class c
        where c.relnamespace = 'toolsdb_monitoring'::regnamespace and c.relkind = 'v'
          and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass
                          and d.objid = c.oid and d.deptype = 'e')
        order by 1
        """
    ).fetchall()
    assert sorted(v[0] for v in views) == sorted(VIEWS)
    for name, comment, invoker, uncommented in views:
        assert comment and invoker and uncommented == 0, name
    su.execute("set role toolsdb_readonly")
    for view in VIEWS:
        su.execute(f"select * from toolsdb_monitoring.{view} limit 1").fetchall()
    su.execute("reset role")


def test_pg_stat_statements_lives_in_the_monitoring_schema_not_public(su: psycopg.Connection) -> None:
    schema = su.execute(
        "select extnamespace::regnamespace::text from pg_extension where extname = 'pg_stat_statements'"
    ).fetchone()
    assert schema == ("toolsdb_monitoring",), "the test servers preload pg_stat_statements"


def test_lock_waits_names_the_waiting_and_the_blocking_session(pg: Pg, db: str, su: psycopg.Connection) -> None:
    su.execute("create table lock_target (id int primary key)")
    su.execute("insert into lock_target values (1)")
    with psycopg.connect(pg.conninfo(db)) as holder:
        holder.execute("update lock_target set id = 1 where id = 1")  # holds the row lock, open transaction
        with in_thread(pg, db, "update lock_target set id = 1 where id = 1") as waiter:
            rows = wait_for(
                lambda: su.execute(
                    "select waiting_pid, blocking_pid, blocking_state, waiting_query from toolsdb_monitoring.lock_waits"
                ).fetchall(),
                "the lock wait",
            )
            assert rows == [(waiter, holder.info.backend_pid, "idle in transaction", rows[0][3])]
            assert "update lock_target" in rows[0][3]
            oldest = su.execute("select pid, state from toolsdb_monitoring.oldest_transactions").fetchall()
            assert (holder.info.backend_pid, "idle in transaction") in oldest
        holder.rollback()


def test_long_running_queries_follow_the_session_threshold(pg: Pg, db: str, su: psycopg.Connection) -> None:
    with in_thread(pg, db, "select pg_sleep(60)") as sleeper:
        su.execute("set toolsdb.long_query_threshold = '0'")
        rows = wait_for(
            lambda: su.execute("select pid, query from toolsdb_monitoring.long_running_queries").fetchall(),
            "the sleeping query",
        )
        assert rows == [(sleeper, "select pg_sleep(60)")]
        su.execute("set toolsdb.long_query_threshold = '1 hour'")
        assert su.execute("select pid from toolsdb_monitoring.long_running_queries").fetchall() == []


def test_vacuum_health_counts_dead_rows_against_each_tables_own_trigger(su: psycopg.Connection) -> None:
    su.execute("create table churn_probe (id int primary key)")
    su.execute("alter table churn_probe set (autovacuum_enabled = false)")
    su.execute("insert into churn_probe select generate_series(1, 500)")
    su.execute("delete from churn_probe where id <= 400")
    su.execute("select pg_stat_force_next_flush()")
    rows = wait_for(
        lambda: su.execute(
            "select dead_tuples, autovacuum_trigger, autovacuum_due from toolsdb_monitoring.vacuum_health"
            " where table_name = 'churn_probe' and dead_tuples >= 400"
        ).fetchall(),
        "the dead rows",
    )
    assert rows == [(400, 50, True)]  # the server's default: 50 + 0.2 x reltuples (0 before any analyze)
    events = su.execute(
        "select autovacuum_trigger from toolsdb_monitoring.vacuum_health where table_name = 'events'"
    ).fetchone()
    assert events == (1000,), "toolsdb.events' own threshold (repeatable/60_maintenance.sql)"


def test_table_sizes_sum_a_partitioned_table_over_its_partitions(su: psycopg.Connection) -> None:
    parent, partitions = su.execute(
        """
        select (select total_bytes from toolsdb_monitoring.table_sizes
                 where schema_name = 'toolsdb' and table_name = 'audit_logs'),
               (select sum(total_bytes) from toolsdb_monitoring.table_sizes where partition_of = 'toolsdb.audit_logs')
        """
    ).fetchone()
    assert parent == partitions > 0


def test_unused_indexes_leave_out_constraints_and_flag_foreign_keys(su: psycopg.Connection) -> None:
    su.execute("create table unused_parent (id int primary key)")
    su.execute("create table unused_child (id int primary key, parent_id int references unused_parent, note text)")
    su.execute("create index unused_child_parent_idx on unused_child (parent_id)")
    su.execute("create index unused_child_note_idx on unused_child (note)")
    rows = su.execute(
        "select index_name, supports_foreign_key from toolsdb_monitoring.unused_indexes"
        " where table_name like 'unused_%' order by 1"
    ).fetchall()
    assert rows == [("unused_child_note_idx", False), ("unused_child_parent_idx", True)]


def test_slow_statements_records_a_statement_with_its_time(su: psycopg.Connection) -> None:
    su.execute("select pg_sleep(0.05)")
    rows = su.execute(
        "select calls, mean_ms from toolsdb_monitoring.slow_statements where query like 'select pg_sleep(%'"
    ).fetchall()
    assert len(rows) == 1 and rows[0][0] >= 1 and rows[0][1] >= 50.0


def test_the_churn_tables_carry_their_storage_settings(su: psycopg.Connection) -> None:
    options = dict(
        su.execute(
            "select relname, reloptions from pg_class where oid in ("
            "'toolsdb.events'::regclass, 'toolsdb.notifications'::regclass, 'toolsdb.sessions'::regclass,"
            " 'toolsdb.vision_cache'::regclass, 'toolsdb.vision_cache_hits'::regclass)"
        ).fetchall()
    )
    assert "autovacuum_vacuum_scale_factor=0.01" in options["events"]
    assert "autovacuum_vacuum_scale_factor=0.01" in options["notifications"]
    assert "autovacuum_vacuum_threshold=50" in options["sessions"]
    assert "autovacuum_vacuum_scale_factor=0" in options["vision_cache_hits"]
    # fillfactor only where updates can be HOT (no indexed column changes): an
    # event's claim and the cache's hit counters.
    fillfactors = {t: [o for o in opts if o.startswith("fillfactor=")] for t, opts in options.items()}
    assert fillfactors == {
        "events": ["fillfactor=50"],
        "notifications": [],
        "sessions": [],
        "vision_cache": ["fillfactor=80"],
        "vision_cache_hits": [],
    }


# -- maintain ------------------------------------------------------------------------------
def test_maintain_reports_every_step_and_a_second_run_changes_nothing(su: psycopg.Connection) -> None:
    su.execute(
        "insert into toolsdb.sessions (session_id) values ('maint-1');"
        "insert into toolsdb.events (session_id, event_type, payload, processed_at)"
        " values ('maint-1', 'old', '{}', now() - interval '40 days'), ('maint-1', 'recent', '{}', now());"
        "insert into toolsdb.vision_cache (image_hash, model_version, confidence_score, created_at, expires_at)"
        " values (repeat('a', 64), 'm1', 0.5, now() - interval '2 minutes', now() - interval '1 minute')"
    )
    first = su.execute("select step, target, affected from toolsdb.maintain(3, 10)").fetchall()
    assert [(s, t) for s, t, _ in first] == [
        ("partitions", "toolsdb.audit_logs"),
        ("partitions", "toolsdb.metrics"),
        ("retention", "toolsdb.audit_logs"),
        ("retention", "toolsdb.metrics"),
        ("retention", "toolsdb.events"),
        ("seal", "toolsdb.audit_logs"),
        ("rollups", "toolsdb.metric_rollups"),
        ("rollups", "toolsdb.execution_rollups"),
        ("cache", "toolsdb.vision_cache_hits"),
        ("cache", "toolsdb.vision_cache"),
    ]
    affected = {(s, t): n for s, t, n in first}
    assert affected[("partitions", "toolsdb.metrics")] == 3, "the template made 7 days ahead; 10 asks for 3 more"
    assert affected[("retention", "toolsdb.events")] == 1
    assert affected[("cache", "toolsdb.vision_cache")] == 1
    second = su.execute("select step, affected from toolsdb.maintain(3, 10)").fetchall()
    # The one thing a run leaves for the next: its own audit_retention entry, sealed next time.
    assert [(s, n) for s, n in second if n] == [("seal", 1)]
    assert su.execute("select event_type from toolsdb.events").fetchall() == [("recent",)]


def test_maintain_keeps_events_under_a_longer_configured_retention(su: psycopg.Connection) -> None:
    su.execute(
        "insert into toolsdb.sessions (session_id) values ('maint-2');"
        "insert into toolsdb.events (session_id, event_type, payload, processed_at)"
        " values ('maint-2', 'old', '{}', now() - interval '40 days')"
    )
    su.execute("select toolsdb.config_set('events.retention', '\"60 days\"')")
    steps = dict(su.execute("select target, affected from toolsdb.maintain() where step = 'retention'").fetchall())
    assert steps["toolsdb.events"] == 0


def test_the_citus_steps_settle_dangling_references_as_the_dropped_keys_would(su: psycopg.Connection) -> None:
    """maintain's Citus steps (toolsdb_private.settle_dangling_references(), docs/citus.md)
    on one node, where the keys hold: they find nothing to settle. With the key dropped
    (as Citus drops it; in a transaction rolled back), an error naming a deleted task has
    that link nulled, once; an action other than cascade or set null is 22023."""
    assert su.execute("select toolsdb_private.remove_unreferenced_routes()").fetchone()[0] == 0
    assert su.execute("select toolsdb_private.null_unreferenced_error_links()").fetchone()[0] == 0
    with su.transaction(force_rollback=True):
        su.execute("alter table toolsdb.error_logs drop constraint error_logs_task_id_fkey")
        error_id = su.execute(
            "insert into toolsdb.error_logs (error_type, error_message, task_id)"
            " values ('system', 'names a deleted task', gen_random_uuid()) returning error_id"
        ).fetchone()[0]
        assert su.execute("select toolsdb_private.null_unreferenced_error_links()").fetchone()[0] == 1
        link = su.execute("select task_id from toolsdb.error_logs where error_id = %s", (error_id,)).fetchone()[0]
        assert link is None, f"The error's link to the deleted task should be null now, not {link}."
        assert su.execute("select toolsdb_private.null_unreferenced_error_links()").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="cascade or set null, not 'restrict'"):
        su.execute(
            "select toolsdb_private.settle_dangling_references('error_logs', 'task_id', 'tasks', 'task_id', 'restrict')"
        )


def test_maintain_refuses_to_run_twice_at_once(pg: Pg, db: str, su: psycopg.Connection) -> None:
    with psycopg.connect(pg.conninfo(db)) as first:
        first.execute("select * from toolsdb.maintain()").fetchall()  # transaction stays open
        with pytest.raises(psycopg.errors.LockNotAvailable, match="already running"):
            su.execute("select * from toolsdb.maintain()")
        first.rollback()


def test_maintain_cli_prints_a_table_or_json(pg: Pg, db: str) -> None:
    table = run_cli("maintain", "--database", pg.url(db))
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["step", "|", "target", "|", "affected", "|", "detail"]
    assert "(10 rows)" in table.stdout
    as_json = run_cli("maintain", "--json", "--metrics-days-ahead", "9", "--database", pg.url(db))
    steps = json.loads(as_json.stdout)
    assert {s["step"] for s in steps} == {"partitions", "retention", "seal", "rollups", "cache"}
    assert steps[1] == {
        "step": "partitions",
        "target": "toolsdb.metrics",
        "affected": 2,
        "detail": "2 daily partition(s) created; today and 9 day(s) ahead exist",
    }
    bad = run_cli("maintain", "--audit-months-ahead", "-1", "--database", pg.url(db))
    assert bad.returncode == 2 and "audit-months-ahead" in bad.stderr and "Traceback" not in bad.stderr


# -- monitor, health, stats -----------------------------------------------------------------
def test_monitor_prints_every_view_and_only_those_asked_for(pg: Pg, db: str) -> None:
    everything = run_cli("monitor", "--limit", "2", "--database", pg.url(db))
    assert everything.returncode == 0, everything.stderr
    assert [line for line in everything.stdout.splitlines() if line.startswith("== ")] == [
        f"== toolsdb_monitoring.{v}"
        for v in (
            "long_running_queries",
            "lock_waits",
            "oldest_transactions",
            "vacuum_health",
            "table_sizes",
            "index_usage",
            "unused_indexes",
            "slow_statements",
        )
    ]
    one = run_cli("monitor", "table_sizes", "--json", "--limit", "3", "--database", pg.url(db))
    data = json.loads(one.stdout)
    assert list(data) == ["table_sizes"] and len(data["table_sizes"]) == 3
    assert set(data["table_sizes"][0]) >= {"schema_name", "table_name", "total_bytes"}
    bad = run_cli("monitor", "no_such_view", "--database", pg.url(db))
    assert bad.returncode == 2 and "no_such_view" in bad.stderr and "Traceback" not in bad.stderr


def test_health_passes_on_a_migrated_database(pg: Pg, db: str) -> None:
    result = run_cli("health", "--json", "--database", pg.url(db))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert {"connection", "server_version", "connections", "migrations", "oldest_transaction"} <= set(checks)
    assert checks["server_version"]["value"].startswith(pg.major + ".")
    assert checks["migrations"]["value"] == 0
    assert checks["connection"]["value"] > 0
    text = run_cli("health", "--database", pg.url(db))
    assert text.returncode == 0 and text.stdout.rstrip().endswith("healthy")


def test_health_fails_with_exit_1_on_pending_migrations(pg: Pg, db: str) -> None:
    newest = engine.rollback(Target(pg.conninfo(db), "test"), force=True)
    result = run_cli("health", "--json", "--database", pg.url(db))
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["migrations"]["status"] == "fail"
    assert newest[0] in checks["migrations"]["detail"]


def test_health_of_an_unreachable_server_is_a_failed_check_not_a_traceback(pg: Pg) -> None:
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    result = run_cli("health", "--json", "--database", url)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert report["checks"][0]["name"] == "connection" and report["checks"][0]["status"] == "fail"
    assert "Traceback" not in result.stderr
    text = run_cli("health", "--database", url)
    assert text.returncode == 1 and text.stdout.rstrip().endswith("UNHEALTHY")


def test_health_refuses_a_bad_replica_url_in_one_line(pg: Pg, db: str) -> None:
    result = run_cli("health", "--replica", "mysql://u:secret@h/d", "--database", pg.url(db))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--replica is not a PostgreSQL URL" in lines[0] and "secret" not in lines[0], lines


def test_stats_counts_transactions_and_statements(pg: Pg, db: str, su: psycopg.Connection) -> None:
    su.execute("select pg_sleep(0.02)")
    result = run_cli("stats", "--json", "--slow-ms", "10", "--database", pg.url(db))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["committed"] > 0 and 0 < data["success_rate"] <= 1
    statements = data["statements"]
    assert statements["calls"] > 0 and statements["slow_statements"] >= 1
    assert any(s["query"].startswith("select pg_sleep(") for s in statements["slowest"])
    text = run_cli("stats", "--limit", "2", "--database", pg.url(db))
    assert text.returncode == 0 and "success rate" in text.stdout and "(2 rows)" in text.stdout


def test_stats_refuses_a_bad_slow_query_threshold_in_one_line(pg: Pg, db: str) -> None:
    result = run_cli("stats", "--database", pg.url(db), env={"DB_SLOW_QUERY_THRESHOLD": "fast"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: DB_SLOW_QUERY_THRESHOLD must be an integer from 0 to 2147483647 (milliseconds), got 'fast'"
    ]
    off = run_cli("stats", "--json", "--database", pg.url(db), env={"DB_SLOW_QUERY_THRESHOLD": "0"})
    assert off.returncode == 0, off.stderr
    data = json.loads(off.stdout)
    assert data["slow_threshold_ms"] is None and data["statements"]["slow_calls"] is None

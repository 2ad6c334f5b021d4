"""``toolsdb maintain``, ``monitor``, ``health`` and ``stats``: thin readers
of SQL (toolsdb.maintain(), the toolsdb_monitoring views, pg_stat_database,
pg_stat_statements, pg_stat_replication). docs/operations.md explains them.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import click
import psycopg

from . import migrate as engine
from .clicommon import Settings, common_options, print_table
from .errors import ToolsdbError
from .target import Target, connect, replica_url

# toolsdb_monitoring views in the order `toolsdb monitor` prints them.
MONITOR_VIEWS = (
    "long_running_queries",
    "lock_waits",
    "oldest_transactions",
    "vacuum_health",
    "table_sizes",
    "index_usage",
    "unused_indexes",
    "slow_statements",
)
OLDEST_TRANSACTION_WARN_S = 3600
CONNECTIONS_WARN, CONNECTIONS_FAIL = 0.80, 0.95
REPLICA_LAG_WARN_S = 30.0
MIN_SERVER_VERSION = 150000


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default)


def _exit_if(condition: bool) -> None:
    if condition:
        raise click.exceptions.Exit(1)


# -- maintain ---------------------------------------------------------------------------
def maintain(target: Target, audit_months_ahead: int = 3, metrics_days_ahead: int = 7) -> list[dict[str, Any]]:
    """Run toolsdb.maintain() in one transaction; one dict per step."""
    with target.connect() as conn:
        cur = conn.execute(
            "select step, target, affected, detail from toolsdb.maintain(%s, %s)",
            (audit_months_ahead, metrics_days_ahead),
        )
        return [dict(zip(("step", "target", "affected", "detail"), row, strict=True)) for row in cur]


@click.command("maintain")
@click.option(
    "--audit-months-ahead",
    type=click.IntRange(0, 120),
    default=3,
    show_default=True,
    help="Monthly audit log partitions to keep ready beyond this month.",
)
@click.option(
    "--metrics-days-ahead",
    type=click.IntRange(0, 365),
    default=7,
    show_default=True,
    help="Daily metrics partitions to keep ready beyond today.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@common_options
def maintain_command(settings: Settings, audit_months_ahead: int, metrics_days_ahead: int, as_json: bool) -> None:
    """Create partitions ahead, apply retention, seal the audit log, purge caches.

    One transaction through the SQL function toolsdb.maintain(), which a
    scheduler can call directly (pg_cron: select * from toolsdb.maintain()).
    Safe to run at any time and as often as wanted; prints what it did.
    """
    steps = maintain(settings.target(), audit_months_ahead, metrics_days_ahead)
    if as_json:
        click.echo(dump_json(steps))
        return
    print_table(["step", "target", "affected", "detail"], [tuple(s.values()) for s in steps])


# -- monitor ----------------------------------------------------------------------------
def monitor(target: Target, views: Sequence[str], limit: int) -> dict[str, tuple[list[str], list[tuple]]]:
    """Rows of the chosen toolsdb_monitoring views (at most ``limit`` each)."""
    result = {}
    with target.connect(autocommit=True) as conn:
        if conn.execute("select to_regnamespace('toolsdb_monitoring')").fetchone()[0] is None:
            raise ToolsdbError("this database has no toolsdb_monitoring schema: run `toolsdb migrate`")
        for view in views:
            cur = conn.execute(
                psycopg.sql.SQL("select * from toolsdb_monitoring.{} limit %s").format(psycopg.sql.Identifier(view)),
                (limit,),
            )
            result[view] = ([d.name for d in cur.description], cur.fetchall())
    return result


@click.command("monitor")
@click.argument("views", nargs=-1, type=click.Choice(MONITOR_VIEWS))
@click.option("--limit", type=click.IntRange(1, 10000), default=10, show_default=True, help="Rows per view.")
@click.option("--json", "as_json", is_flag=True, help="Print the views as JSON.")
@common_options
def monitor_command(settings: Settings, views: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Print the toolsdb_monitoring views (all, or the VIEWS named).

    Long-running queries, lock waits, the oldest transactions, dead tuples and
    autovacuum lag, table sizes, index usage, unused indexes, slow statements.
    """
    data = monitor(settings.target(), views or MONITOR_VIEWS, limit)
    if as_json:
        click.echo(
            dump_json({v: [dict(zip(cols, row, strict=True)) for row in rows] for v, (cols, rows) in data.items()})
        )
        return
    for index, (view, (columns, rows)) in enumerate(data.items()):
        if index:
            click.echo()
        click.echo(f"== toolsdb_monitoring.{view}")
        print_table(columns, [tuple(_short(v) for v in row) for row in rows])


def _short(value: Any, width: int = 80) -> Any:
    if isinstance(value, str):
        value = " ".join(value.split())
        return value if len(value) <= width else value[: width - 1] + "…"
    return value


# -- health -----------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    status: str  # ok, warn or fail
    value: Any
    detail: str


def health(target: Target, replica: str | None = None) -> list[Check]:
    """Every check; never raises for an unreachable server (that is a failed check)."""
    checks: list[Check] = []
    started = time.perf_counter()
    try:
        conn = target.connect(autocommit=True)
    except ToolsdbError as exc:
        return [Check("connection", "fail", None, str(exc))]
    with conn:
        connect_ms = (time.perf_counter() - started) * 1000
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            conn.execute("select 1").fetchone()
            samples.append((time.perf_counter() - t0) * 1000)
        latency = statistics.median(samples)
        checks.append(
            Check(
                "connection", "ok", round(latency, 3), f"connected in {connect_ms:.1f} ms; select 1 in {latency:.3f} ms"
            )
        )
        version, version_text, in_recovery = conn.execute(
            "select current_setting('server_version_num')::int, current_setting('server_version'), pg_is_in_recovery()"
        ).fetchone()
        checks.append(
            Check(
                "server_version",
                "ok" if version >= MIN_SERVER_VERSION else "fail",
                version_text,
                f"PostgreSQL {version_text}{' (standby)' if in_recovery else ''}"
                + ("" if version >= MIN_SERVER_VERSION else "; toolsdb needs 15 or newer"),
            )
        )
        checks.append(_connections(conn))
        checks.append(_migrations(target))
        checks.append(_oldest_transaction(conn))
        checks.extend(_replication(conn, in_recovery, replica_url(replica)))
    return checks


def _connections(conn: psycopg.Connection) -> Check:
    used, limit, active, idle_in_tx = conn.execute(
        """
        select count(*), current_setting('max_connections')::int,
               count(*) filter (where state = 'active'),
               count(*) filter (where state like 'idle in transaction%%')
        from pg_stat_activity where backend_type = 'client backend'
        """
    ).fetchone()
    share = used / limit
    status = "fail" if share >= CONNECTIONS_FAIL else "warn" if share >= CONNECTIONS_WARN else "ok"
    return Check(
        "connections",
        status,
        used,
        f"{used} of max_connections {limit} in use ({share:.0%}): {active} active, {idle_in_tx} idle in transaction",
    )


def _migrations(target: Target) -> Check:
    try:
        states = engine.status(target)
    except (ToolsdbError, psycopg.Error) as exc:
        return Check("migrations", "fail", None, f"cannot read the migration state: {exc}")
    pending = [s.id for s in states if s.applied_at is None]
    if pending:
        return Check(
            "migrations", "fail", len(pending), f"{len(pending)} pending ({', '.join(pending)}): run `toolsdb migrate`"
        )
    return Check("migrations", "ok", 0, f"all {len(states)} applied")


def _oldest_transaction(conn: psycopg.Connection) -> Check:
    row = conn.execute(
        """
        select pid, extract(epoch from now() - xact_start)::float8, state from pg_stat_activity
        where xact_start is not null and pid <> pg_backend_pid() and backend_type = 'client backend'
        order by xact_start limit 1
        """
    ).fetchone()
    if row is None:
        return Check("oldest_transaction", "ok", 0, "no other open transaction")
    pid, age, state = row
    status = "warn" if age >= OLDEST_TRANSACTION_WARN_S else "ok"
    return Check("oldest_transaction", status, round(age, 1), f"pid {pid} ({state}) open for {age:.0f} s")


def _replication(conn: psycopg.Connection, in_recovery: bool, replica: tuple[str, str] | None) -> list[Check]:
    from . import replica as replication

    checks = []
    if in_recovery:
        lag = replication.standby_lag(conn)
        checks.append(_lag_check("replica_lag", lag))
        return checks
    standbys = replication.replication_status(conn)
    for standby in standbys:
        seconds, behind = standby.get("replay_lag"), standby.get("bytes_behind")
        status = "ok" if standby.get("state") == "streaming" else "warn"
        if seconds is not None and seconds >= REPLICA_LAG_WARN_S:
            status = "warn"
        checks.append(
            Check(
                f"standby {standby.get('application_name') or '?'}",
                status,
                behind,
                f"{standby.get('state')}; {behind} bytes behind"
                + (f", replay lag {seconds:.3f} s" if seconds is not None else ", no lag sample (idle primary)"),
            )
        )
    if not standbys and replica is None:
        checks.append(Check("replication", "ok", None, "no standby connected and none configured"))
    if replica is not None:
        url, source = replica
        try:
            with connect(url, autocommit=True) as replica_conn:
                checks.append(_lag_check("replica_lag", replication.standby_lag(replica_conn)))
        except ToolsdbError as exc:
            checks.append(Check("replica_lag", "fail", None, f"{source}: {exc}"))
    return checks


def _lag_check(name: str, lag: dict[str, Any]) -> Check:
    if not lag.get("in_recovery"):
        return Check(name, "fail", None, "the replica is not in recovery (not a standby, or promoted)")
    seconds, pending = lag.get("lag_seconds"), lag.get("replay_bytes_pending")
    status = "warn" if seconds is not None and seconds >= REPLICA_LAG_WARN_S else "ok"
    if lag.get("receiver_status") != "streaming":
        status = "fail"
    detail = (
        f"WAL receiver {lag.get('receiver_status') or 'not running'}; {pending} bytes received but not "
        f"replayed; lag {seconds if seconds is not None else '?'} s"
    )
    return Check(name, status, seconds, detail)


@click.command("health")
@click.option("--replica", metavar="URL", help="A standby to check too (default: $DATABASE_REPLICA_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@common_options
def health_command(settings: Settings, replica: str | None, as_json: bool) -> None:
    """Check the database: connection and latency, version, connections in use,
    pending migrations, the oldest transaction, and standbys' lag.

    Exits 1 when any check fails (warnings do not).
    """
    target = settings.target()
    checks = health(target, replica)
    healthy = all(c.status != "fail" for c in checks)
    if as_json:
        click.echo(
            dump_json(
                {
                    "healthy": healthy,
                    "checked_at": datetime.now(timezone.utc),
                    "database": target.describe(),
                    "checks": [asdict(c) for c in checks],
                }
            )
        )
    else:
        click.echo(f"database: {target.describe()}")
        print_table(["check", "status", "detail"], [(c.name, c.status, c.detail) for c in checks])
        click.echo("healthy" if healthy else "UNHEALTHY")
    _exit_if(not healthy)


# -- stats ------------------------------------------------------------------------------
def slow_threshold_ms() -> float | None:
    """DB_SLOW_QUERY_THRESHOLD (milliseconds; default 1000), read as the pool reads it; None when 0 (off)."""
    from .pool import PoolSettings

    value = PoolSettings.from_env(
        {"DB_SLOW_QUERY_THRESHOLD": os.environ.get("DB_SLOW_QUERY_THRESHOLD", "")}
    ).slow_query_ms
    return float(value) or None


def stats(target: Target, slow_ms: float | None, limit: int) -> dict[str, Any]:
    """Transaction counts of the database and, with pg_stat_statements, statement figures."""
    with target.connect(autocommit=True) as conn:
        commits, rollbacks, deadlocks, reset = conn.execute(
            """
            select xact_commit, xact_rollback, deadlocks, stats_reset
            from pg_stat_database where datname = current_database()
            """
        ).fetchone()
        result: dict[str, Any] = {
            "since": reset,
            "transactions": commits + rollbacks,
            "committed": commits,
            "rolled_back": rollbacks,
            "success_rate": round(commits / (commits + rollbacks), 4) if commits + rollbacks else None,
            "deadlocks": deadlocks,
            "slow_threshold_ms": slow_ms,
            "statements": None,
        }
        installed, migrated = conn.execute(
            "select exists (select from pg_extension where extname = 'pg_stat_statements'),"
            " to_regclass('toolsdb_monitoring.slow_statements') is not null"
        ).fetchone()
        if not installed:
            result["note"] = "pg_stat_statements is not installed: no per-statement figures"
            return result
        if not migrated:
            result["note"] = "no toolsdb_monitoring.slow_statements view: run `toolsdb migrate`"
            return result
        # The view holds this database's statements (repeatable/85_monitoring_views.sql).
        try:
            with conn.transaction():
                totals = conn.execute(
                    """
                    select coalesce(sum(calls), 0)::bigint, count(*),
                           coalesce(sum(total_ms) / nullif(sum(calls), 0), 0)::float8,
                           sum(calls) filter (where mean_ms >= %(slow)s)::bigint,
                           count(*) filter (where mean_ms >= %(slow)s)
                    from toolsdb_monitoring.slow_statements
                    """,
                    {"slow": slow_ms},
                ).fetchone()
                top = conn.execute(
                    """
                    select calls, round(mean_ms::numeric, 3)::float8, round(max_ms::numeric, 3)::float8,
                           round(total_ms::numeric, 1)::float8, total_rows, left(query, 300)
                    from toolsdb_monitoring.slow_statements
                    order by mean_ms desc limit %s
                    """,
                    (limit,),
                ).fetchall()
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:  # installed, not preloaded
            result["note"] = f"pg_stat_statements unusable: {exc.diag.message_primary}"
            return result
        calls, distinct, avg_ms, slow_calls, slow_statements = totals
        result["statements"] = {
            "calls": calls,
            "distinct": distinct,
            "avg_ms": round(avg_ms, 3),
            "slow_calls": (slow_calls or 0) if slow_ms else None,
            "slow_statements": slow_statements if slow_ms else None,
            "slowest": [
                dict(zip(("calls", "mean_ms", "max_ms", "total_ms", "rows", "query"), row, strict=True)) for row in top
            ],
        }
    return result


@click.command("stats")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Slowest statements shown.")
@click.option(
    "--slow-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="Slow-query threshold in ms (default: $DB_SLOW_QUERY_THRESHOLD, else 1000).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@common_options
def stats_command(settings: Settings, limit: int, slow_ms: float | None, as_json: bool) -> None:
    """Query counts, success rate, average and slow statements of the database
    (pg_stat_database; pg_stat_statements where installed)."""
    data = stats(settings.target(), slow_ms if slow_ms is not None else slow_threshold_ms(), limit)
    if as_json:
        click.echo(dump_json(data))
        return
    since = data["since"].isoformat(timespec="seconds") if data["since"] else "the database's creation"
    rate = f"{data['success_rate']:.2%}" if data["success_rate"] is not None else "n/a"
    click.echo(
        f"since {since}: {data['transactions']} transactions, {data['committed']} committed, "
        f"{data['rolled_back']} rolled back (success rate {rate}), {data['deadlocks']} deadlocks"
    )
    statements = data["statements"]
    if statements is None:
        click.echo(data["note"])
        return
    slow = (
        f"{statements['slow_calls']} calls of {statements['slow_statements']} statements average >= "
        f"{data['slow_threshold_ms']:g} ms (slow)"
        if data["slow_threshold_ms"]
        else "slow-query threshold off (DB_SLOW_QUERY_THRESHOLD=0)"
    )
    click.echo(
        f"statements: {statements['calls']} calls of {statements['distinct']} distinct statements, "
        f"average {statements['avg_ms']:.3f} ms; {slow}"
    )
    print_table(
        ["calls", "mean ms", "max ms", "total ms", "rows", "query"],
        [(*tuple(s.values())[:5], _short(s["query"])) for s in statements["slowest"]],
    )

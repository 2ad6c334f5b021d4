"""Churn tables benchmark: `python -m tests.bench_churn` (`--quick`: a ~1 minute smoke run).

What the storage settings of the churn tables in schema/ (fillfactor and
per-table autovacuum on events, notifications, sessions, vision_cache and
vision_cache_hits) do to the size and the dead rows of those tables under
the churn they are for.

One throwaway embedded server (tests.bench does the same) started with
autovacuum_naptime 1s (set by ALTER SYSTEM + pg_reload_conf(); every other
setting is the server's default, autovacuum's cost limits included). Two
databases, cloned from one migrated database, so identical:

* defaults (the baseline): the reloptions of the churn tables RESET, so they
  follow the server's defaults (fillfactor 100, vacuum at 50 + 20% of the
  table dead or 1000 + 20% inserted, autovacuum_vacuum_cost_delay 2ms, ...);
* toolsdb: the settings the migrations give them, printed in the header.

Both get the same retained backlog, loaded set-based as the superuser, then
vacuum (analyze); the figures are the fields of FULL (QUICK with --quick):
backlog_events processed events (200,000) spread over their 30-day retention
(events.retention), so the live set is large; sessions sessions (2,000; active
of them active), backlog_notifications sent notifications (50,000; they are
never purged) and cache_keys vision cache entries (20,000,
vision_cache_store()). Then the same fixed workload (rounds rounds: a fixed
number of operations, not a fixed time) runs on both at once, one thread per
database, paced by one schedule (round r starts round_seconds * r after the
start, or at once when the arm is late), so machine noise hits both alike.
Each round:

* events_per_round hook events through toolsdb.hook_ingest() (the realistic
  PreToolUse payload of tests.bench_queue), in statements of `active` events,
  each for a different active session (so every session update is a new
  transaction's, as with `toolsdb hook`); then claimed in batches of
  EVENT_BATCH with get_unprocessed_events() (each claim committed) and acked
  with mark_events_processed() until none is left. Processed events stay:
  they are within their retention.
* notifications_per_round insert_notification() calls, claimed in batches of
  NOTIFY_BATCH with claim_notifications() and acked with
  mark_notifications_sent(); the first of every FAIL_EVERY-th batch fails
  once (mark_notification_failed() with no backoff) and is delivered on its
  next claim.
* gets_per_round vision_cache_get() calls on backlog keys (skewed: key =
  1 + floor(cache_keys * random()^3)), stores_per_round vision_cache_store()
  calls (half new images, half replacements), and every flush_every rounds
  vision_cache_flush_hits().

Every SAMPLE_SECONDS a sampler reads, for both databases, pg_table_size +
pg_indexes_size, n_dead_tup, autovacuum_count and the update counts
(n_tup_upd, n_tup_hot_upd) of each churn table from pg_stat_user_tables, and
the size of the two claim indexes. Reported per table and database: the size
at the start (after the backlog) and its growth (end minus start), the peak
and mean of n_dead_tup, how often autovacuum ran and the share of HOT
updates; and defaults / toolsdb ratios, the defaults database being the
same-run baseline. For context: p50 of the claim calls in each database. No
assertion: the closing lines say, per table, whether the settings made a
measurable difference (growth, or both peak and mean dead rows, at least
MEASURABLE times smaller), and print MISSED where they did not. A
fillfactor below 100 makes the backlog itself larger (the "start" column):
the end ratio is what the table costs in all; the HOT share says whether the
reserved room is used at all (an update that changes an indexed column, or a
column of a partial index's predicate, is never HOT).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from toolsdb import migrate as engine
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

from .bench import timed
from .bench_agent_tools import HASH, MODEL, STORE
from .bench_queue import HOOK_PAYLOAD, JOB_JSON, median, print_targets, progress, verdict
from .bench_work import percentile


@dataclass(frozen=True)
class Scale:
    backlog_events: int
    sessions: int
    active: int
    backlog_notifications: int
    cache_keys: int
    rounds: int
    round_seconds: float
    events_per_round: int
    notifications_per_round: int
    gets_per_round: int
    stores_per_round: int
    flush_every: int


FULL = Scale(
    backlog_events=200_000,
    sessions=2_000,
    active=200,
    backlog_notifications=50_000,
    cache_keys=20_000,
    rounds=150,
    round_seconds=1.0,
    events_per_round=600,
    notifications_per_round=100,
    gets_per_round=1_000,
    stores_per_round=20,
    flush_every=5,
)
QUICK = Scale(
    backlog_events=50_000,
    sessions=1_000,
    active=200,
    backlog_notifications=10_000,
    cache_keys=5_000,
    rounds=30,
    round_seconds=1.0,
    events_per_round=400,
    notifications_per_round=50,
    gets_per_round=500,
    stores_per_round=10,
    flush_every=5,
)
EVENT_BATCH = 100
NOTIFY_BATCH = 25
FAIL_EVERY = 4
SAMPLE_SECONDS = 1.0
MEASURABLE = 1.2  # a defaults / toolsdb ratio at least this is a difference; below it, noise
MIN_BYTES = 128 * 1024  # ... and a size difference of more than this (or 5% of the start size)
MIN_DEAD = 200  # ... and a peak dead rows difference of more than this
UNUSED_HOT = 0.05  # a fillfactor with fewer HOT updates than this is reported as unused
SERVER_SETTINGS = {"autovacuum_naptime": "1s"}
SHOWN_SETTINGS = (
    "autovacuum_naptime",
    "autovacuum_max_workers",
    "autovacuum_vacuum_cost_delay",
    "autovacuum_vacuum_cost_limit",
    "vacuum_cost_limit",
    "shared_buffers",
    "synchronous_commit",
)

TABLES = ("events", "notifications", "sessions", "vision_cache", "vision_cache_hits")
CLAIM_INDEXES = ("events_claim_idx", "notifications_claim_idx")
ARMS = ("defaults", "toolsdb")
DBNAMES = {"defaults": "bench_churn_defaults", "toolsdb": "bench_churn_toolsdb"}
PAYLOAD_JSON = json.dumps(HOOK_PAYLOAD)
CONTEXT_JSON = json.dumps({"git_branch": "main", "terminal_type": "tmux", "terminal_info": {"tmux_pane": "%1"}})

# -- the backlog ------------------------------------------------------------------------------------------

# Active sessions bench-0 .. bench-(active - 1) started an hour ago; the others ended, over the last month.
BACKLOG_SESSIONS = """
insert into toolsdb.sessions (
    session_id, cwd, transcript_path, permission_mode, git_branch, terminal_type, last_event_type,
    started_at, last_activity_at, ended_at, end_reason
)
select 'bench-' || g, '/work/main', '/home/dev/.claude/projects/-work-main/bench-' || g || '.jsonl',
    'default', 'main', 'tmux', 'PreToolUse', s.started, s.started + interval '30 minutes',
    case when g >= %(active)s then s.started + interval '1 hour' end,
    case when g >= %(active)s then 'other' end
from generate_series(0, %(sessions)s - 1) as g,
    lateral (select case when g < %(active)s then now() - interval '1 hour'
        else now() - interval '30 days' * (1 - g::float8 / %(sessions)s) - interval '2 hours' end as started) as s
"""
# Processed events over the last 30 days (minus an hour: the retention purge would delete none of them).
BACKLOG_EVENTS = """
insert into toolsdb.events (
    session_id, event_type, payload, created_at, visible_at, attempts, claimed_by, processed_at
)
select 'bench-' || (g %% %(sessions)s), 'PreToolUse',
    %(payload)s::jsonb || jsonb_build_object('session_id', 'bench-' || (g %% %(sessions)s),
        'tool_use_id', 'toolu_backlog_' || g),
    t.at, t.at + interval '5 minutes', 1, 'backlog-worker', t.at + interval '2 seconds'
from generate_series(1, %(n)s) as g,
    lateral (select now() - interval '30 days' * (1 - g::float8 / %(n)s) - interval '1 hour' as at) as t
"""
BACKLOG_NOTIFICATIONS = """
insert into toolsdb.notifications (
    session_id, notification_type, backend, status, payload, attempts, next_attempt_at, claimed_by,
    created_at, sent_at
)
select 'bench-' || (g %% %(sessions)s), 'permission', 'slack', 'sent', %(job)s::jsonb || jsonb_build_object('n', g),
    1, t.at + interval '1 minute', 'backlog-worker', t.at, t.at + interval '2 seconds'
from generate_series(1, %(n)s) as g,
    lateral (select now() - interval '30 days' * (1 - g::float8 / %(n)s) - interval '1 hour' as at) as t
"""

# -- the workload -----------------------------------------------------------------------------------------

# `n` events for n different active sessions (n <= active), one transaction.
INGEST = """
select count(toolsdb.hook_ingest(
    %(payload)s::jsonb || jsonb_build_object('session_id', 'bench-' || (%(first)s + g) %% %(active)s,
        'tool_use_id', 'toolu_' || (%(first)s + g)),
    %(context)s::jsonb
)) from generate_series(0, %(n)s - 1) as g
"""
CLAIM_EVENTS = "select event_id, claim_token from toolsdb.get_unprocessed_events(%s, '5 minutes', %s)"
ACK_EVENTS = "select toolsdb.mark_events_processed(%s::bigint[], %s::uuid)"
NOTIFY = """
select count(toolsdb.insert_notification('bench-' || (%(first)s + g) %% %(active)s, 'permission', 'slack',
    %(job)s::jsonb || jsonb_build_object('n', %(first)s + g)))
from generate_series(0, %(n)s - 1) as g
"""
CLAIM_NOTIFICATIONS = "select notification_id, claim_token from toolsdb.claim_notifications(%s, '1 minute', %s)"
ACK_NOTIFICATIONS = "select toolsdb.mark_notifications_sent(%s::bigint[], %s::uuid)"
FAIL_NOTIFICATION = "select toolsdb.mark_notification_failed(%s, %s::uuid, 'timeout', '0 seconds', '0 seconds')"
# `+ g * 0`: the call depends on g, so it runs once per row (an uncorrelated function scan would be
# rescanned from its one stored result).
GETS = (
    "select count(*) from generate_series(1, %(n)s) as g,"
    f" lateral toolsdb.vision_cache_get({HASH.format(n='1 + floor(%(keys)s * power(random() + g * 0, 3))::int')},"
    " %(model)s) as v"
)
# vision_cache_store() of images first .. first + n - 1 (new ones above the backlog's keys, or replacements).
STORES = STORE.replace("generate_series(1, %s)", "generate_series(%s::int, %s::int)")
FLUSH = "select toolsdb.vision_cache_flush_hits()"

SAMPLE = """
select s.relname, pg_table_size(s.relid), pg_indexes_size(s.relid), s.n_live_tup, s.n_dead_tup,
    s.autovacuum_count, s.autoanalyze_count, s.n_tup_upd, s.n_tup_hot_upd
from pg_stat_user_tables as s
where s.schemaname = 'toolsdb' and s.relname = any(%s)
"""
INDEX_SIZES = "select c.relname, pg_relation_size(c.oid) from pg_class as c where c.relname = any(%s)"


@dataclass
class TableSample:
    size: int
    live: int
    dead: int
    autovacuums: int
    autoanalyzes: int
    updates: int
    hot_updates: int


@dataclass
class Sample:
    at: float  # seconds since the workload started
    tables: dict[str, TableSample]
    indexes: dict[str, int]


@dataclass
class Arm:
    name: str
    dbname: str
    conninfo: str = ""
    reloptions: dict[str, list[str]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    event_claims_ms: list[float] = field(default_factory=list)
    notification_claims_ms: list[float] = field(default_factory=list)
    flushes_ms: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lag: float = 0.0  # how late the last round started, seconds
    finished: float = 0.0  # when its last round ended, seconds since the start

    def start(self, table: str) -> TableSample:
        return self.samples[0].tables[table]

    def end(self, table: str) -> TableSample:
        return self.samples[-1].tables[table]

    def growth(self, table: str) -> int:
        return self.end(table).size - self.start(table).size

    def dead(self, table: str) -> list[int]:
        return [s.tables[table].dead for s in self.samples]

    def autovacuums(self, table: str) -> int:
        return self.end(table).autovacuums - self.start(table).autovacuums

    def autoanalyzes(self, table: str) -> int:
        return self.end(table).autoanalyzes - self.start(table).autoanalyzes

    def hot_share(self, table: str) -> float | None:
        updates = self.end(table).updates - self.start(table).updates
        hot = self.end(table).hot_updates - self.start(table).hot_updates
        return hot / updates if updates else None

    def count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def sample(conn: psycopg.Connection, at: float) -> Sample:
    tables = {
        name: TableSample(size + index_size, live, dead, av, aa, upd, hot)
        for name, size, index_size, live, dead, av, aa, upd, hot in conn.execute(
            SAMPLE, (list(TABLES),), prepare=True
        ).fetchall()
    }
    indexes = dict(conn.execute(INDEX_SIZES, (list(CLAIM_INDEXES),), prepare=True).fetchall())
    return Sample(at, tables, indexes)


# -- set-up -----------------------------------------------------------------------------------------------


def prepare(server: EmbeddedServer, info, admin: psycopg.Connection, scale: Scale) -> list[Arm]:
    """Migrate one database, clone it, reset the clone's churn tables, load the same backlog into both."""
    for dbname in DBNAMES.values():
        admin.execute(f"drop database if exists {dbname} with (force)")
    admin.execute(f"create database {DBNAMES['toolsdb']}")
    progress("migrating")
    engine.migrate(Target(server.conninfo(info, dbname=DBNAMES["toolsdb"]), "bench"))
    admin.execute(f"create database {DBNAMES['defaults']} template {DBNAMES['toolsdb']}")
    arms = [Arm(name, DBNAMES[name]) for name in ARMS]
    for arm in arms:
        arm.conninfo = server.conninfo(info, dbname=arm.dbname)
        with psycopg.connect(arm.conninfo, autocommit=True) as conn:
            if arm.name == "defaults":
                for table, options in reloptions(conn).items():
                    names = ", ".join(option.split("=", 1)[0] for option in options)
                    conn.execute(f"alter table toolsdb.{table} reset ({names})")
            arm.reloptions = reloptions(conn)
            progress(f"{arm.name}: loading the backlog ({scale.backlog_events:,} processed events)")
            shape = {"sessions": scale.sessions, "active": scale.active}
            conn.execute(BACKLOG_SESSIONS, shape)
            conn.execute(BACKLOG_EVENTS, {**shape, "n": scale.backlog_events, "payload": PAYLOAD_JSON})
            conn.execute(BACKLOG_NOTIFICATIONS, {**shape, "n": scale.backlog_notifications, "job": JOB_JSON})
            conn.execute(STORE, (MODEL, scale.cache_keys))
            for table in TABLES:
                conn.execute(f"vacuum (analyze) toolsdb.{table}")
    return arms


def reloptions(conn: psycopg.Connection) -> dict[str, list[str]]:
    rows = conn.execute(
        "select c.relname, c.reloptions from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = 'toolsdb' and c.relname = any(%s)",
        (list(TABLES),),
    ).fetchall()
    return {name: options or [] for name, options in rows}


# -- the workload -----------------------------------------------------------------------------------------


def run_round(conn: psycopg.Connection, arm: Arm, scale: Scale, r: int) -> None:
    worker = f"bench-{arm.name}"
    done = 0
    while done < scale.events_per_round:
        n = min(scale.active, scale.events_per_round - done)
        first = r * scale.events_per_round + done
        conn.execute(
            INGEST,
            {"payload": PAYLOAD_JSON, "context": CONTEXT_JSON, "first": first, "active": scale.active, "n": n},
        )
        done += n
    arm.count("events ingested", done)
    while True:
        start = time.perf_counter()
        rows = conn.execute(CLAIM_EVENTS, (EVENT_BATCH, worker), prepare=True).fetchall()
        arm.event_claims_ms.append((time.perf_counter() - start) * 1000)
        if not rows:
            break
        conn.execute(ACK_EVENTS, ([row[0] for row in rows], rows[0][1]), prepare=True)
        arm.count("events processed", len(rows))

    first = r * scale.notifications_per_round
    conn.execute(NOTIFY, {"first": first, "active": scale.active, "n": scale.notifications_per_round, "job": JOB_JSON})
    arm.count("notifications queued", scale.notifications_per_round)
    batch = 0
    while True:
        start = time.perf_counter()
        rows = conn.execute(CLAIM_NOTIFICATIONS, (NOTIFY_BATCH, worker), prepare=True).fetchall()
        arm.notification_claims_ms.append((time.perf_counter() - start) * 1000)
        if not rows:
            break
        batch += 1
        if batch % FAIL_EVERY == 0:
            conn.execute(FAIL_NOTIFICATION, rows[0], prepare=True)
            arm.count("notification failures", 1)
            rows = rows[1:]
        if rows:
            conn.execute(ACK_NOTIFICATIONS, ([row[0] for row in rows], rows[0][1]), prepare=True)
            arm.count("notifications sent", len(rows))

    hits = conn.execute(GETS, {"n": scale.gets_per_round, "keys": scale.cache_keys, "model": MODEL}).fetchone()[0]
    arm.count("cache hits", hits)
    half = scale.stores_per_round // 2
    new_first = scale.cache_keys + 1 + r * half
    conn.execute(STORES, (MODEL, new_first, new_first + half - 1))
    replaced_first = 1 + (r * (scale.stores_per_round - half)) % scale.cache_keys
    conn.execute(STORES, (MODEL, replaced_first, replaced_first + scale.stores_per_round - half - 1))
    arm.count("cache stores", scale.stores_per_round)
    if (r + 1) % scale.flush_every == 0:
        arm.flushes_ms.append(timed(lambda: conn.execute(FLUSH).fetchone()) * 1000)
        arm.count("cache flushes", 1)


def run_arm(arm: Arm, scale: Scale, clock: dict[str, float], errors: list[BaseException]) -> None:
    try:
        with psycopg.connect(arm.conninfo, autocommit=True) as conn:
            for r in range(scale.rounds):
                due = clock["start"] + r * scale.round_seconds
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                else:
                    arm.lag = max(arm.lag, now - due)
                run_round(conn, arm, scale, r)
            arm.finished = time.perf_counter() - clock["start"]
    except BaseException as exc:
        errors.append(exc)


def churn(arms: list[Arm], scale: Scale) -> None:
    """Run the workload on every arm at once, sampling every SAMPLE_SECONDS until all are done."""
    samplers = {arm.name: psycopg.connect(arm.conninfo, autocommit=True) for arm in arms}
    try:
        errors: list[BaseException] = []
        clock = {"start": time.perf_counter()}
        for arm in arms:
            arm.samples.append(sample(samplers[arm.name], 0.0))
        threads = [threading.Thread(target=run_arm, args=(arm, scale, clock, errors)) for arm in arms]
        for thread in threads:
            thread.start()
        tick = 0
        next_report = 30.0
        while any(thread.is_alive() for thread in threads):
            tick += 1
            wait = clock["start"] + tick * SAMPLE_SECONDS - time.perf_counter()
            if wait > 0:
                for thread in threads:
                    thread.join(wait / len(threads))
            at = time.perf_counter() - clock["start"]
            for arm in arms:
                arm.samples.append(sample(samplers[arm.name], at))
            if at >= next_report:
                next_report += 30.0
                progress(
                    f"churn: {at:.0f}s, "
                    + ", ".join(f"{a.name} {a.counts.get('events processed', 0):,} events" for a in arms)
                )
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        # The backends' last statistics reach the shared counters within a second of going idle.
        time.sleep(SAMPLE_SECONDS)
        at = time.perf_counter() - clock["start"]
        for arm in arms:
            arm.samples.append(sample(samplers[arm.name], at))
    finally:
        for conn in samplers.values():
            conn.close()


# -- report -----------------------------------------------------------------------------------------------


def kb(n: float) -> str:
    return f"{n / 1024:,.0f} kB"


def ratio(baseline: float, mine: float) -> str:
    if mine <= 0:
        return "   (none)" if baseline <= 0 else "      inf"
    return f"{baseline / mine:8.2f}x"


def report_header(version: str, settings: dict[str, str], arms: list[Arm], scale: Scale, quick: bool) -> None:
    print(
        f"toolsdb churn benchmark{' (--quick)' if quick else ''} on {version}, {os.cpu_count()} CPUs"
        " (shared by the server, both workloads and the sampler);\n"
        "server settings: " + ", ".join(f"{k} {v}" for k, v in settings.items())
    )
    toolsdb = next(a for a in arms if a.name == "toolsdb")
    defaults = next(a for a in arms if a.name == "defaults")
    print("two databases cloned from one migrated database, run side by side:")
    print(
        "  defaults (baseline): reloptions of the churn tables reset, i.e. "
        + ", ".join(f"{t} {defaults.reloptions.get(t) or '-'}" for t in TABLES if defaults.reloptions.get(t))
        + ("" if any(defaults.reloptions.values()) else "none left (server defaults)")
    )
    print("  toolsdb: the migrations' settings:")
    for table in TABLES:
        print(f"    {table:18} {', '.join(toolsdb.reloptions.get(table) or ['(none)'])}")
    print(
        f"backlog in each: {scale.backlog_events:,} processed events over 30 days, {scale.sessions:,} sessions"
        f" ({scale.active} active), {scale.backlog_notifications:,} sent notifications,"
        f" {scale.cache_keys:,} vision cache entries; then vacuum (analyze)"
    )
    print(
        f"workload in each: {scale.rounds} rounds, one every {scale.round_seconds:g}s: {scale.events_per_round}"
        f" hook_ingest() events, claimed by {EVENT_BATCH} and acked; {scale.notifications_per_round}"
        f" notifications, claimed by {NOTIFY_BATCH} and acked (1 failure per {FAIL_EVERY} batches);"
        f" {scale.gets_per_round} cache gets, {scale.stores_per_round} stores; a hit flush every"
        f" {scale.flush_every} rounds"
    )
    for arm in arms:
        counts = ", ".join(f"{k} {v:,}" for k, v in arm.counts.items())
        print(f"  {arm.name:9} done in {arm.finished:.0f}s (latest round start {arm.lag:.2f}s late): {counts}")
    print()


def report_sizes(arms: list[Arm]) -> None:
    defaults, toolsdb = arms
    print(
        "1. Size, pg_table_size + pg_indexes_size (kB): at the start (after the backlog), growth (end - start),\n"
        "   the growth toolsdb's settings saved (defaults - toolsdb) and the ratios defaults / toolsdb"
    )
    print(
        f"   {'table (and claim index)':25} {'start def':>10} {'start tdb':>10} {'growth def':>11} {'growth tdb':>11}"
        f" {'saved':>9} {'growth ratio':>13} {'end ratio':>10}"
    )
    for table in TABLES:
        d0, t0 = defaults.start(table).size, toolsdb.start(table).size
        dg, tg = defaults.growth(table), toolsdb.growth(table)
        end = ratio(defaults.end(table).size, toolsdb.end(table).size)
        print(
            f"   {table:25} {d0 / 1024:10,.0f} {t0 / 1024:10,.0f} {dg / 1024:11,.0f} {tg / 1024:11,.0f}"
            f" {(dg - tg) / 1024:9,.0f} {ratio(dg, tg):>13} {end:>10}"
        )
    for index in CLAIM_INDEXES:
        d0, t0 = defaults.samples[0].indexes[index], toolsdb.samples[0].indexes[index]
        dg, tg = defaults.samples[-1].indexes[index] - d0, toolsdb.samples[-1].indexes[index] - t0
        peak_d = max(s.indexes[index] for s in defaults.samples)
        peak_t = max(s.indexes[index] for s in toolsdb.samples)
        print(
            f"   {'  ' + index:25} {d0 / 1024:10,.0f} {t0 / 1024:10,.0f} {dg / 1024:11,.0f} {tg / 1024:11,.0f}"
            f" {(dg - tg) / 1024:9,.0f} {ratio(dg, tg):>13} {ratio(peak_d, peak_t):>10} (peak def {peak_d / 1024:,.0f},"
            f" tdb {peak_t / 1024:,.0f})"
        )
    print()


def report_dead(arms: list[Arm]) -> None:
    defaults, toolsdb = arms
    print(
        f"2. Dead rows (n_dead_tup, sampled every {SAMPLE_SECONDS:g}s, {len(defaults.samples)} samples),"
        " autovacuum runs during the workload, HOT share of updates"
    )
    print(
        f"   {'table':18} {'peak def':>9} {'peak tdb':>9} {'def/tdb':>8} {'mean def':>9} {'mean tdb':>9}"
        f" {'def/tdb':>8} {'autovac def':>11} {'tdb':>4} {'autoanalyze def':>15} {'tdb':>4} {'HOT def':>8}"
        f" {'HOT tdb':>8}"
    )
    for table in TABLES:
        dd, td = defaults.dead(table), toolsdb.dead(table)
        mean_d, mean_t = sum(dd) / len(dd), sum(td) / len(td)
        hot = [a.hot_share(table) for a in arms]
        print(
            f"   {table:18} {max(dd):9,} {max(td):9,} {ratio(max(dd), max(td)):>8} {mean_d:9,.0f} {mean_t:9,.0f}"
            f" {ratio(mean_d, mean_t):>8} {defaults.autovacuums(table):11} {toolsdb.autovacuums(table):4}"
            f" {defaults.autoanalyzes(table):15} {toolsdb.autoanalyzes(table):4}"
            + "".join(f" {'-' if h is None else f'{h:.0%}':>8}" for h in hot)
        )
    print("   dead rows over time, defaults / toolsdb:")
    total = len(defaults.samples)
    picks = sorted({round(i * (total - 1) / 10) for i in range(11)})
    print(f"   {'t':>5} " + " ".join(f"{t:^21}" for t in TABLES))
    for i in picks:
        at = defaults.samples[i].at
        cells = " ".join(
            f"{defaults.samples[i].tables[t].dead:>10,}/{toolsdb.samples[i].tables[t].dead:<10,}" for t in TABLES
        )
        print(f"   {at:4.0f}s {cells}")
    for table in TABLES:
        fillfactor = next((o for o in toolsdb.reloptions.get(table, []) if o.startswith("fillfactor=")), None)
        hot = toolsdb.hot_share(table)
        if fillfactor and hot is not None and hot < UNUSED_HOT:
            extra = toolsdb.start(table).size / defaults.start(table).size - 1
            print(
                f"   {table}: {fillfactor} but {hot:.0%} of its updates were HOT (each changes an indexed column or"
                f" one in a partial index's predicate):\n     the reserved room goes unused; the backlog took"
                f" {extra:.0%} more space with it"
            )
    print()


def report_latency(arms: list[Arm]) -> None:
    defaults, toolsdb = arms
    print("3. For context, call times (ms) in each database, p50 / p95, and the p50 ratio defaults / toolsdb")
    for label, pick in (
        ("get_unprocessed_events", lambda a: a.event_claims_ms),
        ("claim_notifications", lambda a: a.notification_claims_ms),
        ("vision_cache_flush_hits", lambda a: a.flushes_ms),
    ):
        d, t = pick(defaults), pick(toolsdb)
        print(
            f"   {label:24} defaults {median(d):7.2f} / {percentile(d, 0.95):7.2f}"
            f"   toolsdb {median(t):7.2f} / {percentile(t, 0.95):7.2f}   {ratio(median(d), median(t))}"
            f"   ({len(d):,} / {len(t):,} calls)"
        )
    print()


def measurable(baseline: float, mine: float, floor: float) -> bool:
    """baseline is at least MEASURABLE times mine, and more than floor above it."""
    return baseline - mine > floor and (mine <= 0 or baseline / mine >= MEASURABLE)


def targets(arms: list[Arm]) -> list[str]:
    defaults, toolsdb = arms
    lines = []
    for table in TABLES:
        dg, tg = defaults.growth(table), toolsdb.growth(table)
        dp, tp = max(defaults.dead(table)), max(toolsdb.dead(table))
        floor = max(MIN_BYTES, 0.05 * defaults.start(table).size)  # sizes move by a few pages for nothing
        smaller = measurable(dg, tg, floor)
        dm, tm = (sum(a.dead(table)) / len(a.dead(table)) for a in arms)
        # Both the peak and the mean: one late autovacuum makes a peak on its own.
        fewer_dead = measurable(dp, tp, MIN_DEAD) and measurable(dm, tm, 0)
        grow = f"growth {kb(dg)} -> {kb(tg)}" + (f" ({dg / tg:.2f}x)" if tg > 0 else "")
        dead = f"peak dead {dp:,} -> {tp:,}" + (f" ({dp / tp:.2f}x)" if tp > 0 else "")
        dead += f", mean {dm:,.0f} -> {tm:,.0f}" + (f" ({dm / tm:.2f}x)" if tm > 0 else "")
        ran = f"autovacuum ran {defaults.autovacuums(table)} / {toolsdb.autovacuums(table)} times"
        if smaller and fewer_dead:
            what = "smaller and fewer dead rows with toolsdb's settings"
        elif smaller:
            what = "smaller with toolsdb's settings, dead rows no measurable difference"
        elif fewer_dead:
            what = "fewer dead rows with toolsdb's settings, size no measurable difference"
        else:
            what = "no measurable difference"
        if measurable(tg, dg, floor):
            what += "; LARGER with toolsdb's settings"
        if measurable(tp, dp, MIN_DEAD) and measurable(tm, dm, 0):
            what += "; MORE dead rows with toolsdb's settings"
        lines.append(f"{table}: {what}; {grow}, {dead}, {ran}: {verdict(smaller or fewer_dead)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_churn", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute smoke run: smaller backlog, 30 rounds")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-churn-") as tmpdir:
        server = EmbeddedServer(root=Path(tmpdir) / ".toolsdb")
        info = server.start()
        try:
            with psycopg.connect(server.conninfo(info, dbname="postgres"), autocommit=True) as admin:
                for name, value in SERVER_SETTINGS.items():
                    admin.execute(f"alter system set {name} = '{value}'")
                admin.execute("select pg_reload_conf()")
                time.sleep(0.5)
                settings = {name: admin.execute(f"show {name}").fetchone()[0] for name in SHOWN_SETTINGS}
                arms = prepare(server, info, admin, scale)
            progress(f"churn: {scale.rounds} rounds in both databases")
            churn(arms, scale)
        finally:
            server.stop()
    version = server.check_binaries()
    report_header(version, settings, arms, scale, args.quick)
    report_sizes(arms)
    report_dead(arms)
    report_latency(arms)
    print_targets(targets(arms), started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Backup, restore and read-replica benchmark: `python -m tests.bench_ops` (`--quick`: a smoke run).

One throwaway embedded server (as tests.bench_work) in a temp folder; the
issue gives no numeric target for these, so every figure is a measurement,
set against a baseline run in the same process on the same server wherever
one exists. Everything runs as the superuser. MB = 1,000,000 bytes.

1. Backup and restore (toolsdb.backup.backup / restore) of two databases:
   * seeded: migrated, then seeds/*.sql applied (toolsdb.migrate.seed, as
     `toolsdb seed`); SEEDED_ROUNDS rounds, median and spread (max / min);
   * work: the data set of tests.bench_work (its load_static and load_phase:
     100,000 tasks, 1,000,000 executions and activity rows, 10,000
     pr_validations and error_logs; with --quick 100,000 executions and 1,000
     of the small ones), then vacuum (analyze) and the function workload of
     part 2; one round only.
   Each round: the database's size (pg_database_size), the backup's wall time
   and archive size, the restore's wall time into a new empty database on the
   same server, and the restored copy's row count of every table against the
   source's (a mismatch is printed loudly). Baseline, interleaved with it:
   plain `pg_dump -Fc` then `pg_restore -d` into a new empty database, with the
   same client binaries toolsdb picks (toolsdb.backup.client_binaries). The
   ratio toolsdb / baseline is toolsdb's overhead (its catalog reads, the
   atomic rename, psql --single-transaction and 00_bootstrap.sql on restore);
   throughput is the database's size over the wall time.
2. Replica lag: a streaming hot standby (toolsdb.replica.Replica) of the
   server in the temp folder, built after the static rows of the work
   database are in; then, sampled every SAMPLE_SECONDS on the primary
   (replication_status: bytes_behind, replay_lag) and on the standby
   (standby_lag: lag_seconds):
   * the bulk load (load_phase as superuser with session_replication_role =
     replica and synchronous_commit off, as tests.bench_work does, then
     vacuum (analyze)): heavy WAL; then how long the standby takes to replay
     the last of it (1 ms poll of pg_last_wal_replay_lsn());
   * the function workload: WORKERS threads, each its own agent and autocommit
     connection, running the execution lifecycle execution_create ->
     execution_start -> execution_log -> execution_complete (four
     transactions, synchronous_commit on) on random existing tasks for
     WORKLOAD_SECONDS; one more thread measures read-your-writes: a commit on
     the primary (execution_log), then toolsdb.replica.current_lsn and
     wait_for_replay on the standby (which polls after 1, 2, 4 ... up to 50 ms), timed from the
     commit's return, then a check that the row is visible there; every other
     commit it uses a 1 ms poll of pg_last_wal_replay_lsn() instead, for the
     replay delay without wait_for_replay's polling step.
   The primary's WAL rate comes from pg_current_wal_lsn() at both ends of each
   window. The replica (and its slot) is always removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from toolsdb import migrate as engine
from toolsdb.backup import NOT_FROM_EXTENSION, SYSTEM_SCHEMAS, backup, client_binaries, restore
from toolsdb.errors import ToolsdbError
from toolsdb.replica import Replica, current_lsn, replication_status, standby_lag, wait_for_replay
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

from .bench import timed
from .bench_queue import median, print_targets, progress, spread, verdict
from .bench_work import load_phase, load_static, percentile

SEEDED_DB = "bench_ops_seeded"
WORK_DB = "bench_ops_work"
RESTORED_DB = "bench_ops_restored"
SEEDED_ROUNDS = 3
EXECUTIONS = {False: (1_000_000, 10_000), True: (100_000, 1_000)}  # --quick -> (executions, small tables)
WORKLOAD_SECONDS = {False: 60.0, True: 15.0}
WORKERS = 4
SAMPLE_SECONDS = 0.2
RYW_PAUSE = 0.1  # between two read-your-writes commits
CATCH_UP_TIMEOUT = 900.0
MB = 1_000_000


# -- backup and restore -----------------------------------------------------------------------------------


@dataclass
class DumpRun:
    backup_s: float = 0.0
    archive_bytes: int = 0
    restore_s: float = 0.0
    restored_bytes: int = 0
    mismatches: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class DumpCase:
    label: str
    dbname: str
    db_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    toolsdb: list[DumpRun] = field(default_factory=list)
    baseline: list[DumpRun] = field(default_factory=list)

    def ok_runs(self, runs: list[DumpRun]) -> list[DumpRun]:
        return [r for r in runs if not r.error]


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """count(*) of every table (partitions included) outside the system schemas and extensions."""
    tables = [
        (r[0], r[1])
        for r in conn.execute(
            "select n.nspname, c.relname from pg_catalog.pg_class as c"
            " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
            f" where c.relkind = 'r' and {SYSTEM_SCHEMAS} and {NOT_FROM_EXTENSION} order by 1, 2"
        ).fetchall()
    ]
    return {
        f"{schema}.{name}": conn.execute(
            sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        ).fetchone()[0]
        for schema, name in tables
    }


def compare_counts(expected: dict[str, int], got: dict[str, int]) -> list[str]:
    out = []
    for table in sorted(set(expected) | set(got)):
        if expected.get(table) != got.get(table):
            out.append(f"{table}: source {expected.get(table, 'missing')}, restored {got.get(table, 'missing')}")
    return out


def fresh_database(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def drop_database(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def database_size(admin: psycopg.Connection, name: str) -> int:
    return admin.execute("select pg_database_size(%s)", (name,)).fetchone()[0]


class Bench:
    """The throwaway server and what both parts need of it."""

    def __init__(self, server: EmbeddedServer, info, tmp: Path):
        self.server = server
        self.info = info
        self.tmp = tmp
        self.admin = psycopg.connect(server.conninfo(info, dbname="postgres"), autocommit=True)
        major = self.admin.info.server_version // 10000
        self.pg_dump = client_binaries("pg_dump", major)[0]
        self.pg_restore = client_binaries("pg_restore", major)[0]
        self.client_env = {**os.environ, "LC_ALL": "C"}

    def conninfo(self, dbname: str) -> str:
        return self.server.conninfo(self.info, dbname=dbname)

    def check_copy(self, case: DumpCase, run: DumpRun) -> None:
        run.restored_bytes = database_size(self.admin, RESTORED_DB)
        with psycopg.connect(self.conninfo(RESTORED_DB), autocommit=True) as conn:
            run.mismatches = compare_counts(case.counts, table_counts(conn))
        if run.mismatches:
            progress(f"  ROW COUNT MISMATCH in the restored copy of {case.dbname}: " + "; ".join(run.mismatches[:5]))

    def toolsdb_round(self, case: DumpCase) -> DumpRun:
        run = DumpRun()
        path = self.tmp / f"{case.dbname}.toolsdb.dump"
        try:
            start = time.perf_counter()
            made = backup(Target(self.conninfo(case.dbname), "bench"), path)
            run.backup_s = time.perf_counter() - start
            run.archive_bytes = made.bytes
            fresh_database(self.admin, RESTORED_DB)
            start = time.perf_counter()
            restore(Target(self.conninfo(RESTORED_DB), "bench"), path)
            run.restore_s = time.perf_counter() - start
            self.check_copy(case, run)
        except ToolsdbError as exc:
            run.error = f"ToolsdbError: {exc.message}"
            progress(f"  toolsdb backup/restore of {case.dbname} FAILED: {run.error}")
        finally:
            path.unlink(missing_ok=True)
            drop_database(self.admin, RESTORED_DB)
        return run

    def baseline_round(self, case: DumpCase) -> DumpRun:
        run = DumpRun()
        path = self.tmp / f"{case.dbname}.baseline.dump"
        try:
            start = time.perf_counter()
            self.client([str(self.pg_dump), "-Fc", "-f", str(path), "-d", self.conninfo(case.dbname)])
            run.backup_s = time.perf_counter() - start
            run.archive_bytes = path.stat().st_size
            fresh_database(self.admin, RESTORED_DB)
            start = time.perf_counter()
            self.client([str(self.pg_restore), "-d", self.conninfo(RESTORED_DB), str(path)])
            run.restore_s = time.perf_counter() - start
            self.check_copy(case, run)
        except subprocess.CalledProcessError as exc:
            run.error = f"{Path(exc.cmd[0]).name} exit {exc.returncode}: {(exc.stderr or '').strip()[:300]}"
            progress(f"  baseline of {case.dbname} FAILED: {run.error}")
        finally:
            path.unlink(missing_ok=True)
            drop_database(self.admin, RESTORED_DB)
        return run

    def client(self, argv: list[str]) -> None:
        subprocess.run(argv, env=self.client_env, capture_output=True, text=True, check=True)

    def dump_case(self, case: DumpCase, rounds: int) -> None:
        case.db_bytes = database_size(self.admin, case.dbname)
        with psycopg.connect(self.conninfo(case.dbname), autocommit=True) as conn:
            case.counts = table_counts(conn)
        for i in range(rounds):  # interleaved, the order alternating, so drift and caches hit both alike
            progress(f"{case.label}: backup and restore, round {i + 1} of {rounds}")
            if i % 2 == 0:
                case.toolsdb.append(self.toolsdb_round(case))
                case.baseline.append(self.baseline_round(case))
            else:
                case.baseline.append(self.baseline_round(case))
                case.toolsdb.append(self.toolsdb_round(case))


# -- replica lag --------------------------------------------------------------------------------------------


@dataclass
class Window:
    """One sampled stretch of load on the primary with its standby streaming."""

    label: str
    seconds: float = 0.0
    wal_bytes: int = 0
    bytes_behind: list[float] = field(default_factory=list)
    replay_lag: list[float] = field(default_factory=list)
    replay_lag_null: int = 0
    standby_lag: list[float] = field(default_factory=list)
    not_streaming: int = 0
    samples: int = 0

    @property
    def wal_mb_s(self) -> float:
        return self.wal_bytes / MB / self.seconds if self.seconds else 0.0


def wal_position(conn: psycopg.Connection) -> int:
    return conn.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()[0]


class Sampler:
    """Every SAMPLE_SECONDS: the standby's row of replication_status on the primary, standby_lag on the standby."""

    def __init__(self, primary_conninfo: str, standby_conninfo: str, slot: str, window: Window):
        self.primary = psycopg.connect(primary_conninfo, autocommit=True)
        self.standby = psycopg.connect(standby_conninfo, autocommit=True)
        self.slot = slot
        self.window = window
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.error: BaseException | None = None

    def run(self) -> None:
        tick = time.perf_counter()
        try:
            while not self.stop_event.is_set():
                self.sample()
                tick += SAMPLE_SECONDS
                self.stop_event.wait(max(0.0, tick - time.perf_counter()))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def sample(self) -> None:
        w = self.window
        w.samples += 1
        row = next((r for r in replication_status(self.primary) if r["application_name"] == self.slot), None)
        if row is None or row["state"] != "streaming":
            w.not_streaming += 1
        if row is not None and row["bytes_behind"] is not None:
            w.bytes_behind.append(float(row["bytes_behind"]))
        if row is not None:
            if row["replay_lag"] is None:
                w.replay_lag_null += 1
            else:
                w.replay_lag.append(row["replay_lag"])
        lag = standby_lag(self.standby)["lag_seconds"]
        if lag is not None:
            w.standby_lag.append(lag)

    def __enter__(self) -> Sampler:
        self.started = time.perf_counter()
        self.wal_start = wal_position(self.primary)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join()
        self.window.seconds = time.perf_counter() - self.started
        self.window.wal_bytes = wal_position(self.primary) - self.wal_start
        self.primary.close()
        self.standby.close()
        if self.error is not None:
            raise RuntimeError(f"the lag sampler failed: {self.error}") from self.error


@dataclass
class Workload:
    seconds: float = 0.0
    lifecycles: int = 0
    errors: int = 0
    first_error: str = ""
    ryw_wait: list[float] = field(default_factory=list)  # seconds, wait_for_replay
    ryw_poll: list[float] = field(default_factory=list)  # seconds, 1 ms poll
    ryw_timeouts: int = 0
    ryw_invisible: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, exc: BaseException) -> None:
        with self.lock:
            self.errors += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"


def lifecycle_worker(conninfo: str, agent, tasks: list, seed: int, deadline: float, result: Workload) -> None:
    rng = random.Random(seed)
    done = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select set_config('toolsdb.agent_id', %s, false)", (str(agent),))
        while time.perf_counter() < deadline:
            try:
                execution_id = conn.execute(
                    "select toolsdb.execution_create(%s, %s)", (agent, rng.choice(tasks))
                ).fetchone()[0]
                conn.execute("select status from toolsdb.execution_start(%s)", (execution_id,))
                conn.execute("select toolsdb.execution_log(%s, %s)", (execution_id, "ran the tests: 42 passed"))
                conn.execute(
                    "select status from toolsdb.execution_complete(%s, %s, %s, %s, %s)",
                    (execution_id, Jsonb({"ok": True}), rng.randint(1000, 200000), rng.randint(100, 20000), 0),
                )
                done += 1
            except psycopg.Error as exc:
                result.failed(exc)
                if conn.closed:
                    break
    with result.lock:
        result.lifecycles += done


def replay_poll(standby: psycopg.Connection, lsn: str, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not standby.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
        if time.perf_counter() >= deadline:
            return False
        time.sleep(0.001)
    return True


def ryw_worker(primary_conninfo: str, standby_conninfo: str, agent, task, deadline: float, result: Workload) -> None:
    with (
        psycopg.connect(primary_conninfo, autocommit=True) as primary,
        psycopg.connect(standby_conninfo, autocommit=True) as standby,
    ):
        execution_id = primary.execute("select toolsdb.execution_create(%s, %s)", (agent, task)).fetchone()[0]
        n = 0
        while time.perf_counter() < deadline:
            try:
                log_id = primary.execute("select toolsdb.execution_log(%s, 'read-your-writes')", (execution_id,))
                log_id = log_id.fetchone()[0]
                committed = time.perf_counter()  # autocommit: the commit has returned
                lsn = current_lsn(primary)
                use_wait = n % 2 == 0
                seen = wait_for_replay(standby, lsn, timeout=30) if use_wait else replay_poll(standby, lsn, 30)
                took = time.perf_counter() - committed
                visible = standby.execute(
                    "select 1 from toolsdb.agent_execution_logs where log_id = %s", (log_id,)
                ).fetchone()
                with result.lock:
                    if not seen:
                        result.ryw_timeouts += 1
                    else:
                        (result.ryw_wait if use_wait else result.ryw_poll).append(took)
                        if visible is None:
                            result.ryw_invisible += 1
                n += 1
            except psycopg.Error as exc:
                result.failed(exc)
                if primary.closed or standby.closed:
                    break
            time.sleep(RYW_PAUSE)


def run_workload(bench: Bench, replica: Replica, seconds: float, window: Window) -> Workload:
    result = Workload()
    with psycopg.connect(bench.conninfo(WORK_DB), autocommit=True) as conn:
        agents = [r[0] for r in conn.execute("select agent_id from toolsdb.agents order by name")]
        tasks = [r[0] for r in conn.execute("select task_id from toolsdb.tasks")]
    primary, standby = bench.conninfo(WORK_DB), replica.conninfo(WORK_DB)
    with Sampler(bench.conninfo("postgres"), standby, replica.slot, window):
        started = time.perf_counter()
        deadline = started + seconds
        threads = [
            threading.Thread(
                target=lifecycle_worker, args=(primary, agents[i], tasks, 1000 + i, deadline, result), daemon=True
            )
            for i in range(WORKERS)
        ]
        threads.append(
            threading.Thread(
                target=ryw_worker, args=(primary, standby, agents[-1], tasks[0], deadline, result), daemon=True
            )
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - started
    return result


@dataclass
class ReplicaResult:
    create_s: float = 0.0
    bulk: Window = field(default_factory=lambda: Window("bulk load"))
    load_s: float = 0.0
    vacuum_s: float = 0.0
    catch_up_s: float | None = None
    work: Window = field(default_factory=lambda: Window("function workload"))
    workload: Workload = field(default_factory=Workload)
    removed: str = ""


def bulk_load(bench: Bench, executions: int, small: int, replica: Replica, out: ReplicaResult) -> None:
    with psycopg.connect(bench.conninfo(WORK_DB), autocommit=True) as loader:
        for setting in (  # as tests.bench_work loads
            "session_replication_role = replica",
            "synchronous_commit = off",
            "maintenance_work_mem = '256MB'",
            "work_mem = '64MB'",
        ):
            loader.execute(f"set {setting}")
        loader.execute("select setseed(0.42)")
        with Sampler(bench.conninfo("postgres"), replica.conninfo(WORK_DB), replica.slot, out.bulk):
            out.load_s = timed(lambda: load_phase(loader, 1, executions, 1, small))
            progress(f"loaded {executions:,} executions in {out.load_s:.1f}s; vacuum (analyze)")
            out.vacuum_s = timed(lambda: loader.execute("vacuum (analyze)"))
            lsn = current_lsn(loader)
            ended = time.perf_counter()
        with psycopg.connect(replica.conninfo(WORK_DB), autocommit=True) as standby:
            if replay_poll(standby, lsn, CATCH_UP_TIMEOUT):
                out.catch_up_s = time.perf_counter() - ended


# -- report ------------------------------------------------------------------------------------------------


def fmt_pct(values: list[float], scale: float, unit: str, digits: int = 2) -> str:
    if not values:
        return "n/a"
    p50, p95, top = (percentile(values, 0.5), percentile(values, 0.95), max(values))
    return f"{p50 * scale:.{digits}f} / {p95 * scale:.{digits}f} / {top * scale:.{digits}f} {unit}"


def report_case(case: DumpCase, rounds: int) -> tuple[float | None, float | None, bool]:
    tools, base = case.ok_runs(case.toolsdb), case.ok_runs(case.baseline)
    total_rows = sum(case.counts.values())
    how = f"median of {rounds} rounds (spread = max / min)" if rounds > 1 else "one round only (no spread)"
    print(
        f"\n{case.label}: database {case.dbname}, {case.db_bytes / MB:.1f} MB (pg_database_size), "
        f"{len(case.counts)} tables, {total_rows:,} rows; {how}"
    )
    for runs, name in ((case.toolsdb, "toolsdb"), (case.baseline, "baseline")):
        for run in runs:
            if run.error:
                print(f"  {name} round FAILED: {run.error}")
    if not tools or not base:
        print("  (no complete round on both sides: nothing to compare)")
        return None, None, False

    def stat(runs: list[DumpRun], key: Callable[[DumpRun], float]) -> tuple[float, float]:
        values = [key(r) for r in runs]
        return median(values), spread(values)

    header = f"  {'measure':28} {'toolsdb':>14} {'spread':>7} {'baseline':>14} {'spread':>7} {'toolsdb/baseline':>17}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    ratios = []
    for name, key in (("backup wall time", lambda r: r.backup_s), ("restore wall time", lambda r: r.restore_s)):
        (t, ts), (b, bs) = stat(tools, key), stat(base, key)
        ratios.append(t / b)
        ts_text, bs_text = (f"{ts:6.2f}x", f"{bs:6.2f}x") if rounds > 1 else ("      -", "      -")
        print(f"  {name:28} {t:13.2f}s {ts_text} {b:13.2f}s {bs_text} {t / b:16.2f}x")
        rate_t, rate_b = case.db_bytes / MB / t, case.db_bytes / MB / b
        print(f"  {'  throughput (db MB / s)':28} {rate_t:10.1f}MB/s {'':7} {rate_b:10.1f}MB/s")
    (ta, _), (ba, _) = stat(tools, lambda r: r.archive_bytes), stat(base, lambda r: r.archive_bytes)
    print(f"  {'archive size':28} {ta / MB:12.2f}MB {'':7} {ba / MB:12.2f}MB {ta / ba:16.2f}x")
    print(f"  {'  bytes':28} {int(ta):>14,} {'':7} {int(ba):>14,}")
    print(f"  {'  archive / database size':28} {ta / case.db_bytes:14.3f} {'':7} {ba / case.db_bytes:14.3f}")
    (tr, _), (br, _) = stat(tools, lambda r: r.restored_bytes), stat(base, lambda r: r.restored_bytes)
    print(f"  {'restored database size':28} {tr / MB:12.1f}MB {'':7} {br / MB:12.1f}MB")
    bad = [(name, r) for name, runs in (("toolsdb", tools), ("baseline", base)) for r in runs if r.mismatches]
    if bad:
        print("  !!! ROW COUNT MISMATCH in the restored copy !!!")
        for name, run in bad:
            for line in run.mismatches:
                print(f"  !!! {name}: {line}")
    else:
        print(f"  restored copies: same row count as the source in all {len(case.counts)} tables, every round")
    complete = len(tools) == len(case.toolsdb) and len(base) == len(case.baseline)
    return ratios[0], ratios[1], not bad and complete


def report_window(w: Window) -> None:
    print(
        f"  {w.label:52} {w.seconds:7.1f}s {w.wal_bytes / MB:9.1f}MB {w.wal_mb_s:7.2f}MB/s  samples {w.samples}"
        + (f", {w.not_streaming} not streaming" if w.not_streaming else "")
    )
    print(f"    bytes behind (primary), p50 / p95 / max:   {fmt_pct(w.bytes_behind, 1 / MB, 'MB', 3)}")
    print(
        f"    replay_lag (primary), p50 / p95 / max:     {fmt_pct(w.replay_lag, 1000, 'ms', 1)}"
        f"  ({w.replay_lag_null} samples null: no recent lag sample, i.e. idle and caught up)"
    )
    print(
        f"    lag_seconds (standby), p50 / p95 / max:    {fmt_pct(w.standby_lag, 1000, 'ms', 1)}"
        "  (0 when all received WAL is replayed, else time since the last replayed commit)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 executions instead of 1,000,000 (smoke run)")
    args = parser.parse_args()
    quick = args.quick
    executions, small = EXECUTIONS[quick]
    workload_s = WORKLOAD_SECONDS[quick]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="toolsdb-bench-ops-", dir="/tmp"))
    seeded = DumpCase("seeded database (migrated + seeds/*.sql)", SEEDED_DB)
    work = DumpCase(
        f"work database (tests.bench_work data set at {executions:,} executions, after part 2's workload)", WORK_DB
    )
    rep = ReplicaResult()
    try:
        server = EmbeddedServer(root=tmp / ".toolsdb")
        info = server.start()
        bench: Bench | None = None
        try:
            bench = Bench(server, info, tmp)
            version = server.check_binaries()
            settings = {
                name: bench.admin.execute(f"show {name}").fetchone()[0]
                for name in (
                    "shared_buffers",
                    "wal_level",
                    "max_wal_size",
                    "synchronous_commit",
                    "fsync",
                    "data_checksums",
                    "wal_compression",
                    "full_page_writes",
                )
            }
            dump_version = subprocess.run(
                [str(bench.pg_dump), "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()

            progress("seeded database: migrate and seed")
            fresh_database(bench.admin, SEEDED_DB)
            engine.migrate(Target(bench.conninfo(SEEDED_DB), "bench"))
            engine.seed(Target(bench.conninfo(SEEDED_DB), "bench"))
            bench.dump_case(seeded, SEEDED_ROUNDS)

            progress("work database: migrate, static rows")
            fresh_database(bench.admin, WORK_DB)
            engine.migrate(Target(bench.conninfo(WORK_DB), "bench"))
            with psycopg.connect(bench.conninfo(WORK_DB), autocommit=True) as loader:
                loader.execute("set session_replication_role = replica")
                loader.execute("select setseed(0.42)")
                load_static(loader)
            replica = Replica(server, root=tmp / "replica")
            try:
                progress("replica: pg_basebackup and start")
                rep.create_s = timed(replica.create)
                progress(f"bulk load of {executions:,} executions with the replica streaming")
                bulk_load(bench, executions, small, replica, rep)
                progress(f"function workload, {WORKERS} threads, {workload_s:.0f}s")
                rep.workload = run_workload(bench, replica, workload_s, rep.work)
            finally:
                try:
                    existed, dropped = replica.remove()
                    rep.removed = f"folder removed: {existed}, slot dropped: {dropped}"
                except Exception as exc:  # reported in the output; the server still stops
                    rep.removed = f"REMOVE FAILED: {exc}"
                    progress(rep.removed)
            slots_left = bench.admin.execute("select count(*) from pg_replication_slots").fetchone()[0]

            bench.dump_case(work, 1)
        finally:
            if bench is not None:
                bench.admin.close()
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"toolsdb backup, restore and replica benchmark on {version}, {os.cpu_count()} CPUs (shared by the server,"
        " the replica, the clients and this process)" + (" -- QUICK smoke run" if quick else "")
    )
    print("server settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    print(f"client binaries (toolsdb and baseline alike): {bench.pg_dump.parent} ({dump_version})")
    print("MB = 1,000,000 bytes; throughput = database size / wall time; no numeric target in the issue")

    print(
        "\n1. backup and restore: toolsdb.backup.backup() + restore() into a new empty database, against the\n"
        "   baseline `pg_dump -Fc` + `pg_restore -d` (no toolsdb wrapper), rounds interleaved"
    )
    seeded_backup, seeded_restore, seeded_ok = report_case(seeded, SEEDED_ROUNDS)
    work_backup, work_restore, work_ok = report_case(work, 1)

    print(
        f"\n2. replica lag: streaming hot standby (toolsdb.replica.Replica) on the same machine; "
        f"sampled every {SAMPLE_SECONDS}s\n   replica create (pg_basebackup of the cluster, start): {rep.create_s:.1f}s"
    )
    print(f"  {'window':52} {'time':>8} {'WAL':>11} {'WAL rate':>11}")
    rep.bulk.label = f"bulk load: {executions:,} executions + vacuum (analyze)"
    report_window(rep.bulk)
    print(f"    load_phase {rep.load_s:.1f}s, vacuum (analyze) {rep.vacuum_s:.1f}s")
    catch_up = "did NOT catch up" if rep.catch_up_s is None else f"{rep.catch_up_s:.2f}s"
    print(f"    standby replayed the last of it {catch_up} after the load ended")
    wl = rep.workload
    rep.work.label = f"function workload: {WORKERS} threads + read-your-writes"
    report_window(rep.work)
    rate = wl.lifecycles / wl.seconds if wl.seconds else 0.0
    print(
        f"    {wl.lifecycles:,} lifecycles in {wl.seconds:.1f}s = {rate:.1f} lifecycles/s "
        f"({4 * rate:.0f} transactions/s: create, start, log, complete; synchronous_commit on); "
        f"errors {wl.errors}" + (f" (first: {wl.first_error})" if wl.first_error else "")
    )
    print(
        f"    read-your-writes, commit on the primary -> visible on the standby, p50 / p95 / max:\n"
        f"      current_lsn + wait_for_replay (backoff 1-50 ms): {fmt_pct(wl.ryw_wait, 1000, 'ms', 1)}"
        f" over {len(wl.ryw_wait)} commits\n"
        f"      current_lsn + 1 ms poll of the replay LSN:  {fmt_pct(wl.ryw_poll, 1000, 'ms', 1)}"
        f" over {len(wl.ryw_poll)} commits\n"
        f"      timeouts (30 s): {wl.ryw_timeouts}; rows not visible after the wait: {wl.ryw_invisible}"
    )
    print(f"  replica removed at the end: {rep.removed}; replication slots left on the server: {slots_left}\n")

    def ratio(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}x"

    ryw_p95 = f"{percentile(wl.ryw_wait, 0.95) * 1000:.1f} ms" if wl.ryw_wait else "n/a"
    work_p95 = f"{percentile(rep.work.bytes_behind, 0.95) / MB:.3f} MB" if rep.work.bytes_behind else "n/a"
    lag_p95 = f"{percentile(rep.work.replay_lag, 0.95) * 1000:.1f} ms" if rep.work.replay_lag else "n/a"
    poll_p95 = f"{percentile(wl.ryw_poll, 0.95) * 1000:.1f} ms" if wl.ryw_poll else "n/a"
    targets = [
        "no numeric target in the issue: the lines below are measurements (ratios against in-run baselines)",
        f"backup, toolsdb / pg_dump -Fc: seeded {ratio(seeded_backup)} (median of {SEEDED_ROUNDS}), "
        f"{executions:,} executions {ratio(work_backup)} (one round)",
        f"restore, toolsdb / pg_restore -d: seeded {ratio(seeded_restore)} (median of {SEEDED_ROUNDS}), "
        f"{executions:,} executions {ratio(work_restore)} (one round)",
        f"restored copies complete, same row counts as the source: {verdict(seeded_ok and work_ok)}",
        f"standby caught up after the bulk load: {verdict(rep.catch_up_s is not None)} ({catch_up})",
        f"replica under the function workload: p95 bytes behind {work_p95}, p95 replay_lag {lag_p95}",
        f"read-your-writes p95: {ryw_p95} with wait_for_replay (backoff 1-50 ms), {poll_p95} with a 1 ms poll",
        f"every read-your-writes row visible after the wait: "
        f"{verdict(wl.ryw_invisible == 0 and wl.ryw_timeouts == 0 and bool(wl.ryw_wait))}",
        f"replica and slot removed: {verdict(slots_left == 0 and 'FAILED' not in rep.removed)}",
    ]
    print_targets(targets, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Agent tools benchmark: `python -m tests.bench_agent_tools` (`--quick`: a short smoke run).

One throwaway embedded server (tests.bench and tests.bench_queue do the same)
with one migrated database. Machines here are noisy, so figures are medians
of rounds run interleaved (drift hits every cell alike) and are read as
ratios against a baseline measured in the same run. No assertion on time.
Everything runs as the superuser: row-level security adds nothing.

1. Vision cache reads, calls/s: KEYS entries stored with
   toolsdb.vision_cache_store() (one model version, a realistic extracted_data
   object), then vacuum (analyze). pgbench -M prepared (client processes, one
   call per transaction, autocommit) for SECONDS per run, 1 and 4 clients,
   median of ROUNDS rounds, every cell interleaved:
   * get: `select extracted_data, confidence_score from toolsdb.vision_cache_get(hash, model)`;
   * plain (the baseline): `select extracted_data, confidence_score from
     toolsdb.vision_cache where image_hash = hash and model_version = model
     and expires_at > now()` (a primary-key index scan), same columns, same keys;
   on one hot key (every client reads the same image) and on keys drawn
   uniformly among the KEYS entries. pgbench has no strings, so both sides
   spell image n's hash as lpad(to_hex(n), 64, '0') in the statement (the
   same few nanoseconds on both sides). Ratio get / plain; the issue's target
   is >= 0.9x. Also floor / plain, the floor being the plain select and the
   hit's append in one statement (FLOOR_SQL): what any get that counts each
   hit with a row can reach at best.
2. Queueing (the hot key is the case that matters): 4-client / 1-client
   throughput of get against the same scaling of plain (a get that queued
   behind the other clients would scale worse than the plain read), and what
   the backends were doing during the 4-client runs: pg_stat_activity sampled
   every SAMPLE_SECONDS (CPU, or the wait event).
3. vision_cache_hits after the rounds (the get calls' appended hits): rows,
   distinct entries, size, and the time of one vision_cache_flush_hits()
   folding them; then the same for one extra SECONDS run of 4 clients on the
   hot key alone, from a truncated table (the hits of one minute of a hot
   image would be ~60/SECONDS times that), against the get rate that produced
   them. Each get commits one WAL record (the commit's) and no flush.
4. Where a get's time goes: one connection per statement, psycopg prepared
   statements, autocommit, the hot key; BREAKDOWN_CALLS calls per round,
   BREAKDOWN_ROUNDS rounds interleaved; the backend's CPU time per call (from
   /proc/<pid>/stat, so other load on the machine does not count; wall time
   too) of `select 1` (the floor of any statement), the plain select, one
   insert into vision_cache_hits as its own statement (the hit's append) and
   vision_cache_get(). get - plain, split into the append (insert - select 1)
   and the rest (the function call: plpgsql, the set-returning function's
   tuplestore, its own select), by difference.
5. Validator time per statement, if toolsdb.validator can be imported:
   validate(conn, sql) on a good CREATE TABLE (primary key, timestamptz,
   comments), a bad one (varchar, timestamp, no primary key) and a 20-table
   script; the first (uncached) validation of each statement (a new table name
   per run) and the repeat of the same text (a cached lookup), median of
   VALIDATE_RUNS runs, against creating the same tables in a transaction that
   is rolled back.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from toolsdb import migrate as engine
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

from .bench import pgbench_tps, timed
from .bench_queue import median, print_targets, progress, spread, verdict

ROUNDS = 5
SECONDS = 5
CLIENTS = (1, 4)
KEYS = 100_000
HOT_KEY = 1
MODEL = "bench-vision-v1.0"
SAMPLE_SECONDS = 0.02
BREAKDOWN_CALLS = 5000
BREAKDOWN_ROUNDS = 5
BREAKDOWN_WARMUP = 200
VALIDATE_WARMUP = 2
VALIDATE_RUNS = 20
TARGET_RATIO = 0.9

DBNAME = "bench_agent_tools"
HASH = "lpad(to_hex({n}), 64, '0')"  # image n's hash: 64 lowercase hex digits, like a SHA-256
EXTRACTED = (
    "jsonb_build_object('text', 'Invoice INV-' || {n} || E'\\nTotal due: 1,234.56 EUR\\nPay by 2025-07-01',"
    " 'objects', jsonb_build_array(jsonb_build_object('label', 'table', 'box', jsonb_build_array(12, 40, 580, 610)),"
    " jsonb_build_object('label', 'logo', 'box', jsonb_build_array(20, 8, 120, 36))),"
    " 'language', 'en', 'pages', 1, 'image', {n})"
)
STORE = (
    f"select count(toolsdb.vision_cache_store({HASH.format(n='g')}, {EXTRACTED.format(n='g')},"
    " 0.5 + random() / 2, %s)) from generate_series(1, %s) as g"
)
GET_SQL = "select extracted_data, confidence_score from toolsdb.vision_cache_get({hash}, '{model}')"
PLAIN_SQL = (
    "select extracted_data, confidence_score from toolsdb.vision_cache"
    " where image_hash = {hash} and model_version = '{model}' and expires_at > now()"
)
# The floor of any get that counts its hit with a row (the bound of target 2 of
# the issue "Hot paths"): the plain select and the hit's append in one
# statement, no function. The append makes the call a write transaction (a
# transaction id, a commit record), which is what the 4-client runs queue on.
FLOOR_SQL = (
    "with f as (select image_hash, model_version, extracted_data, confidence_score from toolsdb.vision_cache"
    " where image_hash = {hash} and model_version = '{model}' and expires_at > now()),"
    " h as (insert into toolsdb.vision_cache_hits (image_hash, model_version)"
    " select f.image_hash, f.model_version from f)"
    " select extracted_data, confidence_score from f"
)
SIDES = {"get": GET_SQL, "plain": PLAIN_SQL, "floor": FLOOR_SQL}
SCENARIOS = {"hot": "one hot key", "spread": f"{KEYS:,} keys, uniform"}


def statement(side: str, n: str) -> str:
    return SIDES[side].format(hash=HASH.format(n=n), model=MODEL)


def script(side: str, scenario: str) -> str:
    """One pgbench transaction: pick the key, one autocommitted call."""
    pick = f"\\set k {HOT_KEY}" if scenario == "hot" else f"\\set k random(1, {KEYS})"
    return f"{pick}\n{statement(side, ':k::int')};\n"


class WaitSampler:
    """What pgbench's active backends are doing, sampled from pg_stat_activity while a run lasts."""

    QUERY = (
        "select coalesce(wait_event_type || ':' || wait_event, 'CPU') from pg_stat_activity"
        " where datname = %s and application_name = 'pgbench' and state = 'active'"
    )

    def __init__(self, conn: psycopg.Connection, counts: Counter) -> None:
        self.conn = conn
        self.counts = counts
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            for (event,) in self.conn.execute(self.QUERY, (DBNAME,), prepare=True).fetchall():
                self.counts[event] += 1

    def __enter__(self) -> WaitSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# -- 1 and 2. reads ---------------------------------------------------------------------------------------


@dataclass
class Reads:
    rates: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)  # (scenario, side, clients)
    waits: dict[tuple[str, str], Counter] = field(default_factory=dict)  # (scenario, side), 4 clients

    def rate(self, scenario: str, side: str, clients: int) -> float:
        return median(self.rates[(scenario, side, clients)])


def check_statements(conn: psycopg.Connection) -> None:
    """Both sides return the same one row, for the hot key and the last key."""
    for n in (HOT_KEY, KEYS):
        got = conn.execute(statement("get", "%s::int"), (n,)).fetchall()
        plain = conn.execute(statement("plain", "%s::int"), (n,)).fetchall()
        if len(got) != 1 or got != plain:
            raise RuntimeError(f"image {n}: vision_cache_get() returned {got!r}, the plain select {plain!r}")


def measure_reads(server: EmbeddedServer, info, tmp: Path, rounds: int, seconds: int) -> Reads:
    reads = Reads()
    scripts = {}
    for scenario in SCENARIOS:
        for side in SIDES:
            scripts[(scenario, side)] = tmp / f"{scenario}_{side}.sql"
            scripts[(scenario, side)].write_text(script(side, scenario))
    with psycopg.connect(server.conninfo(info, dbname=DBNAME), autocommit=True) as sampler:
        for i in range(rounds):
            for clients in CLIENTS:
                for scenario in SCENARIOS:
                    for side in SIDES:
                        if clients == max(CLIENTS):
                            counts = reads.waits.setdefault((scenario, side), Counter())
                            with WaitSampler(sampler, counts):
                                rate = pgbench_tps(server, info, DBNAME, scripts[(scenario, side)], clients, seconds)
                        else:
                            rate = pgbench_tps(server, info, DBNAME, scripts[(scenario, side)], clients, seconds)
                        reads.rates.setdefault((scenario, side, clients), []).append(rate)
            progress(f"reads, round {i + 1} of {rounds}: done")
    return reads


# -- 3. the hits ------------------------------------------------------------------------------------------


@dataclass
class Flush:
    label: str
    rows: int
    entries: int
    hot_rows: int
    bytes: int
    folded: int
    seconds: float
    left: int


def flush(conn: psycopg.Connection, label: str) -> Flush:
    rows, entries, hot_rows = conn.execute(
        "select count(*), count(distinct (image_hash, model_version)), count(*) filter (where image_hash = "
        + HASH.format(n="%s::int")
        + ") from toolsdb.vision_cache_hits",
        (HOT_KEY,),
    ).fetchone()
    size = conn.execute("select pg_total_relation_size('toolsdb.vision_cache_hits')").fetchone()[0]
    folded: list = []
    took = timed(lambda: folded.extend(conn.execute("select toolsdb.vision_cache_flush_hits()").fetchone()))
    left = conn.execute("select count(*) from toolsdb.vision_cache_hits").fetchone()[0]
    return Flush(label, rows, entries, hot_rows, size, folded[0], took, left)


# -- 4. where a get's time goes ---------------------------------------------------------------------------

FLOOR = "select 1"
APPEND = "insert into vision_cache_hits"
BREAKDOWN = {
    FLOOR: "select %s::int",
    "plain select": statement("plain", "%s::int"),
    APPEND: (
        "insert into toolsdb.vision_cache_hits (image_hash, model_version)"
        f" values ({HASH.format(n='%s::int')}, '{MODEL}')"
    ),
    "vision_cache_get()": statement("get", "%s::int"),
}


def backend_cpu(pid: int) -> float | None:
    """Seconds of CPU (user + system) a local backend has used; None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Breakdown:
    cpu: dict[str, list[float]] = field(default_factory=dict)  # us per call, per round
    wall: dict[str, list[float]] = field(default_factory=dict)

    def us(self, name: str) -> float | None:
        return median(self.cpu[name]) if self.cpu.get(name) else None


def measure_breakdown(conninfo: str, calls: int, rounds: int) -> Breakdown:
    result = Breakdown()
    conns = {name: psycopg.connect(conninfo, autocommit=True) for name in BREAKDOWN}
    try:
        for name, sql in BREAKDOWN.items():
            for _ in range(BREAKDOWN_WARMUP):
                conns[name].execute(sql, (HOT_KEY,), prepare=True)
        for _ in range(rounds):
            for name, sql in BREAKDOWN.items():  # interleaved: drift hits every statement alike
                conn, pid = conns[name], conns[name].info.backend_pid
                cpu_before, wall_before = backend_cpu(pid), time.perf_counter()
                for _ in range(calls):
                    conn.execute(sql, (HOT_KEY,), prepare=True)
                wall, cpu_after = time.perf_counter() - wall_before, backend_cpu(pid)
                result.wall.setdefault(name, []).append(wall / calls * 1e6)
                if cpu_before is not None and cpu_after is not None:
                    result.cpu.setdefault(name, []).append((cpu_after - cpu_before) / calls * 1e6)
    finally:
        for conn in conns.values():
            conn.close()
    return result


# -- 5. validator -----------------------------------------------------------------------------------------

GOOD_TABLE = """
create table bench_good_{n} (
    item_id bigint generated always as identity primary key,
    name text not null,
    details jsonb not null default '{{}}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table bench_good_{n} is 'Items of the validator benchmark.';
comment on column bench_good_{n}.item_id is 'Generated id.';
comment on column bench_good_{n}.name is 'Display name.';
comment on column bench_good_{n}.details is 'Free-form details (JSON object).';
comment on column bench_good_{n}.created_at is 'When it was created.';
comment on column bench_good_{n}.updated_at is 'When it last changed.';
"""
BAD_TABLE = """
create table bench_bad_{n} (
    id integer,
    name varchar(255),
    email varchar(100),
    created timestamp,
    payload json
);
"""
SCRIPT_TABLES = 20
SCRIPT = "".join(GOOD_TABLE.replace("{n}", f"{{n}}_{t}") for t in range(SCRIPT_TABLES))
STATEMENTS = (
    ("good CREATE TABLE (pk, timestamptz, comments)", GOOD_TABLE, 1),
    ("bad CREATE TABLE (varchar, timestamp, no pk)", BAD_TABLE, 1),
    (f"{SCRIPT_TABLES}-table script", SCRIPT, SCRIPT_TABLES),
)


@dataclass
class Validation:
    name: str
    tables: int
    first: list[float] = field(default_factory=list)  # ms
    repeat: list[float] = field(default_factory=list)
    create: list[float] = field(default_factory=list)
    valid: set = field(default_factory=set)
    cached_first: set = field(default_factory=set)
    cached_repeat: set = field(default_factory=set)
    findings: int = 0


def measure_validator(conninfo: str, runs: int) -> tuple[list[Validation], str]:
    """Time validate() per statement; ([], why) if toolsdb.validator cannot be used."""
    try:
        validate: Callable = importlib.import_module("toolsdb.validator").validate
    except Exception as exc:  # written in parallel: absent, or not importable yet
        return [], f"validator not available ({type(exc).__name__}: {exc})"
    results = []
    serial = iter(range(1, 1_000_000))
    with psycopg.connect(conninfo, autocommit=True) as conn, psycopg.connect(conninfo) as creator:
        for name, template, tables in STATEMENTS:
            result = Validation(name, tables)
            for i in range(VALIDATE_WARMUP + runs):
                sql = template.format(n=f"{os.getpid()}_{next(serial)}")  # new text: not in the cache
                out: list = []
                try:
                    first = timed(lambda: out.append(validate(conn, sql))) * 1000  # noqa: B023
                    repeat = timed(lambda: out.append(validate(conn, sql))) * 1000  # noqa: B023
                except Exception as exc:
                    return results, f"validate() failed on the {name}: {type(exc).__name__}: {exc}"
                create = timed(lambda: creator.execute(sql)) * 1000  # noqa: B023
                creator.rollback()
                if i >= VALIDATE_WARMUP:
                    result.first.append(first)
                    result.repeat.append(repeat)
                    result.create.append(create)
                result.valid.add(out[0].get("valid"))
                result.cached_first.add(out[0].get("cached"))
                result.cached_repeat.add(out[1].get("cached"))
                result.findings = len(out[0].get("findings") or ())
            results.append(result)
    return results, ""


# -- report -----------------------------------------------------------------------------------------------


def report_reads(reads: Reads, rounds: int, seconds: int) -> list[str]:
    print(
        f"1. vision_cache_get() against a plain select of the same row, calls/s: pgbench -M prepared, one call\n"
        f"   per transaction (autocommit), {KEYS:,} entries; median of {rounds} rounds of {seconds}s, every cell"
        " interleaved"
    )
    print(
        f"   {'keys':22} {'clients':>7} {'get()':>10} {'plain':>10} {'get/plain':>10}  target >= {TARGET_RATIO}x"
        f"  {'floor/plain':>11}  max/min of rounds (get, plain, floor)"
    )
    lines = []
    for scenario, label in SCENARIOS.items():
        for clients in CLIENTS:
            get, plain = reads.rate(scenario, "get", clients), reads.rate(scenario, "plain", clients)
            ratio = get / plain
            ok = ratio >= TARGET_RATIO
            floor = reads.rate(scenario, "floor", clients) / plain
            noise = ", ".join(f"{spread(reads.rates[(scenario, side, clients)]):.2f}" for side in SIDES)
            print(
                f"   {label:22} {clients:>7} {get:10.0f} {plain:10.0f} {ratio:9.2f}x  {verdict(ok):18}"
                f"  {floor:10.2f}x  {noise}"
            )
            lines.append(
                f"vision_cache_get / plain select, {label}, {clients} client(s): {ratio:.2f}x"
                f" (target >= {TARGET_RATIO}x): {verdict(ok)}; the floor (select + append in one statement):"
                f" {floor:.2f}x"
            )
    print()
    return lines


def report_queueing(reads: Reads) -> None:
    low, high = min(CLIENTS), max(CLIENTS)
    print(f"2. Queueing: throughput with {high} clients / with {low}, get against plain (same keys)")
    print(f"   {'keys':22} {'get':>8} {'plain':>8} {'get scaling / plain scaling':>28}")
    for scenario, label in SCENARIOS.items():
        scaling = {side: reads.rate(scenario, side, high) / reads.rate(scenario, side, low) for side in SIDES}
        print(
            f"   {label:22} {scaling['get']:7.2f}x {scaling['plain']:7.2f}x {scaling['get'] / scaling['plain']:27.2f}x"
        )
    print(
        f"   (below 1: get scales worse than the plain read; {os.cpu_count()} CPUs are shared by the server and"
        " pgbench,\n   so neither can scale past them)"
    )
    print(f"   what the active backends were doing during the {high}-client runs (share of samples):")
    for (scenario, side), counts in reads.waits.items():
        total = sum(counts.values())
        top = ", ".join(f"{event} {n / total:.0%}" for event, n in counts.most_common(5)) if total else "no samples"
        print(f"     {SCENARIOS[scenario] + ', ' + side:30} {top}")
    print()


def report_flushes(flushes: list[Flush], hot_rate: float) -> None:
    print("3. vision_cache_hits (unlogged, one row per get) and vision_cache_flush_hits()")
    print(
        f"   {'hits of':42} {'rows':>10} {'entries':>8} {'hot key':>10} {'size':>9} {'flush':>9}"
        f" {'hits/s folded':>14} {'left':>5}"
    )
    for f in flushes:
        print(
            f"   {f.label:42} {f.rows:10,} {f.entries:8,} {f.hot_rows:10,} {f.bytes / 2**20:7.1f}MB"
            f" {f.seconds * 1000:7.0f}ms {f.folded / f.seconds:14,.0f} {f.left:5}"
        )
        if f.folded != f.rows:
            print(f"     folded {f.folded:,} of {f.rows:,} hits  <-- WRONG")
    if hot_rate:
        print(
            f"   the hot-key run's gets came at {hot_rate:,.0f}/s: one flush per minute would fold"
            f" ~{hot_rate * 60:,.0f} rows"
        )
    print()


def report_breakdown(result: Breakdown, calls: int, rounds: int) -> None:
    print(
        f"4. Where a get's time goes: one connection each, prepared, autocommit, hot key; {calls:,} calls x"
        f" {rounds} rounds,\n   interleaved; the backend's CPU per call (/proc; other load does not count) and"
        " the client's wall time per call"
    )
    base_cpu, base_wall = result.us("plain select"), median(result.wall["plain select"])
    print(f"   {'statement':32} {'backend CPU':>12} {'/ plain':>8} {'wall':>9} {'/ plain':>8}")
    for name in BREAKDOWN:
        cpu, wall = result.us(name), median(result.wall[name])
        cpu_text = f"{cpu:10.1f}us {cpu / base_cpu:7.2f}x" if cpu is not None else f"{'n/a':>12} {'':>8}"
        print(f"   {name:32} {cpu_text} {wall:7.1f}us {wall / base_wall:7.2f}x")
    source = "CPU" if base_cpu is not None else "wall"

    def figure(name: str) -> float:
        return result.us(name) if base_cpu is not None else median(result.wall[name])

    extra = figure("vision_cache_get()") - figure("plain select")
    append = figure(APPEND) - figure(FLOOR)
    print(
        f"   by difference ({source}): get - plain = {extra:.1f}us per call, of which the hit's append"
        f" (insert - select 1) ~{append:.1f}us\n   and the function call around the select (plpgsql,"
        f" tuplestore, its own plan and snapshot) ~{extra - append:.1f}us"
    )
    print()


def report_validator(results: list[Validation], why: str, runs: int) -> None:
    print(
        f"5. Validator time per statement: toolsdb.validator.validate(conn, sql), median of {runs} runs;\n"
        "   first = a text not validated before (a new table name each run), repeat = the same text again,\n"
        "   create = executing the same statements in a transaction that is rolled back"
    )
    if results:
        print(
            f"   {'statement':46} {'first':>9} {'repeat':>9} {'create':>9} {'first/create':>13}"
            f" {'first/table':>12}  valid, findings, cached (first; repeat)"
        )
        for r in results:
            first, repeat, create = median(r.first), median(r.repeat), median(r.create)
            flags = (
                f"{'/'.join(map(str, sorted(r.valid, key=str)))}, {r.findings},"
                f" {'/'.join(map(str, sorted(r.cached_first, key=str)))};"
                f" {'/'.join(map(str, sorted(r.cached_repeat, key=str)))}"
            )
            print(
                f"   {r.name:46} {first:7.2f}ms {repeat:7.2f}ms {create:7.2f}ms {first / create:12.2f}x"
                f" {first / r.tables:10.2f}ms  {flags}"
            )
    if why:
        print(f"   {why}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_agent_tools", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 1 s, 5 validator runs")
    args = parser.parse_args(argv)
    rounds, seconds, validate_runs = (2, 1, 5) if args.quick else (ROUNDS, SECONDS, VALIDATE_RUNS)
    calls, breakdown_rounds = (1000, 3) if args.quick else (BREAKDOWN_CALLS, BREAKDOWN_ROUNDS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-agent-tools-") as tmpdir:
        tmp = Path(tmpdir)
        server = EmbeddedServer(root=tmp / ".toolsdb")
        info = server.start()
        try:
            with psycopg.connect(server.conninfo(info, dbname="postgres"), autocommit=True) as admin:
                admin.execute(f"drop database if exists {DBNAME} with (force)")
                admin.execute(f"create database {DBNAME}")
                settings = {
                    name: admin.execute(f"show {name}").fetchone()[0]
                    for name in ("shared_buffers", "synchronous_commit", "fsync")
                }
            conninfo = server.conninfo(info, dbname=DBNAME)
            engine.migrate(Target(conninfo, "bench"))
            with psycopg.connect(conninfo, autocommit=True) as conn:
                progress(f"storing {KEYS:,} vision cache entries")
                conn.execute(STORE, (MODEL, KEYS))
                conn.execute("vacuum (analyze) toolsdb.vision_cache")
                check_statements(conn)
                conn.execute("select toolsdb.vision_cache_flush_hits()")
                reads = measure_reads(server, info, tmp, rounds, seconds)
                flushes = [flush(conn, f"all get runs ({rounds} rounds, both key sets)")]
                conn.execute("truncate toolsdb.vision_cache_hits")  # empty already: so its size is this run's
                hot = tmp / "hot_get.sql"
                hot.write_text(script("get", "hot"))
                hot_rate = pgbench_tps(server, info, DBNAME, hot, max(CLIENTS), seconds)
                flushes.append(flush(conn, f"one {seconds}s run, hot key, {max(CLIENTS)} clients"))
                progress("breakdown")
                breakdown = measure_breakdown(conninfo, calls, breakdown_rounds)
                conn.execute("select toolsdb.vision_cache_flush_hits()")
            progress("validator")
            validations, why = measure_validator(conninfo, validate_runs)
        finally:
            server.stop()
    version = server.check_binaries()
    print(
        f"toolsdb agent tools benchmarks on {version}, {os.cpu_count()} CPUs (shared by the server and pgbench);\n"
        "server settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + "\n"
    )
    targets = report_reads(reads, rounds, seconds)
    report_queueing(reads)
    report_flushes(flushes, hot_rate)
    report_breakdown(breakdown, calls, breakdown_rounds)
    report_validator(validations, why, validate_runs)
    print_targets(targets, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

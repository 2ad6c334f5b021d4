"""The hook-notification API's published latencies, through its own ``Database``:
`python -m tests.bench_compat` (`--quick`: a short smoke run).

That design published, "on modern hardware": insert event ~1 ms, get 1,000
unprocessed events ~5 ms, mark event processed ~1 ms. Here the same calls run
through ``toolsdb.compat.notifications.Database`` (outside a ``with`` block,
so each call is its own transaction, as the design's examples use it) on a
throwaway embedded server (Unix socket, superuser), and each is set against a
baseline measured in the same run, interleaved round by round:

* insert_event(session, type, payload) against a plain single-row
  ``insert into toolsdb.events`` in autocommit (one round trip);
* get_unprocessed_events(limit=1000), a claim of 1,000 rows with a lease and
  a token, against a plain ``select`` of the same 1,000 unprocessed rows;
* mark_event_processed(id), with the claim's token kept in the object,
  against a plain single-row ``update ... set processed_at = now()``.

Machines here are noisy and shared: figures are medians of ROUNDS rounds and
are read as ratios; the absolute milliseconds are printed for comparison with
the design's figures, not asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from toolsdb import migrate as engine
from toolsdb.compat.notifications import Database
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

from .bench_queue import median, progress, spread

DBNAME = "bench_compat"
ROUNDS = 7
CALLS = 500  # inserts and marks per round and side
BATCH = 1000  # the design's "1000 events"
PAYLOAD = {"tool_name": "Edit", "file": "app.ts", "session": "bench"}
PUBLISHED_MS = {"insert event": 1.0, "get 1,000 unprocessed": 5.0, "mark event processed": 1.0}


def per_call_ms(action, items) -> float:
    started = time.perf_counter()
    for item in items:
        action(item)
    return (time.perf_counter() - started) * 1000 / len(items)


def one_round(db: Database, plain: psycopg.Connection, calls: int, samples: dict[str, list[float]], flip: bool) -> None:
    # Insert: both sides, in an order that alternates between rounds.
    sides = [
        ("insert event", lambda _: db.insert_event("bench", "pre_tool_use", PAYLOAD)),
        (
            "insert event (plain)",
            lambda _: plain.execute(
                "insert into toolsdb.events (session_id, event_type, payload) values (%s, %s, %s)",
                ("bench", "pre_tool_use", Jsonb(PAYLOAD)),
            ),
        ),
    ]
    for name, action in reversed(sides) if flip else sides:
        samples[name].append(per_call_ms(action, range(calls)))
    # Drain what the inserts queued, then queue exactly BATCH events.
    plain.execute("update toolsdb.events set processed_at = now() where processed_at is null")
    plain.execute(
        "insert into toolsdb.events (session_id, event_type, payload) select 'bench', 'pre_tool_use', %s"
        " from generate_series(1, %s)",
        (Jsonb(PAYLOAD), BATCH),
    )
    plain.execute("analyze toolsdb.events")
    started = time.perf_counter()
    rows = plain.execute(
        "select * from toolsdb.events where processed_at is null and visible_at <= now() order by event_id limit %s",
        (BATCH,),
    ).fetchall()
    samples["get 1,000 unprocessed (plain)"].append((time.perf_counter() - started) * 1000)
    assert len(rows) == BATCH
    started = time.perf_counter()
    events = db.get_unprocessed_events(limit=BATCH)
    samples["get 1,000 unprocessed"].append((time.perf_counter() - started) * 1000)
    assert len(events) == BATCH
    ids = [e["id"] for e in events]
    half = min(calls, BATCH // 2)
    marks = [
        ("mark event processed", ids[:half], db.mark_event_processed),
        (
            "mark event processed (plain)",
            ids[half : 2 * half],
            lambda i: plain.execute("update toolsdb.events set processed_at = now() where event_id = %s", (i,)),
        ),
    ]
    for name, chosen, action in reversed(marks) if flip else marks:
        samples[name].append(per_call_ms(action, chosen))
    db._event_claims.clear()  # the claims of the half marked by the baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_compat", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 50 calls")
    args = parser.parse_args(argv)
    rounds, calls = (2, 50) if args.quick else (ROUNDS, CALLS)
    names = [*PUBLISHED_MS, *(f"{n} (plain)" for n in PUBLISHED_MS)]
    samples: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-compat-") as tmpdir:
        server = EmbeddedServer(root=Path(tmpdir) / ".toolsdb")
        info = server.start()
        try:
            with psycopg.connect(server.conninfo(info, dbname="postgres"), autocommit=True) as admin:
                admin.execute(f"drop database if exists {DBNAME} with (force)")
                admin.execute(f"create database {DBNAME}")
            conninfo = server.conninfo(info, dbname=DBNAME)
            engine.migrate(Target(conninfo, "bench"))
            db = Database(database=conninfo)
            with psycopg.connect(conninfo, autocommit=True) as plain:
                db.create_session("bench", "/bench")
                one_round(db, plain, min(calls, 50), {n: [] for n in names}, False)  # warm-up
                for number in range(rounds):
                    progress(f"round {number + 1} of {rounds}")
                    one_round(db, plain, calls, samples, flip=number % 2 == 1)
            db.close()
        finally:
            server.stop()
    version = server.check_binaries()
    print(f"hook-notification API latencies on {version}, {os.cpu_count()} CPUs, Unix socket;")
    print(f"median of {rounds} rounds ({calls} calls per round for inserts and marks, {BATCH} rows per get)\n")
    print("| call | Database ms | plain ms (baseline) | ratio | spread | published |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, published in PUBLISHED_MS.items():
        ours, base = median(samples[name]), median(samples[f"{name} (plain)"])
        print(
            f"| {name} | {ours:.3f} | {base:.3f} | {ours / base:.2f}x | {spread(samples[name]):.2f} | ~{published:g} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

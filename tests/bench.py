"""Benchmarks: `make bench` (python -m tests.bench).

Machines here are shared and noisy, so every figure is reported as a ratio
against a baseline measured in the same run, on the same throwaway server:

* baseline: `toolsdb status --database URL` as a process (Python start-up,
  import, connect, one catalog read): the floor of any toolsdb command;
* `toolsdb migrate` on an empty database (bootstrap + every migration + views);
* `toolsdb migrate` again (the no-op: lock, bootstrap check, views re-applied);
* in-process: cloning the migrated template (what each test pays) against
  migrating an empty database in-process.

Medians of several rounds; absolute times are printed too, for context only.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from toolsdb import migrate as engine
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

ROUNDS = 7


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_of(rounds: int, prepare: Callable[[int], None], action: Callable[[int], object]) -> float:
    samples = []
    for i in range(rounds):
        prepare(i)
        samples.append(timed(lambda i=i: action(i)))
    return statistics.median(samples)


def main() -> int:
    exe = str(Path(sys.executable).parent / "toolsdb")
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-") as tmp:
        server = EmbeddedServer(root=Path(tmp) / ".toolsdb")
        info = server.start()
        admin = psycopg.connect(server.conninfo(info, dbname="postgres"), autocommit=True)
        try:

            def fresh(name: str) -> None:
                admin.execute(f"drop database if exists {name} with (force)")
                admin.execute(f"create database {name}")

            def url(name: str) -> str:
                return server.url(info, dbname=name)

            def cli(*args: str) -> None:
                subprocess.run([exe, *args], check=True, capture_output=True)

            fresh("bench_status")
            baseline = median_of(ROUNDS, lambda i: None, lambda i: cli("status", "--database", url("bench_status")))
            from_empty = median_of(
                ROUNDS,
                lambda i: fresh(f"bench_empty_{i}"),
                lambda i: cli("migrate", "--database", url(f"bench_empty_{i}")),
            )
            no_op = median_of(ROUNDS, lambda i: None, lambda i: cli("migrate", "--database", url("bench_empty_0")))

            admin.execute("alter database bench_empty_0 with is_template true")
            clone = median_of(
                ROUNDS,
                lambda i: admin.execute(f"drop database if exists bench_clone_{i}"),
                lambda i: admin.execute(f"create database bench_clone_{i} template bench_empty_0"),
            )
            in_process = median_of(
                ROUNDS,
                lambda i: fresh(f"bench_inproc_{i}"),
                lambda i: engine.migrate(Target(server.conninfo(info, dbname=f"bench_inproc_{i}"), "bench")),
            )
        finally:
            admin.close()
            server.stop()

    version = server.check_binaries()
    print(f"toolsdb benchmarks on {version}, median of {ROUNDS} rounds\n")
    rows = [
        ("baseline: toolsdb status (process)", baseline, baseline),
        ("toolsdb migrate, empty database", from_empty, baseline),
        ("toolsdb migrate, nothing pending", no_op, baseline),
        ("in-process migrate, empty database", in_process, in_process),
        ("clone of the migrated template", clone, in_process),
    ]
    print(f"{'measure':40} {'median':>10} {'ratio':>8}  against")
    for name, value, base in rows:
        against = "status" if base is baseline else "in-process migrate"
        print(f"{name:40} {value * 1000:8.1f}ms {value / base:7.2f}x  {against}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

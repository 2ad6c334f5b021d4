"""Benchmarks: `make bench` (python -m tests.bench).

Machines here are shared and noisy, so every figure is reported as a ratio
against a baseline measured in the same run, on the same throwaway server:

* baseline: `toolsdb status --database URL` as a process (Python start-up,
  import, connect, one catalog read): the floor of any toolsdb command;
* `toolsdb migrate` on an empty database (bootstrap + every migration + views;
  target: at most 1.5 s, the process start included);
* `toolsdb migrate` again (the no-op: the launcher finds the tree recorded and
  only re-runs bootstrap and the actions, migrate_fast.py; target: at most
  0.3 s, the process start included);
* in-process: cloning the migrated template (what each test pays) against
  migrating an empty database in-process;
* audit cost: pgbench insert throughput into toolsdb.agents with change
  capture against the same table without it (triggers dropped), 1 and 4
  clients, rounds interleaved; the ratio is plain tps / audited tps (target:
  at most 1.3 at 1 and at 4 clients, docs/security.md "What capture costs");
* sealing and verifying 100,000 audit entries, against inserting them.

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
PGBENCH_SECONDS = 5
PGBENCH_ROUNDS = 5
AUDIT_TARGET = 1.3  # audited / unaudited insert, at 1 and at 4 clients
INSERT_AGENT = (
    "insert into toolsdb.agents (name, agent_type, model_provider, model_name, tags)\n"
    "values (gen_random_uuid()::text, 'coding', 'anthropic', 'claude', array['bench']);\n"
)


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
            audit_rows = audit_cost(server, info, admin, Path(tmp))
            seal_rows = seal_cost(server, info)
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
    targets = {"toolsdb migrate, empty database": 1.5, "toolsdb migrate, nothing pending": 0.3}
    print(f"{'measure':40} {'median':>10} {'ratio':>8}  against")
    for name, value, base in rows:
        against = "status" if base is baseline else "in-process migrate"
        target = targets.get(name)
        verdict = "" if target is None else f"  target <= {target} s: {'met' if value <= target else 'MISSED'}"
        print(f"{name:40} {value * 1000:8.1f}ms {value / base:7.2f}x  {against}{verdict}")
    print(f"\ninsert into toolsdb.agents, pgbench, median of {PGBENCH_ROUNDS} rounds of {PGBENCH_SECONDS}s")
    print(f"{'clients':>8} {'plain tps':>10} {'audited tps':>12} {'cost':>8}  (plain / audited)")
    for clients, plain, audited in audit_rows:
        cost = plain / audited
        verdict = "met" if cost <= AUDIT_TARGET else "MISSED"
        print(f"{clients:>8} {plain:10.0f} {audited:12.0f} {cost:7.2f}x  target <= {AUDIT_TARGET}: {verdict}")
    print("\n100,000 audit entries")
    insert_time = seal_rows[0][1]
    for name, value in seal_rows:
        print(f"{name:40} {value * 1000:8.1f}ms {value / insert_time:7.2f}x  against inserting them")
    return 0


def pgbench_tps(
    server: EmbeddedServer, info, dbname: str, script: Path, clients: int, seconds: int = PGBENCH_SECONDS
) -> float:
    out = subprocess.run(
        [
            str(server.binary("pgbench")),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            "-f",
            str(script),
            "-h",
            info.socket_dir,
            "-p",
            str(info.port),
            "-U",
            "postgres",
            dbname,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("tps = "))
    return float(line.split()[2])


def audit_cost(server: EmbeddedServer, info, admin: psycopg.Connection, tmp: Path) -> list[tuple[int, float, float]]:
    """pgbench tps of the same insert into an audited and an unaudited agents table."""
    for name in ("bench_plain", "bench_audited"):
        admin.execute(f"drop database if exists {name} with (force)")
        admin.execute(f"create database {name}")
        engine.migrate(Target(server.conninfo(info, dbname=name), "bench"))
    with psycopg.connect(server.conninfo(info, dbname="bench_plain"), autocommit=True) as conn:
        conn.execute("drop trigger _900_audit on toolsdb.agents")
        conn.execute("drop trigger _900_audit_truncate on toolsdb.agents")
    script = tmp / "insert_agent.sql"
    script.write_text(INSERT_AGENT)
    results = []
    for clients in (1, 4):
        plain, audited = [], []
        for _ in range(PGBENCH_ROUNDS):  # interleaved, so drift hits both alike
            plain.append(pgbench_tps(server, info, "bench_plain", script, clients))
            audited.append(pgbench_tps(server, info, "bench_audited", script, clients))
        results.append((clients, statistics.median(plain), statistics.median(audited)))
    return results


def seal_cost(server: EmbeddedServer, info) -> list[tuple[str, float]]:
    """Insert 100,000 audit entries, then seal and verify them."""
    with psycopg.connect(server.conninfo(info, dbname="bench_audited"), autocommit=True) as conn:
        conn.execute("select toolsdb.audit_seal()")
        insert = timed(
            lambda: conn.execute(
                "insert into toolsdb.audit_logs (action, entity_type, entity_id, details)"
                " select 'bench_event', 'bench', g::text, jsonb_build_object('n', g)"
                " from generate_series(1, 100000) as g"
            )
        )
        seal = timed(lambda: conn.execute("select toolsdb.audit_seal()"))
        verify = timed(lambda: conn.execute("select count(*) from toolsdb.audit_verify()").fetchone())
    return [("insert 100,000 entries (baseline)", insert), ("audit_seal()", seal), ("audit_verify()", verify)]


if __name__ == "__main__":
    raise SystemExit(main())

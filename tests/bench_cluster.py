"""Citus cluster against one node: `python -m tests.bench_cluster` (`--quick`: a smoke run).

A throwaway `toolsdb cluster` (a coordinator and two workers, in a temp
folder) with the schema migrated onto the coordinator (docs/citus.md), and,
as the baseline, a database of the coordinator's own server without Citus:
the same binaries, the same machine, the same moment. Both are seeded.
Everything runs as the superuser over Unix sockets. Needs the Citus build
(TOOLSDB_CITUS_DIR, else ../shared/citus); exits 0 with a line saying so
without it. On a machine with two shared cores this measures what the
cluster costs, not how it scales: the three nodes share the cores.

1. Rows per node after seeding: every toolsdb table with rows, counted on each
   node that holds it (run_command_on_placements for the tables Citus
   manages; the coordinator's own count for the others).
2. Hook events: CLIENTS threads, each its own connection, call
   toolsdb.hook_ingest() with a PreToolUse payload for one of SESSIONS
   sessions drawn at random, for SECONDS; rounds alternate between the
   cluster and the single node (ROUNDS each), at 1 and at 4 clients; the
   figure is the median of the rounds' events per second.
3. Claim and ack: EVENTS waiting events of CLAIM_SESSIONS sessions (on the
   cluster a session's events lie in one shard), then CLIENTS threads claim batches of
   BATCH (get_unprocessed_events) and ack them (mark_events_processed), each
   in its own transaction, until the queue is empty; events per second, same
   alternation.
4. memory_set(): CLIENTS threads upsert memories of the seeded agents (1,000
   keys drawn at random), same alternation: an audited write, captured on the
   coordinator on one node and on the worker (into the audit outbox) on the
   cluster. Then one audit_collect() moves the cluster's entries into the log,
   timed.
5. Runs of agents (the work group, distributed by project on the cluster):
   WORK_PROJECTS projects with a task each; CLIENTS threads drive runs of a
   task drawn at random through execution_create(), execution_start(),
   execution_log() and execution_complete() (each looks the project up,
   then writes on its shard; the rollups are kept by the runs' triggers);
   runs per second, same alternation. Twice: each call on its own with the
   ids alone (the lookup reads every shard on the cluster), and each run in
   one transaction acting for its project (set local toolsdb.project_id, as
   the application does: the lookup reads that project's shard).
6. Rows per node again, after that load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from toolsdb import cluster as cluster_module
from toolsdb.errors import ToolsdbError
from toolsdb.treestate import CITUS_PRESENT

from .conftest import run_cli

CLAIM_SESSIONS = 100  # the claim rounds' events come from this many sessions
PAYLOAD = {"hook_event_name": "PreToolUse", "cwd": "/work", "tool_name": "Bash", "tool_input": {"command": "ls -la"}}


def cli(*args: str, timeout: float = 600) -> None:
    done = run_cli(*args, env={cluster_module.CITUS_ENV: str(cluster_module.citus_dir())}, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"toolsdb {' '.join(args)} failed: {done.stderr.strip()}")


def rows_per_node(url: str) -> dict[str, dict[str, int]]:
    """table -> node -> rows, for every toolsdb table holding rows."""
    per: dict[str, dict[str, int]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        citus = conn.execute(CITUS_PRESENT).fetchone()[0]
        managed = (
            {r[0] for r in conn.execute("select logicalrelid::regclass::text from pg_dist_partition").fetchall()}
            if citus
            else set()
        )
        tables = [
            r[0]
            for r in conn.execute(
                "select format('toolsdb.%I', c.relname) from pg_class as c"
                " where c.relnamespace = 'toolsdb'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition"
                " order by 1"
            ).fetchall()
        ]
        for table in tables:
            short = table.removeprefix("toolsdb.")
            if short in managed:
                counts: dict[str, int] = {}
                for node, result in conn.execute(
                    "select nodename, result from run_command_on_placements(%s, 'select count(*) from %%s')",
                    (table,),
                ).fetchall():
                    name = Path(node).parent.name if node.startswith("/") else node
                    counts[name] = counts.get(name, 0) + int(result)
            else:
                counts = {"coordinator": conn.execute(f"select count(*) from {table}").fetchone()[0]}
            if any(counts.values()):
                per[short] = counts
    return per


def timed_round(
    url: str, clients: int, seconds: float, step: Callable[[psycopg.Connection, random.Random], object]
) -> float:
    """CLIENTS threads, each on its own connection (autocommit) with its own seeded
    random source, call step() until SECONDS have passed; steps per second, all together."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < stop:
                step(conn, rng)
                done[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def hook_round(url: str, clients: int, sessions: int, seconds: float, tag: str) -> float:
    def step(conn: psycopg.Connection, rng: random.Random) -> None:
        payload = dict(PAYLOAD, session_id=f"{tag}-{rng.randrange(sessions)}")
        conn.execute("select toolsdb.hook_ingest(%s::jsonb, '{}'::jsonb)", (json.dumps(payload),))

    return timed_round(url, clients, seconds, step)


def memory_round(url: str, clients: int, seconds: float) -> float:
    """memory_set() calls per second: an audited upsert, captured into the
    coordinator's log on one node and into the worker's outbox on the cluster."""
    with psycopg.connect(url, autocommit=True) as conn:
        agents = [r[0] for r in conn.execute("select agent_id from toolsdb.agents order by name").fetchall()]

    def step(conn: psycopg.Connection, rng: random.Random) -> None:
        conn.execute(
            "select toolsdb.memory_set(%s, %s, %s)",
            (rng.choice(agents), f"bench-{rng.randrange(1000)}", f"v{rng.random()}"),
        )

    return timed_round(url, clients, seconds, step)


WORK_PROJECTS = 20  # the run rounds' tasks, one per project


def work_tasks(url: str) -> tuple[str, list[tuple[str, str]]]:
    """An agent and one task in each of WORK_PROJECTS projects (made once per target)."""
    with psycopg.connect(url, autocommit=True) as conn:
        owner = conn.execute("select user_id from toolsdb.users order by username limit 1").fetchone()[0]
        agent = conn.execute("select agent_id from toolsdb.agents order by name limit 1").fetchone()[0]
        tasks = []
        for n in range(WORK_PROJECTS):
            project = conn.execute(
                "insert into toolsdb.projects (slug, name, owner_id) values (%s, %s, %s)"
                " on conflict (slug) do update set name = excluded.name returning project_id",
                (f"bench-work-{n}", f"Bench work {n}", owner),
            ).fetchone()[0]
            task = conn.execute(
                "insert into toolsdb.tasks (project_id, title) values (%s, 'bench') returning task_id", (project,)
            ).fetchone()[0]
            tasks.append((str(project), str(task)))
    return agent, tasks


def run_round(url: str, clients: int, seconds: float, agent: str, tasks: list[tuple[str, str]], acting: bool) -> float:
    """Runs per second: create, start, log once and complete a run of a task drawn at random;
    acting: in one transaction that acts for the task's project (set local toolsdb.project_id,
    as the application does), else each call on its own with the ids alone."""

    def step(conn: psycopg.Connection, rng: random.Random) -> None:
        project, task = rng.choice(tasks)
        with conn.transaction() if acting else contextlib.nullcontext():
            if acting:
                conn.execute(f"set local toolsdb.project_id = '{project}'")
            run = conn.execute("select toolsdb.execution_create(%s, %s)", (agent, task)).fetchone()[0]
            conn.execute("select toolsdb.execution_start(%s)", (run,))
            conn.execute("select toolsdb.execution_log(%s, 'bench')", (run,))
            conn.execute("select toolsdb.execution_complete(%s, '{}', 1000, 100, 0)", (run,))

    return timed_round(url, clients, seconds, step)


def claim_round(url: str, clients: int, events: int, batch: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update toolsdb.events set processed_at = now() where processed_at is null")
        # The events of CLAIM_SESSIONS sessions, as hooks send them: on the
        # cluster one session's events all lie in one shard.
        conn.execute(
            "select toolsdb.create_session('bench-claims-' || n, '/work') from generate_series(1, %s) as n",
            (CLAIM_SESSIONS,),
        )
        conn.execute(
            "insert into toolsdb.events (session_id, event_type, payload)"
            " select 'bench-claims-' || (1 + g %% %s), 'PreToolUse', %s::jsonb from generate_series(1, %s) as g",
            (CLAIM_SESSIONS, json.dumps(PAYLOAD), events),
        )
    acked = [0] * clients

    def client(n: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                rows = conn.execute(
                    "select event_id, claim_token from toolsdb.get_unprocessed_events(%s, '5 minutes', %s)",
                    (batch, f"bench-{n}"),
                ).fetchall()
                if not rows:
                    return
                conn.execute(
                    "select toolsdb.mark_events_processed(%s, %s)", ([r[0] for r in rows], rows[0][1])
                ).fetchone()
                acked[n] += len(rows)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if sum(acked) != events:
        raise SystemExit(f"claim round acked {sum(acked)} of {events} events")
    return events / elapsed


def show_rows(title: str, cluster: dict[str, dict[str, int]], single: dict[str, dict[str, int]]) -> None:
    nodes = sorted({n for counts in cluster.values() for n in counts}, key=lambda n: (n != "coordinator", n))
    print(f"\n{title}")
    print(f"| table | one node | {' | '.join(nodes)} |")
    print(f"|---|---|{'---|' * len(nodes)}")
    for table in sorted(set(cluster) | set(single)):
        counts = cluster.get(table, {})
        row = " | ".join(f"{counts[n]:,}" if n in counts else "" for n in nodes)
        print(f"| {table} | {sum(single.get(table, {}).values()):,} | {row} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short rounds")
    args = parser.parse_args()
    try:
        cluster_module.citus_dir()
    except ToolsdbError as exc:
        print(f"bench_cluster: skipped: {exc}")
        return
    rounds, seconds, events = (2, 1.0, 2_000) if args.quick else (5, 5.0, 20_000)
    sessions, batch = 100, 100
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-cluster-") as folder:
        home = Path(folder) / "cluster"
        cli("cluster", "start", "--dir", str(home))
        try:
            done = run_cli(
                "cluster", "url", "--dir", str(home), env={cluster_module.CITUS_ENV: str(cluster_module.citus_dir())}
            )
            coordinator = done.stdout.strip()
            single = coordinator.replace("/toolsdb?", "/toolsdb_single?")
            with psycopg.connect(coordinator.replace("/toolsdb?", "/postgres?"), autocommit=True) as conn:
                conn.execute("create database toolsdb_single")
            for url in (coordinator, single):
                cli("migrate", "--database", url)
                cli("seed", "--database", url)
            show_rows("Rows per node after seeding", rows_per_node(coordinator), rows_per_node(single))
            targets = {"cluster": coordinator, "one node": single}
            work = {name: work_tasks(url) for name, url in targets.items()}
            print("\nThroughput (median of rounds; the rounds alternate cluster / one node)")
            print("| what | clients | one node | cluster | cluster / one node |")
            print("|---|---|---|---|---|")
            for clients in (1, 4):
                hook: dict[str, list[float]] = {"cluster": [], "one node": []}
                claim: dict[str, list[float]] = {"cluster": [], "one node": []}
                memory: dict[str, list[float]] = {"cluster": [], "one node": []}
                runs: dict[str, list[float]] = {"cluster": [], "one node": []}
                acting: dict[str, list[float]] = {"cluster": [], "one node": []}
                for n in range(rounds):
                    order = list(targets) if n % 2 == 0 else list(reversed(targets))
                    for name in order:
                        hook[name].append(hook_round(targets[name], clients, sessions, seconds, f"bench-{clients}"))
                    for name in order:
                        claim[name].append(claim_round(targets[name], clients, events, batch))
                    for name in order:
                        memory[name].append(memory_round(targets[name], clients, seconds))
                    for name in order:
                        runs[name].append(run_round(targets[name], clients, seconds, *work[name], acting=False))
                    for name in order:
                        acting[name].append(run_round(targets[name], clients, seconds, *work[name], acting=True))
                for what, figures in (
                    ("hook_ingest(), events/s", hook),
                    (f"claim+ack of {batch}, events/s", claim),
                    ("memory_set() (audited), calls/s", memory),
                    ("runs (create, start, log, complete) by id, runs/s", runs),
                    ("runs, acting for the project (one transaction), runs/s", acting),
                ):
                    one, many = statistics.median(figures["one node"]), statistics.median(figures["cluster"])
                    print(f"| {what} | {clients} | {one:,.0f} | {many:,.0f} | {many / one:.2f}x |")
            with psycopg.connect(coordinator, autocommit=True) as conn:
                started = time.monotonic()
                moved = conn.execute("select toolsdb.audit_collect()").fetchone()[0]
                took = time.monotonic() - started
            print(f"\naudit_collect() on the cluster: {moved:,} entries in {took:.2f} s ({moved / took:,.0f}/s)")
            show_rows("Rows per node after the load", rows_per_node(coordinator), rows_per_node(single))
        finally:
            cli("cluster", "remove", "--force", "--dir", str(home))


if __name__ == "__main__":
    main()

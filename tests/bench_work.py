"""Reporting-view benchmark: `python -m tests.bench_work`.

Starts a throwaway embedded server, migrates one database and fills it with
set-based SQL as superuser (not through the toolsdb functions; the loading
session sets session_replication_role = replica, so the audit, rules and
foreign-key triggers do not fire; every row still meets the tables' CHECKs):
20 users, 50 projects, 40 agents over 5 models with their prices and 100,000
tasks. Executions come in two phases, each followed by `vacuum (analyze)` (the
steady state autovacuum keeps on a table this size: statistics, and the
visibility map that the covering indexes' index-only scans need) and a
measurement of every view in repeatable/82_work_views.sql with its typical filter:

* phase 1: 100,000 executions, 100,000 activity_feed rows, 1,000 pr_validations,
  1,000 error_logs;
* phase 2: 1,000,000 executions, 1,000,000 activity_feed rows, 10,000 of each
  of the others (the tasks stay at 100,000).

Each query runs 3 times to warm up, then 30 times with a random project or agent
(as superuser, so row-level security adds nothing; unprepared statements, so
every run is planned with its own values). The table gives p50 and p95 per phase,
the growth ratio p95(1M) / p95(100k) (the machine-independent figure: indexed
paths should stay nearly flat) and whether p95 is under the 50 ms dashboard
target. Queries whose p95 at 1M misses the target or grew more than 3x get
their EXPLAIN ANALYZE printed.

The load skips triggers, so each phase ends with execution_rollups_rebuild()
(task_execution_summary, agent_performance and project_health read the runs'
rollups). Last, what keeping the rollups costs the writes of a run: the median
time of execution_create, _start and _complete with the rollup triggers against
the same with them disabled, in interleaved rounds.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from toolsdb import migrate as engine
from toolsdb.server import EmbeddedServer
from toolsdb.target import Target

DBNAME = "bench_work"
WARMUP = 3
RUNS = 30
TARGET_MS = 50.0
TASKS = 100_000
PHASES = (  # executions and activity rows at the end of the phase, pr_validations and error_logs likewise
    (100_000, 1_000),
    (1_000_000, 10_000),
)
SLOW_GROWTH = 3.0
LIFECYCLE_ROUNDS = 5
LIFECYCLE_RUNS = 200

MODELS = (  # provider, model, input, output, cached USD per million tokens
    ("anthropic", "claude-sonnet-4", 3.0, 15.0, 0.3),
    ("anthropic", "claude-opus-4", 15.0, 75.0, 1.5),
    ("openai", "gpt-4.1", 2.0, 8.0, 0.5),
    ("openai", "o3", 2.0, 8.0, 0.5),
    ("google", "gemini-2.5-pro", 1.25, 10.0, 0.31),
)
AGENT_TYPES = ("claude_code", "codex", "aider", "reviewer")

# Ids are md5-derived, so every statement can compute the id of user, project,
# agent, task or execution n without a join: md5('task' || n)::uuid.
# Task n belongs to project n % 50 + 1; execution g works on task (g * 7919) % 100000 + 1
# (a permutation: at 1M every task has 10 runs) with agent g % 40 + 1.
LOAD_USERS = """
insert into toolsdb.users (user_id, username, email, display_name, role, created_at, updated_at)
select md5('user' || g)::uuid, 'bench-user-' || g, 'user' || g || '@example.com', 'Bench user ' || g,
    (array['admin', 'manager', 'user', 'service'])[g % 4 + 1], now(), now()
from generate_series(1, 20) as g
"""
LOAD_PROJECTS = """
insert into toolsdb.projects (project_id, slug, name, owner_id, status, repository_url, created_at, updated_at)
select md5('project' || g)::uuid, 'bench-project-' || g, 'Bench project ' || g, md5('user' || (g % 20 + 1))::uuid,
    case when g % 10 = 0 then 'paused' when g % 25 = 0 then 'archived' else 'active' end,
    'https://github.com/bench/project-' || g, now(), now()
from generate_series(1, 50) as g
"""
LOAD_MODELS = """
insert into toolsdb.model_prices (model_provider, model_name, valid_from, input_usd_per_mtok, output_usd_per_mtok,
    cached_input_usd_per_mtok, cache_write_5m_usd_per_mtok, cache_write_1h_usd_per_mtok)
select p.provider, p.model, '2000-01-01', p.input, p.output, p.cached, p.input * 1.25, p.input * 2
from (values (%s, %s, %s::numeric, %s::numeric, %s::numeric)) as p (provider, model, input, output, cached)
"""
LOAD_AGENTS = """
insert into toolsdb.agents (agent_id, name, agent_type, model_provider, model_name, tags, created_at, updated_at)
select md5('agent' || g)::uuid, 'bench-agent-' || g, (%(types)s::text[])[g %% 4 + 1],
    (%(providers)s::text[])[g %% 5 + 1], (%(models)s::text[])[g %% 5 + 1], array['bench'], now(), now()
from generate_series(1, 40) as g
"""
LOAD_TASKS = """
insert into toolsdb.tasks (task_id, project_id, parent_task_id, title, description, type, status, priority,
    priority_label, labels, assigned_to_user_id, assigned_to_agent_id, github_issue_number, github_pr_number,
    created_by, closed_at, created_at, updated_at)
select md5('task' || g)::uuid, md5('project' || (g %% 50 + 1))::uuid,
    case when g %% 10 = 0 and g > 50 then md5('task' || (g - 50))::uuid end,
    'Task ' || g || ': '
    || (array['fix login', 'add export', 'speed up report', 'write docs', 'refactor api'])[g %% 5 + 1],
    'Generated task ' || g || ' for the reporting benchmark.',
    (array['bug', 'feature', 'refactor', 'test', 'documentation', 'task', 'chore'])[g %% 7 + 1],
    s.status, (g * 7) %% 11, toolsdb.priority_label_of(((g * 7) %% 11)::smallint),
    (array['bug', 'frontend', 'backend', 'db', 'infra', 'urgent', 'docs', 'ui'])[g %% 8 + 1 : g %% 8 + (g / 8) %% 4],
    case when r.r2 < 0.6 then md5('user' || (g %% 20 + 1))::uuid end,
    case when r.r2 >= 0.5 then md5('agent' || (g %% 40 + 1))::uuid end,
    g, case when s.status in ('in_review', 'completed', 'failed', 'cancelled') and g %% 3 <> 0 then g end,
    'bench',
    case when s.status in ('completed', 'failed', 'cancelled') then r.created + interval '2 days' end,
    r.created, r.created + interval '1 day'
from generate_series(1, %(tasks)s::int) as g
-- (g in the lateral makes it run per row: without it PostgreSQL draws once for every task)
cross join lateral (
    select random() + g * 0 as r1, random() as r2, now() - random() * interval '365 days' as created
) as r
cross join lateral (
    select case
        when r.r1 < 0.05 then 'draft' when r.r1 < 0.35 then 'open' when r.r1 < 0.50 then 'in_progress'
        when r.r1 < 0.55 then 'in_review' when r.r1 < 0.60 then 'blocked' when r.r1 < 0.90 then 'completed'
        when r.r1 < 0.95 then 'failed' else 'cancelled'
    end as status
) as s
"""
LOAD_EXECUTIONS = """
insert into toolsdb.agent_executions (execution_id, agent_id, task_id, project_id, agent_type, model_provider,
    model_name, status, input_tokens, output_tokens, cached_tokens, cost_usd, started_at, completed_at, created_at,
    updated_at)
select md5('exec' || g)::uuid, md5('agent' || x.a)::uuid, md5('task' || x.t)::uuid,
    md5('project' || (x.t %% 50 + 1))::uuid,
    (%(types)s::text[])[x.a %% 4 + 1], (%(providers)s::text[])[x.a %% 5 + 1], (%(models)s::text[])[x.a %% 5 + 1],
    s.status, k.input_tokens, k.output_tokens, k.cached_tokens,
    case when s.finished then round((k.input_tokens * (%(input)s::numeric[])[x.a %% 5 + 1]
        + k.output_tokens * (%(output)s::numeric[])[x.a %% 5 + 1]
        + k.cached_tokens * (%(cached)s::numeric[])[x.a %% 5 + 1]) / 1000000, 6) end,
    case when s.status <> 'pending' then x.created + interval '5 seconds' end,
    case when s.finished then x.created + interval '5 seconds' + x.r2 * interval '30 minutes' end,
    x.created, x.created
from generate_series(%(lo)s::bigint, %(hi)s::bigint) as g
cross join lateral (
    select g %% 40 + 1 as a, (g * 7919) %% %(tasks)s::int + 1 as t, random() as r1, random() as r2,
        now() - random() * interval '365 days' as created
) as x
cross join lateral (
    select st.status, st.status in ('success', 'failure', 'timeout', 'cancelled') as finished
    from (select case
        when x.r1 < 0.70 then 'success' when x.r1 < 0.82 then 'failure' when x.r1 < 0.87 then 'timeout'
        when x.r1 < 0.92 then 'cancelled' when x.r1 < 0.97 then 'running' else 'pending'
    end as status) as st
) as s
cross join lateral (
    select case when s.status = 'pending' then 0 else (x.r2 * 200000)::bigint end as input_tokens,
        case when s.finished then (x.r2 * 20000)::bigint else 0 end as output_tokens,
        case when s.status = 'pending' then 0 else (x.r1 * 100000)::bigint end as cached_tokens
) as k
"""
LOAD_ACTIVITY = """
insert into toolsdb.activity_feed (project_id, task_id, user_id, agent_id, activity_type, summary, metadata,
    created_at)
select md5('project' || (x.t %% 50 + 1))::uuid, md5('task' || x.t)::uuid,
    case when g %% 3 = 0 then md5('user' || (g %% 20 + 1))::uuid end,
    case when g %% 3 <> 0 then md5('agent' || (g %% 40 + 1))::uuid end,
    (array['task.created', 'task.updated', 'execution.completed', 'comment.added', 'pr.opened'])[g %% 5 + 1],
    'Activity ' || g || ' on task ' || x.t, '{}', now() - (%(hi)s::bigint - g) * interval '30 seconds'
from generate_series(%(lo)s::bigint, %(hi)s::bigint) as g
cross join lateral (select (g * 7919) %% %(tasks)s::int + 1 as t) as x
"""
# Validation v is about execution v * 97 and its task.
LOAD_VALIDATIONS = """
insert into toolsdb.pr_validations (validation_id, task_id, execution_id, project_id, pr_number, repository,
    branch_name, status, validation_results, started_at, completed_at, created_at, updated_at)
select md5('validation' || v)::uuid, md5('task' || x.t)::uuid, md5('exec' || x.e)::uuid,
    md5('project' || (x.t %% 50 + 1))::uuid, v, 'bench/project-' || (x.t %% 50 + 1) || '-repo-' || v %% 3,
    'bench/branch-' || v, s.status,
    case when s.status = 'pending' then '{}'::jsonb
        else jsonb_build_object('tests', jsonb_build_object('passed', s.status <> 'failed')) end,
    case when s.status in ('running', 'passed', 'failed') then x.created + interval '1 minute' end,
    case when s.status in ('passed', 'failed', 'cancelled') then x.created + interval '1 minute'
        + x.r2 * interval '20 minutes' end,
    x.created, x.created
from generate_series(%(lo)s::bigint, %(hi)s::bigint) as v
cross join lateral (
    select v * 97 as e, (v * 97 * 7919) %% %(tasks)s::int + 1 as t, random() as r1, random() as r2,
        now() - random() * interval '365 days' as created
) as x
cross join lateral (
    select case
        when x.r1 < 0.10 then 'pending' when x.r1 < 0.20 then 'running' when x.r1 < 0.70 then 'passed'
        when x.r1 < 0.90 then 'failed' else 'cancelled'
    end as status
) as s
"""
LOAD_ERRORS = """
insert into toolsdb.error_logs (error_id, task_id, execution_id, project_id, error_type, error_message, context,
    recovery_attempts, resolved, resolved_at, created_at, updated_at)
select md5('error' || v)::uuid, md5('task' || x.t)::uuid,
    case when v %% 4 <> 0 then md5('exec' || x.e)::uuid end, md5('project' || (x.t %% 50 + 1))::uuid,
    (array['database', 'api', 'validation', 'network', 'timeout', 'authentication', 'authorization',
        'system'])[v %% 8 + 1],
    'Generated error ' || v, '{}', v %% 4, x.r1 < 0.6,
    case when x.r1 < 0.6 then x.created + interval '1 hour' end, x.created, x.created
from generate_series(%(lo)s::bigint, %(hi)s::bigint) as v
cross join lateral (
    select v * 89 as e, (v * 89 * 7919) %% %(tasks)s::int + 1 as t, random() as r1,
        now() - random() * interval '365 days' as created
) as x
"""


@dataclass
class Query:
    view: str
    filter: str
    sql: str
    param: str  # "project", "agent" or "" (no parameter)
    dashboard: bool = True
    results: list[tuple[float, float]] = field(default_factory=list)  # (p50, p95) in ms per phase


QUERIES = [
    Query(
        "active_tasks",
        "one project, priority desc, limit 50",
        "select * from toolsdb.active_tasks where project_id = %s order by priority desc, created_at limit 50",
        "project",
    ),
    Query(
        "task_execution_summary",
        "one project",
        "select * from toolsdb.task_execution_summary where project_id = %s",
        "project",
    ),
    Query(
        "pr_validation_summary",
        "one project",
        "select * from toolsdb.pr_validation_summary where project_id = %s",
        "project",
    ),
    Query("error_summary", "one project", "select * from toolsdb.error_summary where project_id = %s", "project"),
    Query(
        "recent_activity",
        "logged_at desc, limit 50 (audit log ~empty)",
        "select * from toolsdb.recent_activity order by logged_at desc limit 50",
        "",
    ),
    Query(
        "agent_performance",
        "one agent",
        "select * from toolsdb.agent_performance where agent_id = %s",
        "agent",
        dashboard=False,
    ),
    Query("project_health", "one project", "select * from toolsdb.project_health where project_id = %s", "project"),
    Query(
        "cost_by_day",
        "one project, last 30 days",
        "select * from toolsdb.cost_by_day where project_id = %s and day >= current_date - 30 order by day",
        "project",
    ),
    Query(
        "activity_feed (table)",
        "one project, newest 50",
        "select * from toolsdb.activity_feed where project_id = %s order by created_at desc limit 50",
        "project",
    ),
]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = fraction * (len(ordered) - 1)
    low = int(index)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def load_static(conn: psycopg.Connection) -> None:
    arrays = {
        "types": list(AGENT_TYPES),
        "providers": [m[0] for m in MODELS],
        "models": [m[1] for m in MODELS],
    }
    conn.execute(LOAD_USERS)
    conn.execute(LOAD_PROJECTS)
    for model in MODELS:
        conn.execute(LOAD_MODELS, model)
    conn.execute(LOAD_AGENTS, arrays)
    conn.execute(LOAD_TASKS, {"tasks": TASKS})


def load_phase(conn: psycopg.Connection, lo: int, hi: int, small_lo: int, small_hi: int) -> None:
    params = {
        "types": list(AGENT_TYPES),
        "providers": [m[0] for m in MODELS],
        "models": [m[1] for m in MODELS],
        "input": [m[2] for m in MODELS],
        "output": [m[3] for m in MODELS],
        "cached": [m[4] for m in MODELS],
        "lo": lo,
        "hi": hi,
        "tasks": TASKS,
    }
    conn.execute(LOAD_EXECUTIONS, params)
    conn.execute(LOAD_ACTIVITY, params)
    small = {"lo": small_lo, "hi": small_hi, "tasks": TASKS}
    conn.execute(LOAD_VALIDATIONS, small)
    conn.execute(LOAD_ERRORS, small)


def measure(conn: psycopg.Connection, rng: random.Random, projects: list, agents: list) -> None:
    for query in QUERIES:
        pool = {"project": projects, "agent": agents, "": [None]}[query.param]

        def run(query: Query = query, pool: list = pool) -> None:
            value = rng.choice(pool)
            conn.execute(query.sql, (value,) if query.param else None).fetchall()

        for _ in range(WARMUP):
            run()
        samples = [timed(run) * 1000 for _ in range(RUNS)]
        query.results.append((statistics.median(samples), percentile(samples, 0.95)))


def rollup_write_cost(conn: psycopg.Connection) -> tuple[float, float]:
    """Seconds per run (create, start, complete: three statements) with the rollup
    triggers and without them (disabled), in interleaved rounds on the loaded database."""
    conn.execute("set session_replication_role = origin")
    task, agent = conn.execute(
        "select t.task_id, a.agent_id from toolsdb.tasks as t cross join toolsdb.agents as a"
        " where t.status = 'in_progress' order by t.task_id, a.agent_id limit 1"
    ).fetchone()

    def runs() -> None:
        for _ in range(LIFECYCLE_RUNS):
            run = conn.execute("select toolsdb.execution_create(%s, %s)", (agent, task)).fetchone()[0]
            conn.execute("select toolsdb.execution_start(%s)", (run,))
            conn.execute("select toolsdb.execution_complete(%s, null, 100, 200, 10)", (run,))

    triggers = ("insert", "update", "delete", "truncate")
    with_rollups, without = [], []
    for _ in range(LIFECYCLE_ROUNDS):
        with_rollups.append(timed(runs) / LIFECYCLE_RUNS)
        for event in triggers:
            conn.execute(f"alter table toolsdb.agent_executions disable trigger _800_execution_rollups_{event}")
        without.append(timed(runs) / LIFECYCLE_RUNS)
        for event in triggers:
            conn.execute(f"alter table toolsdb.agent_executions enable trigger _800_execution_rollups_{event}")
    return statistics.median(with_rollups), statistics.median(without)


def explain(conn: psycopg.Connection, query: Query, value: object) -> str:
    rows = conn.execute(
        "explain (analyze, costs off, timing on, summary on) " + query.sql, (value,) if query.param else None
    ).fetchall()
    return "\n".join("    " + row[0] for row in rows)


def main() -> int:
    started = time.perf_counter()
    rng = random.Random(20240607)
    with tempfile.TemporaryDirectory(prefix="toolsdb-bench-work-") as tmp:
        server = EmbeddedServer(root=Path(tmp) / ".toolsdb")
        info = server.start()
        try:
            with psycopg.connect(server.conninfo(info, dbname="postgres"), autocommit=True) as admin:
                admin.execute(f"drop database if exists {DBNAME} with (force)")
                admin.execute(f"create database {DBNAME}")
            conninfo = server.conninfo(info, dbname=DBNAME)
            engine.migrate(Target(conninfo, "bench"))
            version = server.check_binaries()
            loader = psycopg.connect(conninfo, autocommit=True)
            reader = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
            try:
                for setting in (
                    "session_replication_role = replica",
                    "synchronous_commit = off",
                    "maintenance_work_mem = '256MB'",
                    "work_mem = '64MB'",
                ):
                    loader.execute(f"set {setting}")
                loader.execute("select setseed(0.42)")
                load_times = [("users, projects, agents, prices, 100,000 tasks", timed(lambda: load_static(loader)))]
                projects = [r[0] for r in loader.execute("select project_id from toolsdb.projects").fetchall()]
                agents = [r[0] for r in loader.execute("select agent_id from toolsdb.agents").fetchall()]
                done, small_done, explains = 0, 0, []
                for phase, (total, small_total) in enumerate(PHASES):
                    took = timed(lambda: load_phase(loader, done + 1, total, small_done + 1, small_total))  # noqa: B023
                    # The load skipped triggers (replica), so the runs' rollups are rebuilt, as after any
                    # such load; with triggers they are kept as the runs change (docs/work-tracking.md).
                    rebuilt = timed(lambda: loader.execute("select toolsdb.execution_rollups_rebuild()"))
                    load_times.append((f"phase {phase + 1}: execution_rollups_rebuild()", rebuilt))
                    took += timed(lambda: loader.execute("vacuum (analyze)"))
                    load_times.append((f"phase {phase + 1}: up to {total:,} executions and activity rows", took))
                    print(f"loaded phase {phase + 1} in {took:.1f}s; measuring", file=sys.stderr, flush=True)
                    done, small_done = total, small_total
                    measure(reader, rng, projects, agents)
                rollup_rows = reader.execute("select count(*) from toolsdb.execution_rollups").fetchone()[0]
                lifecycle = rollup_write_cost(loader)
                audit_rows = reader.execute("select count(*) from toolsdb.audit_logs").fetchone()[0]
                counts = {
                    table: reader.execute(f"select count(*) from toolsdb.{table}").fetchone()[0]
                    for table in ("tasks", "agent_executions", "activity_feed", "pr_validations", "error_logs")
                }
                for query in QUERIES:
                    (_, p95_small), (_, p95_big) = query.results
                    if p95_big >= TARGET_MS or p95_big / p95_small > SLOW_GROWTH:
                        value = rng.choice(projects if query.param == "project" else agents)
                        explains.append((query, explain(reader, query, value)))
            finally:
                loader.close()
                reader.close()
        finally:
            server.stop()

    total_time = time.perf_counter() - started
    print(f"toolsdb reporting views on {version}; {WARMUP} warm-up runs, then {RUNS} timed runs per query")
    print("rows: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()) + f", audit_logs {audit_rows:,}")
    print(
        "(loaded as superuser with session_replication_role = replica: no audit entries were written, so\n"
        " recent_activity reads a nearly empty audit log; queries run as superuser, row-level security bypassed)\n"
    )
    phase_names = [f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" for n, _ in PHASES]
    header = (
        f"{'view':24} {'typical filter':44} {'p50 ' + phase_names[0]:>9} {'p95 ' + phase_names[0]:>9}"
        f" {'p50 ' + phase_names[1]:>9} {'p95 ' + phase_names[1]:>9} {'growth':>7}  p95<{TARGET_MS:.0f}ms"
    )
    print(header)
    print("-" * len(header))
    for query in QUERIES:
        (p50_small, p95_small), (p50_big, p95_big) = query.results
        verdict = "yes" if p95_big < TARGET_MS else "NO"
        if not query.dashboard:
            verdict += " (not a dashboard view)"
        print(
            f"{query.view:24} {query.filter:44} {p50_small:8.2f}ms {p95_small:7.2f}ms"
            f" {p50_big:7.2f}ms {p95_big:7.2f}ms {p95_big / p95_small:6.2f}x  {verdict}"
        )
    print("\ngrowth = p95 at 1M executions / p95 at 100k (tasks stay at 100k; the other tables grow 10x)")
    print(
        f"task_execution_summary, agent_performance and project_health read toolsdb.execution_rollups"
        f" ({rollup_rows:,} rows at 1M runs, folded)"
    )
    with_rollups, without = lifecycle
    print(
        f"\nwhat keeping the rollups costs a run's writes (execution_create, _start, _complete; median of"
        f" {LIFECYCLE_ROUNDS} interleaved rounds of {LIFECYCLE_RUNS} runs):\n"
        f"  with the _800_execution_rollups triggers {with_rollups * 1000:7.3f} ms per run\n"
        f"  without them                             {without * 1000:7.3f} ms per run"
        f"  -> {with_rollups / without:.2f}x"
    )
    print("\nload times")
    for name, value in load_times:
        print(f"  {name:60} {value:7.1f}s")
    for query, plan in explains:
        print(f"\nEXPLAIN ANALYZE at 1M, {query.view} ({query.filter}):\n{plan}")
    print(f"\ntotal runtime {total_time:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

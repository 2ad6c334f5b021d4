"""The rollups of the runs (repeatable/49_execution_rollups.sql): the reports
task_execution_summary, agent_performance and project_health read
toolsdb.execution_rollups and execution_duration_rollups, kept by statement
triggers and folded by maintain, and must return exactly what their old
definitions (below, over the runs themselves) return, whatever happens to
the runs: the execution_* functions, bulk inserts, raw updates that move runs
between groups, deletes, cascades from tasks and projects, truncate, writes
that skipped triggers (rebuild), concurrent writers while folding, a fold or
a rebuild stopped halfway. Percentiles: exact up to 10,000 timed runs and
under row-level security; beyond, within 1% of percentile_cont."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from .conftest import Pg, run_cli
from .dbhelpers import connect, insert, scalar, set_project, unique

# What the reports computed over the runs before the rollups: the reference.
EXACT_SUMMARY = """
select e.project_id, e.agent_type, e.status, count(*) as executions,
    round(avg(extract(epoch from e.completed_at - e.started_at)), 3),
    sum(e.input_tokens + e.output_tokens + e.cached_tokens), sum(e.cost_usd), max(e.created_at)
from toolsdb.agent_executions as e
group by e.project_id, e.agent_type, e.status
order by 1, 2, 3
"""
SUMMARY = "select * from toolsdb.task_execution_summary order by 1, 2, 3"
EXACT_PERFORMANCE = """
select a.agent_id, a.name, e.model_provider, e.model_name, count(*),
    count(*) filter (where e.status = 'success'),
    round((count(*) filter (where e.status = 'success'))::numeric
        / nullif(count(*) filter (where e.status in ('success', 'failure', 'timeout')), 0), 4),
    round((percentile_cont(0.5) within group (order by extract(epoch from e.completed_at - e.started_at)))
        ::numeric, 3),
    round((percentile_cont(0.95) within group (order by extract(epoch from e.completed_at - e.started_at)))
        ::numeric, 3),
    sum(e.input_tokens), sum(e.output_tokens), sum(e.cached_tokens), sum(e.cost_usd), 'execution'
from toolsdb.agent_executions as e
inner join toolsdb.agents as a on e.agent_id = a.agent_id
group by a.agent_id, a.name, e.model_provider, e.model_name
order by 1, 3, 4
"""
PERFORMANCE = "select * from toolsdb.agent_performance where source = 'execution' order by 1, 3, 4"
EXACT_HEALTH = """
select p.project_id,
    round((count(e.*) filter (where e.status = 'success'))::numeric
        / nullif(count(e.*) filter (where e.status in ('success', 'failure', 'timeout')), 0), 4),
    coalesce(sum(e.cost_usd), 0)
from toolsdb.projects as p
left join toolsdb.agent_executions as e on e.project_id = p.project_id
group by p.project_id
order by 1
"""
HEALTH = "select project_id, execution_success_rate, total_cost_usd from toolsdb.project_health order by 1"
GROUPS = """
select project_id, agent_id, agent_type, model_provider, model_name, status, {figures}
from {source}
group by 1, 2, 3, 4, 5, 6
having {having}
order by 1, 2, 3, 4, 5, 6
"""
EXACT_GROUPS = GROUPS.format(
    figures="count(*), count(*) filter (where started_at is not null and completed_at is not null),"
    " coalesce(sum(extract(epoch from completed_at - started_at)), 0), sum(input_tokens), sum(output_tokens),"
    " sum(cached_tokens), count(cost_usd), coalesce(sum(cost_usd), 0)",
    source="toolsdb.agent_executions",
    having="true",
)
ROLLUP_GROUPS = GROUPS.format(
    figures="sum(executions), sum(timed_runs), sum(duration_seconds), sum(input_tokens), sum(output_tokens),"
    " sum(cached_tokens), sum(priced_runs), sum(cost_usd)",
    source="toolsdb.execution_rollups",
    having="sum(executions) <> 0",
)
EXACT_BUCKETS = """
select agent_id, model_provider, model_name,
    toolsdb_private.metric_bucket(extract(epoch from completed_at - started_at)::float8), count(*)
from toolsdb.agent_executions
where started_at is not null and completed_at is not null
group by 1, 2, 3, 4 order by 1, 2, 3, 4
"""
ROLLUP_BUCKETS = """
select agent_id, model_provider, model_name, bucket, sum(runs)
from toolsdb.execution_duration_rollups
group by 1, 2, 3, 4 having sum(runs) <> 0 order by 1, 2, 3, 4
"""
MODELS = (("acme", "model-a"), ("acme", "model-b"), ("other", "model-c"))
STATUSES = ("pending", "running", "success", "failure", "timeout", "cancelled")
# A bulk insert of runs with known times and tokens: the rules trigger would set them itself.
BULK = """
insert into toolsdb.agent_executions (agent_id, task_id, project_id, agent_type, model_provider, model_name, status,
    input_tokens, output_tokens, cached_tokens, cost_usd, started_at, completed_at, created_at)
select a.agent_id, t.task_id, t.project_id, a.agent_type, m.provider, m.model, s.status,
    (random() * 1000)::bigint, (random() * 1000)::bigint, (random() * 100)::bigint,
    case when random() < 0.7 then round((random() * 2)::numeric, 6) end,
    case when s.status <> 'pending' then now() - interval '2 hours' end,
    case when s.status in ('success', 'failure', 'timeout') then now() - interval '2 hours'
        + make_interval(secs => exp(random() * 8)) end,
    now() - random() * interval '30 days'
from generate_series(1, %(n)s) as g
cross join lateral (select * from toolsdb.agents where name like %(agents)s order by random() + g * 0 limit 1) as a
cross join lateral (select * from toolsdb.tasks where title like %(tasks)s order by random() + g * 0 limit 1) as t
cross join lateral (
    select (array['acme', 'acme', 'other'])[k] as provider, (array['model-a', 'model-b', null])[k] as model
    from (select 1 + floor(random() * 3)::int + g * 0 as k) as r
) as m
cross join lateral (
    select (array['pending', 'running', 'success', 'success', 'failure', 'timeout'])[
        1 + floor(random() * 6)::int + g * 0
    ] as status
) as s
"""


class World:
    """Three projects with two tasks each and four agents, names unique to the test."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.tag = unique("rollup-")
        user = insert(conn, "users", username=self.tag, email=f"{self.tag}@example.com")["user_id"]
        self.projects = [
            insert(conn, "projects", slug=f"{self.tag}-p{i}", name=f"p{i}", owner_id=user)["project_id"]
            for i in range(3)
        ]
        self.tasks = [
            insert(conn, "tasks", project_id=p, title=f"{self.tag} task {i}", status="in_progress")["task_id"]
            for p in self.projects
            for i in range(2)
        ]
        self.agents = [
            insert(
                conn,
                "agents",
                name=f"{self.tag}-agent-{i}",
                agent_type=("coding", "review")[i % 2],
                model_provider=MODELS[i % 3][0],
                model_name=MODELS[i % 3][1],
            )["agent_id"]
            for i in range(4)
        ]

    def bulk(self, conn: psycopg.Connection, n: int) -> None:
        """n runs in one statement, the rules trigger off for it (times and costs as given)."""
        with conn.transaction():
            conn.execute("alter table toolsdb.agent_executions disable trigger _200_execution_rules")
            conn.execute(BULK, {"n": n, "agents": f"{self.tag}-agent-%", "tasks": f"{self.tag} task %"})
            conn.execute("alter table toolsdb.agent_executions enable trigger _200_execution_rules")


@pytest.fixture
def conn(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    """The superuser on a fresh clone, autocommit: other sessions see what it does."""
    with connect(pg, db) as connection:
        yield connection


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    conn.execute("select setseed(0.25)")
    return World(conn)


def rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def check(conn: psycopg.Connection, where: str) -> None:
    """The rollups sum to the runs, and the reports equal their old definitions."""
    assert rows(conn, ROLLUP_GROUPS) == rows(conn, EXACT_GROUPS), f"{where}: the rollups should sum to the runs."
    assert rows(conn, ROLLUP_BUCKETS) == rows(conn, EXACT_BUCKETS), f"{where}: the duration buckets should too."
    assert rows(conn, SUMMARY) == rows(conn, EXACT_SUMMARY), f"{where}: task_execution_summary"
    assert rows(conn, PERFORMANCE) == rows(conn, EXACT_PERFORMANCE), f"{where}: agent_performance"
    assert rows(conn, HEALTH) == rows(conn, EXACT_HEALTH), f"{where}: project_health"


def drive(conn: psycopg.Connection, world: World, rng: random.Random, runs: int) -> None:
    """Runs through the execution_* functions, to every status."""
    for _ in range(runs):
        execution = scalar(
            conn, "select toolsdb.execution_create(%s, %s)", (rng.choice(world.agents), rng.choice(world.tasks))
        )
        step = rng.random()
        if step < 0.15:
            continue
        if step < 0.25:
            conn.execute("select toolsdb.execution_cancel(%s)", (execution,))
            continue
        conn.execute("select toolsdb.execution_start(%s)", (execution,))
        tokens = (rng.randint(0, 5000), rng.randint(0, 5000), rng.randint(0, 500))
        if step < 0.6:
            conn.execute("select toolsdb.execution_complete(%s, null, %s, %s, %s)", (execution, *tokens))
        elif step < 0.75:
            conn.execute("select toolsdb.execution_fail(%s, '{}', %s, %s, %s)", (execution, *tokens))
        elif step < 0.85:
            conn.execute("select toolsdb.execution_time_out(%s, %s, %s, %s)", (execution, *tokens))


def test_every_way_runs_change_keeps_the_reports_exact(conn: psycopg.Connection, world: World) -> None:
    rng = random.Random(7)
    check(conn, "no run yet")
    drive(conn, world, rng, 60)
    check(conn, "runs driven by the functions")
    world.bulk(conn, 3000)
    check(conn, "a bulk insert")
    with conn.transaction():
        conn.execute("alter table toolsdb.agent_executions disable trigger _200_execution_rules")
        # Runs move between groups (model, status), figures change, and nothing at all changes.
        conn.execute(
            "update toolsdb.agent_executions set model_name = 'model-z', input_tokens = input_tokens + 7"
            " where model_name = 'model-b' and random() < 0.5"
        )
        conn.execute(
            "update toolsdb.agent_executions set status = 'failure' where status = 'success' and random() < 0.2"
        )
        conn.execute("update toolsdb.agent_executions set cost_usd = null where random() < 0.1")
        conn.execute("update toolsdb.agent_executions set result = '{}' where random() < 0.1")
        conn.execute("alter table toolsdb.agent_executions enable trigger _200_execution_rules")
    check(conn, "updates")
    conn.execute("delete from toolsdb.agent_executions where random() < 0.1")
    check(conn, "deletes")
    conn.execute("delete from toolsdb.tasks where task_id = %s", (world.tasks.pop(0),))
    check(conn, "a task deleted with its runs")
    before = scalar(conn, "select count(*) from toolsdb.execution_rollups")
    assert scalar(conn, "select toolsdb.execution_rollups_fold()") > 0, "The fold should have replaced rows."
    after = scalar(conn, "select count(*) from toolsdb.execution_rollups")
    assert after < before, "Folding should leave fewer rows."
    assert (
        scalar(
            conn,
            "select count(*) from (select 1 from toolsdb.execution_rollups group by project_id, agent_id, agent_type,"
            " model_provider, model_name, status having count(*) > 1 or sum(executions) = 0) as g",
        )
        == 0
    ), "After a fold each group should be one row, and no group should sum to nothing."
    check(conn, "folded")
    assert scalar(conn, "select toolsdb.execution_rollups_fold()") == 0, "A second fold should have nothing to do."
    step = [r for r in rows(conn, "select step, target, affected from toolsdb.maintain()") if r[0] == "rollups"]
    assert ("rollups", "toolsdb.execution_rollups", 0) in step, f"maintain() should fold the runs' rollups: {step}"
    drive(conn, world, rng, 20)
    conn.execute("delete from toolsdb.projects where project_id = %s", (world.projects[1],))
    check(conn, "a project deleted with its runs, after a fold")
    conn.execute("truncate toolsdb.agent_executions cascade")
    assert scalar(conn, "select count(*) from toolsdb.execution_rollups") == 0
    assert scalar(conn, "select count(*) from toolsdb.execution_duration_rollups") == 0
    check(conn, "truncated")


def test_writes_that_skip_triggers_are_repaired_by_rebuild_and_by_migrate(
    pg: Pg, db: str, conn: psycopg.Connection, world: World
) -> None:
    world.bulk(conn, 500)
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        world.bulk(conn, 300)
    with pytest.raises(AssertionError):
        check(conn, "behind the triggers' back")
    assert scalar(conn, "select toolsdb.execution_rollups_rebuild()") > 0
    check(conn, "rebuilt")
    # A migrate finds runs and no rollups (as right after the triggers are installed) and rebuilds.
    conn.execute("delete from toolsdb.execution_rollups")
    conn.execute("delete from toolsdb.execution_duration_rollups")
    done = run_cli("migrate", "--database", pg.url(db))
    assert done.returncode == 0, done.stderr
    check(conn, "after a migrate")


def test_percentiles_are_exact_up_to_10000_runs_and_within_1_percent_beyond(
    pg: Pg, db: str, conn: psycopg.Connection, world: World, app_login: str, readonly_login: str
) -> None:
    # Over 10,000 timed runs for one agent and model; a few hundred for the others.
    world.bulk(conn, 18_000)
    with conn.transaction():
        conn.execute("alter table toolsdb.agent_executions disable trigger _200_execution_rules")
        conn.execute(
            "update toolsdb.agent_executions set agent_id = %s, agent_type = 'coding', model_provider = 'acme',"
            " model_name = 'model-a'",
            (world.agents[0],),
        )
        conn.execute("alter table toolsdb.agent_executions enable trigger _200_execution_rules")
    world.bulk(conn, 600)
    exact = {r[0:4]: r for r in rows(conn, EXACT_PERFORMANCE)}
    timed = dict(
        rows(
            conn,
            "select (agent_id, model_provider, model_name)::text, count(*) from toolsdb.agent_executions"
            " where completed_at is not null group by 1",
        )
    )
    got = rows(conn, PERFORMANCE)
    assert len(got) == len(exact)
    sketched = 0
    for row in got:
        want = exact[row[0:4]]
        assert row[:7] == want[:7] and row[9:] == want[9:], "Counts, tokens and cost should be exact."
        p50, p95 = row[7:9]
        if timed.get(f"({row[0]},{row[2] or ''},{row[3] or ''})", 0) > 10_000:
            sketched += 1
            for estimate, true in zip((p50, p95), want[7:9], strict=True):
                assert abs(estimate - true) <= true * Decimal("0.01") + Decimal("0.001"), f"{estimate} for {true}"
        else:
            assert (p50, p95) == want[7:9]
    assert sketched, f"Some agent and model should have had over 10,000 timed runs: {timed}"
    # Under row-level security the percentiles are the project's own, exact.
    with connect(pg, db, app_login, autocommit=False) as app:
        set_project(app, str(world.projects[0]))
        mine = rows(app, PERFORMANCE)
        assert mine and all(r[4] < 18_000 for r in mine)
    reference = rows(
        conn,
        EXACT_PERFORMANCE.replace("group by", "where e.project_id = %s group by"),
        (world.projects[0],),
    )
    assert mine == reference, "The application should get its project's runs, with exact percentiles."
    with connect(pg, db, readonly_login) as reader:
        assert rows(reader, PERFORMANCE) == got, "The readonly role sees every run: the same figures."


def test_concurrent_writers_and_folds_lose_nothing(pg: Pg, db: str, conn: psycopg.Connection, world: World) -> None:
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            with connect(pg, db) as mine:
                drive(mine, world, random.Random(seed), 40)
        except BaseException as exc:
            failures.append(exc)

    def folder() -> None:
        try:
            with connect(pg, db) as mine:
                while not stop.is_set():
                    mine.execute("select toolsdb.execution_rollups_fold()")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    folding = threading.Thread(target=folder)
    folding.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    folding.join(timeout=60)
    assert not failures, failures
    assert scalar(conn, "select count(*) from toolsdb.agent_executions") >= 4 * 30
    check(conn, "after 4 writers and a folder at once")


@pytest.fixture
def holder(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    with connect(pg, db, autocommit=False) as conn:
        yield conn
        conn.rollback()


def stopped(pg: Pg, db: str, holder: psycopg.Connection, statement: str, wait_for: str) -> None:
    """Run ``statement`` in its own session, let it block on ``holder``'s lock,
    terminate its backend, then release the lock."""
    failures: list[BaseException] = []

    def victim() -> None:
        try:
            with connect(pg, db) as mine:
                mine.execute(statement)
        except psycopg.OperationalError as exc:
            failures.append(exc)

    thread = threading.Thread(target=victim)
    thread.start()
    with connect(pg, db) as watcher:
        for _ in range(200):
            pid = watcher.execute(
                "select pid from pg_stat_activity where query = %s and wait_event_type = %s", (statement, wait_for)
            ).fetchone()
            if pid:
                break
            threading.Event().wait(0.05)
        assert pid, f"{statement} should have been waiting on a {wait_for}"
        watcher.execute("select pg_terminate_backend(%s)", (pid[0],))
    thread.join(timeout=30)
    holder.rollback()
    assert failures, f"{statement} should have been stopped"


def test_a_fold_or_rebuild_stopped_halfway_changes_nothing(
    pg: Pg, db: str, conn: psycopg.Connection, world: World, holder: psycopg.Connection
) -> None:
    world.bulk(conn, 400)
    drive(conn, world, random.Random(3), 20)
    snapshot = "select * from toolsdb.execution_rollups order by rollup_id"
    before = rows(conn, snapshot)
    # The fold deletes the rows of every group with several: rows locked hold it there.
    assert (
        scalar(
            conn,
            "select count(*) - count(distinct (project_id, agent_id, agent_type, model_provider,"
            " model_name, status)) from toolsdb.execution_rollups",
        )
        > 0
    ), "Some group should have several rows."
    holder.execute("select 1 from toolsdb.execution_rollups for update")
    stopped(pg, db, holder, "select toolsdb.execution_rollups_fold()", "Lock")
    assert rows(conn, snapshot) == before, "A fold stopped halfway should leave every row as it was."
    check(conn, "a fold stopped halfway")
    # The rebuild waits for writers of runs: one holding its lock holds it there.
    holder.execute(
        "update toolsdb.agent_executions set result = '{}' where execution_id in ("
        "select execution_id from toolsdb.agent_executions limit 1)"
    )
    stopped(pg, db, holder, "select toolsdb.execution_rollups_rebuild()", "Lock")
    assert rows(conn, snapshot) == before, "A rebuild stopped halfway should leave every row as it was."
    check(conn, "a rebuild stopped halfway")

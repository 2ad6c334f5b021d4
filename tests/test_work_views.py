"""The reporting views of repeatable/82_work_views.sql (toolsdb.active_tasks,
task_execution_summary, pr_validation_summary, error_summary, recent_activity,
agent_performance, project_health, cost_by_day) against a real, migrated
database, on each PostgreSQL major of the suite.

Each view gets a test that loads known rows and asserts the exact rows it
returns. Rows are loaded as the superuser through the real functions
(toolsdb.execution_*, validation_record_check/settle/cancel, error_record and
error_record_recovery). Times are the database's (clock_timestamp()), so the
tests that assert durations or days disable the rules trigger of the table
inside their transaction and set started_at and completed_at to known values.

Isolation, as in test_executions_*.py: one clone of the template per module and
major, and every test but one runs in ``tx``, a transaction that is always
rolled back (so the disabled triggers come back too). The row-level security
test commits its rows in a fresh clone of its own (``db``) and reads them as a
login in toolsdb_app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .conftest import ROOT, Pg
from .dbhelpers import connect, insert, scalar, unique

VIEWS_SQL = ROOT / "repeatable" / "82_work_views.sql"
VIEWS = (
    "active_tasks",
    "task_execution_summary",
    "pr_validation_summary",
    "error_summary",
    "recent_activity",
    "agent_performance",
    "project_health",
    "cost_by_day",
)
PROVIDER = "acme"
RUNS = "execution"  # the source column of cost_by_day for agent runs (transcripts: "transcript")
# The priced model costs 3 / 15 / 0.3 USD per million input / output / cached tokens.
PRICES = (Decimal("3"), Decimal("15"), Decimal("0.3"))
DAY1 = datetime(2025, 3, 1, tzinfo=timezone.utc)
DAY2 = datetime(2025, 3, 2, tzinfo=timezone.utc)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def tuples(conn: psycopg.Connection, query: str, params: tuple | None = None) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def cost(input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
    """What toolsdb.token_cost charges at PRICES, rounded to 6 decimals."""
    usd = (input_tokens * PRICES[0] + output_tokens * PRICES[1] + cached_tokens * PRICES[2]) / Decimal(1_000_000)
    return usd.quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class World:
    """A user, two projects (A and B) with one task each, a priced agent
    (type coding) and an unpriced one (type review)."""

    user_id: Any
    username: str
    project_a: Any
    project_b: Any
    slug_a: str
    slug_b: str
    task_a: Any
    task_b: Any
    agent_1: Any
    agent_1_name: str
    model_1: str
    agent_2: Any
    agent_2_name: str
    model_2: str


def seed(conn: psycopg.Connection) -> World:
    username = unique("views-user-")
    user_id = insert(conn, "users", username=username, email=f"{username}@example.com")["user_id"]
    slug_a, slug_b = unique("views-a-"), unique("views-b-")
    project_a = insert(conn, "projects", slug=slug_a, name=slug_a, owner_id=user_id)["project_id"]
    project_b = insert(conn, "projects", slug=slug_b, name=slug_b, owner_id=user_id)["project_id"]
    task_a = insert(conn, "tasks", project_id=project_a, title="runs of A", status="in_progress")["task_id"]
    task_b = insert(conn, "tasks", project_id=project_b, title="runs of B", status="in_progress")["task_id"]
    model_1, model_2 = unique("model-a-"), unique("model-b-")
    agent_1_name, agent_2_name = unique("views-agent-a-"), unique("views-agent-b-")
    agent_1 = insert(
        conn, "agents", name=agent_1_name, agent_type="coding", model_provider=PROVIDER, model_name=model_1
    )["agent_id"]
    agent_2 = insert(
        conn, "agents", name=agent_2_name, agent_type="review", model_provider=PROVIDER, model_name=model_2
    )["agent_id"]
    insert(
        conn,
        "model_prices",
        model_provider=PROVIDER,
        model_name=model_1,
        valid_from=datetime(2000, 1, 1, tzinfo=timezone.utc),
        input_usd_per_mtok=PRICES[0],
        output_usd_per_mtok=PRICES[1],
        cached_input_usd_per_mtok=PRICES[2],
    )
    return World(
        user_id,
        username,
        project_a,
        project_b,
        slug_a,
        slug_b,
        task_a,
        task_b,
        agent_1,
        agent_1_name,
        model_1,
        agent_2,
        agent_2_name,
        model_2,
    )


def run(
    conn: psycopg.Connection,
    agent_id: Any,
    task_id: Any,
    status: str,
    tokens: tuple[int, int, int] = (0, 0, 0),
    given_cost: Decimal | None = None,
) -> Any:
    """A run brought to ``status`` by the execution_* functions; ``cancelled``
    is cancelled while pending (so it never started)."""
    execution_id = scalar(conn, "select toolsdb.execution_create(%s, %s)", (agent_id, task_id))
    if status == "pending":
        return execution_id
    if status == "cancelled":
        conn.execute("select toolsdb.execution_cancel(%s)", (execution_id,))
        return execution_id
    conn.execute("select toolsdb.execution_start(%s)", (execution_id,))
    if status == "success":
        conn.execute(
            "select toolsdb.execution_complete(%s, null, %s::bigint, %s::bigint, %s::bigint, %s::numeric)",
            (execution_id, *tokens, given_cost),
        )
    elif status == "failure":
        conn.execute(
            'select toolsdb.execution_fail(%s, \'{"error": "boom"}\', %s::bigint, %s::bigint, %s::bigint, %s::numeric)',
            (execution_id, *tokens, given_cost),
        )
    elif status == "timeout":
        conn.execute(
            "select toolsdb.execution_time_out(%s, %s::bigint, %s::bigint, %s::bigint)", (execution_id, *tokens)
        )
    else:
        assert status == "running", f"Unknown run status {status}."
    return execution_id


@contextmanager
def rules_off(conn: psycopg.Connection, table: str, trigger: str) -> Iterator[None]:
    """Disable a rules trigger (inside the caller's transaction) to set known times."""
    conn.execute(
        sql.SQL("alter table toolsdb.{} disable trigger {}").format(sql.Identifier(table), sql.Identifier(trigger))
    )
    try:
        yield
    finally:
        conn.execute(
            sql.SQL("alter table toolsdb.{} enable trigger {}").format(sql.Identifier(table), sql.Identifier(trigger))
        )


def set_run_times(conn: psycopg.Connection, times: dict[Any, tuple[datetime | None, datetime]]) -> None:
    """started_at and completed_at of finished runs, to known values."""
    with rules_off(conn, "agent_executions", "_200_execution_rules"):
        for execution_id, (started, completed) in times.items():
            conn.execute(
                "update toolsdb.agent_executions set started_at = %s, completed_at = %s where execution_id = %s",
                (started, completed, execution_id),
            )


def lasting(seconds: float, ended: datetime | None = None) -> tuple[datetime, datetime]:
    """(started_at, completed_at) of a run that lasted ``seconds``."""
    completed = ended or DAY1 + timedelta(hours=12)
    return completed - timedelta(seconds=seconds), completed


def add_task(conn: psycopg.Connection, project_id: Any, title: str, **values: object) -> Any:
    return insert(conn, "tasks", project_id=project_id, title=title, **values)["task_id"]


def error(conn: psycopg.Connection, error_type: str, recoveries: tuple[bool, ...] = (), **where: Any) -> Any:
    """An error logged by toolsdb.error_record (on a task or run), then its recovery attempts."""
    error_id = scalar(
        conn,
        "select toolsdb.error_record(%s, 'it broke', task_id => %s, execution_id => %s)",
        (error_type, where.get("task_id"), where.get("execution_id")),
    )
    for succeeded in recoveries:
        conn.execute("select toolsdb.error_record_recovery(%s, %s)", (error_id, succeeded))
    return error_id


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def world(tx: psycopg.Connection) -> World:
    return seed(tx)


@pytest.fixture
def now(tx: psycopg.Connection) -> datetime:
    """The transaction's now(): created_at of every row the test inserts."""
    return scalar(tx, "select now()")


# ---------------------------------------------------------------------------
# The catalog: security_invoker and comments
# ---------------------------------------------------------------------------


def test_every_work_view_is_security_invoker_and_fully_commented(tx: psycopg.Connection) -> None:
    defined = re.findall(r"create\s+or\s+replace\s+view\s+toolsdb\.(\w+)", VIEWS_SQL.read_text(), flags=re.I)
    assert sorted(defined) == sorted(VIEWS), (
        f"repeatable/82_work_views.sql should define the eight work views, not {defined}."
    )
    for view in defined:
        found = tx.execute(
            "select c.relkind, c.reloptions, obj_description(c.oid, 'pg_class') from pg_catalog.pg_class as c"
            " where c.oid = to_regclass(%s)",
            (f"toolsdb.{view}",),
        ).fetchone()
        assert found is not None, f"toolsdb.{view} should exist in the migrated database."
        relkind, options, comment = found
        assert relkind == "v", f"toolsdb.{view} should be a view, not relkind {relkind}."
        settings = dict(option.split("=", 1) for option in options or [])
        assert settings.get("security_invoker", "").lower() in ("true", "on", "1"), (
            f"toolsdb.{view} should be security_invoker (so row-level security applies), but has options {options}."
        )
        assert comment and comment.strip(), f"toolsdb.{view} should have a comment."
        bare = tuples(
            tx,
            "select a.attname from pg_catalog.pg_attribute as a where a.attrelid = to_regclass(%s)"
            " and a.attnum > 0 and not a.attisdropped and coalesce(col_description(a.attrelid, a.attnum), '') = ''"
            " order by a.attnum",
            (f"toolsdb.{view}",),
        )
        assert bare == [], f"Every column of toolsdb.{view} should have a comment; these have none: {bare}."


# ---------------------------------------------------------------------------
# active_tasks
# ---------------------------------------------------------------------------


def test_active_tasks_lists_open_and_in_progress_tasks_with_names(
    tx: psycopg.Connection, world: World, now: datetime
) -> None:
    parent = add_task(tx, world.project_a, "t0 parent", status="open", priority=9, labels=["epic"])
    child = add_task(
        tx,
        world.project_a,
        "t1 child",
        status="in_progress",
        type="bug",
        priority=2,
        parent_task_id=parent,
        assigned_to_user_id=world.user_id,
        assigned_to_agent_id=world.agent_1,
    )
    for status in ("draft", "in_review", "blocked", "completed", "failed", "cancelled"):
        add_task(tx, world.project_a, f"t2 {status}", status=status)
    other = add_task(tx, world.project_b, "t3 other", status="open", priority=7, assigned_to_agent_id=world.agent_2)
    got = tuples(
        tx,
        "select * from toolsdb.active_tasks where project_id = any(%s) order by title",
        ([world.project_a, world.project_b],),
    )
    a, b = world.project_a, world.project_b
    expected = [
        (world.task_a, a, world.slug_a, None, "runs of A", "task", "in_progress", 5, "medium", [], None, None, None,
         None, now, now),
        (world.task_b, b, world.slug_b, None, "runs of B", "task", "in_progress", 5, "medium", [], None, None, None,
         None, now, now),
        (parent, a, world.slug_a, None, "t0 parent", "task", "open", 9, "critical", ["epic"], None, None, None, None,
         now, now),
        (child, a, world.slug_a, parent, "t1 child", "bug", "in_progress", 2, "low", [], world.user_id,
         world.username, world.agent_1, world.agent_1_name, now, now),
        (other, b, world.slug_b, None, "t3 other", "task", "open", 7, "high", [], None, None, world.agent_2,
         world.agent_2_name, now, now),
    ]  # fmt: skip
    assert got == expected, f"active_tasks should list exactly the open and in_progress tasks:\n{got}"


# ---------------------------------------------------------------------------
# task_execution_summary
# ---------------------------------------------------------------------------


def test_task_execution_summary_groups_runs_by_project_agent_type_and_status(
    tx: psycopg.Connection, world: World, now: datetime
) -> None:
    a1, a2, ta, tb = world.agent_1, world.agent_2, world.task_a, world.task_b
    times = {
        run(tx, a1, ta, "success", (1000, 2000, 500)): lasting(10),
        run(tx, a1, ta, "success", (2000, 0, 0)): lasting(20),
        run(tx, a1, ta, "failure", (100, 0, 0)): lasting(30),
        run(tx, a2, ta, "success", (10, 20, 30), Decimal("1.5")): lasting(40),
        run(tx, a2, ta, "timeout", (5, 0, 0)): lasting(50),
        run(tx, a1, tb, "success", (300, 0, 0)): lasting(60),
    }
    run(tx, a1, ta, "pending")
    run(tx, a1, ta, "cancelled")
    run(tx, a1, tb, "running")
    set_run_times(tx, times)
    got = tuples(
        tx,
        "select * from toolsdb.task_execution_summary where project_id = any(%s)"
        " order by project_id = %s desc, agent_type, status",
        ([world.project_a, world.project_b], world.project_a),
    )
    a, b = world.project_a, world.project_b
    expected = [
        (a, "coding", "cancelled", 1, None, 0, Decimal("0"), now),
        (a, "coding", "failure", 1, Decimal("30.000"), 100, cost(100, 0, 0), now),
        (a, "coding", "pending", 1, None, 0, None, now),
        (a, "coding", "success", 2, Decimal("15.000"), 5500, cost(1000, 2000, 500) + cost(2000, 0, 0), now),
        (a, "review", "success", 1, Decimal("40.000"), 60, Decimal("1.5"), now),
        (a, "review", "timeout", 1, Decimal("50.000"), 5, None, now),
        (b, "coding", "running", 1, None, 0, None, now),
        (b, "coding", "success", 1, Decimal("60.000"), 300, cost(300, 0, 0), now),
    ]
    assert got == expected, f"task_execution_summary should return exactly these groups:\n{got}"


# ---------------------------------------------------------------------------
# pr_validation_summary
# ---------------------------------------------------------------------------


def test_pr_validation_summary_groups_by_project_repository_and_status(
    tx: psycopg.Connection, world: World, now: datetime
) -> None:
    def validation(task_id: Any, repository: str, checks: tuple[bool, ...], end: str | None) -> Any:
        validation_id = insert(tx, "pr_validations", task_id=task_id, pr_number=7, repository=repository)[
            "validation_id"
        ]
        for number, passed in enumerate(checks):
            tx.execute("select toolsdb.validation_record_check(%s, %s, %s)", (validation_id, f"check_{number}", passed))
        if end == "settle":
            tx.execute("select toolsdb.validation_settle(%s)", (validation_id,))
        elif end == "cancel":
            tx.execute("select toolsdb.validation_cancel(%s)", (validation_id,))
        return validation_id

    ta, tb = world.task_a, world.task_b
    times = {
        validation(ta, "example/app", (True, True), "settle"): lasting(10),
        validation(ta, "example/app", (True,), "settle"): lasting(20),
        validation(ta, "example/app", (True, False), "settle"): lasting(30),
        validation(ta, "example/lib", (True,), "cancel"): lasting(5),
        validation(tb, "example/app", (True,), "settle"): lasting(40),
    }
    validation(ta, "example/app", (True,), None)  # running
    validation(ta, "example/app", (), None)  # pending
    validation(ta, "example/app", (), "cancel")  # cancelled before any check: never started
    with rules_off(tx, "pr_validations", "_200_validation_rules"):
        for validation_id, (started, completed) in times.items():
            tx.execute(
                "update toolsdb.pr_validations set started_at = %s, completed_at = %s where validation_id = %s",
                (started, completed, validation_id),
            )
    got = tuples(
        tx,
        "select * from toolsdb.pr_validation_summary where project_id = any(%s)"
        " order by project_id = %s desc, repository, status",
        ([world.project_a, world.project_b], world.project_a),
    )
    a, b = world.project_a, world.project_b
    expected = [
        (a, "example/app", "cancelled", 1, None, now),
        (a, "example/app", "failed", 1, Decimal("30.000"), now),
        (a, "example/app", "passed", 2, Decimal("15.000"), now),
        (a, "example/app", "pending", 1, None, now),
        (a, "example/app", "running", 1, None, now),
        (a, "example/lib", "cancelled", 1, Decimal("5.000"), now),
        (b, "example/app", "passed", 1, Decimal("40.000"), now),
    ]
    assert got == expected, f"pr_validation_summary should return exactly these groups:\n{got}"


# ---------------------------------------------------------------------------
# error_summary
# ---------------------------------------------------------------------------


def test_error_summary_groups_by_project_type_and_resolution(
    tx: psycopg.Connection, world: World, now: datetime
) -> None:
    run_a = run(tx, world.agent_1, world.task_a, "running")
    run_b = run(tx, world.agent_1, world.task_b, "running")
    error(tx, "network", (), task_id=world.task_a)
    error(tx, "network", (False,), task_id=world.task_a)
    error(tx, "network", (False,), task_id=world.task_a)
    error(tx, "network", (False, True), task_id=world.task_a)
    error(tx, "network", (True,), execution_id=run_a)
    error(tx, "api", (), execution_id=run_a)
    error(tx, "timeout", (False, False, False), execution_id=run_b)
    error(tx, "system", (True,))  # outside any project
    got = tuples(
        tx,
        "select * from toolsdb.error_summary where project_id = any(%s) or project_id is null"
        " order by case project_id when %s then 0 when %s then 1 else 2 end, error_type, resolved",
        ([world.project_a, world.project_b], world.project_a, world.project_b),
    )
    a, b = world.project_a, world.project_b
    expected = [
        (a, "api", False, 1, Decimal("0.00"), now),
        (a, "network", False, 3, Decimal("0.67"), now),
        (a, "network", True, 2, Decimal("1.50"), now),
        (b, "timeout", False, 1, Decimal("3.00"), now),
        (None, "system", True, 1, Decimal("1.00"), now),
    ]
    assert got == expected, f"error_summary should return exactly these groups:\n{got}"
    assert [str(row[4]) for row in got] == ["0.00", "0.67", "1.50", "3.00", "1.00"], (
        "avg_recovery_attempts should be rounded to 2 decimals."
    )


# ---------------------------------------------------------------------------
# recent_activity
# ---------------------------------------------------------------------------


def test_recent_activity_shows_the_last_7_days_with_task_data_for_task_entries(
    tx: psycopg.Connection, world: World, now: datetime
) -> None:
    tx.execute("select set_config('toolsdb.actor', 'views-tester', true)")
    kept = add_task(tx, world.project_a, "write the docs")
    tx.execute("select toolsdb.task_transition(%s, 'in_progress')", (kept,))
    gone = add_task(tx, world.project_b, "doomed")
    tx.execute("delete from toolsdb.tasks where task_id = %s", (gone,))
    tx.execute("select toolsdb.audit_event('note_added', 'tasks', %s)", (str(kept),))
    # Same id, but not about a task: no task data.
    tx.execute("select toolsdb.audit_event('flagged', 'reviews', %s)", (str(kept),))
    for days in (6, 8):
        tx.execute(
            "insert into toolsdb.audit_logs (logged_at, actor, action, entity_type, entity_id)"
            " values (now() - make_interval(days => %s), 'archivist', 'note_added', 'tasks', %s)",
            (days, str(kept)),
        )
    got = tuples(
        tx,
        "select logged_at, actor, action, entity_type, entity_id, task_id, project_id, task_title, task_status"
        " from toolsdb.recent_activity where entity_id = any(%s) order by logged_at desc, audit_id",
        ([str(kept), str(gone)],),
    )
    k, g, a = str(kept), str(gone), world.project_a
    filled = (kept, a, "write the docs", "in_progress")
    empty = (None, None, None, None)
    expected = [
        (now, "views-tester", "insert", "tasks", k, *filled),
        (now, "views-tester", "update", "tasks", k, *filled),
        (now, "views-tester", "insert", "tasks", g, *empty),
        (now, "views-tester", "delete", "tasks", g, *empty),
        (now, "views-tester", "note_added", "tasks", k, *filled),
        (now, "views-tester", "flagged", "reviews", k, *empty),
        (now - timedelta(days=6), "archivist", "note_added", "tasks", k, *filled),
    ]
    assert got == expected, (
        "recent_activity should show the entries of the last 7 days (not the one of 8 days ago), with the "
        f"task's title, project and current status only for entries about an existing task:\n{got}"
    )


def test_recent_activity_survives_a_task_entry_whose_id_is_not_a_uuid(tx: psycopg.Connection, world: World) -> None:
    tx.execute("select toolsdb.audit_event('note_added', 'tasks', 'TASK-42')")
    got = tuples(tx, "select action, task_id, task_title from toolsdb.recent_activity where entity_id = 'TASK-42'")
    assert got == [("note_added", None, None)], f"The entry should be listed without task data, not {got}."


# ---------------------------------------------------------------------------
# agent_performance
# ---------------------------------------------------------------------------


def test_agent_performance_rates_finished_runs_and_times_them(tx: psycopg.Connection, world: World) -> None:
    a1, ta, tb = world.agent_1, world.task_a, world.task_b
    times = {
        run(tx, a1, ta, "success", (1000, 2000, 500)): lasting(10),
        run(tx, a1, ta, "success", (2000, 0, 0)): lasting(20),
        run(tx, a1, ta, "failure", (100, 0, 0)): lasting(30),
        run(tx, a1, tb, "timeout"): lasting(40),
    }
    # Neither counted in the success rate nor timed: not finished, or cancelled before starting.
    run(tx, a1, ta, "pending")
    run(tx, a1, ta, "running")
    run(tx, a1, tb, "cancelled")
    # The agent moves to another model: its next run is reported under that model.
    model_3 = unique("model-c-")
    tx.execute("update toolsdb.agents set model_name = %s where agent_id = %s", (model_3, a1))
    times[run(tx, a1, ta, "success", (7, 8, 9), Decimal("0.25"))] = lasting(5)
    run(tx, world.agent_2, ta, "pending")
    insert(tx, "agents", name=unique("views-agent-idle-"), agent_type="coding")  # no runs, no row
    set_run_times(tx, times)
    got = tuples(
        tx,
        "select * from toolsdb.agent_performance where agent_id = any(%s) order by agent_name, model_name",
        ([a1, world.agent_2],),
    )
    expected = [
        (a1, world.agent_1_name, PROVIDER, world.model_1, 7, 2, Decimal("0.5000"), Decimal("25.000"),
         Decimal("38.500"), 3100, 2000, 500, cost(1000, 2000, 500) + cost(2000, 0, 0) + cost(100, 0, 0),
         "execution"),
        (a1, world.agent_1_name, PROVIDER, model_3, 1, 1, Decimal("1.0000"), Decimal("5.000"), Decimal("5.000"),
         7, 8, 9, Decimal("0.25"), "execution"),
        (world.agent_2, world.agent_2_name, PROVIDER, world.model_2, 1, 0, None, None, None, 0, 0, 0, None,
         "execution"),
    ]  # fmt: skip
    assert got == expected, (
        "agent_performance should rate success / (success + failure + timeout), ignoring pending, running "
        f"and cancelled runs, with p50 and p95 of the run durations:\n{got}"
    )
    assert [str(v) for v in got[0][6:9]] == ["0.5000", "25.000", "38.500"], (
        "success_rate should have 4 decimals and the durations 3."
    )
    total = scalar(tx, "select count(*) from toolsdb.agent_performance")
    assert total == scalar(
        tx, "select count(distinct (agent_id, model_provider, model_name)) from toolsdb.agent_executions"
    ), "agent_performance should have one row per agent and model that ran, and none for agents without runs."


# ---------------------------------------------------------------------------
# project_health
# ---------------------------------------------------------------------------


def test_project_health_counts_tasks_pull_requests_runs_and_errors(tx: psycopg.Connection, world: World) -> None:
    a = world.project_a
    for status in ("draft", "open", "in_review", "blocked"):
        add_task(tx, a, status, status=status)  # with world.task_a (in_progress): 5 open
    add_task(tx, a, "open with a PR", status="open", github_pr_number=5)  # not closed: not in pr_merge_rate
    add_task(tx, a, "merged 1", status="completed", github_pr_number=1)
    add_task(tx, a, "merged 2", status="completed", github_pr_number=2)
    add_task(tx, a, "done without PR", status="completed")
    add_task(tx, a, "failed PR", status="failed", github_pr_number=3)
    add_task(tx, a, "dropped PR", status="cancelled", github_pr_number=4)
    add_task(tx, a, "dropped", status="cancelled")
    a1, ta = world.agent_1, world.task_a
    run(tx, a1, ta, "success", (1000, 2000, 500))
    run(tx, a1, ta, "failure", (100, 0, 0))
    run(tx, a1, ta, "timeout")
    run(tx, a1, ta, "cancelled")
    run(tx, a1, ta, "running")
    run(tx, a1, ta, "pending")
    error(tx, "network", (), task_id=ta)
    error(tx, "api", (False,), task_id=ta)
    error(tx, "api", (True,), task_id=ta)
    tx.execute("delete from toolsdb.tasks where task_id = %s", (world.task_b,))
    tx.execute("update toolsdb.projects set status = 'paused' where project_id = %s", (world.project_b,))
    got = tuples(
        tx,
        "select * from toolsdb.project_health where project_id = any(%s) order by slug",
        ([world.project_a, world.project_b],),
    )
    expected = [
        (a, world.slug_a, "active", 12, 6, 3, Decimal("0.5000"), Decimal("0.3333"),
         cost(1000, 2000, 500) + cost(100, 0, 0), 2),
        (world.project_b, world.slug_b, "paused", 0, 0, 0, None, None, 0, 0),
    ]  # fmt: skip
    assert got == expected, (
        "project_health should count all, open (draft/open/in_progress/in_review/blocked) and completed tasks, "
        "pr_merge_rate = completed / closed among tasks with a PR, the success rate of finished runs, their cost "
        f"and the unresolved errors:\n{got}"
    )


# ---------------------------------------------------------------------------
# cost_by_day
# ---------------------------------------------------------------------------


def test_cost_by_day_groups_finished_runs_by_utc_day_of_completion(tx: psycopg.Connection, world: World) -> None:
    # Tokyo is UTC+9: 23:30 UTC on March 1st is already March 2nd there.
    tx.execute("set local timezone = 'Asia/Tokyo'")
    a1, a2, ta, tb = world.agent_1, world.agent_2, world.task_a, world.task_b
    times = {
        run(tx, a1, ta, "success", (1000, 2000, 500)): lasting(60, DAY1 + timedelta(hours=23, minutes=30)),
        run(tx, a1, ta, "failure", (100, 0, 0)): lasting(60, DAY1 + timedelta(hours=10)),
        run(tx, a1, ta, "success", (2000, 0, 0)): lasting(60, DAY2 + timedelta(minutes=30)),
        run(tx, a1, tb, "success", (300, 0, 0)): lasting(60, DAY1 + timedelta(hours=12)),
        run(tx, a2, ta, "success", (10, 20, 0), Decimal("1.5")): lasting(60, DAY2 + timedelta(hours=23, minutes=59)),
        run(tx, a2, ta, "timeout", (5, 0, 30)): lasting(60, DAY2 + timedelta(hours=15)),
    }
    cancelled = run(tx, a1, ta, "cancelled")
    times[cancelled] = (None, DAY2 + timedelta(hours=1))
    run(tx, a1, ta, "pending")
    run(tx, a2, tb, "running")
    set_run_times(tx, times)
    got = tuples(
        tx,
        "select * from toolsdb.cost_by_day where project_id = any(%s)"
        " order by day, project_id = %s desc, agent_name, model_name",
        ([world.project_a, world.project_b], world.project_a),
    )
    a, b = world.project_a, world.project_b
    n1, n2, m1, m2 = world.agent_1_name, world.agent_2_name, world.model_1, world.model_2
    day1, day2 = date(2025, 3, 1), date(2025, 3, 2)
    expected = [
        (day1, a, a1, n1, PROVIDER, m1, 2, 1100, 2000, 500, cost(1000, 2000, 500) + cost(100, 0, 0), 0, RUNS),
        (day1, b, a1, n1, PROVIDER, m1, 1, 300, 0, 0, cost(300, 0, 0), 0, RUNS),
        (day2, a, a1, n1, PROVIDER, m1, 2, 2000, 0, 0, cost(2000, 0, 0), 0, RUNS),
        (day2, a, a2, n2, PROVIDER, m2, 2, 15, 20, 30, Decimal("1.5"), 0, RUNS),
    ]
    assert got == expected, (
        "cost_by_day should group finished runs (cancelled included, pending and running not) by the UTC day "
        f"of completed_at, project, agent and model, whatever the session time zone:\n{got}"
    )


# ---------------------------------------------------------------------------
# Row-level security through the views
# ---------------------------------------------------------------------------


def test_the_application_sees_only_its_project_in_project_health_and_cost_by_day(
    pg: Pg, db: str, app_login: str
) -> None:
    with psycopg.connect(pg.conninfo(db)) as su:
        w = seed(su)
        add_task(su, w.project_a, "merged", status="completed", github_pr_number=1)
        add_task(su, w.project_a, "failed", status="failed", github_pr_number=2)
        times = {
            run(su, w.agent_1, w.task_a, "success", (1000, 2000, 500)): lasting(60, DAY1 + timedelta(hours=10)),
            run(su, w.agent_1, w.task_b, "success", (300, 0, 0)): lasting(60, DAY1 + timedelta(hours=11)),
            run(su, w.agent_1, w.task_b, "failure", (100, 0, 0)): lasting(60, DAY2 + timedelta(hours=11)),
        }
        set_run_times(su, times)
        error(su, "network", (), task_id=w.task_a)
        error(su, "network", (), task_id=w.task_b)
        error(su, "api", (False,), task_id=w.task_b)
        su.commit()
    a, b, a1, n1, m1 = w.project_a, w.project_b, w.agent_1, w.agent_1_name, w.model_1
    expected = {
        a: (
            [(a, w.slug_a, "active", 3, 1, 1, Decimal("0.5000"), Decimal("1.0000"), cost(1000, 2000, 500), 1)],
            [(date(2025, 3, 1), a, a1, n1, PROVIDER, m1, 1, 1000, 2000, 500, cost(1000, 2000, 500), 0, RUNS)],
        ),
        b: (
            [(b, w.slug_b, "active", 1, 1, 0, None, Decimal("0.5000"), cost(300, 0, 0) + cost(100, 0, 0), 2)],
            [
                (date(2025, 3, 1), b, a1, n1, PROVIDER, m1, 1, 300, 0, 0, cost(300, 0, 0), 0, RUNS),
                (date(2025, 3, 2), b, a1, n1, PROVIDER, m1, 1, 100, 0, 0, cost(100, 0, 0), 0, RUNS),
            ],
        ),
    }
    app = connect(pg, db, app_login, autocommit=False)
    try:
        for project, (health, costs) in expected.items():
            with app.transaction(force_rollback=True):
                app.execute("select set_config('toolsdb.project_id', %s, true)", (str(project),))
                got_health = tuples(app, "select * from toolsdb.project_health order by slug")
                got_costs = tuples(app, "select * from toolsdb.cost_by_day order by day")
            name = "A" if project == a else "B"
            assert got_health == health, f"With project {name} set, project_health should show only it:\n{got_health}"
            assert got_costs == costs, f"With project {name} set, cost_by_day should show only its runs:\n{got_costs}"
    finally:
        app.close()

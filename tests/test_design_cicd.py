"""The README of CI/CD task trackers (the CI/CD-for-agents design, Node.js),
block by block, against a real migrated database: each block's SQL runs with
the same statements and parameters (``$1`` placeholders, through psycopg's
RawCursor), changed only in imports and connection, and the test asserts what
the README says it returns. Where a block as written would be wrong, the test
runs the nearest correct form and says why (docs/names.md, "CI/CD task
trackers"). The README's model methods (Task.create, execution.addLog, ...)
have no SQL of their own: each runs as the SQL that does the same in toolsdb.

Also ``toolsdb verify`` (the design's migration validate()): equal databases
exit 0, planted drift is listed one line each and exits 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import RawCursor

from toolsdb.pool import create_pool

from .conftest import Pg, run_cli
from .dbhelpers import connect, ensure_login


@pytest.fixture
def client(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    """node-postgres' client: autocommit, ``$1`` placeholders. The database's
    search_path is what `toolsdb migrate` sets (a clone of the template does
    not inherit it), so names need no schema."""
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        su.execute(f"alter database {db} set search_path = toolsdb, public")
    with psycopg.connect(pg.conninfo(db), autocommit=True, cursor_factory=RawCursor) as connection:
        yield connection


def rows(conn: psycopg.Connection, query: str, params: list | None = None) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def one(conn: psycopg.Connection, query: str, params: list | None = None):
    return conn.execute(query, params).fetchone()[0]


# -- "Database Schema": the tables, their values, the views -------------------


def test_the_status_values_of_tasks_are_accepted_and_stored_in_one_vocabulary(client: psycopg.Connection) -> None:
    stored = [
        one(client, "INSERT INTO tasks (title, status) VALUES ($1, $2) RETURNING status", [f"t {s}", s])
        for s in ("pending", "in_progress", "completed", "failed", "cancelled")
    ]
    assert stored == ["open", "in_progress", "completed", "failed", "cancelled"]
    # An update to pending reopens a closed task, as any move to open does.
    assert one(client, "UPDATE tasks SET status = 'pending' WHERE title = 't failed' RETURNING status") == "open"
    assert one(client, "SELECT min(priority) || '-' || max(priority) FROM tasks") == "5-5"  # 0-10, default 5


def test_the_agent_types_are_accepted_as_snake_case_and_name_an_agent(client: psycopg.Connection) -> None:
    task_id = one(client, "INSERT INTO tasks (title) VALUES ($1) RETURNING task_id", ["Agents"])
    for agent_type in ("claude-code", "codegen", "webhook-handler", "validation-engine"):
        client.execute("INSERT INTO task_executions (task_id, agent_type) VALUES ($1, $2)", [task_id, agent_type])
    assert rows(client, "SELECT agent_type, status FROM task_executions ORDER BY agent_type") == [
        ("claude_code", "pending"),
        ("codegen", "pending"),
        ("validation_engine", "pending"),
        ("webhook_handler", "pending"),
    ]
    # Each type names an agent of the registry, registered on first use.
    assert rows(client, "SELECT name, agent_type FROM agents ORDER BY name") == [
        ("claude-code", "claude_code"),
        ("codegen", "codegen"),
        ("validation-engine", "validation_engine"),
        ("webhook-handler", "webhook_handler"),
    ]
    # The execution statuses completed and failed are success and failure.
    ids = [r[0] for r in rows(client, "SELECT id FROM task_executions ORDER BY agent_type")]
    client.execute("UPDATE task_executions SET status = 'running' WHERE id = ANY($1)", [ids[:2]])
    client.execute("UPDATE task_executions SET status = 'completed' WHERE id = $1", [ids[0]])
    client.execute("UPDATE task_executions SET status = 'failed' WHERE id = $1", [ids[1]])
    client.execute("UPDATE task_executions SET status = 'cancelled' WHERE id = $1", [ids[2]])
    assert [r[0] for r in rows(client, "SELECT status FROM task_executions ORDER BY agent_type")] == [
        "success",
        "failure",
        "cancelled",
        "pending",
    ]


def test_the_error_types_and_the_views_of_the_readme_exist(client: psycopg.Connection) -> None:
    for error_type in (
        "database",
        "api",
        "validation",
        "network",
        "timeout",
        "authentication",
        "authorization",
        "system",
    ):
        client.execute("INSERT INTO error_logs (error_type, error_message) VALUES ($1, $2)", [error_type, "x"])
    assert one(client, "SELECT count(*) FROM error_logs") == 8
    for view in ("active_tasks", "task_execution_summary", "pr_validation_summary", "error_summary", "recent_activity"):
        client.execute(f"SELECT * FROM {view}").fetchall()
    assert one(client, "SELECT sum(errors) FROM error_summary WHERE NOT resolved") == 8


def test_system_config_reads_and_writes_the_config_store(client: psycopg.Connection) -> None:
    client.execute(
        "INSERT INTO system_config (key, value, description) VALUES ($1, $2, $3)",
        ["ci.max_parallel_runs", "4", "How many runs at once"],
    )
    assert rows(
        client, "SELECT key, value, description FROM system_config WHERE key = $1", ["ci.max_parallel_runs"]
    ) == [("ci.max_parallel_runs", 4, "How many runs at once")]
    client.execute("UPDATE system_config SET value = $2 WHERE key = $1", ["ci.max_parallel_runs", "8"])
    assert one(client, "SELECT toolsdb.config_get('ci.max_parallel_runs')") == 8  # the one config table
    # An insert of an existing key updates it (config_set is an upsert).
    client.execute("INSERT INTO system_config (key, value) VALUES ($1, $2)", ["ci.max_parallel_runs", "2"])
    assert one(client, "SELECT value FROM system_config WHERE key = $1", ["ci.max_parallel_runs"]) == 2
    client.execute("DELETE FROM system_config WHERE key = $1", ["ci.max_parallel_runs"])
    assert rows(client, "SELECT * FROM system_config") == []
    # Keys keep toolsdb's format: named constraint, one line.
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        client.execute("INSERT INTO system_config (key, value) VALUES ($1, $2)", ["Max Runs", "1"])
    assert caught.value.diag.constraint_name == "key_is_valid"


# -- "Connection Management", "Basic Usage" ----------------------------------


def test_basic_usage(pg: Pg, db: str, client: psycopg.Connection) -> None:
    client.execute("INSERT INTO tasks (title, status) VALUES ($1, $2)", ["Waiting", "pending"])

    # executeQuery('SELECT * FROM tasks WHERE status = $1', ['pending']): as
    # written it finds nothing, since pending is stored as open (one
    # vocabulary). The nearest correct form maps the parameter.
    assert rows(client, "SELECT * FROM tasks WHERE status = $1", ["pending"]) == []
    found = rows(client, "SELECT title, status FROM tasks WHERE status = toolsdb.task_status_of($1)", ["pending"])
    assert found == [("Waiting", "open")]

    # executeTransaction: both inserts in one transaction, as written (taskId,
    # undefined in the README, is the task just inserted).
    with client.transaction():
        client.execute("INSERT INTO tasks (title) VALUES ($1)", ["New Task"])
        task_id = one(client, "SELECT task_id FROM tasks WHERE title = $1", ["New Task"])
        client.execute("INSERT INTO task_executions (task_id, agent_type) VALUES ($1, $2)", [task_id, "claude-code"])
    assert rows(
        client,
        "SELECT t.title, p.slug, e.agent_type, e.status FROM task_executions e"
        " JOIN tasks t USING (task_id) JOIN projects p ON p.project_id = t.project_id",
    ) == [("New Task", "inbox", "claude_code", "pending")]

    # healthCheck(), getStats(), close(): the pool of toolsdb.pool.
    with create_pool(pg.url(db)) as pool:
        with pool.connection() as conn:
            conn.execute("SELECT * FROM tasks WHERE status = %s", ["open"]).fetchall()
        health = pool.health_check()
        assert health["healthy"] is True
        assert pool.stats()["success_rate"] == 1.0


def test_a_task_without_project_goes_to_the_transactions_project_for_the_application(
    pg: Pg, db: str, client: psycopg.Connection
) -> None:
    login = ensure_login(pg, "tests_app", group="toolsdb_app")
    owner = one(client, "INSERT INTO users (username, email) VALUES ('ci', 'ci@example.com') RETURNING user_id")
    project = one(
        client, "INSERT INTO projects (slug, name, owner_id) VALUES ('web', 'Web', $1) RETURNING project_id", [owner]
    )
    with connect(pg, db, login, autocommit=False) as app:
        app.execute("select set_config('toolsdb.project_id', %s, true)", (str(project),))
        app.execute("INSERT INTO tasks (title) VALUES (%s)", ("New Task",))
        app.commit()
        # Without the setting, the application has no project: one line, 23502.
        with pytest.raises(psycopg.errors.NotNullViolation, match="a task needs a project"):
            app.execute("INSERT INTO tasks (title) VALUES (%s)", ("Nowhere",))
        app.rollback()
    assert rows(client, "SELECT p.slug FROM tasks JOIN projects p USING (project_id)") == [("web",)]


# -- "Data Models" ------------------------------------------------------------


def test_task_model(client: psycopg.Connection) -> None:
    user_id = one(
        client,
        "INSERT INTO users (username, email) VALUES ('developer', 'developer@example.com') RETURNING user_id",
    )
    # Task.create({title, description, requirements, priority, assigned_to}):
    # assigned_to (text) is assigned_to_user_id, found by e-mail.
    task_id = one(
        client,
        "INSERT INTO tasks (title, description, requirements, priority, assigned_to_user_id)"
        " VALUES ($1, $2, $3, $4, (SELECT user_id FROM users WHERE email = $5)) RETURNING task_id",
        [
            "Implement new feature",
            "Add user authentication",
            '{"auth": "oauth2", "provider": "github"}',
            5,
            "developer@example.com",
        ],
    )
    # Task.findBy({status: 'pending', assigned_to}, {limit: 10, orderBy: 'priority DESC'})
    found = rows(
        client,
        "SELECT t.task_id FROM tasks t JOIN users u ON u.user_id = t.assigned_to_user_id"
        " WHERE t.status = toolsdb.task_status_of($1) AND u.email = $2 ORDER BY t.priority DESC LIMIT 10",
        ["pending", "developer@example.com"],
    )
    assert found == [(task_id,)]
    # task.status = 'in_progress'; task.update()
    client.execute("UPDATE tasks SET status = $2 WHERE task_id = $1", [task_id, "in_progress"])
    # Task.getStatistics()
    stats = one(client, "SELECT toolsdb.task_statistics()")
    assert stats["total"] == 1
    assert stats["by_status"] == {"in_progress": 1}
    assert stats["by_priority"] == {"5": 1}
    assert stats["by_assignee"] == [
        {
            "assignee": "developer",
            "kind": "user",
            "total": 1,
            "open": 1,
            "completed": 0,
            "avg_completion_seconds": None,
        }
    ]
    assert user_id is not None


def test_task_statistics_counts_by_status_priority_and_assignee_with_time_to_completion(
    client: psycopg.Connection,
) -> None:
    agent = one(client, "INSERT INTO agents (name, agent_type) VALUES ('codegen', 'codegen') RETURNING agent_id")
    project = one(client, "SELECT toolsdb.default_project_id()")
    with client.transaction():
        # Known times: the triggers that set them (and priority_label) are off in this transaction only.
        client.execute("SET LOCAL session_replication_role = replica")
        client.execute(
            "INSERT INTO tasks (project_id, title, status, priority, priority_label, assigned_to_agent_id,"
            " created_at, closed_at)"
            " SELECT $1, 't' || g, 'completed', 9, 'critical', $2, now() - interval '1 hour', now() - interval '1 hour'"
            " + g * interval '10 minutes' FROM generate_series(1, 2) AS g",
            [project, agent],
        )
    client.execute("INSERT INTO tasks (title, priority) VALUES ('waiting', 2)")
    stats = one(client, "SELECT toolsdb.task_statistics($1)", [project])
    assert stats == {
        "total": 3,
        "by_status": {"completed": 2, "open": 1},
        "by_priority": {"2": 1, "9": 2},
        "completed": 2,
        "avg_completion_seconds": 900.0,
        "by_assignee": [
            {
                "assignee": "codegen",
                "kind": "agent",
                "total": 2,
                "open": 0,
                "completed": 2,
                "avg_completion_seconds": 900.0,
            },
            {"assignee": None, "kind": None, "total": 1, "open": 1, "completed": 0, "avg_completion_seconds": None},
        ],
    }
    other = one(client, "SELECT toolsdb.task_statistics(gen_random_uuid())")
    assert (other["total"], other["by_status"], other["by_assignee"]) == (0, {}, [])


def test_task_execution_and_pr_validation_models(client: psycopg.Connection) -> None:
    task_id = one(client, "INSERT INTO tasks (title) VALUES ($1) RETURNING task_id", ["Implement new feature"])
    # TaskExecution.create({task_id, agent_type: 'claude-code', agent_config})
    execution_id = one(
        client,
        "INSERT INTO task_executions (task_id, agent_type, agent_config) VALUES ($1, $2, $3) RETURNING id",
        [task_id, "claude-code", '{"model": "claude-3-sonnet", "temperature": 0.1}'],
    )
    # execution.start()
    client.execute("UPDATE task_executions SET status = 'running' WHERE id = $1", [execution_id])
    # execution.addLog({level, message, timestamp})
    client.execute(
        "UPDATE task_executions SET logs = logs || $2 WHERE id = $1",
        [
            execution_id,
            '[{"level": "info", "message": "Starting code generation", "timestamp": "2025-01-01T00:00:00Z"}]',
        ],
    )
    # execution.complete([{level, message}])
    client.execute(
        "UPDATE task_executions SET status = 'completed', logs = logs || $2 WHERE id = $1",
        [execution_id, '[{"level": "info", "message": "Code generation completed successfully"}]'],
    )
    status, logs, started, completed, config = client.execute(
        "SELECT status, logs, started_at, completed_at, agent_config FROM task_executions WHERE id = $1",
        [execution_id],
    ).fetchone()
    assert status == "success"
    assert [(e["level"], e["message"]) for e in logs] == [
        ("info", "Starting code generation"),
        ("info", "Code generation completed successfully"),
    ]
    assert started <= completed
    assert config == {"model": "claude-3-sonnet", "temperature": 0.1}
    # Entries are appended, never rewritten.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="appended, never rewritten"):
        client.execute("UPDATE task_executions SET logs = '[]' WHERE id = $1", [execution_id])

    # PRValidation.create({task_id, execution_id, pr_number, repository, branch_name})
    validation_id = one(
        client,
        "INSERT INTO pr_validations (task_id, execution_id, pr_number, repository, branch_name)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING validation_id",
        [task_id, execution_id, 123, "owner/repo", "feature/new-auth"],
    )
    # validation.addValidationResult('tests', {status: 'passed', details})
    client.execute(
        "SELECT toolsdb.validation_record_check($1, $2, $3, $4)",
        [validation_id, "tests", True, '{"passed": 15, "failed": 0, "skipped": 2}'],
    )
    # validation.updateStatus('passed', {overall_score, ...}): the database
    # settles it from the checks recorded (passed: every check passed).
    assert one(client, "SELECT status FROM toolsdb.validation_settle($1)", [validation_id]) == "passed"


# -- "Performance Optimization", "Performance Tests" -------------------------


def test_active_tasks_by_priority(client: psycopg.Connection) -> None:
    for title, priority, status in (
        ("low", 2, "pending"),
        ("high", 8, "pending"),
        ("mid", 5, "in_progress"),
        ("done", 9, "completed"),
    ):
        client.execute("INSERT INTO tasks (title, priority, status) VALUES ($1, $2, $3)", [title, priority, status])
    found = rows(client, "SELECT * FROM active_tasks WHERE priority >= $1", [5])
    assert sorted(r[4] for r in found) == ["high", "mid"]
    # A text parameter (node-postgres sends them so) works the same.
    assert len(rows(client, "SELECT * FROM active_tasks WHERE priority >= $1::text::smallint", ["5"])) == 2


def test_concurrent_queries(pg: Pg, db: str) -> None:
    with create_pool(pg.url(db)) as pool:

        def query(i: int) -> int:
            with pool.connection() as conn:
                return conn.execute("SELECT %s::int as test_value", [i]).fetchone()[0]

        with ThreadPoolExecutor(max_workers=8) as workers:
            results = list(workers.map(query, range(100)))
        stats = pool.stats()
    assert results == list(range(100))
    assert stats["total_queries"] == 100 and stats["success_rate"] == 1.0


# -- "Migrations": isApplied / up / validate / down ---------------------------


def test_migrations_up_validate_down(pg: Pg, empty_db: str) -> None:
    url = pg.url(empty_db)
    # validate() of a database not migrated: drift, exit 1.
    result = run_cli("verify", "--database", url)
    assert result.returncode == 1 and "not migrated" in result.stdout, result
    # isApplied: toolsdb status; up(): toolsdb migrate; validate(): toolsdb verify.
    assert "0 applied, 1 pending" in run_cli("status", "--database", url).stdout
    assert run_cli("migrate", "--database", url).returncode == 0
    assert "1 applied, 0 pending" in run_cli("status", "--database", url).stdout
    result = run_cli("verify", "--database", url)
    assert result.returncode == 0 and "matches this code" in result.stdout, result
    # down(): toolsdb rollback; validate() now lists what is missing.
    assert run_cli("rollback", "--force", "--database", url).returncode == 0, "rollback"
    result = run_cli("verify", "--database", url)
    assert result.returncode == 1
    assert result.stdout == "not migrated: no migration is applied (1 pending): run toolsdb migrate\n"
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr


def test_verify_lists_planted_drift_and_writes_nothing(pg: Pg, db: str) -> None:
    url = pg.url(db)
    assert run_cli("verify", "--database", url).returncode == 0
    with connect(pg, db) as su:
        su.execute("drop view toolsdb.system_config")
        su.execute(
            "create or replace function toolsdb.task_status_of(status text) returns text"
            " language sql immutable set search_path = '' return status"
        )
        su.execute("create function toolsdb.by_hand() returns int language sql return 1")
        before = su.execute(
            "select pg_current_snapshot()::text, count(*) from toolsdb_migrations.definitions"
        ).fetchone()
    result = run_cli("verify", "--database", url)
    assert result.returncode == 1, result
    assert result.stdout.splitlines() == [
        "changed in the database: function toolsdb.task_status_of differs from repeatable/39_compat.sql",
        "missing: view toolsdb.system_config (repeatable/86_cicd_views.sql)",
        "missing: trigger _100_write on toolsdb.system_config (repeatable/86_cicd_views.sql)",
        "undefined: function toolsdb.by_hand is in the database and no file of repeatable/ defines it",
    ]
    assert result.stderr.count("\n") == 1 and "differs from this code in 4 place(s)" in result.stderr
    with connect(pg, db) as su:
        after = su.execute(
            "select pg_current_snapshot()::text, count(*) from toolsdb_migrations.definitions"
        ).fetchone()
        # Read only: verify took no transaction id (the snapshot did not move).
        assert after == before
        su.execute("drop function toolsdb.by_hand()")
    assert run_cli("migrate", "--database", url).returncode == 0
    assert run_cli("verify", "--database", url).returncode == 0

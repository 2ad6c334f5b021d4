"""Coming from the AI-first engineering platform: its README's database
examples run against toolsdb.

Each test is one part of that README that concerns the database, with only
its imports and connection changed: create the database, migrate (``toolsdb
migrate`` in place of ``psql -f 001_initial_schema.sql``), seed, verify,
the key fields of every table under the platform's names, its statuses and
priority labels, monitoring, backup and restore, and the Redis utilities.
Where running a block as written would be wrong (a table-size query on
``public``, ``pg_stat_statements.mean_time``), the test shows the nearest
correct form; docs/names.md and docs/work-tracking.md say why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.collaborationhelpers import World, new_evidence, seeded_world
from tests.dbhelpers import connect_app, expect_error, insert, one, rows, scalar, unique

from .conftest import Pg, _fresh_name, clean_env, run_cli

# The platform's tables, as its README lists them.
TABLES = (
    "users",
    "projects",
    "agents",
    "tasks",
    "evidence",
    "agent_executions",
    "audit_logs",
    "task_comments",
    "task_attachments",
    "activity_feed",
)

# "Key Fields" of each table, as the README names them; the audit log's are
# read through toolsdb.platform_audit_logs (the table keeps toolsdb's names).
KEY_FIELDS = {
    "users": "user_id, username, email, role, github_username, metadata, preferences, is_active, created_at",
    "projects": "project_id, slug, repository_url, owner_id, technology_stack, test_coverage_percent, status",
    "agents": "agent_id, name, agent_type, model_provider, model_name, capabilities, is_active, is_experimental",
    "tasks": "task_id, project_id, github_issue_number, github_pr_number, type, status, priority, "
    "assigned_to_user_id, assigned_to_agent_id, ai_analysis, ai_suggestions",
    "evidence": "evidence_id, task_id, project_id, source_type, credibility_score, is_verified, "
    "related_evidence, contradicting_evidence, tags",
    "agent_executions": "execution_id, agent_id, task_id, project_id, input_tokens, output_tokens, cost_usd, "
    "status, result, evidence_id, created_at",
    "platform_audit_logs": "log_id, user_id, agent_id, event_type, resource_type, resource_id, old_values, "
    "new_values, ip_address, user_agent, is_immutable, created_at",
    "task_comments": "comment_id, task_id, github_comment_id, is_ai_generated, ai_metadata, created_at",
    "task_attachments": "attachment_id, task_id, storage_path, is_evidence, evidence_id",
    "activity_feed": "activity_id, project_id, task_id, user_id, agent_id, activity_type, is_public, created_at",
}


@pytest.fixture
def tx(shared_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The module database in a transaction always rolled back, with the
    search_path `toolsdb migrate` gives a database (a clone lacks it)."""
    with shared_conn.transaction(force_rollback=True):
        shared_conn.execute("set local search_path = toolsdb, public")
        yield shared_conn


@pytest.fixture
def world(tx: psycopg.Connection) -> World:
    return seeded_world(tx)


def psql(pg: Pg, dbname: str, command: str) -> str:
    return pg.psql(dbname, "-At", "-c", command).stdout


# -- Setup instructions 2 to 5, and Troubleshooting ---------------------------


def test_create_migrate_seed_and_verify_a_database(pg: Pg) -> None:
    name = _fresh_name("ai_company_db")
    # 2. psql -U postgres -c "CREATE DATABASE ai_company_db;"
    psql(pg, "postgres", f"CREATE DATABASE {name};")
    try:
        # 3. psql -f packages/db/migrations/001_initial_schema.sql: toolsdb migrate.
        # 4. psql -f packages/db/seeds/0N_*.sql: toolsdb seed.
        for command in ("migrate", "seed"):
            done = run_cli(command, "--database", pg.url(name))
            assert done.returncode == 0, done.stderr
        # 5. psql -c "\dt": the platform's tables are there (schema toolsdb, on the search_path).
        listed = {line.split("|")[1] for line in psql(pg, name, "\\dt").splitlines()}
        missing = set(TABLES) - listed
        assert not missing, f"\\dt should list the platform's tables, but misses {sorted(missing)}."
        assert int(psql(pg, name, "SELECT COUNT(*) FROM users;")) > 0, "The seed data should include users."
        # Troubleshooting: psql -h localhost -d ai_company_db -c "SELECT 1"
        assert psql(pg, name, "SELECT 1").strip() == "1"
    finally:
        psql(pg, "postgres", f"DROP DATABASE {name} WITH (FORCE);")


# -- Database Schema: the key fields --------------------------------------------


@pytest.mark.parametrize("table", list(KEY_FIELDS))
def test_key_fields_are_readable_under_the_platforms_names(tx: psycopg.Connection, table: str) -> None:
    cursor = tx.execute(f"select {KEY_FIELDS[table]} from {table} limit 1")
    assert [c.name for c in cursor.description] == [f.strip() for f in KEY_FIELDS[table].split(",")]


def test_closed_is_written_and_stored_as_completed_or_cancelled(tx: psycopg.Connection, world: World) -> None:
    done = insert(tx, "tasks", project_id=world.project_a, title="fixed already", status="closed")
    assert (done["status"], done["closed_at"] is not None) == ("completed", True), (
        "A task inserted as closed should be stored completed, with closed_at."
    )
    worked = insert(tx, "tasks", project_id=world.project_a, title="in review", status="in_review")["task_id"]
    dropped = insert(tx, "tasks", project_id=world.project_a, title="never started")["task_id"]
    tx.execute("UPDATE tasks SET status = 'closed' WHERE task_id = ANY(%s)", ([worked, dropped],))
    found = {
        r["task_id"]: r["status"]
        for r in rows(tx, "select task_id, status from tasks where task_id = any(%s)", ([worked, dropped],))
    }
    assert found == {worked: "completed", dropped: "cancelled"}, (
        "Closing a task under review should complete it; closing an open one should cancel it (dropped)."
    )
    assert scalar(tx, "select toolsdb.task_transition(%s, 'closed')", (dropped,)) == "cancelled"
    assert scalar(tx, "select status from tasks where task_id = %s", (dropped,)) == "cancelled", (
        "Closing a closed task should leave it as it was."
    )
    # WHERE status = 'closed' finds nothing: the nearest correct form is closed_at.
    assert (
        scalar(tx, "select count(*) from tasks where project_id = %s and closed_at is not null", (world.project_a,))
        == 3
    )


def test_priority_labels_are_written_and_read(tx: psycopg.Connection, world: World) -> None:
    task = insert(tx, "tasks", project_id=world.project_a, title="label me", priority_label="high")
    assert (task["priority"], task["priority_label"]) == (7, "high"), "A label written alone should set the priority."
    tx.execute("UPDATE tasks SET priority_label = 'critical' WHERE task_id = %s", (task["task_id"],))
    assert one(tx, "select priority, priority_label from tasks where task_id = %s", (task["task_id"],)) == {
        "priority": 9,
        "priority_label": "critical",
    }
    tx.execute("UPDATE tasks SET priority = 3 WHERE task_id = %s", (task["task_id"],))
    assert scalar(tx, "select priority_label from tasks where task_id = %s", (task["task_id"],)) == "low", (
        "The label should follow the priority."
    )
    # priority = 'high' is refused by the 0-10 column; the nearest correct form:
    expect_error(
        tx, "22P02", lambda: tx.execute("UPDATE tasks SET priority = 'high' WHERE task_id = %s", (task["task_id"],))
    )
    tx.execute("UPDATE tasks SET priority = toolsdb.priority_from_label('high') WHERE task_id = %s", (task["task_id"],))
    assert scalar(tx, "select priority_label from tasks where task_id = %s", (task["task_id"],)) == "high"
    expect_error(
        tx,
        "22023",
        lambda: tx.execute("UPDATE tasks SET priority_label = 'urgent' WHERE task_id = %s", (task["task_id"],)),
    )
    expect_error(
        tx,
        "22023",
        lambda: tx.execute(
            "UPDATE tasks SET priority = 1, priority_label = 'critical' WHERE task_id = %s", (task["task_id"],)
        ),
    )


def test_comments_carry_ai_metadata_and_github_ids(tx: psycopg.Connection, world: World) -> None:
    by_agent = insert(
        tx,
        "task_comments",
        task_id=world.task_a,
        author_agent_id=world.agent_id,
        body="Suggested fix attached.",
        ai_metadata=psycopg.types.json.Jsonb({"model": "m", "prompt_version": 3}),
        github_comment_id=1876543210,
    )
    assert by_agent["is_ai_generated"] is True, "An agent's comment should be marked AI-generated."
    drafted = insert(
        tx, "task_comments", task_id=world.task_a, author_user_id=world.user_id, body="ok", is_ai_generated=True
    )
    assert drafted["is_ai_generated"] is True, "A user may mark a comment an AI drafted."
    plain = insert(tx, "task_comments", task_id=world.task_a, author_user_id=world.user_id, body="thanks")
    assert (plain["is_ai_generated"], plain["ai_metadata"], plain["github_comment_id"]) == (False, {}, None)
    expect_error(
        tx,
        "23505",
        lambda: insert(tx, "task_comments", task_id=world.task_a, body="dup", github_comment_id=1876543210),
        constraint="task_comments_project_id_github_comment_id_key",
    )
    expect_error(
        tx,
        "23514",
        lambda: insert(tx, "task_comments", task_id=world.task_a, body="x", ai_metadata=psycopg.types.json.Jsonb([])),
        constraint="ai_metadata_is_object",
    )


def test_attachments_are_evidence_with_a_storage_path(tx: psycopg.Connection, world: World) -> None:
    evidence_id = new_evidence(tx, world.project_a)["evidence_id"]
    file = insert(
        tx,
        "task_attachments",
        task_id=world.task_a,
        file_name="coverage.xml",
        size_bytes=2048,
        storage_path="tasks/coverage.xml",
        evidence_id=evidence_id,
    )
    assert (file["is_evidence"], file["evidence_id"]) == (True, evidence_id), (
        "An attachment linked to evidence should be marked is_evidence."
    )
    other = new_evidence(tx, world.project_b)["evidence_id"]
    expect_error(
        tx,
        "23514",
        lambda: insert(
            tx,
            "task_attachments",
            task_id=world.task_a,
            file_name="x",
            size_bytes=1,
            storage_path="x",
            evidence_id=other,
        ),
        constraint="evidence_is_in_same_project",
    )
    tx.execute("delete from evidence where evidence_id = %s", (evidence_id,))
    kept = one(
        tx, "select is_evidence, evidence_id from task_attachments where attachment_id = %s", (file["attachment_id"],)
    )
    assert kept == {"is_evidence": True, "evidence_id": None}, (
        "Deleting the evidence should keep the attachment marked."
    )
    expect_error(
        tx,
        "23514",
        lambda: tx.execute(
            "update task_attachments set is_evidence = false, evidence_id = %s where attachment_id = %s",
            (other, file["attachment_id"]),
        ),
    )


def test_projects_record_test_coverage(tx: psycopg.Connection, world: World) -> None:
    tx.execute("UPDATE projects SET test_coverage_percent = 87.5 WHERE project_id = %s", (world.project_a,))
    assert (
        str(scalar(tx, "select test_coverage_percent from projects where project_id = %s", (world.project_a,)))
        == "87.50"
    )
    expect_error(
        tx,
        "23514",
        lambda: tx.execute(
            "UPDATE projects SET test_coverage_percent = 100.5 WHERE project_id = %s", (world.project_a,)
        ),
        constraint="test_coverage_percent_is_valid",
    )


def test_the_audit_log_reads_under_the_platforms_names(tx: psycopg.Connection, world: World) -> None:
    tx.execute(
        "select set_config('toolsdb.client_addr', '203.0.113.7', true), "
        "set_config('toolsdb.user_agent', 'platform-ui/1.0', true)"
    )
    log_id = scalar(tx, "select toolsdb.audit_event('task_created', 'task', %s, '{}')", (str(world.task_a),))
    entry = one(
        tx,
        "SELECT event_type, resource_type, resource_id, host(ip_address) as ip, user_agent, is_immutable "
        "FROM platform_audit_logs WHERE log_id = %s",
        (log_id,),
    )
    assert entry == {
        "event_type": "task_created",
        "resource_type": "task",
        "resource_id": str(world.task_a),
        "ip": "203.0.113.7",
        "user_agent": "platform-ui/1.0",
        "is_immutable": True,
    }
    captured = rows(
        tx,
        "SELECT event_type FROM platform_audit_logs WHERE resource_type = 'tasks' AND resource_id = %s",
        (str(world.task_a),),
    )
    assert [r["event_type"] for r in captured] == ["insert"], "Captured changes should be in the view too."


def test_the_audit_view_keeps_row_level_security(pg: Pg, committed, app_login: str) -> None:
    session = unique("platform-session-")
    with connect_app(pg, committed.dbname, app_login) as app:
        app.execute("select set_config('toolsdb.session_id', %s, true)", (session,))
        mine = scalar(app, "select toolsdb.audit_event('deploy_started', 'deployment', 'd1')")
        app.commit()
        app.execute("select set_config('toolsdb.session_id', %s, true)", (session + "-other",))
        assert scalar(app, "select count(*) from toolsdb.platform_audit_logs where log_id = %s", (mine,)) == 0, (
            "Another session should not read the entry through the view."
        )
        app.rollback()
        app.execute("select set_config('toolsdb.session_id', %s, true)", (session,))
        assert scalar(app, "select count(*) from toolsdb.platform_audit_logs where log_id = %s", (mine,)) == 1


# -- Monitoring ------------------------------------------------------------------


def test_monitoring_queries(pg: Pg, committed) -> None:
    # Check index usage: as written.
    assert psql(pg, committed.dbname, "SELECT * FROM pg_stat_user_indexes ORDER BY idx_scan;")
    # Check table sizes: the tables are in schema toolsdb, not public.
    as_written = (
        "SELECT schemaname, tablename, pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename))\n"
        "FROM pg_tables WHERE schemaname = '{}';"
    )
    assert psql(pg, committed.dbname, as_written.format("public")) == ""
    assert "|users|" in psql(pg, committed.dbname, as_written.format("toolsdb"))
    # Check slow queries: mean_time is mean_exec_time since PostgreSQL 13, and the
    # extension may be missing; the view answers either way.
    failed = pg.psql(
        committed.dbname,
        "-c",
        "SELECT query, calls, mean_time FROM pg_stat_statements ORDER BY mean_time DESC LIMIT 10;",
        check=False,
    )
    assert failed.returncode != 0
    psql(pg, committed.dbname, "SELECT query, calls, mean_ms FROM toolsdb_monitoring.slow_statements LIMIT 10;")


# -- Backup and Recovery -----------------------------------------------------------


def test_custom_format_backup_and_restore(pg: Pg, committed, tmp_path: Path) -> None:
    dump = tmp_path / "backup.dump"
    with dump.open("wb") as out:
        subprocess.run(
            [str(pg.bindir / "pg_dump"), "-F", "c", "-d", pg.conninfo(committed.dbname)],
            stdout=out,
            check=True,
            env=clean_env(),
        )
    with pg.clone(_fresh_name("restored"), None) as restored:
        subprocess.run(
            [str(pg.bindir / "pg_restore"), "-d", pg.conninfo(restored), str(dump)],
            capture_output=True,
            check=True,
            env=clean_env(),
        )
        listed = psql(pg, restored, "select count(*) from toolsdb.task_attachments")
        assert listed.strip() == "0"


# -- Using Redis Utilities -----------------------------------------------------


@pytest.fixture
def platform_redis(redis_url: str, redis_client, clean_redis_env, monkeypatch):
    """REDIS_URL of the running server: the README's connection settings."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    return redis_client


def test_cache_management(platform_redis) -> None:
    from toolsdb.redis import cache_result, get_cache_manager

    cache = get_cache_manager()
    cache.set("user:123:profile", {"name": "John"}, ttl_seconds=3600)
    assert cache.get("user:123:profile") == {"name": "John"}
    calls = []

    @cache_result(ttl_seconds=3600)
    def expensive_function(user_id):
        calls.append(user_id)
        return {"user": user_id}

    assert expensive_function(1) == expensive_function(1) == {"user": 1}
    assert calls == [1], "The second call should come from the cache."
    assert cache.clear_pattern("user:*") >= 1
    assert cache.get("user:123:profile") is None


def test_rate_limiting(platform_redis) -> None:
    from toolsdb.redis import get_rate_limiter

    limiter = get_rate_limiter()
    user_id = "user:123"
    allowed = [limiter.is_allowed(user_id, max_requests=100, window_seconds=60) for _ in range(101)]
    assert allowed == [True] * 100 + [False], "The 101st request in the window should be rate limited."
    assert limiter.get_remaining(user_id, max_requests=100) == 0


def test_session_management(platform_redis) -> None:
    from toolsdb.redis import get_session_manager

    sessions = get_session_manager()
    session_id = "sess_abc123"
    sessions.create(session_id, {"user_id": "user:123", "permissions": ["read", "write"]})
    assert sessions.get(session_id) == {"user_id": "user:123", "permissions": ["read", "write"]}
    assert sessions.refresh(session_id, ttl_seconds=7200)
    assert 0 < sessions.ttl(session_id) <= 7200
    sessions.delete(session_id)
    assert sessions.get(session_id) is None


def test_distributed_locking(platform_redis) -> None:
    from toolsdb.redis import DistributedLock, get_redis_client

    redis_client = get_redis_client()
    lock = DistributedLock(redis_client, timeout_seconds=30)
    if lock.acquire("deploy-production"):
        try:
            assert not DistributedLock(redis_client, timeout_seconds=30).acquire("deploy-production"), (
                "A second holder should not get the lock."
            )
        finally:
            lock.release("deploy-production")
    else:
        pytest.fail("The lock should be free.")
    assert not lock.locked("deploy-production")

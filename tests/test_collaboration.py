"""Behaviour of the collaboration tables against a real, migrated database, on
each PostgreSQL major of the suite: toolsdb.pr_validations
(schema/33_pr_validations.sql), toolsdb.error_logs (schema/34_error_logs.sql),
toolsdb.evidence (schema/35_evidence.sql), toolsdb.task_comments and
toolsdb.task_attachments (schema/36_task_discussion.sql) and
toolsdb.activity_feed (schema/37_activity_feed.sql).

Covers the validation lifecycle (trigger _200_validation_rules and the
functions validation_record_check/settle/cancel), error logging and recovery
(error_record, error_record_recovery, trigger _200_error_rules), the evidence
registry (verified_at kept by the database, no self-reference, the tags GIN
index, the foreign key from agent_executions.evidence_id), the project filled
in from the task on comments and attachments, the append-only activity feed
(activity_record, exempt from audit), the named constraints, change capture
into the audit log and row-level security for a login in toolsdb_app.

Isolation, as in test_executions.py: one clone of the template per module and
major. It holds two committed projects with a row in each of the six tables
for the row-level security tests, which connect as a login role; every other
test runs in ``tx``, a transaction that is always rolled back, and seeds its
own user, projects, tasks and agent. Every statement that must fail runs in a
savepoint, so the transaction stays usable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import (
    Row,
    call,
    connect_app,
    expect_error,
    insert,
    one,
    rows,
    scalar,
    set_project,
    unique,
)

EARLY = datetime(2001, 1, 1, tzinfo=timezone.utc)
SHA = "0123456789abcdef" * 4
TABLES = ("pr_validations", "error_logs", "evidence", "task_comments", "task_attachments", "activity_feed")

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def update(conn: psycopg.Connection, table: str, key: str, key_value: Any, **values: object) -> Row:
    """Update one row of toolsdb.<table> and return it as stored (after triggers)."""
    query = sql.SQL("update toolsdb.{table} set {sets} where {key} = %s returning *").format(
        table=sql.Identifier(table),
        sets=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in values),
        key=sql.Identifier(key),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, [*values.values(), key_value]).fetchone()
    assert row is not None, f"The update of toolsdb.{table} should have returned the row."
    return row


@dataclass(frozen=True)
class World:
    """What a test seeds as the superuser: a user, two projects with a task
    each, and an agent."""

    user_id: Any
    project_a: Any
    project_b: Any
    task_a: Any
    task_b: Any
    agent_id: Any


def seed(conn: psycopg.Connection) -> World:
    username = unique("collab-user-")
    user_id = insert(conn, "users", username=username, email=f"{username}@example.com")["user_id"]
    slug_a, slug_b = unique("collab-a-"), unique("collab-b-")
    project_a = insert(conn, "projects", slug=slug_a, name=slug_a, owner_id=user_id)["project_id"]
    project_b = insert(conn, "projects", slug=slug_b, name=slug_b, owner_id=user_id)["project_id"]
    task_a = insert(conn, "tasks", project_id=project_a, title=unique("task a "))["task_id"]
    task_b = insert(conn, "tasks", project_id=project_b, title=unique("task b "))["task_id"]
    agent_id = insert(
        conn, "agents", name=unique("collab-agent-"), agent_type="coding", model_provider="acme", model_name="m"
    )["agent_id"]
    return World(user_id, project_a, project_b, task_a, task_b, agent_id)


def new_validation(conn: psycopg.Connection, task_id: Any, **values: object) -> Row:
    return insert(
        conn, "pr_validations", task_id=task_id, **{"pr_number": 7, "repository": "example/toolsdb", **values}
    )


def validation_in(conn: psycopg.Connection, task_id: Any, status: str) -> Any:
    """A validation of ``task_id`` brought to ``status`` by the functions."""
    validation_id = new_validation(conn, task_id)["validation_id"]
    if status == "pending":
        return validation_id
    if status == "cancelled":
        call(conn, "validation_cancel", validation_id)
        return validation_id
    call(conn, "validation_record_check", validation_id, "tests", status != "failed")
    if status in ("passed", "failed"):
        call(conn, "validation_settle", validation_id)
    return validation_id


def new_evidence(conn: psycopg.Connection, project_id: Any, **values: object) -> Row:
    return insert(
        conn, "evidence", project_id=project_id, **{"source_type": "test_result", "title": "tests pass", **values}
    )


def new_attachment(conn: psycopg.Connection, task_id: Any, **values: object) -> Row:
    fields: dict[str, object] = {
        "file_name": "report.txt",
        "content_type": "text/plain",
        "size_bytes": 12,
        "storage_url": "s3://bucket/report.txt",
        **values,
    }
    return insert(conn, "task_attachments", task_id=task_id, **fields)


def record_error(conn: psycopg.Connection, error_type: str = "network", **named: Any) -> Any:
    names = sql.SQL("").join(sql.SQL(", {} => %s").format(sql.Identifier(name)) for name in named)
    query = sql.SQL("select toolsdb.error_record(%s, 'it broke'{names})").format(names=names)
    return scalar(conn, query.as_string(conn), (error_type, *named.values()))


def error_of(conn: psycopg.Connection, error_id: Any) -> Row:
    return one(conn, "select * from toolsdb.error_logs where error_id = %s", (error_id,))


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Committed:
    """The committed rows of the module database, for the login role tests:
    per table, the id of A's row and of B's row."""

    dbname: str
    project_a: str
    project_b: str
    task_b: str
    ids: dict[str, tuple[str, str]]


def seed_project_rows(conn: psycopg.Connection, project_id: Any, task_id: Any) -> dict[str, str]:
    """One row of each of the six tables in a project; their ids as text."""
    return {
        "pr_validations": str(validation_in(conn, task_id, "running")),
        "error_logs": str(record_error(conn, task_id=task_id)),
        "evidence": str(new_evidence(conn, project_id)["evidence_id"]),
        "task_comments": str(insert(conn, "task_comments", task_id=task_id, body="hello")["comment_id"]),
        "task_attachments": str(new_attachment(conn, task_id)["attachment_id"]),
        "activity_feed": str(
            scalar(conn, "select toolsdb.activity_record(%s, 'task.created', 'created', %s)", (project_id, task_id))
        ),
    }


@pytest.fixture(scope="module")
def committed(pg: Pg, template: str) -> Iterator[Committed]:
    """One clone per module and major, holding two projects with a row of
    each collaboration table (a running validation, an open error, ...)."""
    with pg.clone(f"collab_{os.getpid()}_{pg.major}", template) as name:
        with psycopg.connect(pg.conninfo(name)) as su:
            world = seed(su)
            in_a = seed_project_rows(su, world.project_a, world.task_a)
            in_b = seed_project_rows(su, world.project_b, world.task_b)
            su.commit()
        ids = {table: (in_a[table], in_b[table]) for table in TABLES}
        yield Committed(name, str(world.project_a), str(world.project_b), str(world.task_b), ids)


@pytest.fixture
def world(tx: psycopg.Connection) -> World:
    return seed(tx)


# ---------------------------------------------------------------------------
# PR validations
# ---------------------------------------------------------------------------


def test_a_new_validation_is_pending_whatever_the_caller_inserts(tx: psycopg.Connection, world: World) -> None:
    now = datetime.now(timezone.utc)
    validation = new_validation(
        tx, world.task_a, project_id=world.project_b, status="passed", started_at=now, completed_at=now
    )
    assert validation["status"] == "pending", (
        f"A new validation should be pending whatever the caller says, not {validation['status']}."
    )
    assert (validation["started_at"], validation["completed_at"]) == (None, None), (
        "A new validation should have no started_at nor completed_at, but has "
        f"{validation['started_at']}, {validation['completed_at']}."
    )
    assert validation["project_id"] == world.project_a, (
        "The validation's project should be its task's (A), overriding the project_id the caller gave (B)."
    )
    assert validation["validation_results"] == {}, "A new validation should have no check results."


def test_recording_checks_runs_the_validation_and_replaces_a_check(tx: psycopg.Connection, world: World) -> None:
    validation_id = validation_in(tx, world.task_a, "pending")
    first = call(tx, "validation_record_check", validation_id, "tests", True, Jsonb({"passed": 128}))
    assert first["status"] == "running", (
        f"The first check should move the validation to running, not {first['status']}."
    )
    assert first["started_at"] is not None and first["completed_at"] is None, (
        "The first check should set started_at and leave completed_at empty."
    )
    tests = first["validation_results"]["tests"]
    assert set(tests) == {"passed", "details", "recorded_at"}, (
        f"A check should be stored as passed, details and recorded_at, but is {tests}."
    )
    assert (tests["passed"], tests["details"]) == (True, {"passed": 128}), (
        f"The check 'tests' should be stored as passed with its details, but is {tests}."
    )
    call(tx, "validation_record_check", validation_id, "lint", False, Jsonb({"errors": 3}))
    again = call(tx, "validation_record_check", validation_id, "lint", True)
    assert set(again["validation_results"]) == {"tests", "lint"}, (
        f"Recording a check again should not add a key, but the results are {again['validation_results']}."
    )
    assert again["validation_results"]["lint"]["passed"] is True, "Recording 'lint' again should replace its result."
    assert again["validation_results"]["lint"]["details"] == {}, "The details of a check should default to {}."
    assert again["started_at"] == first["started_at"], "Further checks should keep the validation's started_at."
    assert again["status"] == "running", "Further checks should leave the validation running."


@pytest.mark.parametrize(("second_passes", "status"), [(True, "passed"), (False, "failed")])
def test_settling_passes_only_when_every_check_passed(
    tx: psycopg.Connection, world: World, second_passes: bool, status: str
) -> None:
    validation_id = validation_in(tx, world.task_a, "pending")
    call(tx, "validation_record_check", validation_id, "tests", True)
    call(tx, "validation_record_check", validation_id, "lint", second_passes)
    settled = call(tx, "validation_settle", validation_id)
    assert settled["status"] == status, (
        f"With checks tests=true and lint={second_passes} the validation should settle as {status}, "
        f"not {settled['status']}."
    )
    assert settled["completed_at"] is not None and settled["completed_at"] >= settled["started_at"], (
        "Settling should set completed_at no earlier than started_at."
    )


def test_a_validation_of_an_unknown_task_names_the_foreign_key(tx: psycopg.Connection, world: World) -> None:
    expect_error(
        tx,
        "23503",
        lambda: tx.execute(
            "insert into toolsdb.pr_validations (task_id, pr_number, repository)"
            " values (gen_random_uuid(), 1, 'example/toolsdb')"
        ),
        constraint="pr_validations_task_id_fkey",
    )


def test_a_pending_validation_cannot_be_settled(tx: psycopg.Connection, world: World) -> None:
    validation_id = validation_in(tx, world.task_a, "pending")
    caught = expect_error(tx, "55000", lambda: call(tx, "validation_settle", validation_id))
    assert "pending" in str(caught), f"Settling a validation without checks should be refused from pending: {caught}"


@pytest.mark.parametrize(("start", "target"), [("passed", "running"), ("failed", "passed"), ("cancelled", "running")])
def test_a_validation_only_moves_forward(tx: psycopg.Connection, world: World, start: str, target: str) -> None:
    validation_id = validation_in(tx, world.task_a, start)
    caught = expect_error(
        tx, "55000", lambda: update(tx, "pr_validations", "validation_id", validation_id, status=target)
    )
    assert f"from {start} to {target}" in str(caught), (
        f"The refusal of {start} -> {target} should name both states, but says: {caught}"
    )


@pytest.mark.parametrize("status", ["passed", "failed", "cancelled"])
def test_a_settled_validation_cannot_change(tx: psycopg.Connection, world: World, status: str) -> None:
    validation_id = validation_in(tx, world.task_a, status)
    caught = expect_error(
        tx, "55000", lambda: update(tx, "pr_validations", "validation_id", validation_id, branch_name="feature")
    )
    assert "can no longer change" in str(caught), f"A {status} validation should be frozen: {caught}"
    expect_error(tx, "55000", lambda: call(tx, "validation_record_check", validation_id, "late", True))
    expect_error(tx, "55000", lambda: call(tx, "validation_cancel", validation_id))


@pytest.mark.parametrize("start", ["pending", "running"])
def test_a_validation_can_be_cancelled_before_it_settles(tx: psycopg.Connection, world: World, start: str) -> None:
    validation_id = validation_in(tx, world.task_a, start)
    cancelled = call(tx, "validation_cancel", validation_id)
    assert cancelled["status"] == "cancelled", f"A {start} validation should be cancellable, not {cancelled['status']}."
    assert cancelled["completed_at"] is not None, "Cancelling should set completed_at."
    if start == "running":
        assert cancelled["started_at"] is not None and cancelled["completed_at"] >= cancelled["started_at"], (
            "A validation cancelled while running should keep started_at, with completed_at after it."
        )
    else:
        assert cancelled["started_at"] is None, "A validation cancelled while pending never started."


@pytest.mark.parametrize(("check_name", "passed"), [("Tests!", True), ("tests", None), ("x" * 64, True), (None, True)])
def test_a_check_needs_a_snake_case_name_and_a_result(
    tx: psycopg.Connection, world: World, check_name: str | None, passed: bool | None
) -> None:
    validation_id = validation_in(tx, world.task_a, "pending")
    expect_error(tx, "22023", lambda: call(tx, "validation_record_check", validation_id, check_name, passed))
    assert scalar(tx, "select status from toolsdb.pr_validations where validation_id = %s", (validation_id,)) == (
        "pending"
    ), "A refused check should leave the validation pending."


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"pr_number": 0}, "pr_number_is_positive"),
        ({"repository": "not a repo"}, "repository_is_valid"),
        ({"branch_name": ""}, "branch_name_length_is_valid"),
        ({"webhook_payload": Jsonb([1])}, "webhook_payload_is_object"),
    ],
)
def test_invalid_validation_values_are_refused(
    tx: psycopg.Connection, world: World, values: dict, constraint: str
) -> None:
    expect_error(tx, "23514", lambda: new_validation(tx, world.task_a, **values), constraint=constraint)


def test_an_unknown_status_is_refused_by_status_is_valid(tx: psycopg.Connection, world: World) -> None:
    inserted = new_validation(tx, world.task_a, status="done")
    assert inserted["status"] == "pending", (
        f"The rules trigger should override an inserted status 'done' with pending, not {inserted['status']}."
    )
    # Past the rules trigger (which refuses any move to 'done' itself), the check constraint still holds.
    with tx.transaction(force_rollback=True):
        tx.execute("alter table toolsdb.pr_validations disable trigger _200_validation_rules")
        expect_error(
            tx,
            "23514",
            lambda: update(tx, "pr_validations", "validation_id", inserted["validation_id"], status="done"),
            constraint="status_is_valid",
        )


@pytest.mark.parametrize(
    ("function", "args"),
    [("validation_record_check", ("tests", True)), ("validation_settle", ()), ("validation_cancel", ())],
)
def test_an_unknown_validation_is_not_found(tx: psycopg.Connection, function: str, args: tuple) -> None:
    expect_error(tx, "P0002", lambda: call(tx, function, uuid.uuid4(), *args))


# ---------------------------------------------------------------------------
# Error logs
# ---------------------------------------------------------------------------


def test_error_record_takes_the_project_from_the_run_or_the_task(tx: psycopg.Connection, world: World) -> None:
    run_b = scalar(tx, "select toolsdb.execution_create(%s, %s)", (world.agent_id, world.task_b))
    from_run = record_error(tx, execution_id=run_b, task_id=world.task_a)
    from_task = record_error(tx, "api", task_id=world.task_a)
    loose = record_error(tx, "system")
    assert isinstance(from_run, uuid.UUID), f"error_record should return the new error_id, not {from_run!r}."
    assert error_of(tx, from_run)["project_id"] == world.project_b, (
        "An error of a run should take the run's project (B), before the task's (A)."
    )
    assert error_of(tx, from_task)["project_id"] == world.project_a, "An error of a task should take its project (A)."
    stored = error_of(tx, loose)
    assert stored["project_id"] is None, "An error outside any task or run should have no project."
    assert (stored["recovery_attempts"], stored["resolved"], stored["resolved_at"], stored["context"]) == (
        0,
        False,
        None,
        {},
    ), f"A new error should be open with no attempt and an empty context, but is {stored}."


def test_an_unknown_error_type_is_refused(tx: psycopg.Connection) -> None:
    expect_error(tx, "23514", lambda: record_error(tx, "oops"), constraint="error_type_is_valid")


def test_recovery_attempts_count_then_resolve(tx: psycopg.Connection, world: World) -> None:
    error_id = record_error(tx, task_id=world.task_a, context=Jsonb({"url": "https://example.com"}))
    failed = call(tx, "error_record_recovery", error_id, False)
    assert (failed["recovery_attempts"], failed["resolved"], failed["resolved_at"]) == (1, False, None), (
        "A failed recovery should count one attempt and leave the error unresolved, but the error is "
        f"{failed['recovery_attempts']}, {failed['resolved']}, {failed['resolved_at']}."
    )
    assert failed["context"]["last_recovery"]["succeeded"] is False, "context.last_recovery should record the failure."
    resolved = call(tx, "error_record_recovery", error_id, True, Jsonb({"retry": 2}))
    assert (resolved["recovery_attempts"], resolved["resolved"]) == (2, True), (
        "A successful recovery should count a second attempt and resolve the error."
    )
    assert resolved["resolved_at"] is not None and resolved["resolved_at"] >= resolved["created_at"], (
        f"Resolving should set resolved_at (after created_at), not {resolved['resolved_at']}."
    )
    last = resolved["context"]["last_recovery"]
    assert (last["succeeded"], last["details"]) == (True, {"retry": 2}) and "at" in last, (
        f"context.last_recovery should keep the successful attempt with its details and time, not {last}."
    )
    assert resolved["context"]["url"] == "https://example.com", "Recording a recovery should keep the context given."
    expect_error(tx, "22023", lambda: call(tx, "error_record_recovery", error_id, None))
    expect_error(tx, "P0002", lambda: call(tx, "error_record_recovery", uuid.uuid4(), True))


def test_recovery_attempts_never_decrease(tx: psycopg.Connection) -> None:
    error_id = record_error(tx)
    call(tx, "error_record_recovery", error_id, False)
    call(tx, "error_record_recovery", error_id, False)
    expect_error(
        tx,
        "23514",
        lambda: update(tx, "error_logs", "error_id", error_id, recovery_attempts=1),
        constraint="recovery_attempts_only_grow",
    )
    assert error_of(tx, error_id)["recovery_attempts"] == 2, "A refused decrease should leave two attempts."


def test_resolved_at_is_the_databases(tx: psycopg.Connection, world: World) -> None:
    open_error = insert(
        tx, "error_logs", error_type="api", error_message="x", resolved=False, resolved_at=EARLY, task_id=world.task_a
    )
    assert open_error["resolved_at"] is None, "An open error should not take a resolved_at given by the caller."
    closed = insert(tx, "error_logs", error_type="api", error_message="x", resolved=True, resolved_at=EARLY)
    assert closed["resolved_at"] is not None and closed["resolved_at"] > EARLY, (
        f"An error inserted resolved should get resolved_at from the database, not the forged {closed['resolved_at']}."
    )
    kept = update(tx, "error_logs", "error_id", closed["error_id"], resolved_at=EARLY)
    assert kept["resolved_at"] == closed["resolved_at"], "A resolved error's resolved_at should not be forgeable."
    reopened = update(tx, "error_logs", "error_id", closed["error_id"], resolved=False)
    assert reopened["resolved_at"] is None, "Setting resolved = false should clear resolved_at."
    again = update(tx, "error_logs", "error_id", closed["error_id"], resolved=True, resolved_at=EARLY)
    assert again["resolved_at"] is not None and again["resolved_at"] > EARLY, (
        "Resolving again should set a fresh resolved_at from the database, not the forged one."
    )
    moved = update(tx, "error_logs", "error_id", open_error["error_id"], project_id=world.project_b)
    assert moved["project_id"] == world.project_a, "An error's project should not change by update."


def test_negative_recovery_attempts_are_refused(tx: psycopg.Connection) -> None:
    expect_error(
        tx,
        "23514",
        lambda: insert(tx, "error_logs", error_type="api", error_message="x", recovery_attempts=-1),
        constraint="recovery_attempts_is_valid",
    )
    expect_error(
        tx,
        "23514",
        lambda: insert(tx, "error_logs", error_type="api", error_message=""),
        constraint="error_message_length_is_valid",
    )


# ---------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "accepted"), [("1.5", False), ("-0.1", False), ("0", True), ("1", True)])
def test_credibility_is_between_0_and_1(tx: psycopg.Connection, world: World, score: str, accepted: bool) -> None:
    if accepted:
        stored = new_evidence(tx, world.project_a, credibility_score=Decimal(score))
        assert stored["credibility_score"] == Decimal(score), f"A credibility of {score} should be accepted as is."
    else:
        expect_error(
            tx,
            "23514",
            lambda: new_evidence(tx, world.project_a, credibility_score=Decimal(score)),
            constraint="credibility_score_is_valid",
        )


def test_source_type_and_url_are_checked(tx: psycopg.Connection, world: World) -> None:
    expect_error(
        tx,
        "23514",
        lambda: new_evidence(tx, world.project_a, source_type="rumour"),
        constraint="source_type_is_valid",
    )
    expect_error(
        tx,
        "23514",
        lambda: new_evidence(tx, world.project_a, source_url="ftp://example.com/x"),
        constraint="source_url_is_valid",
    )
    expect_error(tx, "23514", lambda: new_evidence(tx, world.project_a, tags=["ok", ""]), constraint="tags_are_valid")


def test_verified_at_is_the_databases(tx: psycopg.Connection, world: World) -> None:
    unverified = new_evidence(tx, world.project_a, verified_at=EARLY)
    assert unverified["verified_at"] is None, "Unverified evidence should not take a verified_at given by the caller."
    verified = update(
        tx, "evidence", "evidence_id", unverified["evidence_id"], is_verified=True, verified_by_user_id=world.user_id
    )
    assert verified["verified_at"] is not None and verified["verified_at"] > EARLY, (
        "verified_at should be set by the database when is_verified becomes true."
    )
    kept = update(tx, "evidence", "evidence_id", unverified["evidence_id"], verified_at=EARLY)
    assert kept["verified_at"] == verified["verified_at"], "verified_at of verified evidence should not be forgeable."
    cleared = update(tx, "evidence", "evidence_id", unverified["evidence_id"], is_verified=False)
    assert cleared["verified_at"] is None, "verified_at should be cleared when is_verified becomes false."
    inserted = new_evidence(tx, world.project_a, is_verified=True, verified_at=EARLY)
    assert inserted["verified_at"] is not None and inserted["verified_at"] > EARLY, (
        f"Evidence inserted verified should get verified_at from the database, not {inserted['verified_at']}."
    )


@pytest.mark.parametrize("column", ["related_evidence", "contradicting_evidence"])
def test_evidence_cannot_refer_to_itself(tx: psycopg.Connection, world: World, column: str) -> None:
    own_id = uuid.uuid4()
    expect_error(
        tx,
        "23514",
        lambda: new_evidence(tx, world.project_a, evidence_id=own_id, **{column: [own_id]}),
        constraint=f"{column}_is_valid",
    )
    other = new_evidence(tx, world.project_a)["evidence_id"]
    stored = new_evidence(tx, world.project_a, evidence_id=own_id, **{column: [other]})
    assert stored[column] == [other], f"Evidence listing another one in {column} should be accepted."
    expect_error(
        tx,
        "23514",
        lambda: update(tx, "evidence", "evidence_id", own_id, **{column: [other, own_id]}),
        constraint=f"{column}_is_valid",
    )


def test_the_planner_uses_the_tags_index_with_enough_rows(tx: psycopg.Connection, world: World) -> None:
    tx.execute(
        "insert into toolsdb.evidence (project_id, source_type, title, tags) "
        "select %s, 'log', 'line ' || n, array['tag' || (n %% 50), 'common'] from generate_series(1, 3000) as n",
        (world.project_a,),
    )
    new_evidence(tx, world.project_a, tags=["x"])
    tx.execute("analyze toolsdb.evidence")
    # Rows inserted in one go sit in the GIN pending list until vacuum merges them (see test_tasks.py).
    tx.execute("select gin_clean_pending_list('toolsdb.evidence_tags_idx'::regclass)")
    plan = "\n".join(row[0] for row in tx.execute("explain select * from toolsdb.evidence where tags @> array['x']"))
    assert "evidence_tags_idx" in plan, f"With 3,000 rows `tags @> array['x']` should use evidence_tags_idx:\n{plan}"
    found = scalar(
        tx, "select count(*) from toolsdb.evidence where project_id = %s and tags @> array['x']", (world.project_a,)
    )
    assert found == 1, f"`tags @> array['x']` should find the one tagged evidence, not {found}."


@pytest.mark.parametrize("finished", [False, True], ids=["pending-run", "finished-run"])
def test_a_runs_evidence_is_a_foreign_key(tx: psycopg.Connection, world: World, finished: bool) -> None:
    execution_id = scalar(tx, "select toolsdb.execution_create(%s, %s)", (world.agent_id, world.task_a))
    if finished:
        tx.execute("select toolsdb.execution_cancel(%s)", (execution_id,))
    expect_error(
        tx,
        "23503",
        lambda: update(tx, "agent_executions", "execution_id", execution_id, evidence_id=uuid.uuid4()),
        constraint="agent_executions_evidence_id_fkey",
    )
    evidence_id = new_evidence(tx, world.project_a)["evidence_id"]
    linked = update(tx, "agent_executions", "execution_id", execution_id, evidence_id=evidence_id)
    assert linked["evidence_id"] == evidence_id, "A run should accept existing evidence as its evidence_id."
    tx.execute("delete from toolsdb.evidence where evidence_id = %s", (evidence_id,))
    remaining = scalar(tx, "select evidence_id from toolsdb.agent_executions where execution_id = %s", (execution_id,))
    assert remaining is None, f"Deleting the evidence should set the run's evidence_id to null, not {remaining}."


# ---------------------------------------------------------------------------
# Task comments and attachments
# ---------------------------------------------------------------------------


def new_child(conn: psycopg.Connection, table: str, task_id: Any, **values: object) -> Row:
    if table == "task_comments":
        return insert(conn, "task_comments", task_id=task_id, body="looks good", **values)
    return new_attachment(conn, task_id, **values)


@pytest.mark.parametrize("table", ["task_comments", "task_attachments"])
def test_the_project_comes_from_the_task(tx: psycopg.Connection, world: World, table: str) -> None:
    given = new_child(tx, table, world.task_a, project_id=world.project_b)
    assert given["project_id"] == world.project_a, (
        f"A row of {table} should take its task's project (A), overriding the project_id given (B)."
    )
    assert new_child(tx, table, world.task_b)["project_id"] == world.project_b, (
        f"A row of {table} on task B should be filled in with project B."
    )


@pytest.mark.parametrize("table", ["task_comments", "task_attachments"])
def test_a_row_of_an_unknown_task_is_refused(tx: psycopg.Connection, table: str) -> None:
    expect_error(tx, "23503", lambda: new_child(tx, table, uuid.uuid4()), constraint=f"{table}_task_id_fkey")


def test_a_comment_has_one_author_at_most_and_a_body(tx: psycopg.Connection, world: World) -> None:
    expect_error(
        tx,
        "23514",
        lambda: new_child(
            tx, "task_comments", world.task_a, author_user_id=world.user_id, author_agent_id=world.agent_id
        ),
        constraint="one_author_at_most",
    )
    expect_error(
        tx,
        "23514",
        lambda: insert(tx, "task_comments", task_id=world.task_a, body=""),
        constraint="body_length_is_valid",
    )
    by_agent = new_child(tx, "task_comments", world.task_a, author_agent_id=world.agent_id)
    assert by_agent["author_agent_id"] == world.agent_id and by_agent["author_user_id"] is None, (
        "A comment written by an agent alone should be accepted."
    )


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"file_name": "dir/report.txt"}, "file_name_is_valid"),
        ({"file_name": "dir\\report.txt"}, "file_name_is_valid"),
        ({"content_type": "Text Plain"}, "content_type_is_valid"),
        ({"size_bytes": -1}, "size_bytes_is_valid"),
        ({"storage_url": "somewhere"}, "storage_url_is_valid"),
        ({"checksum_sha256": SHA.upper()}, "checksum_sha256_is_valid"),
        ({"checksum_sha256": SHA[:-1]}, "checksum_sha256_is_valid"),
    ],
)
def test_invalid_attachments_are_refused(tx: psycopg.Connection, world: World, values: dict, constraint: str) -> None:
    expect_error(tx, "23514", lambda: new_attachment(tx, world.task_a, **values), constraint=constraint)


def test_a_valid_attachment_is_accepted(tx: psycopg.Connection, world: World) -> None:
    stored = new_attachment(tx, world.task_a, checksum_sha256=SHA, size_bytes=0, uploaded_by_user_id=world.user_id)
    assert (stored["checksum_sha256"], stored["size_bytes"]) == (SHA, 0), (
        "An empty file with a lowercase SHA-256 should be accepted as given."
    )


@pytest.mark.parametrize(("table", "key"), [("task_comments", "comment_id"), ("task_attachments", "attachment_id")])
def test_task_and_project_are_kept_on_update(tx: psycopg.Connection, world: World, table: str, key: str) -> None:
    row = new_child(tx, table, world.task_a)
    changed = update(tx, table, key, row[key], task_id=world.task_b, project_id=world.project_b)
    assert (changed["task_id"], changed["project_id"]) == (world.task_a, world.project_a), (
        f"Updating task_id and project_id of {table} should silently keep task A and project A, "
        f"but the row now has {changed['task_id']}, {changed['project_id']}."
    )


def test_deleting_a_task_deletes_its_comments_and_attachments(tx: psycopg.Connection, world: World) -> None:
    for task in (world.task_a, world.task_b):
        new_child(tx, "task_comments", task)
        new_child(tx, "task_attachments", task)
    tx.execute("delete from toolsdb.tasks where task_id = %s", (world.task_a,))
    counts = {
        (table, name): scalar(
            tx,
            sql.SQL("select count(*) from toolsdb.{} where task_id = %s").format(sql.Identifier(table)).as_string(tx),
            (task,),
        )
        for table in ("task_comments", "task_attachments")
        for name, task in (("A", world.task_a), ("B", world.task_b))
    }
    assert list(counts.values()) == [0, 1, 0, 1], (
        f"Deleting task A should delete its comment and attachment and leave B's, but counts are {counts}."
    )


# ---------------------------------------------------------------------------
# Activity feed
# ---------------------------------------------------------------------------


def test_activity_record_keeps_the_acting_user_and_agent(tx: psycopg.Connection, world: World) -> None:
    anonymous = scalar(tx, "select toolsdb.activity_record(%s, 'task.created', 'Task created')", (world.project_a,))
    tx.execute("select set_config('toolsdb.user_id', %s, true)", (str(world.user_id),))
    tx.execute("select set_config('toolsdb.agent_id', %s, true)", (str(world.agent_id),))
    acted = scalar(
        tx,
        "select toolsdb.activity_record(%s, 'pr.opened', 'PR #7 opened', %s, %s, false)",
        (world.project_a, world.task_a, Jsonb({"pr": 7})),
    )
    assert acted > anonymous, f"activity_ids should increase, but {acted} follows {anonymous}."
    entry = one(tx, "select * from toolsdb.activity_feed where activity_id = %s", (acted,))
    assert (entry["user_id"], entry["agent_id"]) == (world.user_id, world.agent_id), (
        "activity_record should store the user and agent of toolsdb.user_id and toolsdb.agent_id."
    )
    assert (entry["task_id"], entry["metadata"], entry["is_public"]) == (world.task_a, {"pr": 7}, False), (
        f"activity_record should store task, metadata and visibility as given, not {entry}."
    )
    first = one(tx, "select * from toolsdb.activity_feed where activity_id = %s", (anonymous,))
    assert (first["user_id"], first["agent_id"], first["metadata"], first["is_public"]) == (None, None, {}, True), (
        f"Without the settings an entry should have no user nor agent, empty metadata and be public, not {first}."
    )


def test_the_activity_feed_is_append_only(tx: psycopg.Connection, world: World) -> None:
    activity_id = scalar(tx, "select toolsdb.activity_record(%s, 'task.created', 'created')", (world.project_a,))
    caught = expect_error(
        tx,
        "42501",
        lambda: tx.execute(
            "update toolsdb.activity_feed set summary = 'rewritten' where activity_id = %s", (activity_id,)
        ),
    )
    assert "append-only" in str(caught), f"Updating an activity entry should be refused as append-only: {caught}"


def test_the_activity_feed_is_exempt_from_audit(tx: psycopg.Connection, world: World) -> None:
    reason = scalar(
        tx, "select reason from toolsdb_private.audit_exemptions where table_name = 'toolsdb.activity_feed'"
    )
    assert "append-only" in reason, f"The activity feed should be exempt from audit with a reason, not {reason!r}."
    before = scalar(tx, "select count(*) from toolsdb.audit_logs")
    activity_id = scalar(tx, "select toolsdb.activity_record(%s, 'task.created', 'created')", (world.project_a,))
    assert scalar(tx, "select count(*) from toolsdb.audit_logs") == before, (
        "Writing to the activity feed should leave no audit entry."
    )
    assert (
        scalar(
            tx,
            "select count(*) from toolsdb.audit_logs where entity_type in ('activity_feed', 'toolsdb.activity_feed') "
            "or entity_id = %s",
            (str(activity_id),),
        )
        == 0
    ), "No audit entry should name the activity feed."


def test_an_invalid_activity_type_is_refused(tx: psycopg.Connection, world: World) -> None:
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.activity_record(%s, 'Task Created', 'created')", (world.project_a,)),
        constraint="activity_type_is_valid",
    )
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.activity_record(%s, 'task.created', '')", (world.project_a,)),
        constraint="summary_length_is_valid",
    )


def test_deleting_a_task_deletes_its_activity(tx: psycopg.Connection, world: World) -> None:
    tx.execute("select toolsdb.activity_record(%s, 'task.created', 'created', %s)", (world.project_a, world.task_a))
    kept = scalar(tx, "select toolsdb.activity_record(%s, 'project.updated', 'renamed')", (world.project_a,))
    tx.execute("delete from toolsdb.tasks where task_id = %s", (world.task_a,))
    left = [
        row[0]
        for row in tx.execute("select activity_id from toolsdb.activity_feed where project_id = %s", (world.project_a,))
    ]
    assert left == [kept], f"Deleting a task should delete its activity only, leaving {kept}, not {left}."


# ---------------------------------------------------------------------------
# Audit
# ---------------------------------------------------------------------------


def test_inserts_into_the_audited_tables_are_captured(tx: psycopg.Connection, world: World) -> None:
    created = {
        "pr_validations": new_validation(tx, world.task_a)["validation_id"],
        "error_logs": record_error(tx, task_id=world.task_a),
        "evidence": new_evidence(tx, world.project_a)["evidence_id"],
        "task_comments": new_child(tx, "task_comments", world.task_a)["comment_id"],
        "task_attachments": new_child(tx, "task_attachments", world.task_a)["attachment_id"],
    }
    for table, key in created.items():
        found = rows(
            tx,
            "select action, new_values from toolsdb.audit_logs where entity_type = %s and entity_id = %s",
            (table, str(key)),
        )
        assert [entry["action"] for entry in found] == ["insert"], (
            f"Inserting into {table} should leave one insert entry with entity_type {table!r}, but found {found}."
        )
        assert found[0]["new_values"]["project_id"] == str(world.project_a), (
            f"The audit entry of {table} should hold the row as stored, with project A."
        )


def test_moving_a_validation_is_captured(tx: psycopg.Connection, world: World) -> None:
    validation_id = validation_in(tx, world.task_a, "passed")
    found = rows(
        tx,
        "select action, old_values, new_values from toolsdb.audit_logs "
        "where entity_type = 'pr_validations' and entity_id = %s order by audit_id",
        (str(validation_id),),
    )
    assert [e["action"] for e in found] == ["insert", "update", "update"], (
        f"Creating, checking then settling a validation should leave an insert and two updates, not {found}."
    )
    moves = [(e["old_values"] or {}).get("status") for e in found], [e["new_values"].get("status") for e in found]
    assert moves == ([None, "pending", "running"], ["pending", "running", "passed"]), (
        f"The audit entries should record pending -> running -> passed, but hold {moves}."
    )


# ---------------------------------------------------------------------------
# Row-level security (a login in toolsdb_app, committed rows)
# ---------------------------------------------------------------------------

KEYS = {
    "pr_validations": "validation_id",
    "error_logs": "error_id",
    "evidence": "evidence_id",
    "task_comments": "comment_id",
    "task_attachments": "attachment_id",
    "activity_feed": "activity_id",
}


def seen_ids(app: psycopg.Connection, table: str) -> set[str]:
    query = sql.SQL("select {key}::text from toolsdb.{table}").format(
        key=sql.Identifier(KEYS[table]), table=sql.Identifier(table)
    )
    return {row[0] for row in app.execute(query)}


def test_the_app_sees_only_its_projects_rows(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        set_project(app, committed.project_a)
        for table, (in_a, in_b) in committed.ids.items():
            seen = seen_ids(app, table)
            assert seen == {in_a}, f"With toolsdb.project_id = A the app should see A's row of {table} only: {seen}."
            assert in_b not in seen, f"The app working for A should see none of B's rows of {table}."


def test_the_app_cannot_act_on_another_projects_rows(pg: Pg, committed: Committed, app_login: str) -> None:
    validation_a, validation_b = committed.ids["pr_validations"]
    error_a, error_b = committed.ids["error_logs"]
    with connect_app(pg, committed.dbname, app_login) as app:
        set_project(app, committed.project_a)
        expect_error(app, "P0002", lambda: call(app, "validation_settle", validation_b))
        expect_error(app, "P0002", lambda: call(app, "validation_record_check", validation_b, "tests", False))
        expect_error(app, "P0002", lambda: call(app, "error_record_recovery", error_b, True))
        expect_error(
            app,
            "23503",
            lambda: insert(app, "task_comments", task_id=committed.task_b, body="sneaky"),
            constraint="task_comments_task_id_fkey",
        )
        assert call(app, "validation_settle", validation_a)["status"] == "passed", (
            "The app should settle its own project's running validation."
        )
        assert call(app, "error_record_recovery", error_a, True)["resolved"] is True, (
            "The app should record a recovery of its own project's error."
        )
        comment = insert(app, "task_comments", task_id=scalar(app, "select task_id from toolsdb.tasks"), body="mine")
        assert comment["project_id"] == uuid.UUID(committed.project_a), "The app should comment on its own task."
        activity = scalar(app, "select toolsdb.activity_record(%s, 'task.commented', 'c')", (committed.project_a,))
        assert activity is not None, "The app should add to its own project's activity feed."
        expect_error(
            app,
            "42501",
            lambda: app.execute("select toolsdb.activity_record(%s, 'task.commented', 'c')", (committed.project_b,)),
        )


def test_the_app_sees_nothing_without_a_project(pg: Pg, committed: Committed, app_login: str) -> None:
    validation_a = committed.ids["pr_validations"][0]
    with connect_app(pg, committed.dbname, app_login) as app:
        for table in TABLES:
            assert seen_ids(app, table) == set(), f"Without toolsdb.project_id the app should see no row of {table}."
        expect_error(app, "P0002", lambda: call(app, "validation_settle", validation_a))

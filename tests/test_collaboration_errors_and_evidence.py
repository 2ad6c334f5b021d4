"""Error logging and the evidence registry against a real, migrated
database, on each PostgreSQL major of the suite: toolsdb.error_logs
(schema/36_error_logs.sql: error_record takes the project from the run or
the task, error_record_recovery counts attempts then resolves, the trigger
_200_error_rules keeps resolved_at the database's) and toolsdb.evidence
(schema/32_evidence.sql: verified_at kept by the database, no
self-reference, the tags GIN index, the foreign key from
agent_executions.evidence_id); the named constraints.

Isolation, as in test_executions_*.py: every test runs in ``tx``, a
transaction that is always rolled back on one clone of the template per
module and major, and seeds its own user, projects, tasks and agent
(``world``). Every statement that must fail runs in a savepoint, so the
transaction stays usable.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .collaborationhelpers import World, error_of, new_evidence, record_error, seeded_world, update
from .dbhelpers import call, expect_error, insert, scalar

EARLY = datetime(2001, 1, 1, tzinfo=timezone.utc)

world = pytest.fixture(seeded_world)


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

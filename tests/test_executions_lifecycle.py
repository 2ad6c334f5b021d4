"""The run lifecycle of toolsdb.agent_executions (schema/33_agent_executions.sql)
against a real, migrated database, on each PostgreSQL major of the suite: a
new run is pending with its project and agent data filled in by the
database; the rules trigger _200_execution_rules and the functions
execution_create/move/start/complete/fail/time_out/cancel allow only the
documented moves, keep the times the database's and freeze a finished run
but for its evidence_id; the named CHECKs behind the trigger.

Isolation, as in test_tasks.py: every test runs in ``tx``, a transaction that
is always rolled back on one clone of the template per module and major, and
seeds its own user, projects, agent and tasks (``world``). Every statement
that must fail runs in a savepoint, so the transaction stays usable.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .dbhelpers import expect_error, insert, scalar
from .executionhelpers import (
    ALLOWED_MOVES,
    FINISHED,
    PROVIDER,
    STATUSES,
    World,
    call,
    create,
    new_evidence,
    run_in,
    run_of,
    seeded_world,
)

world = pytest.fixture(seeded_world)


# ---------------------------------------------------------------------------
# Creating a run: pending, with data filled by the database
# ---------------------------------------------------------------------------


def test_a_new_run_is_pending_whatever_the_caller_inserts(tx: psycopg.Connection, world: World) -> None:
    now = datetime.now(timezone.utc)
    run = insert(
        tx,
        "agent_executions",
        agent_id=world.agent_id,
        task_id=world.task_a,
        project_id=world.project_b,
        status="success",
        started_at=now,
        completed_at=now,
        cost_usd=Decimal("99"),
        cost_is_given=True,
    )
    assert run["status"] == "pending", f"A new run should be pending whatever the caller says, not {run['status']}."
    assert (run["started_at"], run["completed_at"]) == (None, None), (
        f"A new run should have no started_at nor completed_at, but has {run['started_at']}, {run['completed_at']}."
    )
    assert run["cost_usd"] is None and run["cost_is_given"] is False, (
        f"A new run should have no cost yet, but has cost_usd {run['cost_usd']} (given: {run['cost_is_given']})."
    )
    assert run["project_id"] == world.project_a, (
        "The run's project should be its task's (A), overriding the project_id the caller gave (B)."
    )


def test_execution_create_fills_project_and_agent_data(tx: psycopg.Connection, world: World) -> None:
    run = run_of(tx, create(tx, world, world.task_b))
    assert run["status"] == "pending", f"execution_create should make a pending run, not a {run['status']} one."
    assert run["project_id"] == world.project_b, "The run's project_id should be filled in from its task (B)."
    assert (run["agent_type"], run["model_provider"], run["model_name"]) == ("coding", PROVIDER, world.model_name), (
        f"agent_type and the model should be copied from the agent, but are {run['agent_type']}, "
        f"{run['model_provider']}, {run['model_name']}."
    )
    assert run["agent_config"] == {}, f"The default agent_config should be an empty object, not {run['agent_config']}."
    assert run["cost_usd"] is None and run["cost_is_given"] is False, "A new run should have no cost."


def test_agent_data_given_by_the_caller_is_kept(tx: psycopg.Connection, world: World) -> None:
    run = insert(
        tx,
        "agent_executions",
        agent_id=world.agent_id,
        task_id=world.task_a,
        agent_type="review",
        model_provider="other",
        model_name="other-model",
        agent_config=Jsonb({"temperature": 0}),
    )
    assert (run["agent_type"], run["model_provider"], run["model_name"]) == ("review", "other", "other-model"), (
        "agent_type, model_provider and model_name given by the caller should be kept, not replaced by the agent's."
    )
    assert run["agent_config"] == {"temperature": 0}, "The agent_config given should be stored as is."


def test_a_run_of_an_unknown_task_or_agent_is_refused(tx: psycopg.Connection, world: World) -> None:
    # The trigger looks the task and the agent up and names the foreign key that is missing.
    for constraint, args in (
        ("agent_executions_task_id_fkey", (world.agent_id, None)),
        ("agent_executions_agent_id_fkey", (None, world.task_a)),
    ):
        caught = expect_error(
            tx,
            "23503",
            lambda a=args: tx.execute(
                "select toolsdb.execution_create(coalesce(%s, gen_random_uuid()), coalesce(%s, gen_random_uuid()))", a
            ),
        )
        assert caught.diag.constraint_name == constraint, (
            f"A run of an unknown {'task' if 'task' in constraint else 'agent'} should be refused naming "
            f"{constraint}, but the error names {caught.diag.constraint_name!r}: {caught}"
        )


# ---------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------


def test_start_sets_running_and_started_at(tx: psycopg.Connection, world: World) -> None:
    execution_id = create(tx, world)
    run = call(tx, "execution_start", execution_id)
    assert run["status"] == "running", f"execution_start should move the run to running, not {run['status']}."
    assert run["started_at"] is not None, "execution_start should set started_at."
    assert run["completed_at"] is None and run["cost_usd"] is None, "A running run has no completed_at nor cost."
    assert run == run_of(tx, execution_id), "execution_start should return the run as stored."


@pytest.mark.parametrize(
    ("function", "args", "status"),
    [
        ("execution_complete", (Jsonb({"answer": 42}),), "success"),
        ("execution_fail", (Jsonb({"error": "boom"}),), "failure"),
        ("execution_time_out", (), "timeout"),
    ],
)
def test_a_running_run_ends_with_completed_at_after_started_at(
    tx: psycopg.Connection, world: World, function: str, args: tuple, status: str
) -> None:
    execution_id = create(tx, world)
    started = call(tx, "execution_start", execution_id)
    run = call(tx, function, execution_id, *args)
    assert run["status"] == status, f"{function} should move a running run to {status}, not {run['status']}."
    assert run["started_at"] == started["started_at"], f"{function} should keep started_at."
    assert run["completed_at"] is not None and run["completed_at"] >= run["started_at"], (
        f"{function} should set completed_at ({run['completed_at']}) no earlier than started_at ({run['started_at']})."
    )
    if status == "success":
        assert run["result"] == {"answer": 42}, f"execution_complete should store the result, not {run['result']}."
    if status == "failure":
        assert run["error_details"] == {"error": "boom"}, "execution_fail should store the error details."


@pytest.mark.parametrize("start", [False, True], ids=["from-pending", "from-running"])
def test_a_run_can_be_cancelled_before_it_ends(tx: psycopg.Connection, world: World, start: bool) -> None:
    execution_id = create(tx, world)
    if start:
        call(tx, "execution_start", execution_id)
    run = call(tx, "execution_cancel", execution_id)
    assert run["status"] == "cancelled", f"execution_cancel should cancel the run, not leave it {run['status']}."
    assert run["completed_at"] is not None, "Cancelling should set completed_at."
    if start:
        assert run["started_at"] is not None and run["completed_at"] >= run["started_at"], (
            "A run cancelled while running should keep its started_at, with completed_at after it."
        )
    else:
        assert run["started_at"] is None, "A run cancelled before it started should have no started_at."


@pytest.mark.parametrize("source", STATUSES)
def test_every_move_not_allowed_fails_with_55000_naming_both_states(
    tx: psycopg.Connection, world: World, source: str
) -> None:
    targets = [target for target in STATUSES if target != source and (source, target) not in ALLOWED_MOVES]
    for target in targets:
        execution_id = run_in(tx, world, source)
        caught = expect_error(
            tx, "55000", lambda e=execution_id, t=target: tx.execute("select toolsdb.execution_move(%s, %s)", (e, t))
        )
        assert f"from {source} to {target}" in str(caught), (
            f"The error of the move {source} -> {target} should name both states, but says: {caught}"
        )
        assert run_of(tx, execution_id)["status"] == source, f"A refused move should leave the run {source}."
    for target in [target for target in STATUSES if (source, target) in ALLOWED_MOVES]:
        execution_id = run_in(tx, world, source)
        assert call(tx, "execution_move", execution_id, target)["status"] == target, (
            f"The move {source} -> {target} is allowed and should succeed."
        )


def test_a_direct_update_of_the_status_follows_the_same_rules(tx: psycopg.Connection, world: World) -> None:
    execution_id = create(tx, world)
    caught = expect_error(
        tx,
        "55000",
        lambda: tx.execute(
            "update toolsdb.agent_executions set status = 'success' where execution_id = %s", (execution_id,)
        ),
    )
    assert "from pending to success" in str(caught), f"The error should name both states: {caught}"


@pytest.mark.parametrize("status", FINISHED)
def test_a_finished_run_cannot_change_but_for_its_evidence_id(
    tx: psycopg.Connection, world: World, status: str
) -> None:
    execution_id = run_in(tx, world, status)
    before = run_of(tx, execution_id)
    for change in (
        "result = '{\"late\": true}'",
        "input_tokens = 7",
        "cost_usd = 1",
        "agent_config = '{\"x\": 1}'",
        "model_name = 'changed'",
    ):
        caught = expect_error(
            tx,
            "55000",
            lambda c=change: tx.execute(
                f"update toolsdb.agent_executions set {c} where execution_id = %s",
                (execution_id,),
            ),
        )
        assert "can no longer change" in str(caught) and status in str(caught), (
            f"Changing a {status} run ({change}) should fail saying it can no longer change, but says: {caught}"
        )
    evidence_id = new_evidence(tx, world)
    tx.execute(
        "update toolsdb.agent_executions set evidence_id = %s where execution_id = %s", (evidence_id, execution_id)
    )
    after = run_of(tx, execution_id)
    assert after["evidence_id"] == evidence_id, f"The evidence_id of a {status} run should still be settable."
    unchanged = {k: v for k, v in after.items() if k not in ("evidence_id", "updated_at")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("evidence_id", "updated_at")}, (
        f"Setting the evidence_id of a {status} run should change nothing else."
    )


def test_the_times_cannot_be_forged_by_an_update(tx: psycopg.Connection, world: World) -> None:
    execution_id = create(tx, world)
    started = call(tx, "execution_start", execution_id)["started_at"]
    tx.execute(
        "update toolsdb.agent_executions set started_at = '2000-01-01', completed_at = '2000-01-02', "
        "project_id = %s where execution_id = %s",
        (world.project_b, execution_id),
    )
    run = run_of(tx, execution_id)
    assert (run["started_at"], run["completed_at"], run["project_id"]) == (started, None, world.project_a), (
        "started_at, completed_at and project_id are the database's: an update should not change them."
    )


@pytest.mark.parametrize(
    "function", ["execution_start", "execution_complete", "execution_fail", "execution_time_out", "execution_cancel"]
)
def test_an_unknown_execution_raises_no_data_found(tx: psycopg.Connection, function: str) -> None:
    args = "gen_random_uuid(), '{}'::jsonb" if function == "execution_fail" else "gen_random_uuid()"
    caught = expect_error(tx, "P0002", lambda: tx.execute(f"select toolsdb.{function}({args})"))
    assert "not found" in str(caught), f"{function} on an unknown run should say it is not found: {caught}"


def test_an_unknown_status_is_refused(tx: psycopg.Connection, world: World) -> None:
    execution_id = run_in(tx, world, "running")
    # The rules trigger runs before the CHECK status_is_valid, so the move is refused as a move.
    caught = expect_error(tx, "55000", lambda: tx.execute("select toolsdb.execution_move(%s, 'done')", (execution_id,)))
    assert "from running to done" in str(caught), f"The refusal should name both states: {caught}"
    assert run_of(tx, execution_id)["status"] == "running", "A refused status should leave the run running."


# ---------------------------------------------------------------------------
# The named CHECKs behind the trigger (shown with the trigger disabled)
# ---------------------------------------------------------------------------


def test_completed_at_is_after_started_at_is_a_named_check(tx: psycopg.Connection) -> None:
    definition = scalar(
        tx,
        "select pg_catalog.pg_get_constraintdef(oid) from pg_catalog.pg_constraint "
        "where conrelid = 'toolsdb.agent_executions'::regclass and conname = 'completed_at_is_after_started_at' "
        "and contype = 'c'",
    )
    assert "completed_at >= started_at" in definition, (
        f"completed_at_is_after_started_at should be a CHECK (completed_at >= started_at), but is {definition}."
    )


def test_the_checks_refuse_what_the_trigger_would_prevent(tx: psycopg.Connection, world: World) -> None:
    execution_id = run_in(tx, world, "success")
    running_id = run_in(tx, world, "running")
    with tx.transaction(force_rollback=True):
        tx.execute("alter table toolsdb.agent_executions disable trigger _200_execution_rules")
        expect_error(
            tx,
            "23514",
            lambda: tx.execute(
                "update toolsdb.agent_executions set completed_at = started_at - interval '1 second' "
                "where execution_id = %s",
                (execution_id,),
            ),
            constraint="completed_at_is_after_started_at",
        )
        expect_error(
            tx,
            "23514",
            lambda: tx.execute(
                "insert into toolsdb.agent_executions (agent_id, task_id, project_id, agent_type, status, "
                "started_at, completed_at) values (%s, %s, %s, 'coding', 'success', now(), now() - interval '1 day')",
                (world.agent_id, world.task_a, world.project_a),
            ),
            constraint="completed_at_is_after_started_at",
        )
        expect_error(
            tx,
            "23514",
            lambda: tx.execute(
                "update toolsdb.agent_executions set status = 'done' where execution_id = %s", (running_id,)
            ),
            constraint="status_is_valid",
        )
    assert (
        scalar(
            tx,
            "select tgenabled from pg_catalog.pg_trigger "
            "where tgrelid = 'toolsdb.agent_executions'::regclass and tgname = '_200_execution_rules'",
        )
        == "O"
    ), "The rules trigger should be enabled again once the savepoint is rolled back."

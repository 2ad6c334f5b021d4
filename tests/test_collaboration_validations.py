"""The validation lifecycle of toolsdb.pr_validations
(schema/34_pr_validations.sql) against a real, migrated database, on each
PostgreSQL major of the suite: a new validation is pending with its task's
project; the trigger _200_validation_rules and the functions
validation_record_check/settle/cancel run, settle and cancel it, only
forward, and freeze it once settled; checks need a snake_case name and a
result; the named constraints.

Isolation, as in test_executions_*.py: every test runs in ``tx``, a
transaction that is always rolled back on one clone of the template per
module and major, and seeds its own user, projects, tasks and agent
(``world``). Every statement that must fail runs in a savepoint, so the
transaction stays usable.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .collaborationhelpers import World, new_validation, seeded_world, update, validation_in
from .dbhelpers import call, expect_error, scalar

world = pytest.fixture(seeded_world)


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

"""Behaviour of toolsdb.model_prices (schema/31_model_prices.sql) and
toolsdb.agent_executions with its append-only log toolsdb.agent_execution_logs
(schema/32_agent_executions.sql) against a real, migrated database, on each
PostgreSQL major of the suite.

Covers the run lifecycle (the rules trigger _200_execution_rules and the
functions execution_create/move/start/log/complete/fail/time_out/cancel), the
times and the cost set by the database (toolsdb.model_price_at and
toolsdb.token_cost at dated prices), the named constraints, the data filled
from the task and the agent, the append-only log, change capture into the
audit log, row-level security for a login in toolsdb_app and the restrict on
deleting an agent that has runs.

Isolation, as in test_tasks.py: one clone of the template per module and
major. It holds two committed projects with a run each (and a log entry on
B's run) for the row-level security tests, which connect as a login role;
every other test runs in ``tx``, a transaction that is always rolled back,
and seeds its own user, projects, agent and tasks. Every statement that must
fail runs in a savepoint, so the transaction stays usable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import (
    Row,
    connect_app,
    expect_error,
    insert,
    one,
    rows,
    scalar,
    set_project,
    unique,
)
from .dbhelpers import call as call_function

STATUSES = ("pending", "running", "success", "failure", "timeout", "cancelled")
FINISHED = ("success", "failure", "timeout", "cancelled")
ALLOWED_MOVES = frozenset(
    {
        ("pending", "running"),
        ("pending", "cancelled"),
        ("running", "success"),
        ("running", "failure"),
        ("running", "timeout"),
        ("running", "cancelled"),
    }
)
PROVIDER = "acme"
EARLY = datetime(2025, 1, 1, tzinfo=timezone.utc)
LATE = datetime(2100, 1, 1, tzinfo=timezone.utc)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def run_of(conn: psycopg.Connection, execution_id: Any) -> Row:
    return one(conn, "select * from toolsdb.agent_executions where execution_id = %s", (execution_id,))


def call(conn: psycopg.Connection, function: str, *args: object) -> Row:
    """Call toolsdb.<function>(args) returning a row of toolsdb.agent_executions."""
    return call_function(conn, function, *args, returns="run")


@dataclass(frozen=True)
class World:
    """What a test seeds as the superuser: a user, two projects with a task
    each, and an agent with a model of its own (no price unless a test adds one)."""

    user_id: Any
    project_a: Any
    project_b: Any
    task_a: Any
    task_b: Any
    agent_id: Any
    model_name: str


def seed(conn: psycopg.Connection) -> World:
    username = unique("executions-user-")
    user_id = insert(conn, "users", username=username, email=f"{username}@example.com")["user_id"]
    slug_a, slug_b = unique("executions-a-"), unique("executions-b-")
    project_a = insert(conn, "projects", slug=slug_a, name=slug_a, owner_id=user_id)["project_id"]
    project_b = insert(conn, "projects", slug=slug_b, name=slug_b, owner_id=user_id)["project_id"]
    task_a = insert(conn, "tasks", project_id=project_a, title=unique("task a "))["task_id"]
    task_b = insert(conn, "tasks", project_id=project_b, title=unique("task b "))["task_id"]
    model_name = unique("model-")
    agent_id = insert(
        conn,
        "agents",
        name=unique("executions-agent-"),
        agent_type="coding",
        model_provider=PROVIDER,
        model_name=model_name,
    )["agent_id"]
    return World(user_id, project_a, project_b, task_a, task_b, agent_id, model_name)


def add_prices(conn: psycopg.Connection, model_name: str) -> None:
    """3/15/0.3 USD per Mtok from 2025-01-01, 30/150/3 from 2100-01-01."""
    for valid_from, prices in ((EARLY, ("3", "15", "0.3")), (LATE, ("30", "150", "3"))):
        insert(
            conn,
            "model_prices",
            model_provider=PROVIDER,
            model_name=model_name,
            valid_from=valid_from,
            input_usd_per_mtok=Decimal(prices[0]),
            output_usd_per_mtok=Decimal(prices[1]),
            cached_input_usd_per_mtok=Decimal(prices[2]),
        )


def create(conn: psycopg.Connection, world: World, task_id: Any = None) -> Any:
    return scalar(conn, "select toolsdb.execution_create(%s, %s)", (world.agent_id, task_id or world.task_a))


def run_in(conn: psycopg.Connection, world: World, status: str) -> Any:
    """A run of ``world``'s agent on task A brought to ``status`` by the functions."""
    execution_id = create(conn, world)
    if status == "pending":
        return execution_id
    if status == "cancelled":
        call(conn, "execution_cancel", execution_id)
        return execution_id
    call(conn, "execution_start", execution_id)
    if status != "running":
        call(conn, "execution_move", execution_id, status)
    return execution_id


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def new_evidence(tx: psycopg.Connection, world: World) -> Any:
    """A piece of evidence in project A, for runs to point to."""
    return scalar(
        tx,
        "insert into toolsdb.evidence (project_id, source_type, title) values (%s, 'test_result', 'proof')"
        " returning evidence_id",
        (world.project_a,),
    )


@dataclass(frozen=True)
class Committed:
    """The committed rows of the module database, for the login role tests."""

    dbname: str
    project_a: str
    project_b: str
    run_a: str
    run_b: str
    task_b: str
    log_b: int
    model_name: str


@pytest.fixture(scope="module")
def committed(pg: Pg, template: str) -> Iterator[Committed]:
    """One clone per module and major, holding two projects with a pending
    run each, a log entry on B's run and prices for the agent's model."""
    with pg.clone(f"executions_{os.getpid()}_{pg.major}", template) as name:
        with psycopg.connect(pg.conninfo(name)) as su:
            world = seed(su)
            add_prices(su, world.model_name)
            run_a = create(su, world, world.task_a)
            run_b = create(su, world, world.task_b)
            log_b = scalar(su, "select toolsdb.execution_log(%s, 'b was here')", (run_b,))
            su.commit()
        yield Committed(
            name,
            str(world.project_a),
            str(world.project_b),
            str(run_a),
            str(run_b),
            str(world.task_b),
            log_b,
            world.model_name,
        )


@pytest.fixture
def world(tx: psycopg.Connection) -> World:
    return seed(tx)


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


# ---------------------------------------------------------------------------
# Prices and cost
# ---------------------------------------------------------------------------


def test_the_cost_is_computed_at_the_price_in_force_when_the_run_started(tx: psycopg.Connection, world: World) -> None:
    add_prices(tx, world.model_name)
    execution_id = run_in(tx, world, "running")
    run = call(tx, "execution_complete", execution_id, None, 1_000_000, 200_000, 500_000)
    assert run["cost_usd"] == Decimal("6.150000"), (
        f"1M input, 200k output and 500k cached tokens at 3/15/0.3 USD per Mtok should cost 6.150000, "
        f"not {run['cost_usd']}."
    )
    assert run["cost_is_given"] is False, "A computed cost should have cost_is_given false."
    assert (run["input_tokens"], run["output_tokens"], run["cached_tokens"]) == (1_000_000, 200_000, 500_000), (
        "execution_complete should store the tokens it was given."
    )


@pytest.mark.parametrize("function", ["execution_fail", "execution_time_out"])
def test_a_failed_or_timed_out_run_is_priced_too(tx: psycopg.Connection, world: World, function: str) -> None:
    add_prices(tx, world.model_name)
    execution_id = run_in(tx, world, "running")
    args = (Jsonb({"error": "x"}), 1_000_000, 0, 0) if function == "execution_fail" else (1_000_000, 0, 0)
    run = call(tx, function, execution_id, *args)
    assert run["cost_usd"] == Decimal("3.000000") and run["cost_is_given"] is False, (
        f"{function} with 1M input tokens at 3 USD per Mtok should cost 3.000000 (computed), not {run['cost_usd']}."
    )


def test_a_given_cost_is_kept(tx: psycopg.Connection, world: World) -> None:
    add_prices(tx, world.model_name)
    execution_id = run_in(tx, world, "running")
    run = call(tx, "execution_complete", execution_id, None, 1_000_000, 200_000, 500_000, Decimal("1.25"))
    assert run["cost_usd"] == Decimal("1.250000") and run["cost_is_given"] is True, (
        f"A cost given by the caller should be kept with cost_is_given true, not {run['cost_usd']} "
        f"(given: {run['cost_is_given']})."
    )


def test_a_model_without_a_price_costs_null(tx: psycopg.Connection, world: World) -> None:
    execution_id = run_in(tx, world, "running")
    run = call(tx, "execution_complete", execution_id, None, 1000, 1000, 0)
    assert run["cost_usd"] is None and run["cost_is_given"] is False, (
        f"A run of a model without a price should have no cost, not {run['cost_usd']}."
    )


@pytest.mark.parametrize(
    ("at", "valid_from", "cost"),
    [
        ("2024-06-01", None, None),
        ("2025-01-01", EARLY, Decimal("6.150000")),
        ("2050-06-01", EARLY, Decimal("6.150000")),
        ("2100-01-01", LATE, Decimal("61.500000")),
        ("2150-06-01", LATE, Decimal("61.500000")),
    ],
)
def test_model_price_at_and_token_cost_pick_the_row_in_force(
    tx: psycopg.Connection, world: World, at: str, valid_from: datetime | None, cost: Decimal | None
) -> None:
    add_prices(tx, world.model_name)
    price = one(tx, "select * from toolsdb.model_price_at(%s, %s, %s)", (PROVIDER, world.model_name, at))
    assert price["valid_from"] == valid_from, (
        f"model_price_at at {at} should pick the row valid from {valid_from}, not {price['valid_from']}."
    )
    found = scalar(
        tx,
        "select toolsdb.token_cost(%s, %s, %s, 1000000, 200000, 500000)",
        (PROVIDER, world.model_name, at),
    )
    assert found == cost, f"token_cost at {at} should be {cost}, not {found}."


def test_token_cost_of_an_unknown_model_is_null(tx: psycopg.Connection) -> None:
    assert scalar(tx, "select toolsdb.token_cost('nobody', 'nothing', now(), 1, 1, 1)") is None, (
        "token_cost of a model without prices should be null."
    )
    assert scalar(tx, "select toolsdb.token_cost(%s, 'nothing', now(), 1, 1)", (PROVIDER,)) is None, (
        "token_cost with the default cached tokens of an unknown model should be null."
    )


def test_negative_tokens_costs_and_prices_are_refused(tx: psycopg.Connection, world: World) -> None:
    execution_id = run_in(tx, world, "running")
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.execution_complete(%s, null, -1, 0, 0)", (execution_id,)),
        constraint="tokens_are_not_negative",
    )
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.execution_complete(%s, null, 0, 0, -5)", (execution_id,)),
        constraint="tokens_are_not_negative",
    )
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.execution_complete(%s, null, 0, 0, 0, -1)", (execution_id,)),
        constraint="cost_usd_is_not_negative",
    )
    for column in ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok"):
        prices = {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1, "cached_input_usd_per_mtok": 1, column: -1}
        expect_error(
            tx,
            "23514",
            lambda p=prices: insert(
                tx, "model_prices", model_provider=PROVIDER, model_name=world.model_name, valid_from=EARLY, **p
            ),
            constraint="prices_are_not_negative",
        )


def test_a_price_row_is_unique_per_model_and_date(tx: psycopg.Connection, world: World) -> None:
    add_prices(tx, world.model_name)
    expect_error(tx, "23505", lambda: add_prices(tx, world.model_name), constraint="model_prices_pkey")


def test_setting_the_evidence_of_a_finished_unpriced_run_leaves_its_cost(tx: psycopg.Connection, world: World) -> None:
    execution_id = run_in(tx, world, "running")
    assert call(tx, "execution_complete", execution_id, None, 1_000_000, 0, 0)["cost_usd"] is None, (
        "A run of a model without a price should end with no cost."
    )
    add_prices(tx, world.model_name)
    tx.execute(
        "update toolsdb.agent_executions set evidence_id = %s where execution_id = %s",
        (new_evidence(tx, world), execution_id),
    )
    cost = run_of(tx, execution_id)["cost_usd"]
    assert cost is None, (
        f"A finished run is frozen but for its evidence_id: setting it should not price the run (cost is now {cost})."
    )


# ---------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------


def test_execution_log_appends_entries_in_order_with_the_runs_project(tx: psycopg.Connection, world: World) -> None:
    execution_id = create(tx, world, world.task_b)
    ids = [
        scalar(tx, "select toolsdb.execution_log(%s, 'first')", (execution_id,)),
        scalar(tx, "select toolsdb.execution_log(%s, 'second', 'warning', %s)", (execution_id, Jsonb({"n": 2}))),
        scalar(tx, "select toolsdb.execution_log(%s, 'third', 'error', null)", (execution_id,)),
    ]
    assert ids == sorted(ids) and len(set(ids)) == 3, f"log_ids should increase with each entry, but are {ids}."
    entries = rows(
        tx,
        "select log_id, project_id, level, message, data from toolsdb.agent_execution_logs "
        "where execution_id = %s order by log_id",
        (execution_id,),
    )
    assert [(e["log_id"], e["level"], e["message"], e["data"]) for e in entries] == [
        (ids[0], "info", "first", {}),
        (ids[1], "warning", "second", {"n": 2}),
        (ids[2], "error", "third", {}),
    ], f"The entries should be stored as logged (default level info, data {{}}), but are {entries}."
    assert {e["project_id"] for e in entries} == {world.project_b}, "Each entry should carry the run's project (B)."
    assert scalar(tx, "select toolsdb.execution_log(gen_random_uuid(), 'lost')") is None, (
        "execution_log on an unknown run should return null and log nothing."
    )


def test_a_log_entry_cannot_be_rewritten(tx: psycopg.Connection, world: World) -> None:
    execution_id = create(tx, world)
    log_id = scalar(tx, "select toolsdb.execution_log(%s, 'written')", (execution_id,))
    caught = expect_error(
        tx,
        "42501",
        lambda: tx.execute(
            "update toolsdb.agent_execution_logs set message = 'rewritten' where log_id = %s", (log_id,)
        ),
    )
    assert "append-only" in str(caught), f"Updating a log entry should be refused as append-only: {caught}"


def test_an_invalid_log_level_is_refused(tx: psycopg.Connection, world: World) -> None:
    execution_id = create(tx, world)
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.execution_log(%s, 'loud', 'fatal')", (execution_id,)),
        constraint="level_is_valid",
    )


@pytest.mark.parametrize("deleted", ["run", "task"])
def test_deleting_the_run_or_its_task_deletes_its_log(tx: psycopg.Connection, world: World, deleted: str) -> None:
    execution_id = create(tx, world)
    other = create(tx, world, world.task_b)
    for run in (execution_id, other):
        tx.execute("select toolsdb.execution_log(%s, 'one'), toolsdb.execution_log(%s, 'two')", (run, run))
    if deleted == "run":
        tx.execute("delete from toolsdb.agent_executions where execution_id = %s", (execution_id,))
    else:
        tx.execute("delete from toolsdb.tasks where task_id = %s", (world.task_a,))
        assert (
            scalar(tx, "select count(*) from toolsdb.agent_executions where execution_id = %s", (execution_id,)) == 0
        ), "Deleting a task should delete its runs."
    counts = {
        run: scalar(tx, "select count(*) from toolsdb.agent_execution_logs where execution_id = %s", (run,))
        for run in (execution_id, other)
    }
    assert counts == {execution_id: 0, other: 2}, (
        f"Deleting the {deleted} should delete the run's log entries and no others, but counts are {counts}."
    )


# ---------------------------------------------------------------------------
# Audit
# ---------------------------------------------------------------------------


def test_runs_are_audited_and_the_log_is_exempt(tx: psycopg.Connection, world: World) -> None:
    reason = scalar(
        tx,
        "select reason from toolsdb_private.audit_exemptions where table_name = 'toolsdb.agent_execution_logs'",
    )
    assert "append-only" in reason, f"The log table should be exempt from audit with a reason, not {reason!r}."
    execution_id = run_in(tx, world, "running")
    tx.execute("select toolsdb.execution_log(%s, 'not audited')", (execution_id,))
    found = rows(
        tx,
        "select action, new_values, old_values from toolsdb.audit_logs "
        "where entity_type = 'agent_executions' and entity_id = %s order by audit_id",
        (str(execution_id),),
    )
    assert [entry["action"] for entry in found] == ["insert", "update"], (
        f"Creating then starting a run should leave an insert and an update entry, but found {found}."
    )
    assert found[1]["old_values"]["status"] == "pending" and found[1]["new_values"]["status"] == "running", (
        f"The update entry should record the move pending -> running, but holds {found[1]}."
    )
    assert (
        scalar(
            tx,
            "select count(*) from toolsdb.audit_logs where entity_type in ('agent_execution_logs', "
            "'toolsdb.agent_execution_logs')",
        )
        == 0
    ), "Log entries should not be captured in the audit log."
    price_entries = scalar(
        tx,
        "select count(*) from toolsdb.audit_logs where entity_type = 'model_prices' and action = 'insert' "
        "and new_values ->> 'model_name' = %s",
        (world.model_name,),
    )
    add_prices(tx, world.model_name)
    assert (
        scalar(
            tx,
            "select count(*) from toolsdb.audit_logs where entity_type = 'model_prices' and action = 'insert' "
            "and new_values ->> 'model_name' = %s",
            (world.model_name,),
        )
        == price_entries + 2
    ), "Adding two prices should leave two insert entries of model_prices in the audit log."


# ---------------------------------------------------------------------------
# Deleting an agent
# ---------------------------------------------------------------------------


def test_an_agent_with_runs_cannot_be_deleted(tx: psycopg.Connection, world: World) -> None:
    create(tx, world)
    expect_error(
        tx,
        ("23001", "23503"),
        lambda: tx.execute("delete from toolsdb.agents where agent_id = %s", (world.agent_id,)),
        constraint="agent_executions_agent_id_fkey",
    )


# ---------------------------------------------------------------------------
# Row-level security (a login in toolsdb_app, committed rows)
# ---------------------------------------------------------------------------


def test_the_app_drives_only_its_projects_runs(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        set_project(app, committed.project_a)
        seen = {str(row[0]) for row in app.execute("select execution_id from toolsdb.agent_executions")}
        assert seen == {committed.run_a}, f"With toolsdb.project_id = A the app should see A's run only: {seen}."
        assert (
            app.execute("select from toolsdb.agent_executions where execution_id = %s", (committed.run_b,)).fetchall()
            == []
        ), "The app working for A should not find B's run even by its id."
        assert (
            app.execute("select from toolsdb.agent_execution_logs where log_id = %s", (committed.log_b,)).fetchall()
            == []
        ), "The app working for A should not see B's log entry."
        assert scalar(app, "select count(*) from toolsdb.agent_execution_logs") == 0, (
            "The app working for A should see no log entry before it logs (A's run has none)."
        )
        expect_error(app, "P0002", lambda: app.execute("select toolsdb.execution_start(%s)", (committed.run_b,)))
        assert scalar(app, "select toolsdb.execution_log(%s, 'sneaky')", (committed.run_b,)) is None, (
            "The app working for A should not be able to log on B's run."
        )
        updated = app.execute(
            "update toolsdb.agent_executions set evidence_id = gen_random_uuid() where execution_id = %s",
            (committed.run_b,),
        )
        assert updated.rowcount == 0, "The app working for A should update none of B's runs."

        started = call(app, "execution_start", committed.run_a)
        assert started["status"] == "running", "The app should start its own project's run."
        log_id = scalar(app, "select toolsdb.execution_log(%s, 'working')", (committed.run_a,))
        assert log_id is not None, "The app should log on its own project's run."
        assert scalar(app, "select count(*) from toolsdb.agent_execution_logs") == 1, (
            "The app should see its own log entry and only it."
        )
        done = call(app, "execution_complete", committed.run_a, Jsonb({"ok": True}), 1_000_000, 200_000, 500_000)
        assert done["status"] == "success" and done["cost_usd"] == Decimal("6.150000"), (
            f"The app should complete its run and have it priced at 6.150000, not {done['status']} {done['cost_usd']}."
        )

        price = one(
            app,
            "select input_usd_per_mtok from toolsdb.model_prices where model_name = %s and valid_from = %s",
            (committed.model_name, EARLY),
        )
        assert price["input_usd_per_mtok"] == Decimal("3"), "The app should be able to read the price list."
        caught = expect_error(
            app,
            "42501",
            lambda: app.execute(
                "insert into toolsdb.model_prices (model_provider, model_name, valid_from, input_usd_per_mtok, "
                "output_usd_per_mtok) values ('acme', 'free', now(), 0, 0)"
            ),
        )
        assert "permission denied" in str(caught), f"Writing prices should be refused to the app: {caught}"
        expect_error(
            app,
            "42501",
            lambda: app.execute("update toolsdb.model_prices set input_usd_per_mtok = 0"),
        )


def test_the_app_cannot_create_a_run_for_another_project(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        set_project(app, committed.project_a)
        agent_id = scalar(
            app, "select agent_id from toolsdb.agent_executions where execution_id = %s", (committed.run_a,)
        )
        # The app does not see B's task: for it, that task does not exist.
        caught = expect_error(
            app,
            "23503",
            lambda: app.execute("select toolsdb.execution_create(%s, %s)", (agent_id, committed.task_b)),
        )
        assert caught.diag.constraint_name == "agent_executions_task_id_fkey", (
            f"A run on B's task should be refused as a run of an unknown task: {caught}"
        )
        caught = expect_error(
            app,
            "23503",
            lambda: app.execute(
                "insert into toolsdb.agent_executions (agent_id, task_id, project_id) values (%s, %s, %s)",
                (agent_id, committed.task_b, committed.project_b),
            ),
        )
        assert caught.diag.constraint_name == "agent_executions_task_id_fkey", (
            f"Inserting a run on B's task should be refused: the app does not see that task: {caught}"
        )


def test_the_app_sees_no_run_without_a_project(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        assert scalar(app, "select count(*) from toolsdb.agent_executions") == 0, (
            "Without toolsdb.project_id the app should see no run at all."
        )
        assert scalar(app, "select count(*) from toolsdb.agent_execution_logs") == 0, (
            "Without toolsdb.project_id the app should see no log entry at all."
        )
        expect_error(app, "P0002", lambda: app.execute("select toolsdb.execution_start(%s)", (committed.run_a,)))

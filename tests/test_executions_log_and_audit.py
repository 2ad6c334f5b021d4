"""The append-only log of a run, toolsdb.agent_execution_logs
(schema/33_agent_executions.sql), against a real, migrated database, on each
PostgreSQL major of the suite: execution_log appends entries in order with
the run's project, an entry cannot be rewritten and goes with its run or
task; change capture of runs and prices into the audit log, from which the
log is exempt; the restrict on deleting an agent that has runs.

Isolation, as in test_tasks.py: every test runs in ``tx``, a transaction that
is always rolled back on one clone of the template per module and major, and
seeds its own user, projects, agent and tasks (``world``). Every statement
that must fail runs in a savepoint, so the transaction stays usable.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .dbhelpers import expect_error, rows, scalar
from .executionhelpers import World, add_prices, create, run_in, seeded_world

world = pytest.fixture(seeded_world)


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

"""Row-level security of toolsdb.agent_executions and
toolsdb.agent_execution_logs (schema/33_agent_executions.sql) for a login in
toolsdb_app, against a real, migrated database, on each PostgreSQL major of
the suite: with toolsdb.project_id set the app sees and drives only its
project's runs and log entries, reads but cannot write the price list, and
cannot create a run on another project's task; without a project it sees
nothing.

Isolation: one clone of the template per module and major (``committed``)
holds two committed projects with a pending run each (and a log entry on
B's run) and prices for the agent's model; each test connects as a login
role and rolls back at the end (``connect_app``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import connect_app, expect_error, one, scalar, set_project
from .executionhelpers import EARLY, add_prices, call, create, seed


@dataclass(frozen=True)
class Committed:
    """The committed rows of the module database, for the login role tests."""

    dbname: str
    project_a: str
    project_b: str
    run_a: str
    run_b: str
    task_a: str
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
            str(world.task_a),
            str(world.task_b),
            log_b,
            world.model_name,
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


def test_the_project_lookups_name_the_project_of_what_the_caller_sees(
    pg: Pg, committed: Committed, app_login: str
) -> None:
    """toolsdb.project_of_task/execution/validation (on Citus they name the shard):
    the app gets the project of its own project's rows and null for another's; a
    caller who sees everything gets it whichever project the transaction acts for;
    a malformed toolsdb.project_id is 22023, not a wrong answer."""
    lookups = (("task", committed.task_a, committed.task_b), ("execution", committed.run_a, committed.run_b))
    with connect_app(pg, committed.dbname, app_login) as app:
        set_project(app, committed.project_a)
        for kind, mine, theirs in lookups:
            assert str(scalar(app, f"select toolsdb.project_of_{kind}(%s)", (mine,))) == committed.project_a, kind
            assert scalar(app, f"select toolsdb.project_of_{kind}(%s)", (theirs,)) is None, kind
        assert scalar(app, "select toolsdb.project_of_validation(gen_random_uuid())") is None
    with psycopg.connect(pg.conninfo(committed.dbname)) as su:
        validation = scalar(
            su,
            "insert into toolsdb.pr_validations (task_id, pr_number, repository, branch_name)"
            " values (%s, 7, 'example/x', 'main') returning validation_id",
            (committed.task_b,),
        )
        set_project(su, committed.project_a)  # acting for A, looking up B's rows: found all the same
        assert str(scalar(su, "select toolsdb.project_of_task(%s)", (committed.task_b,))) == committed.project_b
        assert str(scalar(su, "select toolsdb.project_of_execution(%s)", (committed.run_b,))) == committed.project_b
        assert str(scalar(su, "select toolsdb.project_of_validation(%s)", (validation,))) == committed.project_b
        set_project(su, "not-a-uuid")
        expect_error(su, "22023", lambda: su.execute("select toolsdb.project_of_task(%s)", (committed.task_b,)))
        su.rollback()


def test_the_app_sees_no_run_without_a_project(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        assert scalar(app, "select count(*) from toolsdb.agent_executions") == 0, (
            "Without toolsdb.project_id the app should see no run at all."
        )
        assert scalar(app, "select count(*) from toolsdb.agent_execution_logs") == 0, (
            "Without toolsdb.project_id the app should see no log entry at all."
        )
        expect_error(app, "P0002", lambda: app.execute("select toolsdb.execution_start(%s)", (committed.run_a,)))

"""Change capture and row-level security of the collaboration tables
(toolsdb.pr_validations, error_logs, evidence, task_comments,
task_attachments and activity_feed) against a real, migrated database, on
each PostgreSQL major of the suite: inserts and a validation's moves are
captured in the audit log; a login in toolsdb_app sees and acts on its
project's rows only, and on nothing without a project.

Isolation: one clone of the template per module and major (``committed``)
holds two committed projects with a row in each of the six tables for the
row-level security tests, which connect as a login role and roll back at
the end (``connect_app``); the audit tests run in ``tx``, a transaction that
is always rolled back, and seed their own user, projects, tasks and agent
(``world``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .collaborationhelpers import (
    World,
    new_attachment,
    new_child,
    new_evidence,
    new_validation,
    record_error,
    seed,
    seeded_world,
    validation_in,
)
from .conftest import Pg
from .dbhelpers import call, connect_app, expect_error, insert, rows, scalar, set_project

TABLES = ("pr_validations", "error_logs", "evidence", "task_comments", "task_attachments", "activity_feed")

world = pytest.fixture(seeded_world)


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

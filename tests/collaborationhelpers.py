"""Helpers of the collaboration tables' test modules
(test_collaboration_*.py): updates returning the stored row, the world a
test seeds (a user, two projects with a task each, and an agent), a
validation brought to a status by the functions, evidence, attachments,
comments, errors recorded by toolsdb.error_record, and the body of the
modules' ``world`` fixture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .dbhelpers import Row, call, insert, one, scalar, unique

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
        "storage_path": "s3://bucket/report.txt",
        **values,
    }
    return insert(conn, "task_attachments", task_id=task_id, **fields)


def new_child(conn: psycopg.Connection, table: str, task_id: Any, **values: object) -> Row:
    if table == "task_comments":
        return insert(conn, "task_comments", task_id=task_id, body="looks good", **values)
    return new_attachment(conn, task_id, **values)


def record_error(conn: psycopg.Connection, error_type: str = "network", **named: Any) -> Any:
    names = sql.SQL("").join(sql.SQL(", {} => %s").format(sql.Identifier(name)) for name in named)
    query = sql.SQL("select toolsdb.error_record(%s, 'it broke'{names})").format(names=names)
    return scalar(conn, query.as_string(conn), (error_type, *named.values()))


def error_of(conn: psycopg.Connection, error_id: Any) -> Row:
    return one(conn, "select * from toolsdb.error_logs where error_id = %s", (error_id,))


def seeded_world(tx: psycopg.Connection) -> World:
    """Body of each module's ``world`` fixture: a fresh world in ``tx``."""
    return seed(tx)

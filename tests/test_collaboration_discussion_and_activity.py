"""Task discussion and the activity feed against a real, migrated database,
on each PostgreSQL major of the suite: toolsdb.task_comments and
toolsdb.task_attachments (schema/37_task_discussion.sql: the project filled
in from the task and kept on update, one author at most, valid attachments,
deleted with their task) and toolsdb.activity_feed
(schema/38_activity_feed.sql: activity_record keeps the acting user and
agent, the feed is append-only and exempt from audit).

Isolation, as in test_executions_*.py: every test runs in ``tx``, a
transaction that is always rolled back on one clone of the template per
module and major, and seeds its own user, projects, tasks and agent
(``world``). Every statement that must fail runs in a savepoint, so the
transaction stays usable.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from .collaborationhelpers import World, new_attachment, new_child, seeded_world, update
from .dbhelpers import expect_error, insert, one, scalar

SHA = "0123456789abcdef" * 4

world = pytest.fixture(seeded_world)


# ---------------------------------------------------------------------------
# Task comments and attachments
# ---------------------------------------------------------------------------


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
        ({"storage_path": "/etc/passwd"}, "storage_path_is_valid"),
        ({"storage_path": "tasks/../../secrets"}, "storage_path_is_valid"),
        ({"storage_path": "two words"}, "storage_path_is_valid"),
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

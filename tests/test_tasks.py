"""Behaviour of toolsdb.tasks (schema/30_tasks.sql) and toolsdb.active_tasks
(repeatable/82_work_views.sql) against a real, migrated database, on each PostgreSQL
major of the suite.

Covers the status lifecycle (toolsdb.task_status_transitions, the rules
trigger, toolsdb.task_transition, closed_at), the priority scale and its
labels (toolsdb.priority_from_label), the hierarchy (same project, no self,
no cycle, on delete behaviour), the other named constraints, full-text search
and the GIN indexes the planner picks, change capture into the audit log,
row-level security for a login in toolsdb_app, and the view active_tasks.

Isolation, kept cheap (as in the test_audit_*.py modules): one clone of the template per
module and major. It holds two committed projects with tasks for the
row-level security tests (which connect as a login role and so need committed
rows); every other test runs in ``tx``, a transaction that is always rolled
back, and seeds its own user, projects and agent. Every statement that must
fail runs in a savepoint, so the transaction stays usable.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    rows,
    scalar,
    set_project,
    unique,
)

STATUSES = ("draft", "open", "in_progress", "in_review", "blocked", "completed", "failed", "cancelled")
CLOSED = frozenset({"completed", "failed", "cancelled"})
LABEL_OF_PRIORITY = {
    0: "low",
    1: "low",
    2: "low",
    3: "low",
    4: "medium",
    5: "medium",
    6: "medium",
    7: "high",
    8: "high",
    9: "critical",
    10: "critical",
}

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What a test seeds as the superuser: a user, two projects, an agent."""

    user_id: Any
    username: str
    project_a: Any
    slug_a: str
    project_b: Any
    slug_b: str
    agent_id: Any
    agent_name: str


def seed(conn: psycopg.Connection) -> World:
    username = unique("tasks-user-")
    user_id = insert(conn, "users", username=username, email=f"{username}@example.com")["user_id"]
    slug_a, slug_b = unique("tasks-a-"), unique("tasks-b-")
    project_a = insert(conn, "projects", slug=slug_a, name=slug_a, owner_id=user_id)["project_id"]
    project_b = insert(conn, "projects", slug=slug_b, name=slug_b, owner_id=user_id)["project_id"]
    agent_name = unique("tasks-agent-")
    agent_id = insert(conn, "agents", name=agent_name, agent_type="coding")["agent_id"]
    return World(user_id, username, project_a, slug_a, project_b, slug_b, agent_id, agent_name)


def new_task(conn: psycopg.Connection, project_id: Any, **values: object) -> Row:
    return insert(conn, "tasks", **{"project_id": project_id, "title": unique("task "), **values})


def expect_violation(conn: psycopg.Connection, constraint: str, statement: Callable[[], object]) -> psycopg.Error:
    """A violation of a named constraint of toolsdb.tasks: SQLSTATE class 23."""
    try:
        with conn.transaction():
            statement()
    except psycopg.Error as exc:
        caught = exc
    else:
        pytest.fail(f"The statement should have been rejected by {constraint} on toolsdb.tasks, but it succeeded.")
    assert caught.diag.constraint_name == constraint, (
        f"The error should name constraint {constraint}, but it names {caught.diag.constraint_name!r}: {caught}"
    )
    assert caught.sqlstate is not None and caught.sqlstate.startswith("23"), (
        f"The error should be an integrity constraint violation (SQLSTATE class 23), but its SQLSTATE is "
        f"{caught.sqlstate}: {caught}"
    )
    return caught


def transitions(conn: psycopg.Connection) -> set[tuple[str, str]]:
    return {
        (row["from_status"], row["to_status"])
        for row in rows(conn, "select from_status, to_status from toolsdb.task_status_transitions")
    }


def explain(conn: psycopg.Connection, query: str) -> str:
    return "\n".join(row[0] for row in conn.execute("explain " + query).fetchall())


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Committed:
    """The committed rows of the module database, for the login role tests."""

    dbname: str
    project_a: str
    project_b: str
    tasks_a: frozenset[str]
    tasks_b: frozenset[str]


@pytest.fixture(scope="module")
def committed(pg: Pg, template: str) -> Iterator[Committed]:
    """One clone per module and major, holding two projects with committed
    tasks (A: open, in_progress, completed; B: open, in_progress)."""
    with pg.clone(f"tasks_{os.getpid()}_{pg.major}", template) as name:
        with psycopg.connect(pg.conninfo(name)) as su:
            world = seed(su)
            tasks_a = [
                str(new_task(su, world.project_a, title=f"rls a {status}", status=status)["task_id"])
                for status in ("open", "in_progress", "completed")
            ]
            tasks_b = [
                str(new_task(su, world.project_b, title=f"rls b {status}", status=status)["task_id"])
                for status in ("open", "in_progress")
            ]
            su.commit()
        yield Committed(name, str(world.project_a), str(world.project_b), frozenset(tasks_a), frozenset(tasks_b))


@pytest.fixture
def world(tx: psycopg.Connection) -> World:
    return seed(tx)


# ---------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------


def test_the_lookup_table_lists_the_documented_moves(tx: psycopg.Connection) -> None:
    moves = transitions(tx)
    assert len(moves) == 22, f"toolsdb.task_status_transitions should list the 22 documented moves, not {len(moves)}."
    assert ("in_progress", "completed") in moves and ("completed", "open") in moves, (
        "The lookup table should allow finishing a task in progress and reopening a completed one."
    )


@pytest.mark.parametrize("method", ["task_transition", "update"])
def test_every_listed_move_succeeds_and_every_other_move_fails(
    tx: psycopg.Connection, world: World, method: str
) -> None:
    allowed = transitions(tx)

    def move(task_id: Any, to_status: str) -> Any:
        if method == "task_transition":
            return scalar(tx, "select toolsdb.task_transition(%s, %s)", (task_id, to_status))
        tx.execute("update toolsdb.tasks set status = %s where task_id = %s", (to_status, task_id))
        return None

    for from_status, to_status in itertools.product(STATUSES, STATUSES):
        if from_status == to_status:
            continue
        task = new_task(tx, world.project_a, status=from_status)
        if (from_status, to_status) in allowed:
            previous = move(task["task_id"], to_status)
            if method == "task_transition":
                assert previous == from_status, (
                    f"task_transition from {from_status} to {to_status} should return the previous status "
                    f"{from_status}, but it returned {previous!r}."
                )
            status, closed_at = tx.execute(
                "select status, closed_at from toolsdb.tasks where task_id = %s", (task["task_id"],)
            ).fetchone()
            assert status == to_status, f"The listed move {from_status} -> {to_status} ({method}) should succeed."
            assert (closed_at is not None) == (to_status in CLOSED), (
                f"After {from_status} -> {to_status}, closed_at should be set exactly when the task is completed, "
                f"failed or cancelled, but it is {closed_at!r}."
            )
        else:
            caught = expect_error(tx, "55000", lambda task_id=task["task_id"], to=to_status: move(task_id, to))
            message = caught.diag.message_primary or ""
            assert from_status in message and to_status in message, (
                f"The refused move {from_status} -> {to_status} ({method}) should name both states, but its "
                f"message is {message!r}."
            )
            assert scalar(tx, "select status from toolsdb.tasks where task_id = %s", (task["task_id"],)) == (
                from_status
            ), f"A refused move {from_status} -> {to_status} should leave the task in {from_status}."


@pytest.mark.parametrize(
    ("from_status", "to_status"), [("open", "completed"), ("draft", "in_progress"), ("completed", "cancelled")]
)
def test_a_move_not_listed_fails_with_55000_naming_both_states(
    tx: psycopg.Connection, world: World, from_status: str, to_status: str
) -> None:
    task = new_task(tx, world.project_a, status=from_status)
    caught = expect_error(
        tx, "55000", lambda: tx.execute("select toolsdb.task_transition(%s, %s)", (task["task_id"], to_status))
    )
    assert f"from {from_status} to {to_status}" in str(caught), (
        f"The error of the refused move should read 'from {from_status} to {to_status}', but it reads {caught}."
    )


def test_closed_at_is_set_on_closing_cleared_on_reopening_and_kept_otherwise(
    tx: psycopg.Connection, world: World
) -> None:
    task_id = new_task(tx, world.project_a, status="in_progress")["task_id"]
    tx.execute("select toolsdb.task_transition(%s, 'completed')", (task_id,))
    closed_at = scalar(tx, "select closed_at from toolsdb.tasks where task_id = %s", (task_id,))
    assert closed_at == scalar(tx, "select now()"), "Completing a task should set closed_at to the transaction time."
    tx.execute("update toolsdb.tasks set title = 'renamed while completed' where task_id = %s", (task_id,))
    assert scalar(tx, "select closed_at from toolsdb.tasks where task_id = %s", (task_id,)) == closed_at, (
        "An update that does not change the status should keep closed_at."
    )
    assert scalar(tx, "select toolsdb.task_transition(%s, 'open')", (task_id,)) == "completed", (
        "Reopening should return the status the task left, completed."
    )
    assert scalar(tx, "select closed_at from toolsdb.tasks where task_id = %s", (task_id,)) is None, (
        "Reopening a completed task should clear closed_at."
    )


def test_a_client_cannot_forge_closed_at(tx: psycopg.Connection, world: World) -> None:
    forged = "2000-01-01 00:00:00+00"
    now = scalar(tx, "select now()")
    open_task = new_task(tx, world.project_a, status="open", closed_at=forged)
    assert open_task["closed_at"] is None, "closed_at given on insert of an open task should be overridden to null."
    done_task = new_task(tx, world.project_a, status="completed", closed_at=forged)
    assert done_task["closed_at"] == now, (
        "closed_at given on insert of a completed task should be overridden by the transaction time."
    )
    tx.execute("update toolsdb.tasks set closed_at = %s where task_id = %s", (forged, open_task["task_id"]))
    tx.execute("update toolsdb.tasks set closed_at = null where task_id = %s", (done_task["task_id"],))
    tx.execute(
        "update toolsdb.tasks set status = 'in_progress', closed_at = %s where task_id = %s",
        (forged, open_task["task_id"]),
    )
    stored = dict(
        tx.execute(
            "select task_id, closed_at from toolsdb.tasks where task_id = any(%s)",
            ([open_task["task_id"], done_task["task_id"]],),
        ).fetchall()
    )
    assert stored == {open_task["task_id"]: None, done_task["task_id"]: now}, (
        f"Updates that set closed_at should be overridden by the database, but closed_at is now {stored}."
    )


def test_an_unknown_status_is_rejected(tx: psycopg.Connection, world: World) -> None:
    expect_violation(tx, "status_is_valid", lambda: new_task(tx, world.project_a, status="done"))
    task_id = new_task(tx, world.project_a)["task_id"]
    # On update the lifecycle trigger runs first: 'done' is no listed move.
    caught = expect_error(tx, "55000", lambda: tx.execute("select toolsdb.task_transition(%s, 'done')", (task_id,)))
    assert "from open to done" in str(caught), f"Moving to 'done' should be refused naming both states: {caught}"


def test_task_transition_on_an_unknown_task_raises_no_data_found(tx: psycopg.Connection) -> None:
    caught = expect_error(
        tx, "P0002", lambda: tx.execute("select toolsdb.task_transition(gen_random_uuid(), 'in_progress')")
    )
    assert "not found" in str(caught), f"task_transition on an unknown task should say it is not found: {caught}"


def test_adding_a_row_to_the_lookup_table_allows_that_move(tx: psycopg.Connection, world: World) -> None:
    task_id = new_task(tx, world.project_a)["task_id"]
    expect_error(tx, "55000", lambda: tx.execute("select toolsdb.task_transition(%s, 'completed')", (task_id,)))
    tx.execute("insert into toolsdb.task_status_transitions (from_status, to_status) values ('open', 'completed')")
    assert scalar(tx, "select toolsdb.task_transition(%s, 'completed')", (task_id,)) == "open", (
        "Once (open, completed) is listed, open -> completed should succeed and return open."
    )
    assert scalar(tx, "select closed_at is not null from toolsdb.tasks where task_id = %s", (task_id,)), (
        "The newly allowed move to completed should set closed_at."
    )


# ---------------------------------------------------------------------------
# Priority
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("priority", sorted(LABEL_OF_PRIORITY))
def test_each_priority_is_accepted_with_its_label(tx: psycopg.Connection, world: World, priority: int) -> None:
    task = new_task(tx, world.project_a, priority=priority)
    assert task["priority_label"] == LABEL_OF_PRIORITY[priority], (
        f"Priority {priority} should be labelled {LABEL_OF_PRIORITY[priority]}, not {task['priority_label']!r}."
    )


@pytest.mark.parametrize("priority", [11, -1])
def test_a_priority_out_of_range_is_rejected(tx: psycopg.Connection, world: World, priority: int) -> None:
    expect_violation(tx, "priority_is_valid", lambda: new_task(tx, world.project_a, priority=priority))


def test_priority_from_label_maps_each_label_into_its_range(tx: psycopg.Connection) -> None:
    mapped = {
        label: scalar(tx, "select toolsdb.priority_from_label(%s)", (label,)) for label in LABEL_OF_PRIORITY.values()
    }
    assert mapped == {"low": 2, "medium": 5, "high": 7, "critical": 9}, (
        f"priority_from_label should map low 2, medium 5, high 7, critical 9, but it maps {mapped}."
    )
    for label, priority in mapped.items():
        assert LABEL_OF_PRIORITY[priority] == label, f"priority_from_label({label!r}) should land in {label}'s range."


@pytest.mark.parametrize("label", ["urgent", "", None])
def test_priority_from_label_rejects_an_unknown_label(tx: psycopg.Connection, label: str | None) -> None:
    expect_error(tx, "22023", lambda: tx.execute("select toolsdb.priority_from_label(%s)", (label,)))


def test_tasks_can_be_queried_and_set_by_label(tx: psycopg.Connection, world: World) -> None:
    for priority in (1, 5, 7, 8, 10):
        new_task(tx, world.project_a, title=f"p{priority}", priority=priority)
    new_task(tx, world.project_a, title="set by label")
    tx.execute(
        "update toolsdb.tasks set priority = toolsdb.priority_from_label('high') "
        "where project_id = %s and title = 'set by label'",
        (world.project_a,),
    )
    found = {
        row[0]
        for row in tx.execute(
            "select title from toolsdb.tasks where project_id = %s and priority_label = 'high'", (world.project_a,)
        ).fetchall()
    }
    assert found == {"p7", "p8", "set by label"}, (
        f"where priority_label = 'high' should find p7, p8 and the task set by label, not {found}."
    )


# ---------------------------------------------------------------------------
# Hierarchy
# ---------------------------------------------------------------------------


def test_a_subtask_in_the_same_project_is_accepted(tx: psycopg.Connection, world: World) -> None:
    parent = new_task(tx, world.project_a)
    child = new_task(tx, world.project_a, parent_task_id=parent["task_id"])
    assert child["parent_task_id"] == parent["task_id"], "A subtask in its parent's project should be accepted."


def test_a_parent_in_another_project_is_rejected(tx: psycopg.Connection, world: World) -> None:
    foreign = new_task(tx, world.project_b)
    expect_violation(
        tx,
        "parent_task_is_in_same_project",
        lambda: new_task(tx, world.project_a, parent_task_id=foreign["task_id"]),
    )
    task = new_task(tx, world.project_a)
    caught = expect_violation(
        tx,
        "parent_task_is_in_same_project",
        lambda: tx.execute(
            "update toolsdb.tasks set parent_task_id = %s where task_id = %s", (foreign["task_id"], task["task_id"])
        ),
    )
    assert caught.sqlstate == "23514", f"A parent in another project should fail with 23514, not {caught.sqlstate}."
    child = new_task(tx, world.project_a, parent_task_id=task["task_id"])
    expect_violation(
        tx,
        "parent_task_is_in_same_project",
        lambda: tx.execute(
            "update toolsdb.tasks set project_id = %s where task_id = %s", (world.project_b, child["task_id"])
        ),
    )


@pytest.mark.parametrize("how", ["insert", "update"])
def test_a_task_as_its_own_parent_is_rejected_by_parent_is_not_self(
    tx: psycopg.Connection, world: World, how: str
) -> None:
    if how == "insert":
        task_id = scalar(tx, "select gen_random_uuid()")
        expect_violation(
            tx, "parent_is_not_self", lambda: new_task(tx, world.project_a, task_id=task_id, parent_task_id=task_id)
        )
    else:
        task_id = new_task(tx, world.project_a)["task_id"]
        expect_violation(
            tx,
            "parent_is_not_self",
            lambda: tx.execute("update toolsdb.tasks set parent_task_id = task_id where task_id = %s", (task_id,)),
        )


def test_a_task_as_its_own_parent_is_rejected(tx: psycopg.Connection, world: World) -> None:
    """Self-parenting fails with 23514, whichever way it is attempted."""
    task_id = new_task(tx, world.project_a)["task_id"]
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("update toolsdb.tasks set parent_task_id = task_id where task_id = %s", (task_id,)),
    )
    assert scalar(tx, "select parent_task_id from toolsdb.tasks where task_id = %s", (task_id,)) is None, (
        "A refused self-parenting should leave the task without a parent."
    )


def test_a_cycle_is_rejected(tx: psycopg.Connection, world: World) -> None:
    a = new_task(tx, world.project_a, title="A")["task_id"]
    b = new_task(tx, world.project_a, title="B", parent_task_id=a)["task_id"]
    c = new_task(tx, world.project_a, title="C", parent_task_id=b)["task_id"]
    caught = expect_violation(
        tx,
        "task_hierarchy_is_acyclic",
        lambda: tx.execute("update toolsdb.tasks set parent_task_id = %s where task_id = %s", (c, a)),
    )
    assert caught.sqlstate == "23514", f"A cycle A->B->C->A should fail with 23514, not {caught.sqlstate}."
    expect_violation(
        tx,
        "task_hierarchy_is_acyclic",
        lambda: tx.execute("update toolsdb.tasks set parent_task_id = %s where task_id = %s", (b, a)),
    )


def test_deleting_a_parent_orphans_its_children(tx: psycopg.Connection, world: World) -> None:
    parent = new_task(tx, world.project_a)["task_id"]
    children = [new_task(tx, world.project_a, parent_task_id=parent)["task_id"] for _ in range(2)]
    tx.execute("delete from toolsdb.tasks where task_id = %s", (parent,))
    remaining = tx.execute(
        "select task_id, parent_task_id from toolsdb.tasks where task_id = any(%s)", (children,)
    ).fetchall()
    assert sorted(remaining) == sorted((child, None) for child in children), (
        f"Deleting a parent should keep its children with parent_task_id set to null, but found {remaining}."
    )


def test_deleting_the_project_deletes_its_tasks(tx: psycopg.Connection, world: World) -> None:
    a = new_task(tx, world.project_a)["task_id"]
    new_task(tx, world.project_a, parent_task_id=a, status="completed")
    other = new_task(tx, world.project_b)["task_id"]
    tx.execute("delete from toolsdb.projects where project_id = %s", (world.project_a,))
    left = [
        row[0]
        for row in tx.execute(
            "select task_id from toolsdb.tasks where project_id = any(%s)", ([world.project_a, world.project_b],)
        ).fetchall()
    ]
    assert left == [other], f"Deleting project A should delete its tasks and keep B's, but found {left}."


# ---------------------------------------------------------------------------
# Other constraints
# ---------------------------------------------------------------------------

BAD_VALUES: dict[str, tuple[str, dict[str, object]]] = {
    "type": ("type_is_valid", {"type": "epic"}),
    "empty_title": ("title_length_is_valid", {"title": ""}),
    "long_title": ("title_length_is_valid", {"title": "x" * 501}),
    "empty_label": ("labels_are_valid", {"labels": ["ok", ""]}),
    "null_label": ("labels_are_valid", {"labels": ["ok", None]}),
    "too_many_labels": ("labels_are_valid", {"labels": [f"l{n}" for n in range(51)]}),
    "requirements_array": ("requirements_is_object", {"requirements": Jsonb(["a"])}),
    "requirements_string": ("requirements_is_object", {"requirements": Jsonb("a")}),
    "github_issue_zero": ("github_issue_number_is_positive", {"github_issue_number": 0}),
    "github_issue_negative": ("github_issue_number_is_positive", {"github_issue_number": -3}),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_bad_value_is_rejected_by_its_constraint(tx: psycopg.Connection, world: World, case: str) -> None:
    constraint, values = BAD_VALUES[case]
    caught = expect_violation(tx, constraint, lambda: new_task(tx, world.project_a, **values))
    assert caught.sqlstate == "23514", f"{case} should fail as a check violation (23514), not {caught.sqlstate}."


def test_a_github_issue_number_is_unique_per_project_only(tx: psycopg.Connection, world: World) -> None:
    new_task(tx, world.project_a, github_issue_number=42)
    new_task(tx, world.project_b, github_issue_number=42)
    new_task(tx, world.project_a)
    new_task(tx, world.project_a)
    caught = expect_violation(
        tx,
        "tasks_project_id_github_issue_number_key",
        lambda: new_task(tx, world.project_a, github_issue_number=42),
    )
    assert caught.sqlstate == "23505", f"A duplicate issue number should be a unique violation, not {caught.sqlstate}."


# ---------------------------------------------------------------------------
# Search and indexes
# ---------------------------------------------------------------------------


def test_full_text_search_finds_the_matching_task_only(tx: psycopg.Connection, world: World) -> None:
    new_task(tx, world.project_a, title="Fix the login bug")
    new_task(tx, world.project_a, title="Write the logout page", description="no bugs here: a feature")
    new_task(tx, world.project_a, title="Refactor", description="the login form")
    new_task(tx, world.project_b, title="Document the API")
    found = [
        row[0]
        for row in tx.execute(
            "select title from toolsdb.tasks where project_id = any(%s) "
            "and search_vector @@ websearch_to_tsquery('english', 'login bug')",
            ([world.project_a, world.project_b],),
        ).fetchall()
    ]
    assert found == ["Fix the login bug"], f"Searching 'login bug' should find only 'Fix the login bug', not {found}."


INDEXED_QUERIES = {
    "tasks_search_vector_idx": "search_vector @@ websearch_to_tsquery('english', 'login bug')",
    "tasks_labels_idx": "labels @> array['x']",
    "tasks_requirements_idx": """requirements @> '{"k": "v"}'""",
}


def test_the_planner_uses_the_gin_indexes_with_enough_rows(tx: psycopg.Connection, world: World) -> None:
    tx.execute(
        "insert into toolsdb.tasks (project_id, title, description, labels, requirements) "
        "select %s, 'routine task number ' || n, 'maintenance work item ' || n, "
        "array['label' || (n %% 50), 'common'], jsonb_build_object('k', 'w' || (n %% 50)) "
        "from generate_series(1, 2000) as n",
        (world.project_a,),
    )
    new_task(
        tx,
        world.project_a,
        title="Fix the login bug",
        labels=["x"],
        requirements=Jsonb({"k": "v"}),
    )
    tx.execute("analyze toolsdb.tasks")
    # Rows inserted in one go sit in each GIN index's pending list (fastupdate)
    # until (auto)vacuum merges them, and the planner prices a long pending
    # list as a full scan of it. Merge them as vacuum would; seqscan stays on.
    for index in INDEXED_QUERIES:
        tx.execute("select gin_clean_pending_list(%s::regclass)", (f"toolsdb.{index}",))
    for index, predicate in INDEXED_QUERIES.items():
        plan = explain(tx, f"select task_id, title from toolsdb.tasks where {predicate}")
        assert index in plan, f"With 2,000 rows the plan for `{predicate}` should use {index}, but it is:\n{plan}"
        count = scalar(
            tx, f"select count(*) from toolsdb.tasks where project_id = %s and {predicate}", (world.project_a,)
        )
        assert count == 1, f"`{predicate}` should find exactly the one matching task, not {count}."


# ---------------------------------------------------------------------------
# Audit
# ---------------------------------------------------------------------------


def test_inserting_and_moving_a_task_is_captured_in_the_audit_log(tx: psycopg.Connection, world: World) -> None:
    task_id = new_task(tx, world.project_a, title="audited")["task_id"]
    tx.execute("select toolsdb.task_transition(%s, 'in_progress')", (task_id,))
    found = rows(
        tx,
        "select action, new_values, old_values from toolsdb.audit_logs "
        "where entity_type = 'tasks' and entity_id = %s order by audit_id",
        (str(task_id),),
    )
    assert [entry["action"] for entry in found] == ["insert", "update"], (
        f"Inserting then moving a task should leave an insert and an update entry, but found {found}."
    )
    inserted, updated = found
    assert inserted["new_values"]["title"] == "audited" and inserted["new_values"]["status"] == "open", (
        f"The insert entry should hold the whole new row, but its new_values are {inserted['new_values']}."
    )
    assert updated["new_values"]["status"] == "in_progress" and updated["old_values"]["status"] == "open", (
        f"The update entry should record the move open -> in_progress, but it holds {updated}."
    )


# ---------------------------------------------------------------------------
# Row-level security (a login in toolsdb_app, committed rows)
# ---------------------------------------------------------------------------


def test_the_app_sees_and_changes_only_its_projects_tasks(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        set_project(app, committed.project_a)
        seen = {str(row[0]) for row in app.execute("select task_id from toolsdb.tasks").fetchall()}
        assert seen == committed.tasks_a, f"With toolsdb.project_id = A the app should see A's tasks only: {seen}."
        active = {str(row[0]) for row in app.execute("select task_id from toolsdb.active_tasks").fetchall()}
        expected_active = {
            str(row[0])
            for row in app.execute("select task_id from toolsdb.tasks where status in ('open', 'in_progress')")
        }
        assert active == expected_active and len(active) == 2, (
            f"toolsdb.active_tasks should show only A's two active tasks to the app, but shows {active}."
        )
        b_ids = sorted(committed.tasks_b)
        updated = app.execute("update toolsdb.tasks set title = 'stolen' where task_id = any(%s::uuid[])", (b_ids,))
        assert updated.rowcount == 0, "The app working for A should update none of B's tasks."
        deleted = app.execute("delete from toolsdb.tasks where task_id = any(%s::uuid[])", (b_ids,))
        assert deleted.rowcount == 0, "The app working for A should delete none of B's tasks."
        expect_error(
            app, "P0002", lambda: app.execute("select toolsdb.task_transition(%s, 'in_progress')", (b_ids[0],))
        )
        caught = expect_error(
            app,
            "42501",
            lambda: app.execute(
                "insert into toolsdb.tasks (project_id, title) values (%s, 'smuggled')", (committed.project_b,)
            ),
        )
        assert "row-level security" in str(caught), f"Inserting into B should be refused by the policy: {caught}"
        task = app.execute(
            "insert into toolsdb.tasks (project_id, title) values (%s, 'own') returning task_id, created_by",
            (committed.project_a,),
        ).fetchone()
        assert task[1] == app_login, f"A task the app inserts should be created_by its login, not {task[1]!r}."
        assert app.execute("select toolsdb.task_transition(%s, 'in_progress')", (task[0],)).fetchone() == ("open",), (
            "The app should move its own project's task with task_transition."
        )


def test_the_app_sees_no_task_without_a_project(pg: Pg, committed: Committed, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        assert scalar(app, "select count(*) from toolsdb.tasks") == 0, (
            "Without toolsdb.project_id the app should see no task at all."
        )
        assert scalar(app, "select count(*) from toolsdb.active_tasks") == 0, (
            "Without toolsdb.project_id toolsdb.active_tasks should be empty for the app."
        )


# ---------------------------------------------------------------------------
# The view active_tasks
# ---------------------------------------------------------------------------


def test_active_tasks_lists_open_and_in_progress_tasks_with_names(tx: psycopg.Connection, world: World) -> None:
    for status in STATUSES:
        new_task(tx, world.project_a, title=f"a {status}", status=status, assigned_to_user_id=world.user_id)
    new_task(tx, world.project_b, title="b open", assigned_to_agent_id=world.agent_id)
    new_task(tx, world.project_b, title="b in_progress", status="in_progress")
    new_task(tx, world.project_b, title="b blocked", status="blocked")
    found = {
        (row["title"], row["status"], row["project_slug"], row["assigned_to_username"], row["assigned_to_agent_name"])
        for row in rows(
            tx,
            "select * from toolsdb.active_tasks where project_id = any(%s)",
            ([world.project_a, world.project_b],),
        )
    }
    expected = {
        ("a open", "open", world.slug_a, world.username, None),
        ("a in_progress", "in_progress", world.slug_a, world.username, None),
        ("b open", "open", world.slug_b, None, world.agent_name),
        ("b in_progress", "in_progress", world.slug_b, None, None),
    }
    assert found == expected, f"toolsdb.active_tasks should list exactly the open and in-progress tasks: {found}."

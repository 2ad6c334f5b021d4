"""Helpers of the agent runs' test modules (test_executions_*.py): the run
statuses and the moves allowed between them, the world a test seeds (a user,
two projects with a task each and an agent with a model of its own), dated
prices, runs brought to a status by the functions, and the body of the
modules' ``world`` fixture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import psycopg

from .dbhelpers import Row, insert, one, scalar, unique
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


def new_evidence(tx: psycopg.Connection, world: World) -> Any:
    """A piece of evidence in project A, for runs to point to."""
    return scalar(
        tx,
        "insert into toolsdb.evidence (project_id, source_type, title) values (%s, 'test_result', 'proof')"
        " returning evidence_id",
        (world.project_a,),
    )


def seeded_world(tx: psycopg.Connection) -> World:
    """Body of each module's ``world`` fixture: a fresh world in ``tx``."""
    return seed(tx)

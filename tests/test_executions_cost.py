"""Prices and the cost of a run against a real, migrated database, on each
PostgreSQL major of the suite: toolsdb.model_prices
(schema/31_model_prices.sql), the cost set by the database when a run ends
at the price in force when it started (toolsdb.model_price_at and
toolsdb.token_cost at dated prices), a cost given by the caller, a model
without a price, and the constraints on tokens, costs and prices.

Isolation, as in test_tasks.py: every test runs in ``tx``, a transaction that
is always rolled back on one clone of the template per module and major, and
seeds its own user, projects, agent and tasks (``world``). Every statement
that must fail runs in a savepoint, so the transaction stays usable.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .dbhelpers import expect_error, insert, one, scalar
from .executionhelpers import (
    EARLY,
    LATE,
    PROVIDER,
    World,
    add_prices,
    call,
    new_evidence,
    run_in,
    run_of,
    seeded_world,
)

world = pytest.fixture(seeded_world)


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

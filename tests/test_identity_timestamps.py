"""The shared timestamps trigger (toolsdb_private.tg__timestamps()) against a
real, migrated database, on each PostgreSQL major of the suite: every table
with updated_at has it, an insert stamps now() whatever the client sent, an
update keeps created_at and moves updated_at forward, strictly, even several
times in one transaction.

Isolation, kept cheap (a template clone costs ~0.2 s, so one per test would
not fit the runtime budget): most tests run in ``tx``, a transaction that is
always rolled back, on one clone per module and major loaded once with
seeds/10_identity.sql (``committed``, identityhelpers.seeded_clone), so they
see exactly the seed and leave nothing behind. Tests that must commit or run
psql (the catalog-wide tests, on every table of every seed) get a fresh
clone of the migrated template (``conn``, ``all_seeded``).
"""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import sql

from toolsdb import paths

from .conftest import ROOT, Pg
from .dbhelpers import scalar
from .identityhelpers import (
    FORGED_FUTURE,
    FORGED_PAST,
    IDENTITY_TABLES,
    NEW_ROW,
    column,
    load,
    seeded_clone,
    short,
    timestamped_tables,
)

committed = pytest.fixture(seeded_clone, scope="module")


@pytest.fixture
def all_seeded(pg: Pg, db: str, conn: psycopg.Connection) -> psycopg.Connection:
    """``conn`` on a database where every file of seeds/ was loaded in order, so
    tables of later domains have rows for the generic trigger tests."""
    load(pg, db, *paths.sql_files(ROOT / "seeds"))
    return conn


# ---------------------------------------------------------------------------
# Timestamps trigger (toolsdb_private.tg__timestamps())
# ---------------------------------------------------------------------------


def test_every_table_with_updated_at_has_the_timestamps_trigger(tx: psycopg.Connection) -> None:
    tables = timestamped_tables(tx)
    assert {short(t) for t in tables} >= set(IDENTITY_TABLES), (
        f"Every identity table should have an updated_at column, but the catalog lists only {tables}."
    )
    # tgtype bits: ROW 1 | BEFORE 2 | INSERT 4 | UPDATE 16 = 23.
    missing = column(
        tx,
        """
        select format('%%I.%%I', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where format('%%I.%%I', n.nspname, c.relname) = any(%s)
          and not exists (
              select from pg_catalog.pg_trigger as t
              where t.tgrelid = c.oid
                and t.tgname = '_100_timestamps'
                and t.tgfoid = 'toolsdb_private.tg__timestamps()'::regprocedure
                and t.tgtype & 23 = 23
                and t.tgenabled <> 'D'
          )
        """,
        (tables,),
    )
    assert missing == [], (
        f"Every table with updated_at should have an enabled BEFORE INSERT OR UPDATE row trigger _100_timestamps "
        f"calling toolsdb_private.tg__timestamps(), but these do not: {missing}."
    )


@pytest.mark.parametrize("table", sorted(NEW_ROW))
def test_insert_replaces_forged_timestamps_with_now(tx: psycopg.Connection, table: str) -> None:
    now = scalar(tx, "select now()")
    row = NEW_ROW[table](tx, created_at=FORGED_PAST, updated_at=FORGED_FUTURE)
    assert row["created_at"] == now, (
        f"A forged created_at on insert into toolsdb.{table} should be replaced by now() ({now}), "
        f"but {row['created_at']} was stored."
    )
    assert row["updated_at"] == now, (
        f"A forged updated_at on insert into toolsdb.{table} should be replaced by now() ({now}), "
        f"but {row['updated_at']} was stored."
    )


def _update_one_row(conn: psycopg.Connection, table: str, ctid: str, assignments: str) -> tuple:
    query = sql.SQL("update {} set {} where ctid = %s::tid returning ctid::text, created_at, updated_at").format(
        sql.SQL(table), sql.SQL(assignments)
    )
    row = conn.execute(query, (ctid,)).fetchone()
    assert row is not None, f"The update of one row of {table} should have returned it."
    return row


# A finished run or a settled validation is frozen by its domain's rules: pick
# a row that may still change (one that is not finished, if the table has a status).
FROZEN_STATUSES = ("success", "failure", "timeout", "passed", "failed", "cancelled")


def _seeded_row(conn: psycopg.Connection, table: str) -> tuple | None:
    query = sql.SQL(
        "select ctid::text, created_at, updated_at from {} as t"
        " order by coalesce(to_jsonb(t) ->> 'status' = any(%s), false), created_at limit 1"
    ).format(sql.SQL(table))
    return conn.execute(query, (list(FROZEN_STATUSES),)).fetchone()


def _rows_to_update(conn: psycopg.Connection) -> dict[str, tuple]:
    """One seeded row per table with updated_at; tables of later domains without
    seed rows are left to test_every_table_with_updated_at_has_the_timestamps_trigger."""
    found = {}
    for table in timestamped_tables(conn):
        row = _seeded_row(conn, table)
        if row is not None:
            found[table] = row
    assert {short(t) for t in found} >= set(IDENTITY_TABLES), (
        f"The identity seed should give every identity table a row to update, but only {sorted(found)} have one."
    )
    return found


def test_update_cannot_change_created_at_on_any_table(all_seeded: psycopg.Connection) -> None:
    conn = all_seeded
    changed = []
    for table, (ctid, created_at, _) in _rows_to_update(conn).items():
        _, stored, _ = _update_one_row(conn, table, ctid, f"created_at = '{FORGED_PAST}'")
        if stored != created_at:
            changed.append(f"{table}: {created_at} became {stored}")
    assert changed == [], f"An update should never change created_at, but it did on: {changed}."


def test_update_replaces_a_forged_updated_at_with_now_on_any_table(all_seeded: psycopg.Connection) -> None:
    conn = all_seeded
    now = scalar(conn, "select now()")
    wrong = []
    for table, (ctid, _, _) in _rows_to_update(conn).items():
        _, _, updated_at = _update_one_row(conn, table, ctid, f"updated_at = '{FORGED_FUTURE}'")
        if updated_at != now:
            wrong.append(f"{table}: {updated_at}")
    assert wrong == [], (
        f"An update of a row last changed in an earlier transaction should set updated_at to now() ({now}) "
        f"whatever the client sent, but these tables stored something else: {wrong}."
    )


def test_updated_at_strictly_increases_across_updates_in_one_transaction_on_any_table(
    all_seeded: psycopg.Connection,
) -> None:
    conn = all_seeded
    with conn.transaction():
        now = scalar(conn, "select now()")
        problems = []
        for table, (ctid, _, first) in _rows_to_update(conn).items():
            seen = [first]
            for _ in range(3):
                ctid, _, updated_at = _update_one_row(conn, table, ctid, "updated_at = updated_at")
                seen.append(updated_at)
            if not all(earlier < later for earlier, later in itertools.pairwise(seen)):
                problems.append(f"{table}: {seen}")
        assert scalar(conn, "select now()") == now, "now() should be constant inside one transaction."
    assert problems == [], (
        f"updated_at should strictly increase on every update, even several in one transaction where now() is "
        f"constant, but it did not on: {problems}."
    )


def test_updates_in_one_transaction_step_updated_at_by_one_millisecond(tx: psycopg.Connection) -> None:
    with tx.transaction():
        now = scalar(tx, "select now()")
        update = "update toolsdb.users set display_name = %s where username = 'alice' returning updated_at"
        stamps = [scalar(tx, update, (name,)) for name in ("A", "B", "C")]
        expected = column(tx, "select now() + i * interval '1 millisecond' from generate_series(0, 2) as i")
    assert stamps == expected, (
        f"Three updates of one user in one transaction should stamp now(), now() + 1 ms and now() + 2 ms "
        f"(now() = {now}), but they stamped {stamps}."
    )

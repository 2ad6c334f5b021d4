"""The audit log's monthly partitions and their retention (docs/security.md).

Everything runs on each PostgreSQL major of the suite, connected as the
superuser ``postgres``. Isolation, kept cheap: tests that never need a
committed write run in ``tx``, a transaction that is always rolled back, on
one clone of the template per module and major holding one committed,
sealed entry (so the guards of toolsdb.audit_seals have a row to refuse to
touch); tests that need committed transactions get a fresh clone
(``conn``). Every statement that must fail runs in ``conn.transaction()``
(a savepoint inside ``tx``), so a failure never poisons the statements
after it.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from .audithelpers import (
    Row,
    column,
    event,
    expect_error,
    monthly_partitions,
    one,
    partition_of,
    rows,
    scalar,
    seal,
    sealed_clone,
    seals,
    strand,
    verify,
)

committed = pytest.fixture(sealed_clone, scope="module")


# ---------------------------------------------------------------------------
# Partitions
# ---------------------------------------------------------------------------


def test_migrate_creates_this_month_and_the_next_three(tx: psycopg.Connection) -> None:
    expected = column(
        tx,
        "select toolsdb_private.partition_name('toolsdb.audit_logs', 'month', "
        "date_trunc('month', (now() at time zone 'UTC') + make_interval(months => i))::date) "
        "from generate_series(0, 3) as i",
    )
    missing = sorted(set(expected) - set(monthly_partitions(tx)))
    assert missing == [], f"After migrate, this month's and the next three months' partitions should exist: {missing}."


def test_every_partition_has_the_append_only_guards(tx: psycopg.Connection) -> None:
    unguarded = column(
        tx,
        """
        select c.relname::text
        from pg_catalog.pg_inherits as i
        join pg_catalog.pg_class as c on c.oid = i.inhrelid
        where i.inhparent = 'toolsdb.audit_logs'::regclass
          and 2 <> (
              select count(*) from pg_catalog.pg_trigger as t
              where t.tgrelid = c.oid
                and t.tgname in ('_010_append_only', '_010_append_only_truncate')
                and t.tgfoid = 'toolsdb_private.tg__append_only()'::regprocedure
                and t.tgenabled <> 'D'
          )
        order by 1
        """,
    )
    assert unguarded == [], (
        f"Every partition (the default one included) should have the row guard and its own truncate guard, but "
        f"these lack one: {unguarded}."
    )


def test_audit_create_partitions_is_idempotent(tx: psycopg.Connection) -> None:
    first = scalar(tx, "select toolsdb.audit_create_partitions(5)")
    second = scalar(tx, "select toolsdb.audit_create_partitions(5)")
    third = scalar(tx, "select toolsdb.audit_create_partitions(3)")
    assert (first, second, third) == (2, 0, 0), (
        f"After migrate (months 0-3), audit_create_partitions(5) should create 2 partitions, then nothing when run "
        f"again, nor with 3; it created {first}, {second} and {third}."
    )
    assert partition_of(tx, "5 months") in monthly_partitions(tx), "The partition five months ahead should exist."


@pytest.mark.parametrize("months_ahead", [-1, 121, None])
def test_months_ahead_out_of_range_is_rejected(tx: psycopg.Connection, months_ahead: int | None) -> None:
    expect_error(
        tx,
        errors.InvalidParameterValue,
        lambda: tx.execute("select toolsdb.audit_create_partitions(%s::integer)", (months_ahead,)),
        contains="months_ahead",
    )


def test_entries_in_the_default_partition_move_to_their_month(tx: psycopg.Connection) -> None:
    entry = strand(tx, "2 years")
    assert entry["part"] == "toolsdb.audit_logs_default", (
        f"An entry two years ahead should land in the default partition, but it landed in {entry['part']}."
    )
    created = scalar(tx, "select toolsdb.audit_create_partitions(3)")
    moved = one(
        tx,
        "select *, tableoid::regclass::text as part from toolsdb.audit_logs where audit_id = %s",
        (entry["audit_id"],),
    )
    month = partition_of(tx, "2 years")
    assert (created, moved["part"]) == (1, f"toolsdb.{month}"), (
        f"audit_create_partitions should create the stranded entry's month ({month}) and move it there, but it "
        f"created {created} partitions and the entry is in {moved['part']}."
    )
    assert {**moved, "part": None} == {**entry, "part": None}, (
        f"A moved entry should keep every column (audit_id, transaction_id, ...), but {entry} became {moved}."
    )
    assert scalar(tx, "select count(*) from toolsdb.audit_logs_default") == 0, "The default partition should be empty."


def test_the_default_partition_is_still_guarded_after_a_move(tx: psycopg.Connection) -> None:
    strand(tx, "2 years")
    tx.execute("select toolsdb.audit_create_partitions(3)")
    entry = strand(tx, "3 years")
    assert entry["part"] == "toolsdb.audit_logs_default", "An entry three years ahead should land in the default."
    for statement in ("update toolsdb.audit_logs_default set actor = 'x'", "delete from toolsdb.audit_logs_default"):
        expect_error(tx, errors.InsufficientPrivilege, lambda s=statement: tx.execute(s), contains="append-only")
    expect_error(
        tx,
        errors.InsufficientPrivilege,
        lambda: tx.execute("truncate toolsdb.audit_logs_default"),
        contains="append-only",
    )


def test_moving_sealed_entries_keeps_the_seals_valid(conn: psycopg.Connection) -> None:
    event(conn)
    strand(conn, "2 years")
    assert seal(conn) == 2, "Entries of two months should be sealed as two seal rows."
    assert scalar(conn, "select toolsdb.audit_create_partitions(3)") == 1, "The stranded month should be created."
    conn.commit()
    assert verify(conn) == [], "Moving sealed entries out of the default partition should keep the seals valid."


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------

# Ages of old entries, relative to now(), and whether a 13-month retention
# drops their month: the month containing now() - 13 months ends after the
# cutoff (kept), the month before it ended before the cutoff (dropped).
OLD_ENTRIES = {"20 months": True, "14 months": True, "13 months": False, "12 months": False}


def add_old_entries(conn: psycopg.Connection) -> dict[str, Row]:
    """Entries dated in the past (they land in the default partition), moved into
    their own months by audit_create_partitions; returns them by age, with their partition."""
    old = {}
    for age in OLD_ENTRIES:
        old[age] = strand(conn, f"-{age}", "old_entry")
        old[age]["part"] = partition_of(conn, f"-{age}")
    assert scalar(conn, "select toolsdb.audit_create_partitions()") == len(OLD_ENTRIES), (
        "audit_create_partitions should have created one partition per old month."
    )
    return old


def test_retention_drops_only_months_that_ended_before_the_cutoff(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    before = monthly_partitions(tx)
    dropped = scalar(tx, "select toolsdb.audit_apply_retention(interval '13 months')")
    expected_gone = sorted(old[age]["part"] for age, gone in OLD_ENTRIES.items() if gone)
    gone = sorted(set(before) - set(monthly_partitions(tx)))
    assert (dropped, gone) == (len(expected_gone), expected_gone), (
        f"A 13-month retention should drop only the months that ended before now() - 13 months ({expected_gone}) and "
        f"return their count, but it returned {dropped} and dropped {gone}."
    )


def test_retention_never_deletes_entries_of_kept_months(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    recent = event(tx)
    tx.execute("select toolsdb.audit_apply_retention(interval '13 months')")
    kept = [old[age]["audit_id"] for age, gone in OLD_ENTRIES.items() if not gone] + [recent]
    present = column(tx, "select audit_id from toolsdb.audit_logs where audit_id = any(%s) order by 1", (kept,))
    assert present == sorted(kept), (
        f"Retention should keep every entry of the months it keeps (this month's too): {sorted(kept)}, but only "
        f"{present} are left."
    )


def test_retention_records_each_dropped_month_in_audit_prunes(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    tx.execute("select toolsdb.audit_apply_retention(interval '13 months')")
    prunes = rows(tx, "select period, partition_name, row_count, max_age::text from toolsdb.audit_prunes order by 1")
    expected = [
        {
            "period": scalar(tx, "select date_trunc('month', %s at time zone 'UTC')::date", (old[age]["logged_at"],)),
            "partition_name": old[age]["part"],
            "row_count": 1,
            "max_age": "1 year 1 mon",
        }
        for age in sorted(OLD_ENTRIES, key=lambda a: old[a]["logged_at"])
        if OLD_ENTRIES[age]
    ]
    assert prunes == expected, f"audit_prunes should record each dropped month as {expected}, but it holds {prunes}."


def test_retention_leaves_one_event_naming_the_dropped_partitions(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    tx.execute("select toolsdb.audit_apply_retention(interval '13 months')")
    found = rows(tx, "select * from toolsdb.audit_logs where action = 'audit_retention'")
    expected = sorted(old[age]["part"] for age, gone in OLD_ENTRIES.items() if gone)
    assert len(found) == 1, f"Retention should leave exactly one audit_retention event, but left {found}."
    details = found[0]["details"]
    assert (sorted(details.get("dropped_partitions", [])), details.get("dropped_rows")) == (expected, len(expected)), (
        f"The audit_retention event should name the dropped partitions {expected} and their row count, but its "
        f"details are {details}."
    )


def test_retention_age_comes_from_config(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    tx.execute("select toolsdb.config_set('audit.retention', '\"18 months\"')")
    before = monthly_partitions(tx)
    dropped = scalar(tx, "select toolsdb.audit_apply_retention()")
    gone = sorted(set(before) - set(monthly_partitions(tx)))
    assert (dropped, gone) == (1, [old["20 months"]["part"]]), (
        f"With audit.retention = '18 months' in config, retention should drop only the month 20 months ago "
        f"({old['20 months']['part']}), but it returned {dropped} and dropped {gone}."
    )


@pytest.mark.parametrize("age", ["29 days", "1 week", "0 seconds", "-13 months"])
def test_retention_under_one_month_is_rejected(tx: psycopg.Connection, age: str) -> None:
    before = monthly_partitions(tx)
    expect_error(
        tx,
        errors.InvalidParameterValue,
        lambda: tx.execute("select toolsdb.audit_apply_retention(%s::interval)", (age,)),
        contains="at least one month",
    )
    assert monthly_partitions(tx) == before, f"A refused retention of {age} should drop nothing."


def test_verify_passes_after_retention_drops_a_sealed_month(conn: psycopg.Connection) -> None:
    strand(conn, "-20 months", "old_entry")
    conn.execute("select toolsdb.audit_create_partitions()")
    event(conn)
    seal(conn)
    old_period = scalar(conn, "select date_trunc('month', (now() - interval '20 months') at time zone 'UTC')::date")
    assert old_period in {s["period"] for s in seals(conn)}, "The old month should have been sealed."
    assert scalar(conn, "select toolsdb.audit_apply_retention(interval '13 months')") == 1, (
        "Retention should drop the one old month."
    )
    conn.commit()
    found = verify(conn)
    assert found == [], f"After retention drops a sealed month, audit_verify should pass, but it reports {found}."

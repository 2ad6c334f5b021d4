"""Regressions of the schema validator (schema/52_schema_validator.sql): bugs
its first version had, each kept by a test.

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back; the others commit in
a fresh clone (``db``).
"""

from __future__ import annotations

import contextlib

import psycopg
import pytest

from toolsdb import validator

from .conftest import Pg
from .dbhelpers import (
    Clone,
    expect_error,
)
from .validatorhelpers import (
    DENIED,
    TIMESTAMPS,
    of_rule,
    statements,
    summary,
    validate,
)

# ---------------------------------------------------------------------------
# Regressions: bugs the first version of the validator had
# ---------------------------------------------------------------------------


def test_a_begin_atomic_function_body_is_one_statement(tx: psycopg.Connection) -> None:
    script = (
        "create function answer() returns integer\n"
        "language sql\n"
        "begin atomic\n"
        "    select 42;\n"
        "end;\n"
        "comment on function answer() is 'The answer.'"
    )
    assert validator.parse(script) is None
    assert [(s["statement_no"], s["line"]) for s in statements(tx, script)] == [(1, 1), (2, 6)]
    assert validate(tx, script)["valid"] is True


@pytest.mark.parametrize("column", ["uses_c++", "Total (%)"])
def test_a_column_name_with_regex_characters_is_a_finding_at_its_line(tx: psycopg.Connection, column: str) -> None:
    report = validate(tx, f'create table t (\n    id integer primary key,\n    "{column}" integer\n)')
    assert (3, "error", "snake_case", f"t.{column}") in summary(report)


@pytest.mark.parametrize(
    ("script", "line"),
    [
        pytest.param(
            "create table t (\n    id integer primary key\n);\ncomment on table t is 'T.';\n"
            "alter table t add column b timestamp",
            5,
            id="added-by-alter",
        ),
        pytest.param("create table t (\n    id integer primary key,\n    key timestamp\n)", 3, id="word-earlier"),
    ],
)
def test_a_column_finding_is_at_the_line_that_declares_the_column(
    tx: psycopg.Connection, script: str, line: int
) -> None:
    (finding,) = of_rule(validate(tx, script), "timestamptz")
    assert finding["line"] == line


@pytest.mark.parametrize(
    ("script", "rule", "line"),
    [
        pytest.param(
            f"create table t (\n    id integer primary key\n);\n\ncreate trigger ts\nbefore insert or update on t\n"
            f"for each row {TIMESTAMPS}",
            "trigger_name",
            5,
            id="trigger",
        ),
        pytest.param(
            "create table p (id integer primary key);\ncreate table c (id integer primary key, p_id integer);\n"
            "create index c_p_id_idx on c (p_id);\n"
            "alter table c add constraint c_p_id_fkey foreign key (p_id) references p (id)",
            "foreign_key_on_delete",
            4,
            id="foreign-key-by-alter",
        ),
    ],
)
def test_a_finding_is_at_the_line_of_the_statement_that_made_it(
    tx: psycopg.Connection, script: str, rule: str, line: int
) -> None:
    (finding,) = of_rule(validate(tx, script), rule)
    assert finding["line"] == line


def test_a_definition_does_not_run_the_scripts_code(tx: psycopg.Connection) -> None:
    script = (
        "create function boom() returns integer\n"
        "language plpgsql immutable\n"
        "set search_path = ''\n"
        "as $$ begin raise exception 'the script''s code ran'; end $$;\n"
        "create table t (id integer primary key);\n"
        "alter table t add column b integer default boom()"
    )
    try:
        with tx.transaction():
            report = validate(tx, script)
    except psycopg.errors.InsufficientPrivilege:
        return  # refused: fine
    assert [f["message"] for f in report["findings"] if "code ran" in f["message"]] == []


def test_python_reports_an_unfinished_script_at_its_end(tx: psycopg.Connection) -> None:
    report = validator.validate(tx, "create table t (\n    a integer primary key,\n    b integer\n")
    assert [(f["rule"], f["line"]) for f in report["findings"]] == [("syntax", 3)]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(
            "create table t (id€$a$ integer primary key);\nselect pg_sleep(0);\ncreate table u (id€$a$ integer)",
            [1, 2, 3],
            id="identifier-then-dollar",
        ),
        pytest.param(
            "create function f() returns integer language sql as $é$ select 1; $é$;\ncreate table u (a integer)",
            [1, 2],
            id="non-ascii-tag",
        ),
    ],
)
def test_the_lexer_knows_non_ascii_identifier_characters(
    tx: psycopg.Connection, script: str, expected: list[int]
) -> None:
    assert [s["line"] for s in statements(tx, script)] == expected


def test_a_statement_hidden_from_the_lexer_is_still_refused(tx: psycopg.Connection) -> None:
    script = "create table t (id€$a$ integer primary key);\nselect pg_sleep(0);\ncreate table u (id€$a$ integer)"
    error = expect_error(tx, DENIED, lambda: validate(tx, script))
    assert "refuses statement 2 (line 2)" in error.diag.message_primary


def test_the_lexer_does_not_depend_on_standard_conforming_strings(pg: Pg, committed: Clone) -> None:
    # A session of its own: PL/pgSQL keeps the plans of a session, so the lexer's
    # literals must first be parsed with the setting off.
    script = "create table t (id integer primary key);\ncomment on table t is E'it\\'s t'"
    with psycopg.connect(pg.conninfo(committed.dbname), options="-c standard_conforming_strings=off") as off:
        try:
            report = validate(off, script)
        finally:
            off.rollback()
    assert summary(report) == [(1, "warning", "column_comment", "t.id")]


def test_a_statement_hidden_by_standard_conforming_strings_does_not_run(tx: psycopg.Connection) -> None:
    tx.execute("set local standard_conforming_strings = off")
    script = (
        "create table t (id integer primary key);\n"
        "comment on table t is 'a\\' '; create table smuggled (a money primary key); --'"
    )
    report = validate(tx, script)
    assert [f for f in report["findings"] if (f["object"] or "").startswith("smuggled")] == [], (
        "The server should read the statement as the lexer did: no table smuggled past it."
    )


def test_a_lock_timeout_is_not_kept_as_the_report(pg: Pg, db: str, su: psycopg.Connection) -> None:
    script = "create table contended (id integer primary key)"
    with psycopg.connect(pg.conninfo(db)) as holder:
        holder.execute("create table toolsdb_scratch.contended (a integer)")  # holds the name, uncommitted
        with contextlib.suppress(psycopg.errors.LockNotAvailable):  # an error, not a stored report: fine
            validate(su, script)
        holder.rollback()
    report = validate(su, script)
    assert [f["message"] for f in report["findings"] if "lock timeout" in f["message"]] == [], (
        "A transient lock timeout should not be the report of the script."
    )

"""The schema validator of seed 000 running a script: the statements really
run as toolsdb_validator in the scratch schema
(toolsdb_private.validate_execute), are always rolled back, and what it
refuses to run (toolsdb_private.validation_refusal).

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back; tests of concurrency
(threads on connections of their own, started together by a barrier)
commit, each in a fresh clone (``db``).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from toolsdb import validator

from .conftest import Pg
from .dbhelpers import (
    expect_error,
    run_workers,
    scalar,
)
from .validatorhelpers import (
    DENIED,
    GOOD_SCRIPT,
    SEED_EXAMPLE,
    of_rule,
    scratch_objects,
    stored,
    summary,
    toolsdb_catalog,
    validate,
)

# ---------------------------------------------------------------------------
# 4. The statements really run
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "sqlstate", "message"),
    [
        pytest.param(
            "-- c\ncreate table c (\n    id integer primary key,\n"
            "    p integer references nowhere (id) on delete cascade\n)",
            "42P01",
            'relation "nowhere" does not exist',
            id="unknown-table",
        ),
        pytest.param(
            "-- t\ncreate table t (\n    id integer primary key default 'abc'\n)",
            "22P02",
            'invalid input syntax for type integer: "abc"',
            id="default-of-wrong-type",
        ),
        pytest.param(
            "-- t\ncreate table t (\n    id integer primary key,\n    b nosuchtype\n)",
            "42704",
            'type "nosuchtype" does not exist',
            id="unknown-type",
        ),
    ],
)
def test_an_error_of_the_server_is_an_execute_finding(
    tx: psycopg.Connection, script: str, sqlstate: str, message: str
) -> None:
    report = validate(tx, script)
    assert report["findings"] == [
        {
            "rule": "execute",
            "severity": "error",
            "line": 2,
            "object": None,
            "message": f"{message} (SQLSTATE {sqlstate})",
        }
    ], "What only running the statement finds should be the one finding, at the statement's line."
    assert (report["valid"], report["errors"], report["warnings"]) == (False, 1, 0)


def test_an_error_in_a_later_statement_stops_the_script_at_its_line(tx: psycopg.Connection) -> None:
    script = (
        "create table t (id integer primary key);\n"
        "\n"
        "create index t_b_idx on t (b);\n"
        "comment on table t is 'never run';\n"
        "create table u (x varchar(3))"
    )
    report = validate(tx, script)
    assert report["findings"] == [
        {
            "rule": "execute",
            "severity": "error",
            "line": 3,
            "object": None,
            "message": 'column "b" does not exist (SQLSTATE 42703); the statements after it were not run',
        }
    ], "The failing statement should be the only finding (no conventions of a half-run script)."
    assert report["statements"] == 4


def test_a_syntax_error_only_the_server_sees_is_at_its_line(tx: psycopg.Connection) -> None:
    # pglast does not parse PL/pgSQL bodies; the server does, at CREATE FUNCTION.
    script = (
        "create table t (id integer primary key);\n"
        "create function f() returns integer\n"
        "language plpgsql\n"
        "set search_path = ''\n"
        "as $$\n"
        "begin\n"
        "    retrun 1;\n"
        "end\n"
        "$$"
    )
    assert validator.parse(script) is None, "pglast should find nothing wrong in this script."
    report = validate(tx, script)
    assert report["findings"] == [
        {
            "rule": "syntax",
            "severity": "error",
            "line": 7,
            "object": None,
            "message": 'syntax error at or near "retrun" (SQLSTATE 42601)',
        }
    ], "A server-side syntax error should be at the line of the token it names."
    assert validator.validate(tx, script)["findings"] == report["findings"], "Python should pass it through."


def test_a_foreign_key_to_a_toolsdb_table_runs(tx: psycopg.Connection) -> None:
    script = (
        "create table notes (\n"
        "    note_id integer generated always as identity primary key,\n"
        "    project_id uuid not null references projects (project_id) on delete cascade,\n"
        "    task_id uuid references toolsdb.tasks (task_id) on delete set null\n"
        ");\n"
        "create index notes_project_id_idx on notes (project_id);\n"
        "create index notes_task_id_idx on notes (task_id)"
    )
    report = validate(tx, script)
    assert of_rule(report, "execute") == [], f"toolsdb_validator may reference toolsdb tables: {report['findings']}"
    assert {f["rule"] for f in report["findings"]} == {"table_comment", "column_comment"}, (
        "Only the missing comments should be found."
    )
    assert report["valid"] is True


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param(
            "create table toolsdb.x (a integer primary key)", "permission denied for schema toolsdb", id="create"
        ),
        pytest.param("alter table toolsdb.tasks add column x integer", "must be owner of table tasks", id="alter"),
        pytest.param("comment on table toolsdb.tasks is 'mine'", "must be owner of table tasks", id="comment"),
    ],
)
def test_a_change_to_toolsdb_is_a_permission_error_and_changes_nothing(
    tx: psycopg.Connection, script: str, message: str
) -> None:
    before = toolsdb_catalog(tx)
    comment = scalar(tx, "select obj_description('toolsdb.tasks'::regclass, 'pg_class')")
    report = validate(tx, script)
    (finding,) = report["findings"]
    assert (finding["rule"], finding["severity"], finding["line"]) == ("execute", "error", 1)
    assert finding["message"].startswith(f"{message} (SQLSTATE 42501); statements run as toolsdb_validator"), (
        f"A change to toolsdb should be refused by the database, with the validator's hint: {finding['message']}"
    )
    assert report["valid"] is False
    assert toolsdb_catalog(tx) == before, "Nothing in schema toolsdb should have changed."
    assert scalar(tx, "select obj_description('toolsdb.tasks'::regclass, 'pg_class')") == comment


# ---------------------------------------------------------------------------
# 5. Always rolled back
# ---------------------------------------------------------------------------


def test_nothing_is_left_in_scratch_or_toolsdb(tx: psycopg.Connection) -> None:
    before = toolsdb_catalog(tx)
    assert scratch_objects(tx) == [], "toolsdb_scratch should be empty to begin with."
    script = GOOD_SCRIPT + (
        "create sequence counters;\n"
        "create domain short_text as text constraint short_text_is_short check (char_length(value) < 10);\n"
        "create type pair as (a integer, b integer);\n"
        "create table leftovers (a integer)"
    )
    report = validate(tx, script)
    assert of_rule(report, "execute") == [], f"The script should run: {report['findings']}"
    assert of_rule(report, "primary_key")[0]["object"] == "leftovers", "The conventions should have seen the tables."
    assert scratch_objects(tx) == [], "Everything the script made in toolsdb_scratch should be rolled back."
    assert toolsdb_catalog(tx) == before, "Nothing should be new in schema toolsdb."


def test_a_failing_script_leaves_nothing_either(tx: psycopg.Connection) -> None:
    report = validate(tx, "create table kept (a integer primary key);\ncreate table broken (b nosuchtype)")
    assert of_rule(report, "execute")[0]["line"] == 2
    assert scratch_objects(tx) == [], "The statements before the failing one should be rolled back too."


def test_concurrent_validations_of_the_same_table_name_both_succeed(pg: Pg, db: str, su: psycopg.Connection) -> None:
    rounds = 10

    def work(n: int, start: threading.Barrier) -> list[dict[str, Any]]:
        reports = []
        with psycopg.connect(pg.conninfo(db), autocommit=True) as conn:
            start.wait()
            for i in range(rounds):
                reports.append(validate(conn, f"/* worker {n}, round {i} */ {SEED_EXAMPLE}"))
                reports.append(validate(conn, SEED_EXAMPLE, refresh=True))  # the very same script, twice at once
        return reports

    results = run_workers(2, work)
    expected = summary(validate(su, SEED_EXAMPLE))
    for n, reports in enumerate(results):
        for report in reports:
            assert of_rule(report, "execute") == [], (
                f"Worker {n} should not be hindered by the other's table of the same name: {report['findings']}"
            )
            assert summary(report) == expected, "Each should see the seed's findings."
    assert scratch_objects(su) == [], "toolsdb_scratch should be empty once both are done."
    assert scalar(su, "select count(*) from toolsdb.schema_validations") == 2 * rounds + 1


# ---------------------------------------------------------------------------
# 6. Refusals
# ---------------------------------------------------------------------------

REFUSALS = [
    pytest.param(
        "insert into toolsdb.tasks default values", 1, 1, "INSERT INTO is not a definition", "INSERT", id="insert"
    ),
    pytest.param(
        "-- first a comment\nupdate toolsdb.tasks set title = 'x'",
        1,
        2,
        "UPDATE TOOLSDB.TASKS is not a definition",
        "UPDATE",
        id="update",
    ),
    pytest.param("delete from toolsdb.tasks", 1, 1, "DELETE FROM is not a definition", "DELETE", id="delete"),
    pytest.param("drop table toolsdb.tasks", 1, 1, "DROP TABLE is not a definition", "DROP", id="drop"),
    pytest.param(
        "truncate toolsdb.tasks", 1, 1, "TRUNCATE TOOLSDB.TASKS is not a definition", "TRUNCATE", id="truncate"
    ),
    pytest.param("do $$ begin perform 1; end $$", 1, 1, "DO '' is not a definition", "DO", id="do"),
    pytest.param("call toolsdb.nothing()", 1, 1, "CALL TOOLSDB.NOTHING() is not a definition", "CALL", id="call"),
    pytest.param("SELECT pg_sleep(0)", 1, 1, "SELECT PG_SLEEP(0) is not a definition", "SELECT", id="select"),
    pytest.param(
        "create table t as select 1 as a",
        1,
        1,
        "CREATE TABLE ... AS runs a query",
        "CREATE TABLE ... AS",
        id="create-table-as",
    ),
    pytest.param(
        "create materialized view v as select 1 as a",
        1,
        1,
        "CREATE MATERIALIZED is not a definition",
        "CREATE TABLE ... AS / CREATE MATERIALIZED VIEW",
        id="materialized-view",
    ),
    pytest.param(
        "grant select on toolsdb.tasks to public", 1, 1, "GRANT SELECT is not a definition", "GRANT", id="grant"
    ),
    pytest.param(
        "create table t (a integer primary key);\n\ndrop table t",
        2,
        3,
        "DROP TABLE is not a definition",
        "DROP",
        id="create-then-drop",
    ),
]


@pytest.mark.parametrize(("script", "number", "line", "reason", "kind"), REFUSALS)
def test_sql_refuses_what_is_not_a_definition_and_stores_nothing(
    tx: psycopg.Connection, script: str, number: int, line: int, reason: str, kind: str
) -> None:
    count = scalar(tx, "select count(*) from toolsdb.schema_validations")
    error = expect_error(tx, DENIED, lambda: validate(tx, script))
    assert error.diag.message_primary == f"validate_schema refuses statement {number} (line {line}): {reason}"
    assert "only definitions are validated" in (error.diag.message_hint or "")
    assert scalar(tx, "select count(*) from toolsdb.schema_validations") == count, "A refusal should store nothing."
    assert scratch_objects(tx) == [], "A refused script should not have run at all."


@pytest.mark.parametrize(("script", "number", "line", "reason", "kind"), REFUSALS)
def test_python_refuses_what_is_not_a_definition_and_stores_nothing(
    tx: psycopg.Connection, script: str, number: int, line: int, reason: str, kind: str
) -> None:
    # One list of what may run: the SQL side's, which Python passes on.
    with pytest.raises(validator.ValidationRefused) as refused:
        validator.validate(tx, script)
    assert str(refused.value) == f"refused: statement {number} (line {line}): {reason}", (
        f"The refusal should name the statement, its line and why ({kind}): {refused.value}"
    )
    assert stored(tx, script) == [], "A refusal should store nothing."

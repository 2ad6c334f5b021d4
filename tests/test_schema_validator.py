"""The SQL schema validator of seed 000 against a real, migrated database, on
each PostgreSQL major of the suite: the lexer (toolsdb_private.sql_statements),
the refusals (toolsdb_private.validation_refusal), the statements really run
as toolsdb_validator in the scratch schema and always rolled back
(toolsdb_private.validate_execute), the conventions
(toolsdb_private.convention_findings), the stored reports of
toolsdb.validate_schema() (schema/53_schema_validator.sql), the roles
(schema/00_bootstrap.sql, views/90_grants.sql), the Python side
(runner/toolsdb/validator.py) and ``toolsdb validate`` (runner/toolsdb/cli.py).

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back. Tests of concurrency
(threads on connections of their own, started together by a barrier) and of
the command line commit, each in a fresh clone (``db``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from toolsdb import validator
from toolsdb.errors import ToolsdbError

from .conftest import SUPERUSER, Pg, clean_env, run_cli, toolsdb_exe
from .dbhelpers import (
    Clone,
    Row,
    connect,
    connect_app,
    expect_error,
    one,
    rows,
    run_workers,
    scalar,
)

CHECK = "23514"  # check_violation
INVALID = "22023"  # invalid_parameter_value
TOO_LONG = "54000"  # program_limit_exceeded
DENIED = "42501"  # insufficient_privilege
REPORT_KEYS = {"valid", "statement_hash", "cached", "statements", "errors", "warnings", "findings"}
TIMESTAMPS = "execute function toolsdb_private.tg__timestamps()"

# The seed's own example.
SEED_EXAMPLE = "CREATE TABLE users (\n    id SERIAL PRIMARY KEY,\n    email VARCHAR(255)\n)"

# A script that meets every convention: uuid and identity keys, timestamptz,
# text with named CHECKs, an indexed foreign key to a toolsdb table with an
# on delete, the timestamps trigger, a security_invoker view, a function that
# pins its search_path, comments everywhere.
GOOD_SCRIPT = """\
-- Widgets of a project: a well-formed table.
create type widget_kind as enum ('small', 'large');

create table widgets (
    widget_id uuid not null default gen_random_uuid(),
    serial_no bigint generated always as identity,
    name text not null,
    kind widget_kind not null default 'small',
    project_id uuid not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint widgets_pkey primary key (widget_id),
    constraint widgets_serial_no_key unique (serial_no),
    constraint name_length_is_valid check (char_length(name) between 1 and 200),
    constraint widgets_project_id_fkey foreign key (project_id)
    references projects (project_id) on delete cascade
);

create index widgets_project_id_idx on widgets (project_id);

create trigger _100_timestamps
before insert or update on widgets
for each row
execute function toolsdb_private.tg__timestamps();

create view widget_names with (security_invoker = true) as
select w.widget_id, w.name from widgets as w;

create function widget_count() returns bigint
language plpgsql
stable
set search_path = ''
as $$
begin
    return 0; -- a body; with a semicolon
end
$$;

comment on table widgets is 'Widgets of a project.';
comment on column widgets.widget_id is 'Primary key: a random UUID.';
comment on column widgets.serial_no is 'A number for people, from an identity.';
comment on column widgets.name is 'Name, 1-200 characters.';
comment on column widgets.kind is 'small or large.';
comment on column widgets.project_id is 'The project (toolsdb.projects); deleted with it.';
comment on column widgets.created_at is 'When the row was created.';
comment on column widgets.updated_at is 'When the row was last changed.';
comment on view widget_names is 'Names of the widgets.';
comment on column widget_names.widget_id is 'The widget.';
comment on column widget_names.name is 'Its name.';
"""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def sha256(script: str) -> str:
    return hashlib.sha256(script.encode("utf-8")).hexdigest()


def validate(conn: psycopg.Connection, script: str | None, refresh: bool = False) -> dict[str, Any]:
    """toolsdb.validate_schema(script, refresh): the report."""
    return scalar(conn, "select toolsdb.validate_schema(%s, %s)", (script, refresh))


def statements(conn: psycopg.Connection, script: str) -> list[Row]:
    return rows(conn, "select * from toolsdb_private.sql_statements(%s) order by statement_no", (script,))


def of_rule(report: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule"] == rule]


def summary(report: dict[str, Any]) -> list[tuple]:
    """The findings as (line, severity, rule, object), in report order."""
    return [(f["line"], f["severity"], f["rule"], f["object"]) for f in report["findings"]]


def stored(conn: psycopg.Connection, script: str) -> list[Row]:
    return rows(conn, "select * from toolsdb.schema_validations where statement_hash = %s", (sha256(script),))


def scratch_objects(conn: psycopg.Connection) -> list[str]:
    """Every relation, type, function and constraint in toolsdb_scratch."""
    return [
        r["what"]
        for r in rows(
            conn,
            """
            select 'relation ' || relname as what from pg_class where relnamespace = 'toolsdb_scratch'::regnamespace
            union all
            select 'type ' || typname from pg_type where typnamespace = 'toolsdb_scratch'::regnamespace
            union all
            select 'function ' || proname from pg_proc where pronamespace = 'toolsdb_scratch'::regnamespace
            union all
            select 'constraint ' || conname from pg_constraint where connamespace = 'toolsdb_scratch'::regnamespace
            """,
        )
    ]


def toolsdb_catalog(conn: psycopg.Connection) -> list[str]:
    """Every relation, column, type, function and trigger of schema toolsdb, by name."""
    return [
        r["what"]
        for r in rows(
            conn,
            """
            select 'relation ' || c.relname as what from pg_class as c
            where c.relnamespace = 'toolsdb'::regnamespace
            union all
            select 'column ' || c.relname || '.' || a.attname from pg_class as c
            join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where c.relnamespace = 'toolsdb'::regnamespace
            union all
            select 'type ' || typname from pg_type where typnamespace = 'toolsdb'::regnamespace
            union all
            select 'function ' || oid::regprocedure::text from pg_proc where pronamespace = 'toolsdb'::regnamespace
            union all
            select 'trigger ' || t.tgname || ' on ' || c.relname from pg_trigger as t
            join pg_class as c on c.oid = t.tgrelid where c.relnamespace = 'toolsdb'::regnamespace
            order by 1
            """,
        )
    ]


def cli_validate(pg: Pg, db: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("validate", *args, "--database", pg.url(db), cwd=cwd)


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, f"toolsdb should not print a traceback: {result.stderr}"


# ---------------------------------------------------------------------------
# 1. The lexer
# ---------------------------------------------------------------------------


def test_the_lexer_numbers_statements_with_their_first_line_and_text(tx: psycopg.Connection) -> None:
    script = (
        "-- a header comment; with a semicolon\n"  # 1
        ";\n"  # 2: an empty statement
        "create table a (id integer primary key);;\n"  # 3, then another empty one
        "\n"  # 4
        "/* a block */ create table b (\n"  # 5
        "    id integer primary key\n"  # 6
        ");\n"  # 7
        "   comment on table a is 'A'\n"  # 8: no semicolon at the end
        "  \n"
    )
    found = [(s["statement_no"], s["line"], s["statement"]) for s in statements(tx, script)]
    assert found == [
        (1, 3, "create table a (id integer primary key)"),
        (2, 5, "create table b (\n    id integer primary key\n)"),
        (3, 8, "comment on table a is 'A'"),
    ], "Statements should be numbered from 1, skip empty ones, start at their first token and lose their ';'."


@pytest.mark.parametrize(
    ("first", "construct"),
    [
        pytest.param("create table a (x text default 'a;b')", "a '' string", id="string"),
        pytest.param("create table a (x text default 'it''s; here')", "a doubled quote", id="doubled-quote"),
        pytest.param(r"create table a (x text default E'\';')", r"an E'\'' string", id="e-string"),
        pytest.param(r"create table a (x text default e'a\\\';')", r"an e'' string with \\ and \'", id="e-backslash"),
        pytest.param(
            "create function f() returns integer language sql as $body$ select 1; $body$",
            "a $tag$ body",
            id="dollar-tag",
        ),
        pytest.param(
            "create function f() returns integer language sql as $$ select ';'; $$", "a $$ body", id="dollar-plain"
        ),
        pytest.param('create table "a;b" (x integer)', "a quoted name", id="quoted-name"),
        pytest.param('create table "a"";b" (x integer)', 'a quoted name with ""', id="quoted-doubled"),
        pytest.param("create table a (x integer) -- a comment; still\n", "a -- comment", id="line-comment"),
        pytest.param("create table a /* x /* y; */ ; */ (x integer)", "nested /* */ comments", id="nested-comment"),
    ],
)
def test_a_semicolon_inside_a_construct_does_not_split(tx: psycopg.Connection, first: str, construct: str) -> None:
    script = f"{first};\ncreate table z (y integer)"
    found = statements(tx, script)
    assert [s["statement"] for s in found] == [first.rstrip(), "create table z (y integer)"], (
        f"A ';' inside {construct} should not end the statement."
    )
    assert [s["line"] for s in found] == [1, first.count("\n") + 2]


def test_a_backslash_ends_nothing_in_a_standard_string(tx: psycopg.Connection) -> None:
    # standard_conforming_strings: 'C:\' is a whole string, so the ';' after it splits.
    found = statements(tx, "create table a (x text default 'C:\\'); create table b (y integer)")
    assert [s["statement"] for s in found] == [
        "create table a (x text default 'C:\\')",
        "create table b (y integer)",
    ]


def test_the_skeleton_has_no_comments_and_empty_strings(tx: psycopg.Connection) -> None:
    script = (
        "create table a ( -- the note\n"
        "    x text default 'a;b' /* c; /* d */ */,\n"
        "    y text default $$z;$$, \"Q\" text default E'\\''\n"
        ")"
    )
    found = statements(tx, script)
    assert len(found) == 1
    assert found[0]["skeleton"] == "create table a ( x text default '' , y text default '', \"Q\" text default E'' )", (
        "The skeleton should drop comments, reduce strings and bodies to '' and white space to one blank."
    )
    assert found[0]["statement"] == script, "The statement text should be the script's text, comments included."


def test_a_script_of_comments_has_no_statement(tx: psycopg.Connection) -> None:
    assert statements(tx, "-- only\n/* comments */ ;\n  ;") == []


# ---------------------------------------------------------------------------
# 2. The seed example and a well-formed table
# ---------------------------------------------------------------------------


def test_the_seed_example_is_invalid_for_its_varchar(tx: psycopg.Connection) -> None:
    report = validate(tx, SEED_EXAMPLE)
    assert report["valid"] is False, "varchar is an error, so the seed's example should be invalid."
    assert summary(report) == [
        (1, "warning", "table_comment", "users"),
        (2, "warning", "column_comment", "users.id"),
        (2, "warning", "identity_not_serial", "users.id"),
        (3, "error", "text_not_varchar", "users.email"),
        (3, "warning", "column_comment", "users.email"),
    ], "Findings should be ordered by line, then severity, rule and object, each at its column's line."
    (varchar,) = of_rule(report, "text_not_varchar")
    assert varchar["message"] == (
        "column users.email is character varying(255): use text with a named CHECK on its length"
    )
    assert (report["errors"], report["warnings"], report["statements"], report["cached"]) == (1, 4, 1, False)
    assert report["statement_hash"] == sha256(SEED_EXAMPLE)
    assert report["rules_version"] == 1


def test_a_well_formed_script_is_valid_with_no_finding(tx: psycopg.Connection) -> None:
    report = validate(tx, GOOD_SCRIPT)
    assert report["findings"] == [], f"A script that meets every convention should have no finding: {report}"
    assert (report["valid"], report["errors"], report["warnings"]) == (True, 0, 0)
    assert report["statements"] == 17


# ---------------------------------------------------------------------------
# 3. Every rule
# ---------------------------------------------------------------------------

TWO_COLUMNS = "-- t\ncreate table t (\n    a integer primary key,\n    b {type}\n)"  # b on line 4
FK_TABLES = "create table p (a integer primary key);\n-- c\ncreate table c (\n    a integer primary key,\n"


@pytest.mark.parametrize(
    ("rule", "severity", "script", "line", "object_", "message"),
    [
        pytest.param(
            "primary_key",
            "error",
            "-- no key\ncreate table t (\n    a integer\n)",
            2,
            "t",
            "table t has no primary key",
            id="primary_key",
        ),
        pytest.param(
            "table_comment",
            "warning",
            "-- t\ncreate table t (a integer primary key);\ncomment on column t.a is 'A.'",
            2,
            "t",
            "table t has no COMMENT",
            id="table_comment",
        ),
        pytest.param(
            "column_comment",
            "warning",
            TWO_COLUMNS.format(type="integer") + ";\ncomment on table t is 'T.';\ncomment on column t.a is 'A.'",
            4,
            "t.b",
            "column t.b has no COMMENT",
            id="column_comment",
        ),
        pytest.param(
            "timestamptz",
            "error",
            TWO_COLUMNS.format(type="timestamp"),
            4,
            "t.b",
            "column t.b is timestamp without time zone: use timestamptz",
            id="timestamptz",
        ),
        pytest.param(
            "text_not_varchar",
            "error",
            TWO_COLUMNS.format(type="varchar(10)"),
            4,
            "t.b",
            "column t.b is character varying(10): use text with a named CHECK on its length",
            id="text_not_varchar",
        ),
        pytest.param(
            "text_not_varchar",
            "error",
            TWO_COLUMNS.format(type="char(3)"),
            4,
            "t.b",
            "column t.b is character(3): use text with a named CHECK on its length",
            id="text_not_varchar-char",
        ),
        pytest.param(
            "jsonb_not_json",
            "warning",
            TWO_COLUMNS.format(type="json"),
            4,
            "t.b",
            "column t.b is json: use jsonb",
            id="jsonb_not_json",
        ),
        pytest.param(
            "numeric_not_money",
            "warning",
            TWO_COLUMNS.format(type="money"),
            4,
            "t.b",
            "column t.b is money: use numeric",
            id="numeric_not_money",
        ),
        pytest.param(
            "identity_not_serial",
            "warning",
            TWO_COLUMNS.format(type="serial"),
            4,
            "t.b",
            "column t.b defaults to a sequence (serial): use generated always as identity, or a uuid",
            id="identity_not_serial",
        ),
        pytest.param(
            "text_bounded",
            "warning",
            TWO_COLUMNS.format(type="text"),
            4,
            "t.b",
            "text column t.b is in no CHECK constraint: bound its length or format with a named CHECK",
            id="text_bounded",
        ),
        pytest.param(
            "foreign_key_index",
            "error",
            FK_TABLES + "    p_a integer references p (a) on delete cascade\n)",
            3,
            "c",
            "foreign key c_p_a_fkey of c has no index on its columns: deletes on the referenced table would scan c",
            id="foreign_key_index",
        ),
        pytest.param(
            "foreign_key_on_delete",
            "warning",
            FK_TABLES + "    p_a integer references p (a)\n);\ncreate index c_p_a_idx on c (p_a)",
            3,
            "c",
            "foreign key c_p_a_fkey of c does not say what happens on delete: add on delete restrict, cascade or "
            "set null",
            id="foreign_key_on_delete",
        ),
        pytest.param(
            "constraint_name",
            "warning",
            "-- t\ncreate table t (\n    a integer,\n    constraint t_pk primary key (a)\n)",
            2,
            "t",
            "constraint t_pk of t has a generated or unconventional name: name it t_pkey",
            id="constraint_name-pkey",
        ),
        pytest.param(
            "constraint_name",
            "warning",
            "-- t\ncreate table t (\n    a integer primary key check (a > 0)\n)",
            2,
            "t",
            "constraint t_a_check of t has a generated or unconventional name: name a CHECK for the rule it "
            "states (e.g. email_is_valid)",
            id="constraint_name-check",
        ),
        pytest.param(
            "updated_at_trigger",
            "warning",
            "-- t\ncreate table t (\n    a integer primary key,\n    updated_at timestamptz\n)",
            2,
            "t",
            "table t has updated_at but no before insert or update trigger calling "
            "toolsdb_private.tg__timestamps() (name it _100_timestamps)",
            id="updated_at_trigger",
        ),
        pytest.param(
            "view_security_invoker",
            "warning",
            "create table t (a integer primary key);\n\ncreate view v as\nselect a from t",
            3,
            "v",
            "view v runs with its owner's rights: create it with (security_invoker = true)",
            id="view_security_invoker",
        ),
        pytest.param(
            "snake_case",
            "error",
            TWO_COLUMNS.replace("b {type}", '"Mixed" integer'),
            4,
            "t.Mixed",
            "column t.Mixed is not snake_case (lowercase letters, digits and _, under 63 bytes)",
            id="snake_case",
        ),
        pytest.param(
            "trigger_name",
            "warning",
            # Table and trigger are both on line 2 here.
            f"-- t\ncreate table t (a integer primary key); create trigger ts before insert or update on t "
            f"for each row {TIMESTAMPS}",
            2,
            "t",
            "trigger ts on t is not named _NNN_what (triggers fire in name order, e.g. _100_timestamps)",
            id="trigger_name",
        ),
        pytest.param(
            "function_search_path",
            "warning",
            "-- f\ncreate function f() returns integer\nlanguage plpgsql\nas $$ begin return 1; end $$",
            2,
            "f",
            "function f does not pin search_path: add set search_path = ''",
            id="function_search_path",
        ),
    ],
)
def test_every_rule_fires_on_a_minimal_bad_example(
    tx: psycopg.Connection, rule: str, severity: str, script: str, line: int, object_: str, message: str
) -> None:
    report = validate(tx, script)
    assert of_rule(report, "execute") == of_rule(report, "syntax") == [], f"The example should run: {report}"
    assert of_rule(report, rule) == [
        {"rule": rule, "severity": severity, "line": line, "object": object_, "message": message}
    ], f"Rule {rule} should fire once, as a {severity} on line {line}: {report['findings']}"
    assert report["valid"] is (severity != "error"), "Only error findings should make a script invalid."
    assert report["errors"] == sum(f["severity"] == "error" for f in report["findings"])
    assert report["warnings"] == sum(f["severity"] == "warning" for f in report["findings"])


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
    with pytest.raises(validator.ValidationRefused) as refused:
        validator.validate(tx, script)
    assert str(refused.value).startswith(f"refused: statement {number} (line {line}) is {kind}"), (
        f"The refusal should name the statement, its line and its kind: {refused.value}"
    )
    assert stored(tx, script) == [], "A refusal should store nothing."


# ---------------------------------------------------------------------------
# 7. Stored reports
# ---------------------------------------------------------------------------


def test_a_report_is_stored_and_a_repeat_is_a_lookup(tx: psycopg.Connection) -> None:
    script = "-- Café ☕: a UTF-8 comment\n" + SEED_EXAMPLE
    first = validate(tx, script)
    assert first["cached"] is False
    assert first["statement_hash"] == sha256(script) == validator.script_hash(script), (
        "The hash should be the SHA-256 of the script's UTF-8 bytes, the same in SQL and Python."
    )
    second = validate(tx, script)
    assert second["cached"] is True, "The same script again should be a lookup."
    assert {**second, "cached": False} == first, "A stored report should be the report as it was made."

    (row,) = stored(tx, script)
    assert (row["script"], row["statement_count"], row["valid"], row["error_count"], row["warning_count"]) == (
        script,
        1,
        False,
        1,
        4,
    )
    assert row["findings"] == first["findings"]
    assert row["rules_version"] == 1
    assert row["validated_by"] == SUPERUSER
    assert row["server_version_num"] == int(scalar(tx, "select current_setting('server_version_num')"))

    again = validate(tx, script, refresh=True)
    assert again["cached"] is False, "refresh => true should run the script again."
    assert again["findings"] == first["findings"]
    assert len(stored(tx, script)) == 1, "A refreshed report should replace the stored one."


def test_a_report_of_other_rules_is_not_reused(tx: psycopg.Connection) -> None:
    script = "-- rules\n" + SEED_EXAMPLE
    validate(tx, script)
    tx.execute("update toolsdb.schema_validations set rules_version = 2 where statement_hash = %s", (sha256(script),))
    report = validate(tx, script)
    assert (report["cached"], report["rules_version"]) == (False, 1), "A report of other rules should be redone."
    assert [r["rules_version"] for r in stored(tx, script)] == [1]


@pytest.mark.parametrize(
    ("script", "sqlstate", "message"),
    [
        pytest.param("", INVALID, "validate_schema: the script is empty", id="empty"),
        pytest.param(" \n\t\r\n", INVALID, "validate_schema: the script is empty", id="blank"),
        pytest.param(None, INVALID, "validate_schema: the script is empty", id="null"),
        pytest.param(
            "-- only\n/* comments */ ;\n", INVALID, "validate_schema: the script holds only comments", id="comments"
        ),
        pytest.param(
            "create table t (a integer primary key); --" + "x" * 1_000_000,
            TOO_LONG,
            "validate_schema: the script has 1000042 characters, more than 1000000",
            id="too-long",
        ),
    ],
)
def test_bad_input_is_an_error_and_stores_nothing(
    tx: psycopg.Connection, script: str | None, sqlstate: str, message: str
) -> None:
    count = scalar(tx, "select count(*) from toolsdb.schema_validations")
    error = expect_error(tx, sqlstate, lambda: validate(tx, script))
    assert error.diag.message_primary == message
    assert scalar(tx, "select count(*) from toolsdb.schema_validations") == count


def test_exactly_1000000_characters_are_accepted(tx: psycopg.Connection) -> None:
    head = "create table t (a integer primary key); --"
    script = head + "x" * (1_000_000 - len(head))
    assert validate(tx, script)["statements"] == 1


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        pytest.param({"statement_hash": "a" * 63}, "statement_hash_is_sha256", id="hash-63-chars"),
        pytest.param({"statement_hash": "A" * 64}, "statement_hash_is_sha256", id="hash-uppercase"),
        pytest.param({"valid": True, "error_count": 1}, "valid_means_no_errors", id="valid-with-errors"),
        pytest.param({"valid": False, "error_count": 0}, "valid_means_no_errors", id="invalid-without-errors"),
        pytest.param({"findings": "{}"}, "findings_is_array", id="findings-object"),
        pytest.param({"statement_count": 0}, "statement_count_is_positive", id="no-statement"),
        pytest.param({"script": ""}, "script_length_is_valid", id="empty-script"),
    ],
)
def test_the_table_refuses_inconsistent_reports(tx: psycopg.Connection, changes: dict, constraint: str) -> None:
    values = {
        "statement_hash": "b" * 64,
        "script": "create table t (a integer primary key)",
        "statement_count": 1,
        "valid": True,
        "error_count": 0,
        "warning_count": 2,
        "findings": "[]",
        "rules_version": 1,
        **changes,
    }
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    insert = f"insert into toolsdb.schema_validations ({columns}) values ({placeholders})"
    expect_error(tx, CHECK, lambda: tx.execute(insert, list(values.values())), constraint)


# ---------------------------------------------------------------------------
# 8. The conventions of toolsdb itself
# ---------------------------------------------------------------------------


def test_toolsdb_meets_its_own_conventions(tx: psycopg.Connection) -> None:
    found = rows(
        tx,
        "select object_name, column_name, rule, message from toolsdb_private.convention_findings("
        "array['toolsdb', 'toolsdb_private']::regnamespace[]) order by rule, object_name, column_name",
    )
    assert found == [], f"toolsdb's own schemas should meet the rules they hold scripts to: {found}"


def test_the_conventions_find_what_the_catalog_tests_would(tx: psycopg.Connection) -> None:
    # Not vacuous: the same function over a namespace with a bad table finds it.
    tx.execute("create schema conventions_probe")
    tx.execute("create table conventions_probe.probe (a varchar(3), b timestamp)")
    found = {
        (r["rule"], r["column_name"])
        for r in rows(
            tx, "select * from toolsdb_private.convention_findings(array['conventions_probe']::regnamespace[])"
        )
    }
    assert {("primary_key", None), ("text_not_varchar", "a"), ("timestamptz", "b"), ("table_comment", None)} <= found


# ---------------------------------------------------------------------------
# 9. Roles
# ---------------------------------------------------------------------------


def test_the_app_validates_a_script(pg: Pg, committed: Clone, app_login: str) -> None:
    script = "-- the app's\n" + GOOD_SCRIPT
    with connect_app(pg, committed.dbname, app_login) as app:
        report = validate(app, script)
        assert (report["valid"], report["findings"]) == (True, [])
        assert validate(app, script)["cached"] is True
        assert one(
            app, "select validated_by from toolsdb.schema_validations where statement_hash = %s", (sha256(script),)
        ) == {"validated_by": app_login}


def test_the_readonly_role_cannot_validate(pg: Pg, committed: Clone, readonly_login: str) -> None:
    with connect_app(pg, committed.dbname, readonly_login) as reader:
        expect_error(reader, DENIED, lambda: validate(reader, SEED_EXAMPLE))


@pytest.mark.parametrize(
    "statement",
    [
        "select toolsdb_private.validate_execute(array['create table x (a integer)'], array[1])",
        "select toolsdb_private.convention_findings(array['toolsdb_scratch']::regnamespace[])",
        "create table toolsdb_scratch.x (a integer primary key)",
    ],
)
def test_the_app_cannot_reach_the_validator_internals(pg: Pg, committed: Clone, app_login: str, statement: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        expect_error(app, DENIED, lambda: app.execute(statement))


def test_the_validator_role_cannot_log_in_and_owns_only_the_scratch(pg: Pg, tx: psycopg.Connection) -> None:
    role = one(
        tx, "select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = 'toolsdb_validator'"
    )
    assert role == {"rolcanlogin": False, "rolsuper": False, "rolcreaterole": False, "rolcreatedb": False}
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        connect(pg, tx.info.dbname, "toolsdb_validator")
    execute = one(
        tx,
        "select proowner::regrole::text as owner, prosecdef from pg_proc "
        "where oid = 'toolsdb_private.validate_execute(text[], integer[])'::regprocedure",
    )
    assert execute == {"owner": "toolsdb_validator", "prosecdef": True}, (
        "The statements should run with toolsdb_validator's rights, never the owner's."
    )
    assert scalar(tx, "select nspowner::regrole::text from pg_namespace where nspname = 'toolsdb_scratch'") == (
        "toolsdb_validator"
    )
    privileges = one(
        tx,
        "select has_schema_privilege('toolsdb_validator', 'toolsdb', 'CREATE') as create_toolsdb, "
        "has_schema_privilege('toolsdb_validator', 'toolsdb_private', 'CREATE') as create_private, "
        "has_table_privilege('toolsdb_validator', 'toolsdb.tasks', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') "
        "as touch_tasks, has_table_privilege('toolsdb_validator', 'toolsdb.tasks', 'REFERENCES') as reference_tasks",
    )
    assert privileges == {
        "create_toolsdb": False,
        "create_private": False,
        "touch_tasks": False,
        "reference_tasks": True,
    }


# ---------------------------------------------------------------------------
# 10. The Python API
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "line", "near"),
    [
        pytest.param("create table t (\n    a integer,\n    b integer,,\n)", 3, ","),
        pytest.param("-- café ☕\n\ncreate tabel t (a integer)", 3, "tabel"),
        pytest.param("create table t (a integer primary key);\ncreate table u (a integer primary key);\nfoo", 3, "foo"),
    ],
)
def test_python_reports_a_syntax_error_at_its_line_and_stores_nothing(
    tx: psycopg.Connection, script: str, line: int, near: str
) -> None:
    report = validator.validate(tx, script)
    assert report["findings"] == [
        {
            "rule": "syntax",
            "severity": "error",
            "line": line,
            "object": None,
            "message": f'syntax error at or near "{near}" (the PostgreSQL parser, through pglast)',
        }
    ]
    assert (report["valid"], report["errors"], report["warnings"], report["cached"]) == (False, 1, 0, False)
    assert report["statement_hash"] == sha256(script)
    assert stored(tx, script) == [], "A syntax error found by pglast should not be stored."


def test_python_returns_the_sql_report(tx: psycopg.Connection) -> None:
    report = validator.validate(tx, SEED_EXAMPLE)
    assert set(report) >= REPORT_KEYS
    assert summary(report) == summary(validate(tx, SEED_EXAMPLE))
    assert report["cached"] is False
    assert validator.validate(tx, SEED_EXAMPLE)["cached"] is True
    assert validator.validate(tx, SEED_EXAMPLE, refresh=True)["cached"] is False


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param("  \n", "the script is empty", id="empty"),
        pytest.param("-- only a comment\n", "the script holds no statement", id="comments"),
        pytest.param(
            "create table t (a integer primary key); --" + "x" * 1_000_000,
            "validate_schema: the script has 1000042 characters, more than 1000000",
            id="too-long",
        ),
    ],
)
def test_python_bad_input_is_a_toolsdb_error(tx: psycopg.Connection, script: str, message: str) -> None:
    with pytest.raises(ToolsdbError) as caught:
        validator.validate(tx, script)
    assert not isinstance(caught.value, validator.ValidationRefused)
    assert caught.value.message == message


def test_python_passes_on_a_refusal_of_sql_as_validation_refused(tx: psycopg.Connection) -> None:
    # pglast lets a RenameStmt through (ALTER TABLE ... RENAME); the SQL side refuses ALTER SCHEMA.
    script = "create table t (a integer primary key);\nalter schema toolsdb_scratch rename to elsewhere"
    assert validator.parse(script) is None
    with pytest.raises(validator.ValidationRefused) as refused:
        validator.validate(tx, script)
    assert str(refused.value) == (
        "refused: validate_schema refuses statement 2 (line 2): ALTER SCHEMA is not a definition"
    )
    assert stored(tx, script) == []
    assert scalar(tx, "select count(*) from pg_namespace where nspname = 'toolsdb_scratch'") == 1


def test_python_tells_a_missing_privilege_from_a_refusal(pg: Pg, committed: Clone, readonly_login: str) -> None:
    with (
        connect_app(pg, committed.dbname, readonly_login) as reader,
        pytest.raises((psycopg.Error, ToolsdbError)) as caught,
    ):
        validator.validate(reader, SEED_EXAMPLE)
    assert not isinstance(caught.value, validator.ValidationRefused), f"Not a refusal of the script: {caught.value}"


# ---------------------------------------------------------------------------
# 11. toolsdb validate
# ---------------------------------------------------------------------------


def test_cli_a_file_with_only_warnings_passes(pg: Pg, db: str, tmp_path: Path) -> None:
    (tmp_path / "warn.sql").write_text("-- warn\ncreate table t (id integer primary key);\n", encoding="utf-8")
    result = cli_validate(pg, db, tmp_path, "warn.sql")
    assert result.returncode == 0, f"Warnings alone should pass: {result.stdout}{result.stderr}"
    assert result.stdout.splitlines() == [
        "warn.sql:2: warning [column_comment] column t.id has no COMMENT",
        "warn.sql:2: warning [table_comment] table t has no COMMENT",
        "warn.sql: valid, 0 error(s), 2 warning(s) (validated)",
    ]
    again = cli_validate(pg, db, tmp_path, "warn.sql")
    assert again.stdout.splitlines()[-1] == "warn.sql: valid, 0 error(s), 2 warning(s) (stored report)"
    refreshed = cli_validate(pg, db, tmp_path, "warn.sql", "--refresh")
    assert refreshed.stdout.splitlines()[-1].endswith("(validated)"), "--refresh should run the script again."


def test_cli_errors_exit_1_with_compiler_style_lines(pg: Pg, db: str, tmp_path: Path) -> None:
    (tmp_path / "bad.sql").write_text(SEED_EXAMPLE + ";\n", encoding="utf-8")
    result = cli_validate(pg, db, tmp_path, "bad.sql")
    assert result.returncode == 1, "An error finding should exit 1."
    assert (
        "bad.sql:3: error [text_not_varchar] column users.email is character varying(255): use text with a named "
        "CHECK on its length"
    ) in result.stdout.splitlines()
    assert "bad.sql:2: warning [identity_not_serial] " in result.stdout
    assert result.stdout.splitlines()[-1] == "bad.sql: invalid, 1 error(s), 4 warning(s) (validated)"
    assert_no_traceback(result)


def test_cli_reads_stdin_for_dash(pg: Pg, db: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [toolsdb_exe(), "validate", "-", "--database", pg.url(db)],
        input=SEED_EXAMPLE,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=clean_env(),
        timeout=120,
    )
    assert result.returncode == 1
    assert "<stdin>:3: error [text_not_varchar] " in result.stdout, f"stdin should be named <stdin>: {result.stdout}"
    assert result.stdout.splitlines()[-1] == "<stdin>: invalid, 1 error(s), 4 warning(s) (validated)"


def test_cli_json_is_the_report(pg: Pg, db: str, tmp_path: Path) -> None:
    (tmp_path / "bad.sql").write_text(SEED_EXAMPLE, encoding="utf-8")
    result = cli_validate(pg, db, tmp_path, "bad.sql", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS, f"--json should print the whole report: {sorted(report)}"
    assert (report["valid"], report["cached"], report["errors"], report["warnings"]) == (False, False, 1, 4)
    assert report["statement_hash"] == sha256(SEED_EXAMPLE)
    assert (3, "error", "text_not_varchar", "users.email") in summary(report)
    assert json.loads(cli_validate(pg, db, tmp_path, "bad.sql", "--json").stdout)["cached"] is True


def test_cli_a_refusal_is_one_line_on_stderr(pg: Pg, db: str, tmp_path: Path) -> None:
    (tmp_path / "refused.sql").write_text("create table t (a integer primary key);\ndelete from t;\n", encoding="utf-8")
    result = cli_validate(pg, db, tmp_path, "refused.sql")
    assert result.returncode == 1
    assert_no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"A refusal should be one line on stderr: {result.stderr}"
    assert "refused.sql: refused: statement 2 (line 2) is DELETE, not a definition" in lines[0]
    assert result.stdout == ""
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert scalar(conn, "select count(*) from toolsdb.schema_validations") == 0, "A refusal stores nothing."


def test_cli_a_missing_file_is_one_line(pg: Pg, db: str, tmp_path: Path) -> None:
    result = cli_validate(pg, db, tmp_path, "nowhere.sql")
    assert result.returncode == 1
    assert_no_traceback(result)
    assert result.stderr.strip().splitlines() == ["Error: nowhere.sql: no such file"]


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

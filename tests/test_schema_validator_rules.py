"""The schema validator of seed 000 (schema/52_schema_validator.sql) on each
PostgreSQL major of the suite: its lexer (toolsdb_private.sql_statements),
the seed's own example and a well-formed table, and every convention rule
(toolsdb_private.convention_findings).

Isolation: every test runs in ``tx``, a transaction on one clone per module
and major that is always rolled back.
"""

from __future__ import annotations

import psycopg
import pytest

from .validatorhelpers import (
    GOOD_SCRIPT,
    SEED_EXAMPLE,
    TIMESTAMPS,
    of_rule,
    sha256,
    statements,
    summary,
    validate,
)

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

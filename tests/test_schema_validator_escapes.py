"""Escapes from the schema validator (hardening item 3): what its refusal
rules refuse never runs (the lexer splits as PostgreSQL's scanner does, and
what the server reads is checked again before it runs); its time is linear
in the script and capped.

Isolation: tests run in ``tx``, a transaction on one clone per module and
major that is always rolled back (``db``, a fresh clone, where the CLI runs);
a session-level advisory lock is not undone by a rollback, so the tests that
look for one release them all.
"""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
import pytest
from pglast import parser as pg_parser

from toolsdb import validator
from toolsdb.errors import ToolsdbError

from .conftest import Pg, run_cli
from .dbhelpers import expect_error, scalar
from .validatorhelpers import DENIED, assert_no_traceback, statements, stored, validate

WHITE = " \t\r\n\f\v"

# Pieces of scripts that PostgreSQL's scanner reads in ways a naive lexer
# does not: comments ended by \r, nested comments, strings of every kind and
# their escapes, quoted names, dollar quotes and what only looks like one.
PIECES = [
    "create table t (a int)",
    "comment on table t is 'a;b'",
    "comment on table t is E'a\\';b'",
    "comment on table t is 'a\\'",
    ";",
    " ",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "-- c;\n",
    "-- c;\r",
    "--\r",
    "--",
    "/* x; /* y; */ z; */",
    "/**/",
    "/*/ */",
    "/***/",
    "*/",
    "*/*",
    "**/",
    "+/*",
    "/",
    "*",
    "-",
    "+-",
    '"a;b"',
    '"begin atomic"',
    '"x""y;"',
    'u&"x;"',
    "u&'a;'",
    "U&'\\0041;'",
    "e'\\\\'",
    "E'\\\\\\''",
    "E'a'\n'\\'; '",
    "E'x'\r\n  -- c\n'\\';'",
    "'a'\n'b;'",
    "'it''s; x'",
    "b'01'",
    "x'1f'",
    "n'x;'",
    "$$ x; $$",
    "$a$ y; $$ ; $a$",
    "$é$ z; $é$",
    "1$b$ ; $b$",
    "x$a$",
    "$a$",
    "$$",
    "$1",
    "select 1",
    "1e5",
    "abc",
    "é",
    "begin atomic",
    "'",
    '"',
    "e'",
    "\\",
]


def scanner_split(script: str) -> list[tuple[int, str]]:
    """The statements of a script as PostgreSQL's own scanner (libpg_query,
    through pglast) delimits them, with their first lines: from the first
    token that is not a comment to the last character before a ';' token,
    trailing white space left out. Raises pglast's ParseError for what the
    scanner refuses."""
    found: list[tuple[int, str]] = []
    first = None
    for token in [*pg_parser.scan(script), None]:
        if token is None or token.name == "ASCII_59":
            if first is not None:
                end = len(script) if token is None else token.start
                found.append((script.count("\n", 0, first) + 1, script[first:end].rstrip(WHITE)))
            first = None
        elif token.name not in ("SQL_COMMENT", "C_COMMENT") and first is None:
            first = token.start
    return found


def lexer_split(conn: psycopg.Connection, script: str) -> list[tuple[int, str]]:
    return [(s["line"], s["statement"]) for s in statements(conn, script)]


def test_the_lexer_splits_generated_scripts_as_postgresql_scans_them(tx: psycopg.Connection) -> None:
    generator = random.Random(3)
    compared = 0
    for _ in range(1500):
        script = "".join(generator.choice(PIECES) for _ in range(generator.randint(1, 10)))
        try:
            expected = scanner_split(script)
        except pg_parser.ParseError:
            continue  # PostgreSQL refuses the script (an unclosed string, ...): nothing to compare
        compared += 1
        assert lexer_split(tx, script) == expected, f"The lexer should split {script!r} as PostgreSQL does."
    assert compared > 300, "Enough generated scripts should be compared."


FUNCTION_PIECES = [
    "create table t (a int)",
    "create function f() returns int language sql begin atomic select 1; end",
    "create or replace function g() returns int language sql\nbegin atomic\n"
    "  select case when true then 1 else 2 end;\n  select 2;\nend",
    "create procedure p() language sql begin /* c; */ atomic insert into t values (1); end",
    'create table "begin atomic" (a int)',
    "create table t (begin int, atomic int)",
    "comment on table t is 'begin atomic; end'",
    "create function h() returns int language sql as $$ select 1; $$",
]


def test_the_lexer_splits_function_bodies_as_the_parser_does(tx: psycopg.Connection) -> None:
    generator = random.Random(5)
    for _ in range(150):
        pieces = [generator.choice(FUNCTION_PIECES) for _ in range(generator.randint(1, 5))]
        script = "".join(piece + generator.choice([";", ";\n", " ;\r", "; -- x;\r"]) for piece in pieces)
        expected = [s.rstrip(WHITE) for s in pg_parser.split(script)]
        assert [text for _, text in lexer_split(tx, script)] == expected, (
            f"The lexer should split {script!r} as the parser does."
        )


def advisory_locks(conn: psycopg.Connection) -> int:
    return scalar(conn, "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()")


# The reproductions of the issue: a statement the rules refuse, hidden from
# the old lexer after a definition. Each takes a session advisory lock, which
# a rollback does not undo, so whether it ran can be seen afterwards.
SMUGGLED = [
    pytest.param(
        "create table t (id integer primary key) -- a comment ended by a carriage return\r;\n"
        "do $$ begin perform pg_advisory_lock(4242); perform pg_sleep(0); end $$;\n"
        "create table u (id integer primary key) -- \n",
        2,
        "DO",
        id="cr-ended-comment",
    ),
    pytest.param(
        'create table "begin atomic" (id integer primary key);\n'
        "select pg_advisory_lock(4242), pg_sleep(0);\n"
        "create table u (id integer primary key)",
        2,
        "SELECT",
        id="quoted-begin-atomic",
    ),
    pytest.param(
        'create table "begin atomic" (id integer primary key);\n'
        "create table filler (a integer primary key);\n"
        "insert into filler select g from generate_series(1, 20000) as g;\n"
        "do $$ begin perform pg_advisory_lock(4242); end $$;\n"
        "create table u (id integer primary key)",
        3,
        "INSERT",
        id="quoted-begin-atomic-insert",
    ),
]


@pytest.mark.parametrize(("script", "number", "kind"), SMUGGLED)
def test_a_statement_hidden_from_the_old_lexer_is_refused_and_never_runs(
    tx: psycopg.Connection, script: str, number: int, kind: str
) -> None:
    try:
        error = expect_error(tx, DENIED, lambda: validate(tx, script))
        assert error.diag.message_primary.startswith(f"validate_schema refuses statement {number} "), (
            f"The {kind} statement should be refused: {error.diag.message_primary}"
        )
        assert advisory_locks(tx) == 0, f"The {kind} statement should never have run."
    finally:
        tx.execute("select pg_advisory_unlock_all()")


@pytest.mark.parametrize(("script", "number", "kind"), SMUGGLED)
def test_python_refuses_a_statement_hidden_from_the_old_lexer(
    tx: psycopg.Connection, script: str, number: int, kind: str
) -> None:
    try:
        with pytest.raises(validator.ValidationRefused, match=f"^refused: statement {number} "):
            validator.validate(tx, script)
        assert advisory_locks(tx) == 0, f"The {kind} statement should never have run."
    finally:
        tx.execute("select pg_advisory_unlock_all()")


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        pytest.param(
            "create table t (a integer primary key); select pg_advisory_lock(4242)",
            "the server does not read it as one statement",
            id="two-statements",
        ),
        pytest.param(
            "create table t (a integer primary key); create table u (b text); do $$ begin perform 1; end $$",
            "the server does not read it as one statement",
            id="three-statements",
        ),
        pytest.param(
            "do $$ begin perform pg_advisory_lock(4242); end $$",
            "DO is not a definition (as the server reads it)",
            id="do",
        ),
        pytest.param(
            "select pg_advisory_lock(4242)", "SELECT is not a definition (as the server reads it)", id="select"
        ),
        pytest.param(
            "create table t as select pg_advisory_lock(4242) as a",
            "CREATE TABLE AS is not a definition (as the server reads it)",
            id="create-table-as",
        ),
    ],
)
def test_what_the_server_reads_is_checked_again_before_it_runs(
    tx: psycopg.Connection, statement: str, reason: str
) -> None:
    # Defence in depth, below the lexer: validate_execute() is given the text
    # to run as one statement, whatever the lexer made of it.
    try:
        error = expect_error(
            tx,
            DENIED,
            lambda: tx.execute("select toolsdb_private.validate_execute(array[%s], array[1])", (statement,)),
        )
        assert error.diag.message_primary == f"validate_schema refuses statement 1 (line 1): {reason}"
        assert advisory_locks(tx) == 0, "Nothing of the refused statement should have run."
    finally:
        tx.execute("select pg_advisory_unlock_all()")


def test_an_unparsable_text_of_several_statements_runs_none(tx: psycopg.Connection) -> None:
    # The check parses and analyses every statement of the text before any
    # runs; a text that fails there is a finding, and none of it runs (EXECUTE
    # would run the first before analysing the second).
    statement = "create table later (a integer primary key); select pg_advisory_lock(4242) from later"
    try:
        findings = scalar(tx, "select toolsdb_private.validate_execute(array[%s], array[1])", (statement,))
        assert [f["rule"] for f in findings] == ["execute"], findings
        assert 'relation "later" does not exist' in findings[0]["message"]
        assert advisory_locks(tx) == 0
    finally:
        tx.execute("select pg_advisory_unlock_all()")


def test_a_comment_nested_deeper_than_the_lexer_follows_is_one_line_error(tx: psycopg.Connection) -> None:
    script = "create table t (a integer primary key) /* 1 /* 2 /* 3 /* 4 /* 5 */ */ */ */ */"
    error = expect_error(tx, "54000", lambda: statements(tx, script))
    assert error.diag.message_primary == "validate_schema: a /* comment */ is nested more than 4 deep"
    four = "create table t (a integer primary key) /* 1 /* 2 /* 3 /* 4 */ */ ; */ */;\nselect 1"
    assert [s["line"] for s in statements(tx, four)] == [1, 2]


# ---------------------------------------------------------------------------
# (c) Time: linear in the script, and capped
# ---------------------------------------------------------------------------


def lexing_seconds(conn: psycopg.Connection, script: str) -> float:
    """The server's own time to split the script (no client or network time),
    the best of three: the machine is shared, so the least disturbed run."""
    return min(
        scalar(
            conn,
            "select extract(epoch from clock_timestamp() - s.at) "
            "from (select clock_timestamp() as at) as s, "
            "lateral (select count(*) from toolsdb_private.sql_statements(%s)) as n "
            "where n.count >= 0",
            (script,),
        )
        for _ in range(3)
    )


@pytest.mark.parametrize(
    ("piece", "repeat"),
    [
        pytest.param("-- c\n", 8_000, id="line-comments"),  # the 40,000 characters, then 320,000
        pytest.param("'' ", 12_000, id="strings"),
        pytest.param("/* a /* b */ c */ ", 2_000, id="nested-comments"),
        pytest.param("$a$ x $a$ e'\\'' ", 2_000, id="dollar-and-e-strings"),
        pytest.param("create table t (a integer primary key, b text) ", 1_000, id="one-long-statement"),
    ],
)
def test_the_lexer_takes_time_linear_in_the_script(tx: psycopg.Connection, piece: str, repeat: int) -> None:
    # Eight times the script should take about eight times as long; the old
    # lexer copied the rest of the script at every token (40,000 characters
    # of "-- c" lines took 26 s, 64 times as long would be quadratic). The
    # bound is generous for a shared, noisy machine.
    small = lexing_seconds(tx, piece * repeat)
    large = lexing_seconds(tx, piece * (8 * repeat))
    assert large < 24 * max(small, 0.005), (
        f"Eight times the script took {large / max(small, 1e-9):.1f} times as long ({small:.3f} s, {large:.3f} s)."
    )


def test_a_script_of_more_than_10000_statements_is_a_one_line_error(tx: psycopg.Connection) -> None:
    script = "comment on table t is 'x';\n" * 10_001
    error = expect_error(tx, "54000", lambda: validate(tx, script))
    assert error.diag.message_primary == "validate_schema: the script holds more than 10000 statements"
    assert len(statements(tx, "comment on table t is 'x';\n" * 10_000)) == 10_000


def test_the_time_budget_stops_a_validation_between_statements(tx: psycopg.Connection) -> None:
    # statement_timeout set by a running function does not apply to it: the
    # validator checks its budget after each statement. A budget of 0 ms is
    # spent after the first.
    tx.execute("set local toolsdb.validate_budget_ms = 0")
    script = "create table t (a integer primary key);\ncreate table u (b integer primary key)"
    error = expect_error(tx, "57014", lambda: validate(tx, script))
    assert error.diag.message_primary == (
        "validate_schema: stopped after statement 1 of 2: the validation took more than 00:00:00"
    )
    assert stored(tx, script) == [], "A validation stopped by its budget should keep no report."


def test_the_time_budget_setting_can_only_lower_the_budget(tx: psycopg.Connection) -> None:
    tx.execute("set local toolsdb.validate_budget_ms = 999999999")
    assert validate(tx, "create table t (a integer primary key);\ncomment on table t is 'T.'")["statements"] == 2
    tx.execute("set local toolsdb.validate_budget_ms = 'soon'")
    assert validate(tx, "create table v (a integer primary key);\ncomment on table v is 'V.'")["statements"] == 2


def test_python_and_the_cli_report_a_spent_budget_in_one_line(pg: Pg, db: str, tmp_path: Path) -> None:
    script = "create table t (a integer primary key);\ncreate table u (b integer primary key)\n"
    with (
        psycopg.connect(pg.conninfo(db), options="-c toolsdb.validate_budget_ms=0") as conn,
        pytest.raises(ToolsdbError, match=r"^validate_schema: stopped after statement 1 of 2: .*nothing was stored"),
    ):
        validator.validate(conn, script)
    path = tmp_path / "two.sql"
    path.write_text(script)
    result = run_cli(
        "validate", str(path), "--database", pg.url(db), env={"PGOPTIONS": "-c toolsdb.validate_budget_ms=0"}
    )
    assert result.returncode != 0
    assert_no_traceback(result)
    assert "stopped after statement 1 of 2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------------------
# (b) What PostgreSQL evaluates while defining, and the locks a validation holds
# ---------------------------------------------------------------------------

PARTITIONED = "create table p (id integer primary key) partition by range (id);\n"


def other_backends_advisory_locks(pg: Pg, conn: psycopg.Connection) -> list[int]:
    """The advisory locks that the backend of ``conn`` holds, seen from another connection."""
    pid = conn.info.backend_pid
    with psycopg.connect(pg.conninfo(conn.info.dbname), autocommit=True) as other:
        return [
            r[0] for r in other.execute("select objid from pg_locks where locktype = 'advisory' and pid = %s", (pid,))
        ]


@pytest.mark.parametrize(
    "bound",
    [
        pytest.param("from (1) to (pg_sleep(3)::text::integer + 2)", id="pg-sleep"),
        pytest.param("from (1) to (pg_try_advisory_lock(42)::integer + 2)", id="advisory-lock"),
        pytest.param("from (1) to (1 + 1)", id="operator"),
        pytest.param("from (1) to ((select 2))", id="subquery"),
        pytest.param("from (minvalue) to (length(repeat('x', 5)))", id="nested-call"),
        pytest.param('from (1) to ("pg_sleep"(3)::text::integer)', id="quoted-name"),
    ],
)
def test_a_partition_bound_that_is_not_literals_is_refused_and_leaves_no_lock(
    pg: Pg, tx: psycopg.Connection, bound: str
) -> None:
    script = f"{PARTITIONED}create table p1 partition of p for values {bound}"
    try:
        error = expect_error(tx, DENIED, lambda: validate(tx, script))
        assert error.diag.message_primary.startswith(
            "validate_schema refuses statement 2 (line 2): a partition bound is evaluated when it is defined"
        ), error.diag.message_primary
        assert other_backends_advisory_locks(pg, tx) == [], "No advisory lock should be left behind."
    finally:
        tx.execute("select pg_advisory_unlock_all()")


@pytest.mark.parametrize(
    "bound",
    [
        pytest.param("from (1) to (100)", id="numbers"),
        pytest.param("from (minvalue) to (-5)", id="minvalue"),
        pytest.param("from ('1') to ('2'::integer)", id="strings-and-casts"),
        pytest.param("in (1, 2, 3)", id="list"),
        pytest.param("with (modulus 4, remainder 0)", id="hash"),
    ],
)
def test_a_partition_bound_of_literals_is_validated(tx: psycopg.Connection, bound: str) -> None:
    kind = "hash" if "modulus" in bound else "list" if bound.startswith("in") else "range"
    script = (
        f"create table p (id integer primary key) partition by {kind} (id);\n"
        f"create table p1 partition of p for values {bound}"
    )
    report = validate(tx, script)
    assert [f for f in report["findings"] if f["rule"] in ("execute", "syntax")] == [], report["findings"]


@pytest.mark.parametrize(
    ("statement", "function"),
    [
        pytest.param(
            "alter table t add column c integer default length(md5(repeat('x', 300000000)))", "repeat", id="add-column"
        ),
        pytest.param("create index t_x_idx on t ((a + length(repeat('x', 300000000))))", "repeat", id="index"),
        pytest.param("create index t_y_idx on t (a) where a > pg_catalog.length(repeat('x', 5))", "repeat", id="where"),
        pytest.param(
            "alter table t add column g integer generated always as (a + length(repeat('x', 5))) stored",
            "repeat",
            id="generated",
        ),
        pytest.param("alter table t add constraint big check (a < length(repeat('x', 5)))", "repeat", id="check"),
    ],
)
def test_a_call_with_constant_arguments_evaluated_while_defining_is_refused(
    tx: psycopg.Connection, statement: str, function: str
) -> None:
    script = f"create table t (a integer primary key);\n{statement}"
    error = expect_error(tx, DENIED, lambda: validate(tx, script))
    assert error.diag.message_primary.startswith(
        f"validate_schema refuses statement 2 (line 2): calls {function}() with constant arguments"
    ), error.diag.message_primary


@pytest.mark.parametrize(
    "statement",
    [
        "alter table t add column created_at timestamptz not null default now()",
        "alter table t add column b varchar(20)",
        "alter table t add column n numeric(10, 2) default 0",
        "alter table t add column s text default current_setting('toolsdb.actor', true)",
        "alter table t add column k text check (k in ('a', 'b'))",
        "create index t_a_idx on t (a) where a > 0",
        "create table u (id uuid primary key default gen_random_uuid(), name text check (char_length(name) < 9))",
    ],
)
def test_cheap_or_non_constant_calls_are_validated(tx: psycopg.Connection, statement: str) -> None:
    report = validate(tx, f"create table t (a integer primary key);\n{statement}")
    assert [f for f in report["findings"] if f["rule"] in ("execute", "syntax")] == [], report["findings"]


LOCKER = (
    "create function locker() returns integer\n"
    "language plpgsql immutable\n"
    "set search_path = ''\n"
    "as $$ begin perform pg_advisory_lock(4243); return 1; end $$",
    "create table t (a integer primary key)",
    # an immutable function of constant arguments is computed ahead in an
    # index expression: its code would run as the index is defined
    "create index t_locker_idx on t ((a + locker()))",
)


def test_a_call_of_the_scripts_function_evaluated_while_defining_is_refused(tx: psycopg.Connection) -> None:
    script = ";\n".join(LOCKER)
    error = expect_error(tx, DENIED, lambda: validate(tx, script))
    assert error.diag.message_primary.startswith(
        "validate_schema refuses statement 3 (line 6): calls locker() with constant arguments"
    )


def test_the_scripts_functions_never_run_while_it_is_validated(pg: Pg, tx: psycopg.Connection) -> None:
    # Defence in depth, below the refusal rules: after each CREATE FUNCTION,
    # validate_execute() takes EXECUTE on the script's functions away from
    # everyone, so where PostgreSQL would run one, it fails instead.
    try:
        findings = scalar(tx, "select toolsdb_private.validate_execute(%s, array[1, 5, 6])", (list(LOCKER),))
        (finding,) = [f for f in findings if f["rule"] == "execute"]
        assert finding["line"] == 6
        assert "permission denied for function locker" in finding["message"]
        assert "the functions a script defines are not run while it is validated" in finding["message"]
        assert other_backends_advisory_locks(pg, tx) == [], "The script's function should never have run."
    finally:
        tx.execute("select pg_advisory_unlock_all()")


def test_a_trigger_can_still_name_the_scripts_trigger_function(tx: psycopg.Connection) -> None:
    script = (
        "create function touch() returns trigger language plpgsql set search_path = ''\n"
        "as $$ begin return new; end $$;\n"
        "create table t (a integer primary key);\n"
        "create trigger _100_touch before update on t for each row execute function touch()"
    )
    report = validate(tx, script)
    assert [f for f in report["findings"] if f["rule"] == "execute"] == []


def test_a_domain_in_the_script_refuses_partition_bounds(tx: psycopg.Connection) -> None:
    # A domain's CHECK runs when a bound is coerced to it.
    script = (
        "create domain slow as integer check (pg_sleep(3) is not null);\n"
        "create table p (id slow primary key) partition by range (id);\n"
        "create table p1 partition of p for values from (1) to (2)"
    )
    error = expect_error(tx, DENIED, lambda: validate(tx, script))
    assert "this script defines functions or domains" in error.diag.message_primary


FOREIGN_KEY_TO_SESSIONS = (
    "create table notes (\n"
    "    note_id integer primary key,\n"
    "    session_id text not null,\n"
    "    constraint notes_session_id_fkey foreign key (session_id)\n"
    "    references sessions (session_id) on delete cascade\n"
    ");\n"
    "create index notes_session_id_idx on notes (session_id);\n"
    "comment on table notes is 'Notes.'"
)


def test_a_validation_leaves_no_lock_on_the_tables_it_references(pg: Pg, db: str) -> None:
    with psycopg.connect(pg.conninfo(db)) as validating:
        report = validate(validating, FOREIGN_KEY_TO_SESSIONS)  # its transaction stays open
        assert [f for f in report["findings"] if f["rule"] == "execute"] == [], report["findings"]
        pid = validating.info.backend_pid
        with psycopg.connect(pg.conninfo(db)) as app:
            held = app.execute(
                "select mode from pg_locks where pid = %s and relation = 'toolsdb.sessions'::regclass", (pid,)
            ).fetchall()
            assert held == [], f"The validation should hold no lock on toolsdb.sessions once it returns: {held}"
            app.execute("set local lock_timeout = '5s'")
            app.execute("lock table toolsdb.sessions in row exclusive mode")  # what an insert takes
        validating.rollback()


def test_a_validation_holding_a_lock_on_a_toolsdb_table_too_long_stops(tx: psycopg.Connection) -> None:
    # After the statement that locks toolsdb.sessions, the validation may run
    # on for toolsdb.validate_lock_budget_ms (at most 1 s); 0 stops it at the
    # next statement.
    tx.execute("set local toolsdb.validate_lock_budget_ms = 0")
    error = expect_error(tx, "57014", lambda: validate(tx, FOREIGN_KEY_TO_SESSIONS))
    assert error.diag.message_primary == (
        "validate_schema: stopped after statement 1 of 3: it has held a lock on toolsdb.sessions "
        "for more than 00:00:00, which the application waits on"
    )
    assert stored(tx, FOREIGN_KEY_TO_SESSIONS) == []

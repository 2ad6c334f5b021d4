"""The schema validator from Python (runner/toolsdb/validator.py) and from the
command line (``toolsdb validate``, runner/toolsdb/cli.py).

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back; the command line
commits, in a fresh clone (``db``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg
import pytest

from toolsdb import validator
from toolsdb.errors import ToolsdbError

from .conftest import Pg, clean_env, toolsdb_exe
from .dbhelpers import (
    Clone,
    connect_app,
    scalar,
)
from .validatorhelpers import (
    REPORT_KEYS,
    SEED_EXAMPLE,
    assert_no_traceback,
    cli_validate,
    sha256,
    stored,
    summary,
    validate,
)

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
    report = validator.validate(tx, SEED_EXAMPLE, strict=True)
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
    assert str(refused.value) == "refused: statement 2 (line 2): ALTER SCHEMA is not a definition"
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
    result = cli_validate(pg, db, tmp_path, "bad.sql", "--strict")
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
        [toolsdb_exe(), "validate", "-", "--strict", "--database", pg.url(db)],
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
    result = cli_validate(pg, db, tmp_path, "bad.sql", "--json", "--strict")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert set(report) >= REPORT_KEYS, f"--json should print the whole report: {sorted(report)}"
    assert (report["valid"], report["cached"], report["errors"], report["warnings"]) == (False, False, 1, 4)
    assert report["statement_hash"] == sha256(SEED_EXAMPLE)
    assert (3, "error", "text_not_varchar", "users.email") in summary(report)
    assert json.loads(cli_validate(pg, db, tmp_path, "bad.sql", "--json", "--strict").stdout)["cached"] is True


def test_conventions_are_warnings_unless_strict(pg: Pg, db: str, tmp_path: Path) -> None:
    # The agent-tools README's own example: it runs, so it is valid; its
    # varchar is a warning, and an error only under --strict.
    (tmp_path / "users.sql").write_text(SEED_EXAMPLE, encoding="utf-8")
    lenient = cli_validate(pg, db, tmp_path, "users.sql")
    strict = cli_validate(pg, db, tmp_path, "users.sql", "--strict")

    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "users.sql:3: warning [text_not_varchar] " in lenient.stdout
    assert lenient.stdout.splitlines()[-1] == "users.sql: valid, 0 error(s), 5 warning(s) (validated)"
    assert strict.returncode == 1
    assert strict.stdout.splitlines()[-1] == "users.sql: invalid, 1 error(s), 4 warning(s) (stored report)"
    (tmp_path / "broken.sql").write_text("create table t (a integer primary key references nowhere (id));\n")
    broken = cli_validate(pg, db, tmp_path, "broken.sql")
    assert broken.returncode == 1 and "error [execute]" in broken.stdout, "an execution error is an error either way"


def test_cli_a_refusal_is_one_line_on_stderr(pg: Pg, db: str, tmp_path: Path) -> None:
    (tmp_path / "refused.sql").write_text("create table t (a integer primary key);\ndelete from t;\n", encoding="utf-8")
    result = cli_validate(pg, db, tmp_path, "refused.sql")
    assert result.returncode == 1
    assert_no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"A refusal should be one line on stderr: {result.stderr}"
    assert "refused.sql: refused: statement 2 (line 2): DELETE FROM is not a definition" in lines[0]
    assert result.stdout == ""
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert scalar(conn, "select count(*) from toolsdb.schema_validations") == 0, "A refusal stores nothing."


def test_cli_a_missing_file_is_one_line(pg: Pg, db: str, tmp_path: Path) -> None:
    result = cli_validate(pg, db, tmp_path, "nowhere.sql")
    assert result.returncode == 1
    assert_no_traceback(result)
    assert result.stderr.strip().splitlines() == ["Error: nowhere.sql: no such file"]

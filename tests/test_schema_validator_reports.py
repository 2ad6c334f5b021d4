"""The schema validator's stored reports (toolsdb.validate_schema(),
schema/52_schema_validator.sql), toolsdb's own schema checked against its
conventions, and who may validate (schema/00_bootstrap.sql,
repeatable/99_grants.sql): the login roles of conftest.py on the module's clone.

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back.
"""

from __future__ import annotations

import psycopg
import pytest

from toolsdb import validator

from .conftest import SUPERUSER, Pg
from .dbhelpers import (
    Clone,
    connect,
    connect_app,
    expect_error,
    one,
    scalar,
)
from .validatorhelpers import (
    CHECK,
    DENIED,
    GOOD_SCRIPT,
    INVALID,
    SEED_EXAMPLE,
    TOO_LONG,
    sha256,
    stored,
    validate,
)

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


# (The conventions of toolsdb itself, and each rule firing on a planted
# violation: tests/test_catalog_conventions.py.)


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

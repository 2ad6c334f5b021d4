"""Who may write and read the schema validator's stored reports
(toolsdb.schema_validations, hardening item 3(d)): only the validator writes
them, and an application login reads only its own.

Isolation: each test works in the module's clone (``committed``) as the
login roles of conftest.py, in transactions it rolls back, unless it commits
a report of its own to read from another login.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from .conftest import Pg
from .dbhelpers import Clone, connect, connect_app, ensure_login, expect_error, rows, scalar
from .validatorhelpers import DENIED, SEED_EXAMPLE, cli_validate, sha256, validate

OTHER_APP_LOGIN = "tests_app_other"

FORGED = {
    "statement_hash": sha256(SEED_EXAMPLE),
    "script": SEED_EXAMPLE,
    "statement_count": 1,
    "valid": True,
    "error_count": 0,
    "warning_count": 0,
    "findings": "[]",
    "rules_version": 1,
}


def insert_forged(conn: psycopg.Connection) -> None:
    columns = ", ".join(FORGED)
    conn.execute(
        f"insert into toolsdb.schema_validations ({columns}) values ({', '.join(['%s'] * len(FORGED))})",
        list(FORGED.values()),
    )


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(insert_forged, id="insert"),
        pytest.param(
            lambda conn: conn.execute(
                "update toolsdb.schema_validations set valid = true, error_count = 0, findings = '[]'"
            ),
            id="update",
        ),
        pytest.param(lambda conn: conn.execute("delete from toolsdb.schema_validations"), id="delete"),
        pytest.param(lambda conn: conn.execute("truncate toolsdb.schema_validations"), id="truncate"),
    ],
)
def test_the_app_cannot_write_a_report(pg: Pg, committed: Clone, app_login: str, write) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        validate(app, "-- its own\n" + SEED_EXAMPLE)  # a report of its own to change
        expect_error(app, DENIED, lambda: write(app))


def test_the_cli_never_returns_a_forged_report(pg: Pg, committed: Clone, app_login: str, tmp_path: Path) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        expect_error(app, DENIED, lambda: insert_forged(app))
    path = tmp_path / "seed.sql"
    path.write_text(SEED_EXAMPLE)
    result = cli_validate(pg, committed.dbname, tmp_path, str(path), "--json", "--strict")
    assert result.returncode == 1, "The seed example has an error under --strict: toolsdb validate should exit 1."
    with connect(pg, committed.dbname) as su:
        stored = rows(
            su,
            "select valid, error_count from toolsdb.schema_validations where statement_hash = %s",
            (sha256(SEED_EXAMPLE),),
        )
    assert [(r["valid"], r["error_count"]) for r in stored] == [(False, 1)]


def test_an_app_login_reads_only_its_own_reports(pg: Pg, committed: Clone, app_login: str) -> None:
    other = ensure_login(pg, OTHER_APP_LOGIN, group="toolsdb_app")
    script = "-- mine, with a secret table name\ncreate table project_falcon (id integer primary key)"
    with connect(pg, committed.dbname, app_login, autocommit=False) as mine:
        validate(mine, script)
        mine.commit()
        assert (
            scalar(mine, "select count(*) from toolsdb.schema_validations where statement_hash = %s", (sha256(script),))
            == 1
        ), "A login should read its own report."
    with connect_app(pg, committed.dbname, other) as theirs:
        assert scalar(theirs, "select count(*) from toolsdb.schema_validations where script like '%falcon%'") == 0, (
            "Another application login should not read the script."
        )
        report = validate(theirs, script)
        assert report["cached"] is True, "The same script is still a lookup for another login."

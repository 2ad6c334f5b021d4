"""Helpers of the schema validator's test modules (test_schema_validator_*.py):
scripts that meet or break the conventions, calls of the validator's
functions and of ``toolsdb validate``.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from .conftest import Pg, run_cli
from .dbhelpers import (
    Row,
    rows,
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


def validate(
    conn: psycopg.Connection, script: str | None, refresh: bool = False, strict: bool = True
) -> dict[str, Any]:
    """toolsdb.validate_schema(script, refresh, strict): the report; strict by
    default here, since these tests check each rule at its own severity."""
    return scalar(conn, "select toolsdb.validate_schema(%s, %s, %s)", (script, refresh, strict))


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

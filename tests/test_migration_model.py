"""The SQL-first migration model: schema/ and migrations/ agree, migrate is
idempotent, all-or-nothing and safe under concurrency, files are re-runnable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from toolsdb import migrate as engine
from toolsdb import paths
from toolsdb.target import Target

from .conftest import ROOT, Pg, clean_env, run_cli, toolsdb_exe


def build_from_schema(pg: Pg, dbname: str) -> None:
    """Apply schema/ then views/ with psql -f, the way a psql-only user would."""
    for folder in ("schema", "views"):
        for path in paths.sql_files(ROOT / folder):
            pg.psql(dbname, "-f", str(path))


def migrate(pg: Pg, dbname: str) -> list[str]:
    return engine.migrate(Target(pg.conninfo(dbname), "test"))


def yoyo_rows(pg: Pg, dbname: str) -> list[tuple]:
    with psycopg.connect(pg.conninfo(dbname)) as conn:
        return conn.execute("select migration_id from toolsdb_migrations._yoyo_migration order by 1").fetchall()


def migration_ids() -> list[str]:
    return [p.stem for p in paths.sql_files(ROOT / "migrations") if not p.stem.endswith(".rollback")]


def test_schema_files_and_migrations_build_the_same_database(pg: Pg, empty_db: str, db: str) -> None:
    build_from_schema(pg, empty_db)
    from_schema = pg.dump_schema(empty_db)
    from_migrations = pg.dump_schema(db)
    assert "create table toolsdb.users" in from_migrations.lower()
    assert from_schema == from_migrations, "schema/ + views/ and migrations/ disagree"


BOOTSTRAP_ROWS = """
    select 'schema ' || nspname, xmin::text from pg_namespace where nspname like 'toolsdb%%'
    union all
    select 'database setting', s.xmin::text from pg_db_role_setting s
    join pg_database d on d.oid = s.setdatabase where d.datname = current_database()
    union all
    select 'role ' || rolname, xmin::text from pg_authid where rolname like 'toolsdb\\_%%'
    order by 1
"""


def test_migrating_twice_changes_nothing(pg: Pg, db: str) -> None:
    # A clone of the template lacks the database-level search_path (CREATE
    # DATABASE ... TEMPLATE does not copy settings): the first migrate sets it.
    migrate(pg, db)
    schema_before, data_before = pg.dump_schema(db), pg.dump_data(db)
    with psycopg.connect(pg.conninfo(db)) as conn:
        log_before = conn.execute("select count(*) from toolsdb_migrations._yoyo_log").fetchone()
        bootstrap_before = conn.execute(BOOTSTRAP_ROWS).fetchall()
    assert migrate(pg, db) == [], "migrating again applied something"
    assert pg.dump_schema(db) == schema_before
    assert pg.dump_data(db) == data_before
    with psycopg.connect(pg.conninfo(db)) as conn:
        log_after = conn.execute("select count(*) from toolsdb_migrations._yoyo_log").fetchone()
        bootstrap_after = conn.execute(BOOTSTRAP_ROWS).fetchall()
    assert log_after == log_before, "a no-op migrate wrote to yoyo's log"
    assert len(bootstrap_after) == 11, bootstrap_after  # 5 schemas, 5 roles, 1 setting
    assert bootstrap_after == bootstrap_before, "a no-op migrate rewrote schemas, roles or database settings"


def sql_file_params() -> list:
    files = []
    for folder in ("schema", "views", "seeds"):
        files += [pytest.param(p, id=f"{folder}/{p.name}") for p in paths.sql_files(ROOT / folder)]
    return files


@pytest.mark.parametrize("path", sql_file_params())
def test_each_sql_file_runs_twice_without_error_or_change(pg: Pg, empty_db: str, path: Path) -> None:
    # Everything the file depends on comes first: earlier schema files, and
    # all of schema/ (+ views/) for views and seeds.
    folder = path.parent.name
    before = [p for p in paths.sql_files(ROOT / "schema") if folder != "schema" or p.name < path.name]
    if folder == "seeds":
        before += paths.sql_files(ROOT / "views")
    for dependency in before:
        pg.psql(empty_db, "-f", str(dependency))
    pg.psql(empty_db, "-f", str(path))
    schema_once, data_once = pg.dump_schema(empty_db), pg.dump_data(empty_db)
    second = pg.psql(empty_db, "-f", str(path), check=False)
    assert second.returncode == 0, f"second run of {path.name} failed: {second.stderr}"
    assert pg.dump_schema(empty_db) == schema_once, f"second run of {path.name} changed the schema"
    assert pg.dump_data(empty_db) == data_once, f"second run of {path.name} changed data"


def test_rollback_then_migrate_gives_the_identical_schema(pg: Pg, db: str) -> None:
    before = pg.dump_schema(db)
    undone = engine.rollback(Target(pg.conninfo(db), "test"))
    assert undone == [migration_ids()[-1]]
    assert pg.dump_schema(db) != before
    assert migrate(pg, db) == undone
    assert pg.dump_schema(db) == before


def test_rolling_back_everything_leaves_no_table(pg: Pg, db: str) -> None:
    engine.rollback(Target(pg.conninfo(db), "test"), migration_ids()[0])
    with psycopg.connect(pg.conninfo(db)) as conn:
        left = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'v', 'p')"
        ).fetchall()
    assert left == []
    assert yoyo_rows(pg, db) == []


def add_migration(root: Path, name: str, body: str, rollback: str = "") -> str:
    ids = sorted(p.stem for p in (root / "migrations").glob("*.sql") if not p.stem.endswith(".rollback"))
    number = int(ids[-1].split(".")[0]) + 1
    mid = f"{number:04d}.{name}"
    (root / "migrations" / f"{mid}.sql").write_text(f"-- depends: {ids[-1]}\n{body}")
    (root / "migrations" / f"{mid}.rollback.sql").write_text(rollback)
    return mid


def test_a_failing_migration_leaves_the_database_exactly_as_it_was(pg: Pg, db: str, sql_copy: Path) -> None:
    good = add_migration(sql_copy, "good", "create table toolsdb.first_of_two (id integer primary key);\n")
    bad = add_migration(
        sql_copy,
        "bad",
        "create table toolsdb.should_vanish (id integer primary key);\n"
        "insert into toolsdb.should_vanish values (1);\n"
        "select 1 / (select count(*) - 1 from toolsdb.should_vanish);\n"
        "create table toolsdb.never_reached (id integer primary key);\n",
    )
    schema_before, data_before = pg.dump_schema(db), pg.dump_data(db)
    applied_before = yoyo_rows(pg, db)

    result = run_cli("migrate", "--database", pg.url(db), env={"TOOLSDB_SQL_ROOT": str(sql_copy)})

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"migrations/{bad}.sql" in lines[0]
    assert "select 1 / (select count(*) - 1 from toolsdb.should_vanish)" in lines[0]
    assert "SQLSTATE 22012" in lines[0]
    assert "Traceback" not in result.stderr
    assert pg.dump_schema(db) == schema_before
    assert pg.dump_data(db) == data_before
    assert yoyo_rows(pg, db) == applied_before, f"{good} was kept although {bad} failed"


def test_ten_concurrent_migrates_apply_each_migration_once(pg: Pg, empty_db: str) -> None:
    env = {**clean_env()}
    procs = [
        subprocess.Popen(
            [toolsdb_exe(), "migrate", "--database", pg.url(empty_db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(10)
    ]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for code, stderr in outcomes:
        assert code == 0, stderr
    with psycopg.connect(pg.conninfo(empty_db)) as conn:
        applied = conn.execute(
            "select migration_id, count(*) from toolsdb_migrations._yoyo_log"
            " where operation = 'apply' group by 1 order by 1"
        ).fetchall()
    assert applied == [(mid, 1) for mid in migration_ids()]
    assert yoyo_rows(pg, empty_db) == [(mid,) for mid in migration_ids()]


def test_migration_file_names_follow_the_pattern() -> None:
    folder = ROOT / "migrations"
    forward, rollbacks = set(), set()
    for path in folder.iterdir():
        if path.name in (engine.HOOK_NAME, "__pycache__"):
            continue
        match = engine.MIGRATION_NAME.match(path.name)
        assert match, f"{path.name} does not match NNNN.lowercase_name.sql / .rollback.sql"
        (rollbacks if match["rollback"] else forward).add(path.name.replace(".rollback", ""))
    assert forward, "no migration at all"
    assert forward == rollbacks, f"migrations without a rollback: {sorted(forward ^ rollbacks)}"
    numbers = sorted(int(name[:4]) for name in forward)
    assert numbers == list(range(1, len(numbers) + 1)), f"numbers have gaps or repeats: {numbers}"
    assert min(forward).endswith(".baseline.sql"), "the first migration is the baseline"


def test_seeding_twice_changes_nothing_and_fills_every_view(pg: Pg, db: str) -> None:
    # All seeds in order, as `toolsdb seed` applies them: the second run must
    # write nothing at all (no row, no audit entry), and every view has rows.
    first = run_cli("seed", "--database", pg.url(db))
    assert first.returncode == 0, first.stderr
    data_once = pg.dump_data(db)
    second = run_cli("seed", "--database", pg.url(db))
    assert second.returncode == 0, second.stderr
    assert pg.dump_data(db) == data_once, "a second `toolsdb seed` changed data (or wrote audit entries)"
    with psycopg.connect(pg.conninfo(db)) as conn:
        views = [r[0] for r in conn.execute("select viewname from pg_views where schemaname = 'toolsdb' order by 1")]
        empty = [v for v in views if conn.execute(f"select count(*) from toolsdb.{v}").fetchone()[0] == 0]
    assert len(views) >= 11, views
    assert empty == [], f"views with no row after seeding: {empty}"

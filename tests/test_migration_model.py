"""The SQL-first migration model: schema/ + repeatable/ and migrations/
agree, migrate is idempotent down to the catalog rows, all-or-nothing,
safe under concurrency, and refuses what the code does not know."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from toolsdb import migrate as engine
from toolsdb import paths
from toolsdb.errors import ToolsdbError
from toolsdb.target import Target

from .conftest import ROOT, Pg, clean_env, run_cli, toolsdb_exe


def build_from_canonical(pg: Pg, dbname: str) -> None:
    """Apply schema/ then repeatable/ with psql -f, the way a psql-only user would."""
    for folder in ("schema", "repeatable"):
        for path in paths.sql_files(ROOT / folder):
            pg.psql(dbname, "-f", str(path))


def target(pg: Pg, dbname: str) -> Target:
    return Target(pg.conninfo(dbname), "test")


def migrate(pg: Pg, dbname: str, **options) -> list[str]:
    return engine.migrate(target(pg, dbname), **options)


def yoyo_rows(pg: Pg, dbname: str) -> list[tuple]:
    with psycopg.connect(pg.conninfo(dbname)) as conn:
        return conn.execute("select migration_id from toolsdb_migrations._yoyo_migration order by 1").fetchall()


def migration_ids() -> list[str]:
    return [p.stem for p in paths.sql_files(ROOT / "migrations") if not p.stem.endswith(".rollback")]


def current_xid(pg: Pg, dbname: str) -> int:
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as conn:
        return int(conn.execute("select pg_current_xact_id()::text").fetchone()[0]) % 2**32


# Every row of every catalog (statistics aside: autoanalyze writes them) and
# of every toolsdb table whose xmin is newer than a transaction id.
ROWS_WRITTEN_SINCE = """
do $check$
declare
    rel regclass;
    written bigint;
    found text := '';
begin
    for rel in
        select c.oid from pg_catalog.pg_class as c
        where c.relkind = 'r' and (
            (c.relnamespace = 'pg_catalog'::regnamespace and c.relname not like 'pg\\_statistic%%')
            or c.relnamespace::regnamespace::text like 'toolsdb%%'
        )
    loop
        execute pg_catalog.format(
            'select count(*) from %s where xmin::text::bigint > %s', rel, {since}
        ) into written;
        if written > 0 then
            found := found || rel::text || ': ' || written || e'\\n';
        end if;
    end loop;
    perform pg_catalog.set_config('toolsdb_test.written', found, false);
end
$check$;
"""


def rows_written_since(pg: Pg, dbname: str, since: int) -> str:
    """'pg_proc: 2' lines for the tables with rows written after ``since``."""
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as conn:
        conn.execute(ROWS_WRITTEN_SINCE.format(since=since))
        return conn.execute("select current_setting('toolsdb_test.written')").fetchone()[0]


def test_canonical_files_and_migrations_build_the_same_database(pg: Pg, empty_db: str, db: str) -> None:
    build_from_canonical(pg, empty_db)
    from_canonical = pg.dump_schema(empty_db)
    from_migrations = pg.dump_schema(db)
    assert "create table toolsdb.users" in from_migrations.lower()
    assert "create function toolsdb.maintain" in from_migrations.lower()
    assert from_canonical == from_migrations, "schema/ + repeatable/ and migrations/ + repeatable/ disagree"


def test_a_migrate_with_nothing_to_do_writes_no_row_at_all(pg: Pg, db: str) -> None:
    # A clone of the template lacks the database-level search_path (CREATE
    # DATABASE ... TEMPLATE does not copy settings): the first migrate sets it.
    migrate(pg, db)
    schema_before, data_before = pg.dump_schema(db), pg.dump_data(db)
    since = current_xid(pg, db)
    assert migrate(pg, db) == [], "migrating again applied something"
    # No catalog row (functions, views, triggers, policies, comments, ACLs,
    # roles, settings...) and no row of ours has a newer xmin: nothing was
    # replaced, so no cached plan or compiled function was invalidated.
    assert rows_written_since(pg, db, since) == ""
    assert pg.dump_schema(db) == schema_before
    assert pg.dump_data(db) == data_before


def test_the_cli_migrate_with_nothing_to_do_writes_nothing(pg: Pg, db: str) -> None:
    migrate(pg, db)
    since = current_xid(pg, db)
    result = run_cli("migrate", "--database", pg.url(db))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert rows_written_since(pg, db, since) == ""


def test_every_migration_rolls_back_to_exactly_the_state_before_it(pg: Pg) -> None:
    # Migrate to N-1 and dump; migrate to N, roll N back and dump: equal.
    # Definitions are left out: repeatable/ is written for the newest tables.
    ids = migration_ids()
    for position, mid in enumerate(ids):
        with pg.clone(f"rollback_{position}", None) as name:
            if position == 0:
                engine.prepare(target(pg, name))
            else:
                migrate(pg, name, to=ids[position - 1], definitions=False)
            before = (pg.dump_schema(name), yoyo_rows(pg, name))
            assert migrate(pg, name, to=mid, definitions=False) == [mid]
            assert engine.rollback(target(pg, name), force=True) == [mid]
            assert (pg.dump_schema(name), yoyo_rows(pg, name)) == before, f"rolling back {mid} left a trace"


def test_rollback_then_migrate_gives_the_identical_schema(pg: Pg, db: str) -> None:
    before = pg.dump_schema(db)
    undone = engine.rollback(target(pg, db), force=True)
    assert undone == [migration_ids()[-1]]
    assert pg.dump_schema(db) != before
    assert migrate(pg, db) == undone
    assert pg.dump_schema(db) == before


def test_rolling_back_everything_leaves_nothing_of_toolsdb(pg: Pg, db: str) -> None:
    engine.rollback(target(pg, db), migration_ids()[0], force=True)
    with psycopg.connect(pg.conninfo(db)) as conn:
        left = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'v', 'p')"
            " union all select n.nspname, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname in ('toolsdb', 'toolsdb_private')"
        ).fetchall()
        definitions = conn.execute("select count(*) from toolsdb_migrations.definitions").fetchone()[0]
    assert left == []
    assert definitions == 0
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


@pytest.mark.parametrize("keyword", ["commit", "COMMIT AND CHAIN", "rollback", "begin", "start transaction", "end"])
def test_a_migration_with_transaction_control_is_refused_before_anything_runs(
    pg: Pg, db: str, sql_copy: Path, keyword: str
) -> None:
    mid = add_migration(
        sql_copy,
        "splits",
        "create table toolsdb.first_half (id integer primary key);\n"
        f"-- a comment; then\n{keyword};\n"
        "create table toolsdb.second_half (id integer primary key);\n",
    )
    schema_before = pg.dump_schema(db)
    result = run_cli("migrate", "--database", pg.url(db), env={"TOOLSDB_SQL_ROOT": str(sql_copy)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"migrations/{mid}.sql line 4" in lines[0]
    assert keyword.split()[0].upper() in lines[0]
    assert "not allowed" in lines[0]
    assert pg.dump_schema(db) == schema_before
    assert (mid,) not in yoyo_rows(pg, db)


def test_a_migration_the_code_does_not_know_is_refused_everywhere(pg: Pg, db: str) -> None:
    with psycopg.connect(pg.conninfo(db)) as conn:
        conn.execute(
            "insert into toolsdb_migrations._yoyo_migration (migration_hash, migration_id, applied_at_utc)"
            " values (repeat('f', 64), '0099.from_the_future', now() at time zone 'UTC')"
        )
    schema_before = pg.dump_schema(db)
    for command in ("status", "migrate", "rollback"):
        result = run_cli(command, "--database", pg.url(db))
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert "0099.from_the_future" in lines[0], lines[0]
        assert "Traceback" not in result.stderr
    assert pg.dump_schema(db) == schema_before
    assert ("0099.from_the_future",) in yoyo_rows(pg, db)
    with pytest.raises(ToolsdbError, match=r"0099\.from_the_future"):
        engine.status(target(pg, db))


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
        if path.name == "__pycache__":
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


@pytest.mark.parametrize("phase", ["in-a-migration", "in-repeatable"])
@pytest.mark.parametrize(("signum", "code", "last_line"), [(2, 1, "Aborted."), (15, 143, "Terminated.")])
def test_a_migrate_stopped_by_a_signal_says_so_and_changes_nothing(
    pg: Pg, db: str, sql_copy: Path, phase: str, signum: int, code: int, last_line: str
) -> None:
    migrate(pg, db)
    schema_before, applied_before = pg.dump_schema(db), yoyo_rows(pg, db)
    # The migrate waits for a lock this session holds: in a pending migration
    # (inside yoyo's savepoint) or in repeatable/'s partitions-ahead action.
    lock = "toolsdb.test_wait" if phase == "in-a-migration" else "toolsdb.audit_create_partitions"
    if phase == "in-a-migration":
        add_migration(
            sql_copy,
            "waits",
            "create table toolsdb.waiting (id integer primary key);\n"
            "select pg_advisory_xact_lock(hashtext('toolsdb.test_wait'));\n",
        )
    with psycopg.connect(pg.conninfo(db), autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(hashtext(%s))", (lock,))
        proc = subprocess.Popen(
            [toolsdb_exe(), "migrate", "--database", pg.url(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**clean_env(), "TOOLSDB_LOCK_TIMEOUT": "60s", "TOOLSDB_SQL_ROOT": str(sql_copy)},
        )
        deadline = time.monotonic() + 60
        while not holder.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        ).fetchone()[0]:
            assert proc.poll() is None and time.monotonic() < deadline, "migrate never waited for the lock"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == last_line, stderr
    assert "SQLSTATE" not in stderr and "Traceback" not in stderr
    assert pg.dump_schema(db) == schema_before
    assert yoyo_rows(pg, db) == applied_before


def test_a_rollback_that_would_drop_rows_is_refused_unless_forced(pg: Pg, db: str) -> None:
    schema_before = pg.dump_schema(db)
    refused = run_cli("rollback", "--database", pg.url(db))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "holding rows" in lines[0] and "--force" in lines[0], refused.stderr
    assert "toolsdb_private.audit_exemptions" in lines[0] or "more" in lines[0]
    assert pg.dump_schema(db) == schema_before
    forced = run_cli("rollback", "--force", "--database", pg.url(db))
    assert forced.returncode == 0, forced.stderr
    assert yoyo_rows(pg, db) == []

"""repeatable/: one definition of every function, view and trigger, each
replaced by a migrate only when it differs; every SQL file re-runnable."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from toolsdb import migrate as engine
from toolsdb import paths, repeatable
from toolsdb.sqlfiles import split

from .conftest import ROOT, Pg, clean_env
from .test_migration_model import current_xid, migrate, rows_written_since

DEFINING = re.compile(r"^\s*create\s+(or\s+replace\s+)?(function|procedure|view|trigger)\b", re.I)


def test_nothing_outside_repeatable_defines_a_function_view_or_trigger() -> None:
    found = []
    for folder in ("schema", "migrations", "seeds"):
        for path in paths.sql_files(ROOT / folder):
            for stmt in split(path.read_text()):
                if DEFINING.match(stmt.sql):
                    found.append(f"{folder}/{path.name} line {stmt.line}")
    assert found == []


def test_each_object_of_the_catalog_has_exactly_one_definition(conn: psycopg.Connection) -> None:
    units = repeatable.load()  # raises on an object defined twice
    defined = {u.key for u in units if u.kind != "action"}
    # What the catalog holds; triggers that actions make (change capture by
    # audit_table(), the truncate guard of each partition) are not definitions.
    in_catalog = {
        row[0]
        for row in conn.execute(
            """
            select 'function ' || n.nspname || '.' || p.proname
            from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname like 'toolsdb%%'
                and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
            union all
            select 'view ' || c.oid::regclass::text from pg_class c
            where c.relnamespace::regnamespace::text like 'toolsdb%%' and c.relkind = 'v'
                and not exists (select from pg_depend d where d.objid = c.oid and d.deptype = 'e')
            union all
            select 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text from pg_trigger t
            join pg_class c on c.oid = t.tgrelid
            where c.relnamespace::regnamespace::text like 'toolsdb%%' and not t.tgisinternal and t.tgparentid = 0
                and t.tgname not in ('_900_audit', '_900_audit_truncate')
                and not (c.relispartition and t.tgname = '_010_append_only_truncate' and c.relname !~ '_default$')
            """
        )
    }
    assert sorted(in_catalog - defined) == [], "objects in the catalog that no file of repeatable/ defines"
    assert sorted(defined - in_catalog) == [], "definitions that a migrate did not create"
    functions = [k for k in defined if k.startswith("function ")]
    assert len(functions) >= 100, len(functions)


def test_the_definitions_are_recorded_with_their_file(conn: psycopg.Connection) -> None:
    recorded = dict(conn.execute("select object_name, source_file from toolsdb_migrations.definitions").fetchall())
    assert recorded["function toolsdb.maintain"] == "repeatable/60_maintenance.sql"
    assert recorded["view toolsdb.active_tasks"] == "repeatable/82_work_views.sql"
    assert recorded["trigger _100_timestamps on toolsdb.users"] == "repeatable/20_users.sql"
    assert len(recorded) == len([u for u in repeatable.load() if u.kind != "action"])


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def proc_xmins(pg: Pg, dbname: str) -> dict[str, str]:
    with psycopg.connect(pg.conninfo(dbname)) as conn:
        return dict(
            conn.execute(
                "select n.nspname || '.' || p.proname, p.xmin::text from pg_proc p"
                " join pg_namespace n on n.oid = p.pronamespace where n.nspname like 'toolsdb%%'"
            ).fetchall()
        )


def test_a_changed_definition_replaces_that_object_only(
    pg: Pg, db: str, sql_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(pg, db)
    monkeypatch.setenv("TOOLSDB_SQL_ROOT", str(sql_copy))
    before = proc_xmins(pg, db)
    since = current_xid(pg, db)
    rewrite(
        sql_copy / "repeatable" / "60_maintenance.sql",
        "'The one maintenance entry point (toolsdb maintain;",
        "'The one (edited) maintenance entry point (toolsdb maintain;",
    )
    migrate(pg, db)
    after = proc_xmins(pg, db)
    changed = sorted(name for name, xmin in after.items() if before.get(name) != xmin)
    assert changed == ["toolsdb.maintain"]
    written = rows_written_since(pg, db, since)
    for catalog in ("pg_class", "pg_trigger", "pg_policy", "pg_rewrite", "pg_attribute"):
        assert catalog not in written, written
    with psycopg.connect(pg.conninfo(db)) as conn:
        comment = conn.execute("select obj_description('toolsdb.maintain'::regproc, 'pg_proc')").fetchone()[0]
        recorded = conn.execute(
            "select source_file from toolsdb_migrations.definitions where object_name = 'function toolsdb.maintain'"
        ).fetchone()
    assert comment.startswith("The one (edited) maintenance entry point")
    assert recorded == ("repeatable/60_maintenance.sql",)


def test_an_object_changed_or_dropped_behind_toolsdbs_back_is_put_back(pg: Pg, db: str) -> None:
    migrate(pg, db)
    expected = pg.dump_schema(db)
    with psycopg.connect(pg.conninfo(db)) as conn:
        conn.execute("drop view toolsdb.active_tasks")
        conn.execute("drop trigger _100_timestamps on toolsdb.users")
        conn.execute("comment on function toolsdb.maintain(integer, integer) is 'edited by hand'")
        conn.execute(
            "create or replace function toolsdb.current_project_id() returns uuid language sql stable"
            " set search_path = '' return null::uuid"
        )
    assert pg.dump_schema(db) != expected
    migrate(pg, db)
    assert pg.dump_schema(db) == expected
    since = current_xid(pg, db)
    migrate(pg, db)
    assert rows_written_since(pg, db, since) == ""


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "10_a.sql": "create or replace function toolsdb.f() returns int language sql return 1;\n"
                "comment on function toolsdb.g() is 'not f';\n"
            },
            "a comment must follow the definition of its object",
        ),
        (
            {
                "10_a.sql": "create or replace view toolsdb.v as select 1 as x;\n",
                "20_b.sql": "create or replace view toolsdb.v as select 2 as x;\n",
            },
            "view toolsdb.v is defined twice",
        ),
        ({"10_a.sql": "select 1;\ncommit;\n"}, "COMMIT is not allowed"),
        ({"10_a.sql": 'create or replace function "Odd"() returns int language sql return 1;\n'}, "cannot tell which"),
        ({"10_a.sql": "comment on column toolsdb.users.email is 'x';\n"}, "belong in schema/"),
    ],
)
def test_repeatable_files_that_break_the_rules_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(repeatable.DefinitionError, match=re.escape(message)):
        repeatable.load(tmp_path)


SQL_FILES = [p for folder in ("schema", "repeatable", "seeds") for p in paths.sql_files(ROOT / folder)]


class Progressive:
    """One database per server that the files are applied to in order: a
    file's test first brings in every earlier file (once), so the whole
    parametrized run applies each file twice and costs linear time, and any
    single file's test still works alone."""

    def __init__(self, pg: Pg, dbname: str):
        self.pg, self.dbname, self.applied = pg, dbname, 0

    def up_to(self, path: Path) -> None:
        for earlier in SQL_FILES[self.applied : SQL_FILES.index(path)]:
            self.pg.psql(self.dbname, "-f", str(earlier))
        self.applied = SQL_FILES.index(path)


@pytest.fixture(scope="module")
def progressive(pg: Pg) -> Iterator[Progressive]:
    with pg.clone(f"progressive_{pg.major}", None) as name:
        yield Progressive(pg, name)


def test_every_sql_file_is_checked() -> None:
    assert len(SQL_FILES) > 60


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_sql_file_runs_twice_without_error_or_change(progressive: Progressive, path: Path) -> None:
    pg, dbname = progressive.pg, progressive.dbname
    progressive.up_to(path)
    pg.psql(dbname, "-f", str(path))
    progressive.applied += 1
    once = pg.dump_schema(dbname), pg.dump_data(dbname)
    second = pg.psql(dbname, "-f", str(path), check=False)
    assert second.returncode == 0, f"second run of {path.name} failed: {second.stderr}"
    assert (pg.dump_schema(dbname), pg.dump_data(dbname)) == once, f"second run of {path.name} changed something"


def test_the_loader_names_each_object_as_postgresql_does(tmp_path: Path) -> None:
    (tmp_path / "10_a.sql").write_text(
        "CREATE OR REPLACE FUNCTION Toolsdb.Shout(x text) RETURNS text LANGUAGE sql RETURN upper(x);\n"
        "COMMENT ON FUNCTION toolsdb.shout(text) IS 'loud';\n"
        "create or replace view toolsdb.v(a) as select 1;\n"
        "comment on column toolsdb.v.a is 'one';\n"
        "create or replace trigger _100_t\nbefore insert on toolsdb.t\nfor each row execute function toolsdb.f();\n"
        "comment on trigger _100_t on toolsdb.t is 'fires';\n"
        "select toolsdb.audit_table('toolsdb.t');\n"
    )
    units = repeatable.load(tmp_path)
    assert [(u.key, len(u.statements)) for u in units[:3]] == [
        ("function toolsdb.shout", 2),
        ("view toolsdb.v", 2),
        ("trigger _100_t on toolsdb.t", 2),
    ]
    assert units[3].kind == "action" and units[3].key.endswith("10_a.sql:9")
    assert len(units) == 4


# -- the no-op: a migrate of the tree the database already has ---------------------------

# `toolsdb migrate` in a fresh interpreter, saying afterwards whether yoyo (the
# full migrate's engine) was imported: the no-op never needs it.
NO_OP_PROBE = """
import sys
from toolsdb.cli import cli
code = cli.main(["migrate", "--database", sys.argv[1]], prog_name="toolsdb", standalone_mode=False)
print("yoyo imported:", "yoyo" in sys.modules)
"""


def migrate_in_fresh_process(pg: Pg, db: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", NO_OP_PROBE, pg.url(db)], env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_migrate_with_nothing_to_do_records_the_tree_and_runs_only_its_actions(pg: Pg, db: str) -> None:
    with psycopg.connect(pg.conninfo(db)) as conn:
        recorded = conn.execute("select tree_digest from toolsdb_migrations.tree_state").fetchall()
        # An action's work undone by hand (change capture is installed by audit_table(), an action).
        conn.execute("drop trigger _900_audit on toolsdb.users")
    assert recorded == [(engine.tree().digest,)]
    expected_output = f"nothing to migrate: {pg.url(db)} (from --database) is up to date"
    out = migrate_in_fresh_process(pg, db)
    assert out.splitlines() == [expected_output, "yoyo imported: False"]
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert conn.execute(
            "select count(*) from pg_trigger where tgrelid = 'toolsdb.users'::regclass and tgname = '_900_audit'"
        ).fetchone() == (1,), "the no-op ran the actions: audit_table() put the trigger back"
    since = current_xid(pg, db)
    assert migrate_in_fresh_process(pg, db).splitlines() == [expected_output, "yoyo imported: False"]
    assert rows_written_since(pg, db, since) == ""


@pytest.mark.parametrize(
    "change",
    [
        "update toolsdb_migrations.tree_state set tree_digest = repeat('0', 64)",
        "update toolsdb_migrations.definitions set source_digest = repeat('0', 64)"
        " where object_name = 'function toolsdb.maintain'",
        "delete from toolsdb_migrations.definitions where object_name = 'view toolsdb.active_tasks'",
        "delete from toolsdb_migrations._yoyo_migration",
        "comment on function toolsdb.maintain(integer, integer) is 'edited by hand'",
        "update toolsdb_migrations.tree_state set actions = 'select 1/0;'",
    ],
    ids=[
        "other tree",
        "definition recorded otherwise",
        "definition unrecorded",
        "migrations unapplied",
        "catalog changed",
        "actions that fail",
    ],
)
def test_anything_unlike_the_record_takes_the_full_migrate(pg: Pg, db: str, change: str) -> None:
    expected = pg.dump_schema(db)
    with psycopg.connect(pg.conninfo(db)) as conn:
        conn.execute(change)
    out = migrate_in_fresh_process(pg, db)
    assert out.splitlines()[-1] == "yoyo imported: True", out
    assert pg.dump_schema(db) == expected
    with psycopg.connect(pg.conninfo(db)) as conn:
        tree_digest, actions = conn.execute("select tree_digest, actions from toolsdb_migrations.tree_state").fetchone()
    assert tree_digest == engine.tree().digest
    assert actions == repeatable.actions_script(repeatable.load()), "the full migrate recorded the tree again"
    assert migrate_in_fresh_process(pg, db).splitlines()[-1] == "yoyo imported: False"


# `toolsdb` as its console script runs it (launcher.main), saying afterwards
# whether psycopg was imported: the launcher's no-op (migrate_fast.py) does not.
LAUNCHER_PROBE = """
import sys
from toolsdb.launcher import main
sys.argv = ["toolsdb", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    print("exit:", exc.code)
print("psycopg imported:", "psycopg" in sys.modules)
"""


def launch(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER_PROBE, *args], env=clean_env(**env), capture_output=True, text=True, timeout=120
    )


def test_the_launcher_does_the_no_op_without_psycopg_and_says_what_the_full_migrate_says(pg: Pg, db: str) -> None:
    with psycopg.connect(pg.conninfo(db)) as conn:
        conn.execute("drop trigger _900_audit on toolsdb.users")
    out = launch(["migrate", "--database", pg.url(db)])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"nothing to migrate: {pg.url(db)} (from --database) is up to date",
        "exit: 0",
        "psycopg imported: False",
    ]
    assert out.stderr == ""
    with psycopg.connect(pg.conninfo(db)) as conn:
        assert conn.execute(
            "select count(*) from pg_trigger where tgrelid = 'toolsdb.users'::regclass and tgname = '_900_audit'"
        ).fetchone() == (1,), "the recorded actions ran"
    since = current_xid(pg, db)
    assert launch(["--database", pg.url(db), "migrate"], DATABASE_URL="postgresql:///elsewhere").stdout.splitlines()[
        -1
    ] == ("psycopg imported: False")
    assert rows_written_since(pg, db, since) == ""


@pytest.mark.parametrize(
    ("args", "env", "change"),
    [
        (["migrate", "-v"], {}, None),
        (["migrate", "--remember"], {}, None),
        (["migrate"], {"DB_LOG_QUERIES": "true"}, None),
        (["migrate"], {"TOOLSDB_POOLER": "transaction"}, None),
        (["migrate"], {}, "comment on function toolsdb.maintain(integer, integer) is 'edited by hand'"),
        (["migrate"], {}, "update toolsdb_migrations.tree_state set actions = 'select 1/0;'"),
    ],
    ids=["verbose", "remember", "statement logging", "transaction pooler", "catalog changed", "actions that fail"],
)
def test_the_launcher_leaves_anything_else_to_the_full_migrate(
    pg: Pg, db: str, args: list[str], env: dict[str, str], change: str | None
) -> None:
    if change:
        with psycopg.connect(pg.conninfo(db)) as conn:
            conn.execute(change)
    out = launch(args, DATABASE_URL=pg.url(db), **env)
    assert out.stdout.splitlines()[-1] == "psycopg imported: True", out.stdout + out.stderr
    if "TOOLSDB_POOLER" in env:
        assert "needs a session of its own" in out.stderr
    elif "--remember" not in args:
        assert out.returncode == 0, out.stderr
        assert f"{pg.url(db)} (from DATABASE_URL)" in out.stdout

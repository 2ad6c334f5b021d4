"""The ``toolsdb`` command line: which database it picks, the embedded server,
its manners (help, one-line errors, --verbose, tables), new-migration and seed.

Everything runs the real console script in a subprocess (``run_cli``), always
in a temporary working directory, so no test touches the repository's own
``.toolsdb/``. Tests of the embedded server start few servers and stop each.
"""

from __future__ import annotations

import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner

from toolsdb import paths
from toolsdb.cli import cli
from toolsdb.server import embedded_bindir

from .conftest import ROOT, Pg, clean_env, run_cli, toolsdb_exe

# -- helpers -------------------------------------------------------------------


def migration_ids(root: Path = ROOT) -> list[str]:
    return [p.stem for p in paths.sql_files(root / "migrations") if not p.stem.endswith(".rollback")]


def database_line(result: subprocess.CompletedProcess[str]) -> str:
    """The ``database: ...`` line of ``toolsdb status``."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("database: ")]
    assert len(lines) == 1, f"toolsdb status should print one 'database:' line, it printed: {result.stdout}"
    return lines[0]


def summary_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of ``toolsdb status``: ``N applied, M pending``."""
    return result.stdout.strip().splitlines()[-1]


def fully_applied() -> str:
    return f"{len(migration_ids())} applied, 0 pending"


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"toolsdb {' '.join(result.args[1:])} should succeed but exited {result.returncode}: {result.stderr}"
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *facts: str) -> str:
    """A user mistake: non-zero exit and one ``Error:`` line naming the facts."""
    assert result.returncode != 0, f"the command should fail but exited 0; stdout: {result.stdout}"
    assert "Traceback" not in result.stderr + result.stdout, f"the command printed a traceback: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr should be exactly one line, it is {len(lines)}: {result.stderr}"
    assert lines[0].startswith("Error: "), f"the error line should start with 'Error: ': {lines[0]}"
    for fact in facts:
        assert fact in lines[0], f"the error line should mention {fact!r}: {lines[0]}"
    return lines[0]


def pg_vars(pg: Pg, dbname: str) -> dict[str, str]:
    """libpq's own variables pointing at a database of the test server."""
    return {"PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": dbname}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(url: str, query: str) -> subprocess.CompletedProcess[str]:
    """The embedded PostgreSQL's psql on a URL, unaligned and tuples only."""
    return subprocess.run(
        [str(embedded_bindir() / "psql"), "-X", "-A", "-t", "-d", url, "-c", query],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )


# -- 1. which database: --database, DATABASE_URL, PG* variables, embedded ------------


@pytest.mark.parametrize("position", ["before", "after"])
def test_database_option_beats_database_url_and_pg_variables(
    pg: Pg, db: str, empty_db: str, tmp_path: Path, position: str
) -> None:
    option = ["--database", pg.url(db)]
    args = [*option, "status"] if position == "before" else ["status", *option]
    env = {"DATABASE_URL": pg.url(empty_db), **pg_vars(pg, empty_db)}

    result = run_cli(*args, cwd=tmp_path, env=env)

    assert_ok(result)
    assert database_line(result) == f"database: {pg.url(db)} (from --database)", (
        f"--database given {position} the command name should win over DATABASE_URL and PG* variables."
    )
    assert summary_line(result) == fully_applied(), "status should report the migrated database of --database."


def test_database_url_beats_pg_variables(pg: Pg, db: str, empty_db: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": pg.url(db), **pg_vars(pg, empty_db)}

    result = run_cli("status", cwd=tmp_path, env=env)

    assert_ok(result)
    assert database_line(result) == f"database: {pg.url(db)} (from DATABASE_URL)", (
        "DATABASE_URL should win over the PG* variables."
    )
    assert summary_line(result) == fully_applied(), "status should report the migrated database of DATABASE_URL."


def test_pg_variables_are_used_when_nothing_else_is_set(pg: Pg, db: str, tmp_path: Path) -> None:
    result = run_cli("status", cwd=tmp_path, env=pg_vars(pg, db))

    assert_ok(result)
    line = database_line(result)
    assert line.endswith("(from PG* variables)"), f"the PG* variables should pick the database: {line}"
    assert f"PGDATABASE={db}" in line, f"the status line should show the PG* variables in use: {line}"
    assert summary_line(result) == fully_applied(), "libpq should have connected to the database of PGDATABASE."


def test_pgservice_is_read_by_libpq_exactly_as_psql_reads_it(pg: Pg, db: str, tmp_path: Path) -> None:
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(f"[toolsdb_test]\nhost={pg.host}\nport={pg.port}\nuser=postgres\ndbname={db}\n")
    env = {"PGSERVICEFILE": str(service_file), "PGSERVICE": "toolsdb_test"}

    result = run_cli("status", cwd=tmp_path, env=env)
    by_psql = subprocess.run(
        [str(pg.bindir / "psql"), "-X", "-A", "-t", "-c", "select current_database()"],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        check=True,
    )

    assert_ok(result)
    assert database_line(result).endswith("(from PG* variables)"), "PGSERVICE should count as a PG* variable."
    assert by_psql.stdout.strip() == db, "psql itself should read the service file (test set-up)."
    assert summary_line(result) == fully_applied(), "toolsdb should reach the service's database, as psql does."


# -- 2. the embedded server -------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working directory whose embedded server runs with --tcp (one start for the module)."""
    workdir = tmp_path_factory.mktemp("embedded")
    try:
        started = run_cli("server", "start", "--tcp", cwd=workdir)
        assert_ok(started)
        yield workdir
    finally:
        run_cli("server", "stop", cwd=workdir)


def test_without_any_setting_the_embedded_server_is_used(embedded: Path) -> None:
    result = run_cli("status", cwd=embedded)

    assert_ok(result)
    line = database_line(result)
    assert line.endswith(f"(embedded server in {embedded / '.toolsdb'})"), (
        f"with no --database, DATABASE_URL or PG* variable the embedded server should be used: {line}"
    )
    assert f"server:   embedded, data {embedded / '.toolsdb' / 'data'}, pid " in result.stdout, (
        "status should name the embedded server in use."
    )


def test_server_status_exits_0_while_the_server_runs(embedded: Path) -> None:
    result = run_cli("server", "status", cwd=embedded)

    assert result.returncode == 0, f"server status should exit 0 while the server runs: {result.stderr}"
    assert re.search(r"^running\s+\| yes, pid \d+$", result.stdout, re.M), (
        f"server status should say the server runs: {result.stdout}"
    )


def test_server_url_is_accepted_by_psql(embedded: Path) -> None:
    url = run_cli("server", "url", cwd=embedded)
    assert_ok(url)

    result = psql(url.stdout.strip(), "select current_database()")

    assert url.stdout.startswith("postgresql://"), f"server url should print a postgresql:// URI: {url.stdout}"
    assert result.returncode == 0, f"psql should accept the URL of `server url`: {result.stderr}"
    assert result.stdout.strip() == "toolsdb", "the URL should name the toolsdb database."


def test_server_url_tcp_connects_over_127_0_0_1_with_the_password(embedded: Path) -> None:
    url = run_cli("server", "url", "--tcp", cwd=embedded)
    assert_ok(url)

    result = psql(url.stdout.strip(), "select inet_server_addr()")

    assert "@127.0.0.1:" in url.stdout, f"the --tcp URL should point at 127.0.0.1: {url.stdout}"
    assert result.returncode == 0, f"psql should log in over TCP with the URL's password: {result.stderr}"
    assert result.stdout.strip() == "127.0.0.1", "the connection should go over TCP, not the Unix socket."


def test_starting_a_running_server_says_so_and_refuses_other_options(embedded: Path) -> None:
    again = run_cli("server", "start", "--tcp", cwd=embedded)
    assert_ok(again)
    assert again.stdout.startswith("already running (pid "), again.stdout
    port = int(run_cli("server", "url", "--tcp", cwd=embedded).stdout.strip().rsplit(":", 1)[1].split("/")[0])
    other = run_cli("server", "start", "--tcp", "--port", str(port + 1 if port < 65535 else port - 1), cwd=embedded)
    assert other.returncode == 1
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "already runs" in lines[0] and "server stop" in lines[0], other.stderr


def test_the_embedded_folder_is_ignored_by_git(embedded: Path) -> None:
    ignore = embedded / ".toolsdb" / ".gitignore"

    assert ignore.exists(), ".toolsdb/ should hold a .gitignore."
    assert "*" in ignore.read_text().splitlines(), ".toolsdb/.gitignore should ignore everything with '*'."


def test_a_command_that_needs_a_database_starts_the_embedded_server(tmp_path: Path) -> None:
    try:
        migrated = run_cli("migrate", cwd=tmp_path)
        status = run_cli("status", cwd=tmp_path)
    finally:
        run_cli("server", "stop", cwd=tmp_path)

    assert_ok(migrated)
    assert f"applied {len(migration_ids())} migration(s)" in migrated.stdout, (
        f"migrate in a fresh folder should start the embedded server and migrate it: {migrated.stdout}"
    )
    assert_ok(status)
    assert summary_line(status) == fully_applied(), "status should then show every migration applied."


def test_server_status_exits_3_once_the_server_is_stopped(tmp_path: Path) -> None:
    try:
        assert_ok(run_cli("server", "start", cwd=tmp_path))
    finally:
        stopped = run_cli("server", "stop", cwd=tmp_path)
    status = run_cli("server", "status", cwd=tmp_path)

    assert stopped.stdout.strip() == "stopped", f"server stop should stop the running server: {stopped.stdout}"
    assert status.returncode == 3, f"server status should exit 3 (as pg_ctl) when stopped, not {status.returncode}."
    assert re.search(r"^running\s+\| no$", status.stdout, re.M), f"server status should say 'no': {status.stdout}"


def test_a_server_start_killed_during_initdb_leaves_nothing_that_looks_initialized(tmp_path: Path) -> None:
    """initdb writes into data.new, renamed to data once it succeeded: SIGKILL at
    any moment of the first start, and the next start makes a working server
    (a half-written data folder once passed for initialized and crashed at start)."""
    seed = int(os.environ.get("TOOLSDB_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    try:
        for delay in sorted(rng.uniform(0.05, 1.5) for _ in range(3)):
            proc = subprocess.Popen(
                [toolsdb_exe(), "server", "start"],
                cwd=tmp_path,
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)
            run_cli("server", "stop", cwd=tmp_path)
            data = tmp_path / ".toolsdb" / "data"
            assert not data.exists() or (data / "global" / "pg_control").exists(), f"seed {seed}: half a data folder"
        assert_ok(run_cli("server", "start", cwd=tmp_path))
        url = run_cli("server", "url", cwd=tmp_path).stdout.strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("select count(*) from pg_database").fetchone()[0] >= 3, f"seed {seed}"
    finally:
        run_cli("server", "stop", cwd=tmp_path)


# As root, the ordinary user is `nobody`; the venv's own interpreter may sit
# under /root (pyenv), out of its reach, so any Python of the same version it
# can run is used, with the venv's site-packages added by hand.
ORDINARY_USER = "nobody"
SITE_DIRS = os.pathsep.join(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
BOOT = (
    "import os, site, sys\n"
    "for folder in sys.argv.pop(1).split(os.pathsep): site.addsitedir(folder)\n"
    "sys.argv[0] = 'toolsdb'\n"
    "from toolsdb.cli import main\n"
    "main()\n"
)


@dataclass
class OrdinaryUser:
    """Runs toolsdb as a user without privileges (uid None: the tests already do)."""

    uid: int | None = None
    gid: int | None = None
    python: str | None = None

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        if self.uid is None:
            return run_cli(*args, cwd=cwd)
        return subprocess.run(
            [str(self.python), "-I", "-S", "-c", BOOT, SITE_DIRS, *args],
            capture_output=True,
            text=True,
            cwd=str(cwd),
            env=clean_env(HOME=str(cwd)),
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    @property
    def expected_uid(self) -> int:
        return os.geteuid() if self.uid is None else self.uid


def _python_for(user: pwd.struct_passwd) -> str | None:
    """A Python of this version that ``user`` can run and that imports toolsdb."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/local/bin", "/usr/bin"]
    candidates = [sys.executable, *(str(Path(folder) / version) for folder in folders if folder)]
    for candidate in dict.fromkeys(candidates):
        try:
            probe = subprocess.run(
                [candidate, "-I", "-S", "-c", BOOT, SITE_DIRS, "--version"],
                capture_output=True,
                cwd="/",
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                timeout=60,
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def ordinary() -> OrdinaryUser:
    if os.geteuid() != 0:
        return OrdinaryUser()
    try:
        user = pwd.getpwnam(ORDINARY_USER)
    except KeyError:
        pytest.skip(f"the tests run as root and there is no user {ORDINARY_USER!r} to run toolsdb as an ordinary user")
    python = _python_for(user)
    if python is None:
        pytest.skip(
            f"the tests run as root and no Python {sys.version_info.major}.{sys.version_info.minor} that "
            f"{ORDINARY_USER!r} can run (and that imports toolsdb from the venv) was found"
        )
    return OrdinaryUser(user.pw_uid, user.pw_gid, python)


@pytest.fixture
def ordinary_dir(ordinary: OrdinaryUser, tmp_path: Path) -> Iterator[Path]:
    """A working directory owned by the ordinary user (outside root's private pytest folder)."""
    if ordinary.uid is None:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="toolsdb-user-"))
    os.chown(folder, ordinary.uid, ordinary.gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_embedded_server_works_for_an_ordinary_user(ordinary: OrdinaryUser, ordinary_dir: Path) -> None:
    try:
        started = ordinary.run("server", "start", cwd=ordinary_dir)
        assert_ok(started)
        migrated = ordinary.run("migrate", cwd=ordinary_dir)
        assert_ok(migrated)
    finally:
        stopped = ordinary.run("server", "stop", cwd=ordinary_dir)

    assert f"applied {len(migration_ids())} migration(s)" in migrated.stdout, (
        f"an ordinary user should be able to migrate the embedded database: {migrated.stdout}"
    )
    assert stopped.stdout.strip() == "stopped", f"an ordinary user should be able to stop the server: {stopped}"
    owner = (ordinary_dir / ".toolsdb" / "data").stat().st_uid
    assert owner == ordinary.expected_uid, "the server should have run as the ordinary user itself."


# -- 3. binaries that cannot run here -----------------------------------------------------


@pytest.mark.parametrize("kind", ["not-executable", "exits-1"])
def test_binaries_that_cannot_run_name_what_to_set_instead(tmp_path: Path, kind: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    postgres = bindir / "postgres"
    if kind == "not-executable":
        postgres.write_text("not a program\n")
        postgres.chmod(0o644)
    else:
        postgres.write_text("#!/bin/sh\necho 'cannot execute binary file: Exec format error' >&2\nexit 1\n")
        postgres.chmod(0o755)
    workdir = tmp_path / "work"
    workdir.mkdir()

    result = run_cli("migrate", cwd=workdir, env={"TOOLSDB_PG_BINDIR": str(bindir)})

    assert_one_error_line(result, "cannot run", "DATABASE_URL")


# -- 4. manners: help and one-line errors -------------------------------------------------


def command_tree() -> list:
    """Every command and subcommand of ``toolsdb``, with its path."""

    def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
        yield path, command
        if isinstance(command, click.Group):  # list_commands: the modules imported on demand too
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from walk(command.get_command(ctx, name), (*path, name))

    return [pytest.param(path, command, id=" ".join(("toolsdb", *path))) for path, command in walk(cli, ())]


@pytest.mark.parametrize(("path", "command"), command_tree())
def test_every_command_has_complete_help(path: tuple[str, ...], command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="toolsdb")

    assert result.exit_code == 0, f"toolsdb {' '.join(path)} --help should exit 0: {result.output}"
    assert result.output.startswith(" ".join(["Usage: toolsdb", *path])), "help should start with the usage line."
    assert command.help, f"toolsdb {' '.join(path)} should have a docstring."
    assert " ".join(command.help.split()) in " ".join(result.output.split()), "help should show the whole docstring."
    options = [p for p in command.get_params(click.Context(command)) if isinstance(p, click.Option)]
    for option in options:
        assert option.help, f"option {option.opts[0]} of toolsdb {' '.join(path)} has no help text."
        assert all(opt in result.output for opt in option.opts), f"help should list {option.opts}."


@pytest.mark.parametrize(
    ("url", "fact"),
    [
        ("postgresql://x:y@:notaport/db", "notaport"),
        ("mysql://x", "mysql://x"),
        ("nonsense", "nonsense"),
    ],
)
def test_a_malformed_url_is_one_clear_line(tmp_path: Path, url: str, fact: str) -> None:
    result = run_cli("status", "--database", url, cwd=tmp_path)

    assert_one_error_line(result, fact)


def test_an_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()

    result = run_cli("status", "--database", f"postgresql://postgres@127.0.0.1:{port}/toolsdb", cwd=tmp_path)

    assert_one_error_line(result, "cannot connect", f"127.0.0.1:{port}")


def test_a_wrong_password_is_one_clear_line(embedded: Path) -> None:
    url = run_cli("server", "url", "--tcp", cwd=embedded).stdout.strip()
    wrong = re.sub(r"^(postgresql://postgres:)[^@]*@", r"\1wrong@", url)
    assert wrong != url, f"the TCP URL should carry a password to replace: {url}"

    result = run_cli("status", "--database", wrong, cwd=embedded)

    line = assert_one_error_line(result, "password")
    assert "wrong" not in line, "the error line should not show the password."


def test_nothing_to_roll_back_is_one_clear_line(pg: Pg, empty_db: str, tmp_path: Path) -> None:
    result = run_cli("rollback", "--database", pg.url(empty_db), cwd=tmp_path)

    assert_one_error_line(result, "nothing to roll back")


def test_an_unknown_migration_id_is_one_clear_line(pg: Pg, db: str, tmp_path: Path) -> None:
    result = run_cli("rollback", "--id", "9999.nope", "--database", pg.url(db), cwd=tmp_path)

    assert_one_error_line(result, "9999.nope")
    status = run_cli("status", "--database", pg.url(db), cwd=tmp_path)
    assert summary_line(status) == fully_applied(), "a rejected rollback should roll nothing back."


def test_no_write_permission_for_the_embedded_folder_is_one_clear_line(
    ordinary: OrdinaryUser, ordinary_dir: Path
) -> None:
    folder = ordinary_dir / ".toolsdb"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = ordinary.run("migrate", cwd=ordinary_dir)
    finally:
        folder.chmod(0o755)

    assert_one_error_line(result, "no write permission", str(folder))


def test_reset_without_force_and_without_a_terminal_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("reset", cwd=tmp_path)

    assert_one_error_line(result, "--force")
    assert not (tmp_path / ".toolsdb").exists(), "reset should have touched nothing before being confirmed."


# -- 5. --verbose ----------------------------------------------------------------------------


def test_verbose_echoes_the_sql_on_stderr(pg: Pg, empty_db: str, tmp_path: Path) -> None:
    result = run_cli("-v", "migrate", "--database", pg.url(empty_db), cwd=tmp_path)

    assert_ok(result)
    assert "create table if not exists toolsdb.users" in result.stderr, "--verbose should echo the SQL on stderr."
    assert "create table" not in result.stdout, "the echoed SQL should not go to stdout."


# -- 6. lists print as tables ----------------------------------------------------------------


def status_rows(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The migration rows of ``toolsdb status``, after checking the table's frame."""
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("migration "))
    ids = migration_ids()
    assert re.fullmatch(r"migration\s+\| state\s+\| applied at \(UTC\)", lines[header]), "the header row is wrong."
    assert re.fullmatch(r"-+(\+-+)+", lines[header + 1]), "a separator line should follow the header."
    rows = lines[header + 2 : header + 2 + len(ids)]
    assert [row.split(" | ")[0].strip() for row in rows] == ids, "there should be one row per migration, in order."
    footer = f"({len(ids)} row{'s' if len(ids) != 1 else ''})"
    assert lines[header + 2 + len(ids)] == footer, f"the table should end with the footer {footer}."
    return rows


def test_status_on_an_empty_database_lists_everything_pending_and_creates_nothing(
    pg: Pg, empty_db: str, tmp_path: Path
) -> None:
    result = run_cli("status", "--database", pg.url(empty_db), cwd=tmp_path)

    assert_ok(result)
    assert database_line(result) == f"database: {pg.url(empty_db)} (from --database)", "status names the database."
    rows = status_rows(result)
    assert all(re.fullmatch(r"\S+\s+\| pending \|", row) for row in rows), f"every row should be pending: {rows}"
    assert summary_line(result) == f"0 applied, {len(rows)} pending", "the summary should count the pending ones."
    with psycopg.connect(pg.conninfo(empty_db)) as conn:
        schemas = conn.execute("select nspname from pg_namespace where nspname like 'toolsdb%'").fetchall()
    assert schemas == [], f"status should create nothing, yet these schemas exist: {schemas}"


def test_status_on_a_migrated_database_lists_everything_applied(pg: Pg, db: str, tmp_path: Path) -> None:
    result = run_cli("status", "--database", pg.url(db), cwd=tmp_path)

    assert_ok(result)
    rows = status_rows(result)
    applied = r"\S+\s+\| applied \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert all(re.fullmatch(applied, row) for row in rows), f"every row should be applied, with a time: {rows}"
    assert summary_line(result) == fully_applied(), "the summary should count the applied ones."


# -- 7. new-migration ------------------------------------------------------------------------


def test_new_migration_creates_the_next_numbered_pair(sql_copy: Path, tmp_path: Path) -> None:
    previous = migration_ids(sql_copy)[-1]
    new_id = f"{int(previous[:4]) + 1:04d}.add_widgets"

    result = run_cli("new-migration", "add_widgets", cwd=tmp_path, env={"TOOLSDB_SQL_ROOT": str(sql_copy)})

    assert_ok(result)
    forward = sql_copy / "migrations" / f"{new_id}.sql"
    backward = sql_copy / "migrations" / f"{new_id}.rollback.sql"
    assert forward.exists(), f"new-migration should create {forward.name}: {result.stdout}"
    assert backward.exists(), f"new-migration should create {backward.name}: {result.stdout}"
    assert f"-- depends: {previous}\n" in forward.read_text(), f"{forward.name} should depend on {previous}."
    assert not (ROOT / "migrations" / forward.name).exists(), "the migration should go to TOOLSDB_SQL_ROOT only."


def test_new_migration_with_a_bad_name_is_one_clear_line(sql_copy: Path, tmp_path: Path) -> None:
    before = sorted((sql_copy / "migrations").iterdir())

    result = run_cli("new-migration", "Bad-Name", cwd=tmp_path, env={"TOOLSDB_SQL_ROOT": str(sql_copy)})

    assert_one_error_line(result, "Bad-Name")
    assert sorted((sql_copy / "migrations").iterdir()) == before, "a bad name should create no file."


# -- 8. seed -----------------------------------------------------------------------------------


def test_seed_refuses_an_unmigrated_database(pg: Pg, empty_db: str, tmp_path: Path) -> None:
    result = run_cli("seed", "--database", pg.url(empty_db), cwd=tmp_path)

    assert_one_error_line(result, "toolsdb migrate")


def test_seed_succeeds_twice_on_a_migrated_database(pg: Pg, db: str, tmp_path: Path) -> None:
    first = run_cli("seed", "--database", pg.url(db), cwd=tmp_path)
    second = run_cli("seed", "--database", pg.url(db), cwd=tmp_path)

    assert_ok(first)
    assert_ok(second)
    assert second.stdout.startswith("seeded "), f"the second seed should report what it loaded: {second.stdout}"


def test_psql_passes_its_own_short_options_through(pg: Pg, db: str) -> None:
    url = pg.url(db)
    interpolated = run_cli("psql", "--database", url, "-X", "-At", "-v", "x=41", input="select :x + 1;\n")
    assert interpolated.returncode == 0, interpolated.stderr
    assert interpolated.stdout.strip() == "42", "-v is psql's variable, not toolsdb's --verbose"
    other = run_cli("psql", "--database", url, "-X", "-At", "-d", "postgres", "-c", "select current_database()")
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "postgres", "-d is psql's database, on the same server"

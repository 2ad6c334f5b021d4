"""`toolsdb restore` killed at random moments: the target is unchanged or completely restored.

A restore runs three processes: toolsdb (Python), pg_restore (writing the
SQL) and psql (loading it, in one transaction). Each round starts a restore,
waits a random time within the length of a whole restore, and sends SIGKILL
or SIGTERM to one of the three that is still alive. Once every process of the
restore is gone and the server has closed its connection, the target must be
exactly as before (an empty database, or with --force a migrated one holding
a marker row) or exactly a complete restore: the same rows, policies, tables
with row-level security, triggers and definitions as an uninterrupted restore.

Before the fix, toolsdb dying made psql see the end of its input, apply the
bootstrap and commit: 10 of 30 kills left a database without its policies.
The random generator is seeded (printed on failure) so a failing round can
be replayed.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from .conftest import Pg, _fresh_name, clean_env, run_cli, toolsdb_exe

ROUNDS = {"18": 32, "15": 8}  # PostgreSQL major -> kills; the pg18 leg carries the 30+ the issue asks for
EVENTS = 60_000  # rows enough for a restore to last a moment worth aiming into
SCHEMAS = ("toolsdb", "toolsdb_private", "toolsdb_migrations")


@dataclass
class Archive:
    path: Path
    seconds: float  # one whole restore, measured here
    complete: tuple  # fingerprint of a complete restore


def fingerprint(conninfo: str) -> tuple:
    """What a restore creates: schemas, policies, tables with RLS, triggers,
    functions and views, and every table's row count and checksum."""
    with psycopg.connect(conninfo, autocommit=True) as conn:

        def one(sql: str, *args):
            return conn.execute(sql, args).fetchone()[0]

        schemas = one("select array_agg(nspname::text order by nspname) from pg_namespace where nspname !~ '^pg_'")
        policies = one("select count(*) from pg_policies where schemaname = any(%s)", list(SCHEMAS))
        rls = one(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relrowsecurity and n.nspname = any(%s)",
            list(SCHEMAS),
        )
        triggers = one("select count(*) from pg_trigger where not tgisinternal")
        routines = one(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = any(%s)",
            list(SCHEMAS),
        )
        tables = [
            r[0]
            for r in conn.execute(
                "select format('%%I.%%I', n.nspname, c.relname) from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where c.relkind = 'r' and n.nspname = any(%s) order by 1",
                (list(SCHEMAS),),
            )
        ]
        rows = tuple(
            (
                t,
                *conn.execute(
                    f"select count(*), md5(coalesce(string_agg(x::text, '' order by x::text), '')) from {t} as x"
                ).fetchone(),
            )
            for t in tables
        )
    return schemas, policies, rls, triggers, routines, rows


@pytest.fixture(scope="module")
def archive(pg: Pg, template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    folder = tmp_path_factory.mktemp("restore-kills")
    with pg.clone(_fresh_name("kill_source"), template) as source:
        assert run_cli("seed", "--database", pg.url(source)).returncode == 0
        with psycopg.connect(pg.conninfo(source), autocommit=True) as conn:
            conn.execute("select toolsdb.create_session('restore-kills')")
            conn.execute(
                "insert into toolsdb.events (session_id, event_type, payload)"
                " select 'restore-kills', 'PreToolUse', jsonb_build_object('n', n, 'pad', repeat('x', 200))"
                " from generate_series(1, %s) as n",
                (EVENTS,),
            )
        path = folder / "source.dump"
        done = run_cli("backup", "-q", str(path), "--database", pg.url(source), cwd=folder)
        assert done.returncode == 0, done.stderr
    with pg.clone(_fresh_name("kill_whole"), None) as whole:
        started = time.monotonic()
        done = run_cli("restore", "-q", str(path), "--database", pg.url(whole))
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        complete = fingerprint(pg.conninfo(whole))
    assert complete[1] > 0 and complete[2] > 0, "a complete restore has policies and tables with RLS"
    yield Archive(path, seconds, complete)


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (children, grandchildren)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def name_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def settle(pg: Pg, proc: subprocess.Popen, dbname: str) -> None:
    """Wait until every process of the restore is gone and no backend is connected to ``dbname``."""
    proc.wait(timeout=120)
    deadline = time.monotonic() + 120
    while True:
        try:
            os.killpg(proc.pid, 0)  # orphans of a killed toolsdb keep its process group
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"processes of the restore outlived it: {descendants(1)}"
        time.sleep(0.05)
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        while conn.execute("select count(*) from pg_stat_activity where datname = %s", (dbname,)).fetchone()[0]:
            assert time.monotonic() < deadline, "a backend of the restore stayed connected"
            time.sleep(0.05)


def test_a_restore_killed_anywhere_leaves_the_target_unchanged_or_complete(
    pg: Pg, template: str, archive: Archive
) -> None:
    seed = int(os.environ.get("TOOLSDB_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    outcomes: dict[str, int] = {"unchanged": 0, "complete": 0}
    for round_ in range(ROUNDS[pg.major]):
        force = round_ % 2 == 1  # every other round restores over a migrated database holding a marker row
        victim_kind = ("toolsdb", "pg_restore", "psql")[round_ % 3]
        signum = (signal.SIGKILL, signal.SIGTERM)[rng.randrange(2)]
        delay = rng.uniform(0, archive.seconds * 1.1)
        context = f"seed {seed}, round {round_}: {signum.name} to {victim_kind} after {delay:.2f} s, force={force}"
        dbname = _fresh_name("kill_target")
        with pg.clone(dbname, template if force else None):
            if force:
                with psycopg.connect(pg.conninfo(dbname), autocommit=True) as conn:
                    conn.execute("select toolsdb.create_session('kept-unless-restored')")
            before = fingerprint(pg.conninfo(dbname))
            proc = subprocess.Popen(
                [toolsdb_exe(), "restore", "-q", str(archive.path), "--database", pg.url(dbname)]
                + (["--force"] if force else []),
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                time.sleep(delay)
                if victim_kind == "toolsdb":
                    victims = [proc.pid]
                else:
                    victims = [p for p in descendants(proc.pid) if name_of(p) == victim_kind]
                for pid in victims[:1]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)
                settle(pg, proc, dbname)
                stderr = proc.stderr.read().decode()
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                proc.stderr.close()
            assert "Traceback" not in stderr, f"{context}: {stderr}"
            after = fingerprint(pg.conninfo(dbname))
            if after == before:
                outcomes["unchanged"] += 1
                assert proc.returncode != 0, f"{context}: toolsdb said it restored, the database is unchanged"
                if victim_kind != "toolsdb":  # toolsdb lived to report it in one line
                    assert "failed, nothing was changed" in stderr, f"{context}: {stderr}"
            elif after == archive.complete:
                outcomes["complete"] += 1
                if victim_kind != "toolsdb":  # also when psql died just after sending COMMIT
                    assert proc.returncode == 0, f"{context}: the restore is complete, toolsdb said: {stderr}"
            else:
                differs = [i for i, (a, b) in enumerate(zip(after, archive.complete, strict=False)) if a != b]
                pytest.fail(
                    f"{context}: the target is neither unchanged nor complete "
                    f"(policies {after[1]}/{archive.complete[1]}, RLS tables {after[2]}/{archive.complete[2]}, "
                    f"triggers {after[3]}/{archive.complete[3]}, differing parts {differs}); toolsdb said: {stderr}"
                )
    print(f"seed {seed}: {outcomes} in {ROUNDS[pg.major]} kills (one restore: {archive.seconds:.2f} s)")
    assert outcomes["unchanged"] > 0, f"seed {seed}: no kill landed before the commit; the rounds proved nothing"

"""Every client path behind a real PgBouncer 1.18 in transaction pooling mode
(tests/pgbouncer.py: Debian's package, 4 server connections shared by every
client), with the failures found by hand as regression tests:

* the hook's start-up parameters (PgBouncer refuses ``options``) and its
  time budget, which must still stop a statement waiting on a lock;
* the pool: no ``prepared statement "_pg3_0" already exists``, its statement
  timeout in every transaction, nothing (timeout, read-only mode) left on a
  server connection for the next client;
* row-level security context set per transaction: interleaved clients of one
  role never see each other's project;
* migrate refuses to run through the pooler without DATABASE_DIRECT_URL,
  leaving nothing behind (no role, no advisory lock, no public.yoyo_lock),
  and with it migrates while a dozen other clients work through the pooler;
* toolsdb serve, toolsdb worker (polling, or LISTEN on the direct URL), the
  event queue with several claimers, and the Python APIs of the designs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.types.json import Jsonb

from toolsdb import config as cfg
from toolsdb import pooler
from toolsdb.pool import create_pool
from toolsdb.server import SUPERUSER
from toolsdb.worker import Worker

from .conftest import Pg, clean_env, run_cli
from .dbhelpers import run_workers
from .hookhelpers import Hook, assert_stored, events_of, new_session_id, payload
from .pgbouncer import POOL_SIZE, Bouncer
from .servehelpers import create_token, start_serve
from .workerhelpers import destination, running, stand_in, wait_for

KEY = Fernet.generate_key().decode()


def server_sessions(bouncer: Bouncer, dbname: str, user: str = SUPERUSER) -> list[tuple]:
    """What each of the pooler's server connections for (dbname, user) carries
    between transactions: held open at once (one client transaction each, so
    PgBouncer hands out every server connection it has), then asked for its
    settings from the session's own state."""
    clients = [psycopg.connect(bouncer.conninfo(dbname, user), prepare_threshold=None) for _ in range(POOL_SIZE)]
    try:
        seen = []
        for client in clients:
            seen.append(
                client.execute(
                    "select pg_backend_pid(), current_user, current_setting('statement_timeout'),"
                    " current_setting('default_transaction_read_only'), current_setting('toolsdb.project_id', true),"
                    " (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())"
                ).fetchone()
            )
        assert len({row[0] for row in seen}) == POOL_SIZE, "each client held a server connection of its own"
        return [row[1:] for row in seen]
    finally:
        for client in clients:
            client.close()


def clean_sessions(bouncer: Bouncer, dbname: str, user: str = SUPERUSER) -> None:
    for who, timeout, read_only, project, advisory in server_sessions(bouncer, dbname, user):
        assert who == user, f"a server connection was left as {who}"
        assert timeout == "0", f"a server connection was left with statement_timeout {timeout}"
        assert read_only == "off", "a server connection was left read-only"
        assert project in (None, ""), f"a server connection was left with toolsdb.project_id {project}"
        assert advisory == 0, "a server connection was left holding an advisory lock"


class Busy:
    """Clients of the pooler running short statements until stopped, so server
    connections change hands between the transactions of the client under test."""

    def __init__(self, bouncer: Bouncer, dbname: str, count: int) -> None:
        self.bouncer, self.dbname = bouncer, dbname
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.counts = [0] * count
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(count)]

    def run(self, n: int) -> None:
        with psycopg.connect(self.bouncer.conninfo(self.dbname), autocommit=True, prepare_threshold=None) as conn:
            while not self.stop.is_set():
                try:
                    conn.execute("select current_user, pg_sleep(0.002)")
                    self.counts[n] += 1
                except psycopg.Error as exc:
                    self.failures.append(str(exc))
                    return

    def check(self) -> None:
        assert self.failures == [] and min(self.counts) > 0, (self.failures, self.counts)


@contextlib.contextmanager
def busy_clients(bouncer: Bouncer, dbname: str, count: int = 8) -> Iterator[Busy]:
    busy = Busy(bouncer, dbname, count)
    for thread in busy.threads:
        thread.start()
    try:
        yield busy
    finally:
        busy.stop.set()
        for thread in busy.threads:
            thread.join(30)


def test_detection_tells_the_pooler_from_the_server(pg: Pg, db: str, bouncer: Bouncer) -> None:
    assert pooler.shares_server_connections(bouncer.conninfo(db)) is True
    assert pooler.shares_server_connections(pg.conninfo(db)) is False
    with busy_clients(bouncer, db, 8) as busy:  # a busy pooler hands out other server connections
        for _ in range(5):
            assert pooler.shares_server_connections(bouncer.conninfo(db)) is True
            assert pooler.shares_server_connections(pg.conninfo(db)) is False
    busy.check()


# -- the hook ------------------------------------------------------------------------------


def test_the_hook_stores_events_through_the_pooler_and_keeps_its_budget(
    pg: Pg, db: str, bouncer: Bouncer, tmp_path: Path
) -> None:
    hook = Hook(pg, db, tmp_path)
    via = {"DATABASE_URL": bouncer.url(db)}
    session_id = new_session_id()
    sent = [payload("PreToolUse", session_id, tmp_path, tool_name="Bash", n=n) for n in range(8)]
    for event in sent:
        assert_stored(hook.run(event, "hook", "--strict", env=via), hook.log)
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        assert [e["payload"] for e in events_of(su, session_id)] == sent
        # The budget's timeouts are set local: a locked session row stops the hook within it.
        with psycopg.connect(pg.conninfo(db)) as locker:
            locker.execute("select 1 from toolsdb.sessions where session_id = %s for update", (session_id,))
            started = time.monotonic()
            result = hook.run(
                payload("Stop", session_id, tmp_path), "hook", "--strict", env={**via, "TOOLSDB_HOOK_TIMEOUT": "1"}
            )
            waited = time.monotonic() - started
        assert result.code != 0 and "1 s budget" in result.stderr, result
        assert waited < 30, f"the hook waited {waited:.1f} s on a locked row behind the pooler"
        assert len(events_of(su, session_id)) == len(sent)
    clean_sessions(bouncer, db)


# -- the pool --------------------------------------------------------------------------------


def test_the_pool_shares_server_connections_without_prepared_statement_errors_or_leaks(
    pg: Pg, db: str, bouncer: Bouncer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLSDB_POOLER", raising=False)
    errors: list[str] = []
    with (
        create_pool(bouncer.url(db), max_size=12, query_timeout_ms=4321) as pool,
        create_pool(bouncer.url(db), read_only=True, max_size=12, query_timeout_ms=1234) as readers,
    ):
        assert pool.kwargs["prepare_threshold"] is None, "detected: no server-side prepared statements"

        def work(n: int, barrier: threading.Barrier) -> None:
            barrier.wait()
            for round_ in range(4):
                target = readers if (n + round_) % 2 else pool
                expected = "1234ms" if target is readers else "4321ms"
                with target.connection() as conn:
                    for _ in range(8):  # psycopg would prepare from the 5th on
                        seen = conn.execute("select current_setting('statement_timeout'), %s::int", (n,)).fetchone()
                        if seen != (expected, n):
                            errors.append(f"client {n}: {seen}")
                    if target is readers:
                        mode = conn.execute("show transaction_read_only").fetchone()[0]
                        if mode != "on":
                            errors.append(f"client {n}: a read-only pool's transaction was {mode}")

        run_workers(12, work)
    assert errors == []
    clean_sessions(bouncer, db)
    with psycopg.connect(bouncer.conninfo(db), autocommit=True, prepare_threshold=None) as plain:
        plain.execute("create table toolsdb_private.pooler_probe (n int primary key)")
        plain.execute("drop table toolsdb_private.pooler_probe")


# -- row-level security -------------------------------------------------------------------------


def test_interleaved_clients_of_one_role_see_only_their_projects(
    pg: Pg, db: str, bouncer: Bouncer, app_login: str
) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        owner = su.execute(
            "insert into toolsdb.users (username, email) values ('pgb-owner', 'pgb@example.com') returning user_id"
        ).fetchone()[0]
        projects = [
            str(
                su.execute(
                    "insert into toolsdb.projects (slug, name, owner_id) values (%s, %s, %s) returning project_id",
                    (slug, slug, owner),
                ).fetchone()[0]
            )
            for slug in ("pgb-a", "pgb-b", "pgb-c")
        ]
    seen: dict[int, set] = {}

    def client(n: int, barrier: threading.Barrier) -> None:
        mine = projects[n % len(projects)]
        with psycopg.connect(bouncer.conninfo(db, app_login), prepare_threshold=None) as conn:
            barrier.wait()
            for _ in range(30):
                with conn.transaction():
                    conn.execute("select set_config('toolsdb.project_id', %s, true)", (mine,))
                    rows = {r[0] for r in conn.execute("select project_id::text from toolsdb.projects")}
                seen.setdefault(n, set()).update(rows)
                # With no context of its own, a client sees no project: nothing leaked in.
                leaked = conn.execute("select count(*) from toolsdb.projects").fetchone()[0]
                conn.commit()
                assert leaked == 0, f"client {n} saw {leaked} project(s) with no context"

    run_workers(9, client)
    for n, rows in seen.items():
        assert rows == {projects[n % len(projects)]}, f"client {n} saw {rows}"
    clean_sessions(bouncer, db, app_login)


# -- migrate -----------------------------------------------------------------------------------


def test_migrate_refuses_the_pooler_and_migrates_on_the_direct_url_while_others_work(
    pg: Pg, empty_db: str, bouncer: Bouncer
) -> None:
    refused = run_cli("migrate", env={"DATABASE_URL": bouncer.url(empty_db)})
    assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused
    assert "DATABASE_DIRECT_URL" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    said = run_cli("migrate", env={"DATABASE_URL": bouncer.url(empty_db), "TOOLSDB_POOLER": "transaction"})
    assert said.returncode != 0 and "DATABASE_DIRECT_URL" in said.stderr, said
    with psycopg.connect(pg.conninfo(empty_db), autocommit=True) as su:
        assert su.execute("select count(*) from pg_tables where schemaname in ('public', 'toolsdb')").fetchone()[0] == 0

    with busy_clients(bouncer, empty_db, 12) as busy:
        done = run_cli(
            "migrate",
            env={"DATABASE_URL": bouncer.url(empty_db), "DATABASE_DIRECT_URL": pg.url(empty_db)},
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    assert "(from DATABASE_DIRECT_URL)" in done.stdout, done.stdout
    busy.check()
    with psycopg.connect(pg.conninfo(empty_db), autocommit=True) as su:
        assert su.execute("select count(*) from pg_tables where tablename = 'yoyo_lock'").fetchone()[0] <= 1
        assert su.execute("select to_regclass('public.yoyo_lock')").fetchone()[0] is None
    again = run_cli("status", env={"DATABASE_URL": bouncer.url(empty_db), "DATABASE_DIRECT_URL": pg.url(empty_db)})
    assert again.returncode == 0 and "0 pending" in again.stdout, again.stdout
    clean_sessions(bouncer, empty_db)


# -- toolsdb serve ------------------------------------------------------------------------------


def test_serve_stores_through_the_pooler(pg: Pg, db: str, bouncer: Bouncer, tmp_path: Path) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        su.execute("insert into toolsdb.users (username, email) values ('pgb-serve', 'pgbs@example.com')")
    token = create_token(pg.url(db), "--user", "pgb-serve")
    served = start_serve(bouncer.url(db), tmp_path / "spool")
    try:
        session_id = new_session_id()
        with busy_clients(bouncer, db) as busy:
            for n in range(30):
                status, body = served.post(payload("PostToolUse", session_id, tmp_path, tool_name="Read", n=n), token)
                assert (status, body) == (200, b"{}"), (status, body)
        busy.check()
        assert served.health()["database"] == "up", "".join(served.stderr)
    finally:
        served.stop()
    stderr = "".join(served.stderr)
    assert "prepared statement" not in stderr, stderr
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        assert [e["payload"]["n"] for e in events_of(su, session_id)] == list(range(30))
    assert list((tmp_path / "spool").glob("*.jsonl")) == [], "nothing went to the spool"
    clean_sessions(bouncer, db)


# -- toolsdb worker and the queues -------------------------------------------------------------


def _notifications_for(su: psycopg.Connection, keyring: cfg.KeyRing, url: str, count: int) -> uuid.UUID:
    alice = su.execute(
        "insert into toolsdb.users (username, email) values ('pgb-alice', 'pgba@example.com') returning user_id"
    ).fetchone()[0]
    destination(su, "pgb-slack", "slack", url, alice, keys=keyring)
    for n in range(count):
        su.execute(
            "select toolsdb.hook_ingest(%s, %s)",
            (
                Jsonb({"session_id": f"pgb-{n}", "hook_event_name": "Stop", "cwd": "/w"}),
                Jsonb({"user_id": str(alice)}),
            ),
        )
    return alice


def test_the_worker_delivers_through_the_pooler_polling_or_woken_on_the_direct_url(
    pg: Pg, db: str, bouncer: Bouncer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(cfg.KEY_ENV, KEY)
    keyring = cfg.KeyRing.load()
    with stand_in() as slack, psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        path = "/services/T/B/pgb"
        _notifications_for(su, keyring, slack.url(path), 7)
        stats = Worker(bouncer.conninfo(db), name="pgb-once", keys=keyring).run(once=True)
        assert stats.sent == 7, stats
        alice = su.execute("select user_id from toolsdb.users where username = 'pgb-alice'").fetchone()[0]

        def stop_event(session: str) -> None:
            su.execute(
                "select toolsdb.hook_ingest(%s, %s)",
                (
                    Jsonb({"session_id": session, "hook_event_name": "Stop", "cwd": "/w"}),
                    Jsonb({"user_id": str(alice)}),
                ),
            )

        # A running worker without a direct URL polls (LISTEN hears nothing through the pooler) ...
        with running(Worker(bouncer.conninfo(db), name="pgb-poll", keys=keyring, poll=0.5), join_timeout=30):
            time.sleep(1)
            stop_event("pgb-late")
            wait_for(lambda: len(slack.bodies(path)) >= 8, 60)
        assert len(slack.bodies(path)) == 8 and "LISTEN hears nothing" in caplog.text
        # ... and with one it is woken by LISTEN on the server itself, long before its 30 s poll.
        with running(Worker(bouncer.conninfo(db), pg.conninfo(db), name="pgb-listen", keys=keyring, poll=30)):
            time.sleep(1)
            stop_event("pgb-woken")
            wait_for(lambda: len(slack.bodies(path)) >= 9, 20)
        assert len(slack.bodies(path)) == 9, slack.bodies(path)
        assert su.execute("select count(*) from toolsdb.notifications where status <> 'sent'").fetchone()[0] == 0
    clean_sessions(bouncer, db)


def test_event_claimers_through_the_pooler_take_each_event_once(pg: Pg, db: str, bouncer: Bouncer) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        for n in range(400):
            su.execute("select toolsdb.insert_event(%s, %s, %s)", (f"pgb-q-{n % 7}", "pre_tool_use", Jsonb({"n": n})))
    taken: list[list[int]] = []

    def claimer(n: int, barrier: threading.Barrier) -> None:
        mine: list[int] = []
        with psycopg.connect(bouncer.conninfo(db), autocommit=True, prepare_threshold=None) as conn:
            barrier.wait()
            while True:
                rows = conn.execute(
                    "select event_id, claim_token from toolsdb.get_unprocessed_events(10, '1 minute', %s)",
                    (f"pgb-{n}",),
                ).fetchall()
                if not rows:
                    break
                ids = [r[0] for r in rows]
                marked = conn.execute("select toolsdb.mark_events_processed(%s, %s)", (ids, rows[0][1])).fetchone()
                assert marked[0] == len(ids), marked
                mine.extend(ids)
        taken.append(mine)

    run_workers(6, claimer)
    every = [i for mine in taken for i in mine]
    assert len(every) == 400 and len(set(every)) == 400, (len(every), len(set(every)))
    clean_sessions(bouncer, db)


# -- the Python APIs of the designs ------------------------------------------------------------


def test_the_design_apis_work_through_the_pooler(
    pg: Pg, db: str, bouncer: Bouncer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", bouncer.url(db))
    from toolsdb.compat import agents
    from toolsdb.compat.notifications import Database

    with Database("~/.claude/state/notifications.db") as notes:
        for n in range(8):
            event_id = notes.insert_event(session_id="pgb-n", event_type="pre_tool_use", payload={"n": n})
            notification = notes.insert_notification(
                event_id=event_id, session_id="pgb-n", notification_type="permission", backend="slack", payload={}
            )
            notes.mark_notification_sent(notification)
    agents.use_database(bouncer.url(db))
    try:
        for n in range(8):
            user_id = agents.create_user(agents.User(email=f"pgb{n}@example.com", name=f"P{n}"))
            assert agents.get_user(user_id).name == f"P{n}"
        _users, total = agents.list_users({}, page=1, page_size=100)
        assert total >= 8
    finally:
        agents.use_database(None)
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        assert su.execute("select count(*) from toolsdb.notifications where status = 'sent'").fetchone()[0] == 8
    clean_sessions(bouncer, db)


def test_backup_refuses_the_pooler_and_dumps_through_the_direct_url(
    pg: Pg, db: str, bouncer: Bouncer, tmp_path: Path
) -> None:
    """pg_dump sets session settings before its transaction: through a
    transaction pooler they would land on other clients' server connections."""
    refused = run_cli("backup", "-q", str(tmp_path / "a.dump"), env={"DATABASE_URL": bouncer.url(db)}, cwd=tmp_path)
    assert refused.returncode != 0 and "DATABASE_DIRECT_URL" in refused.stderr, refused
    assert "Traceback" not in refused.stderr and not (tmp_path / "a.dump").exists()
    done = run_cli(
        "backup", "-q", str(tmp_path / "b.dump"),
        env={"DATABASE_URL": bouncer.url(db), "DATABASE_DIRECT_URL": pg.url(db)}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0 and (tmp_path / "b.dump").stat().st_size > 0, done.stderr
    clean_sessions(bouncer, db)


def test_the_agent_tools_api_works_through_the_pooler(pg: Pg, empty_db: str, bouncer: Bouncer) -> None:
    """The agent-tools design's quick start (its get_db() migrates: on the direct URL)
    and its README calls, the cache read ten times over (psycopg would prepare it)."""
    from .test_design_tools import SETUP, USE

    checks = """
for _ in range(10):
    assert cache.get("abc123")["extracted_data"] == {"keywords": ["sunset"]}
assert [e["entity_id"] for e in audit.get_events(entity_type="permission")] == ["perm_bash"]
assert [b["bug_id"] for b in escalator.get_escalations(status="pending")] == ["bug_001"]
print("ok")
"""
    env = {"TOOLS_DB_URL": bouncer.url(empty_db), "DATABASE_DIRECT_URL": pg.url(empty_db)}
    for code in (SETUP, USE + checks):
        done = subprocess.run(
            [sys.executable, "-c", code], env=clean_env(**env), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok"), done.stdout
    clean_sessions(bouncer, empty_db)


def test_a_bad_pooler_setting_is_one_line(pg: Pg, db: str) -> None:
    done = run_cli("status", "--database", pg.url(db), env={"TOOLSDB_POOLER": "sometimes"})
    assert done.returncode != 0 and "Traceback" not in done.stderr, done
    assert done.stderr.strip().count("\n") == 0 and "TOOLSDB_POOLER must be one of" in done.stderr, done.stderr

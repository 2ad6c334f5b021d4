"""The read replica (toolsdb.replica): a streaming hot standby of the embedded server.

Each test builds its own replica of the session's test server (``pg``, on
PostgreSQL 18 and 15) into its tmp_path with pg_basebackup, and the fixture
always removes it again (stopped, folder deleted, replication slot dropped),
so the shared server keeps no WAL for it. Waits are bounded polls on LSNs,
never sleeps, and nothing asserts on durations. One test drives the
``toolsdb replica`` commands end to end on an embedded server of its own.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from toolsdb import migrate as engine
from toolsdb import paths
from toolsdb.errors import ToolsdbError
from toolsdb.replica import (
    SLOT,
    Replica,
    current_lsn,
    replication_slots,
    replication_status,
    standby_lag,
    wait_for_replay,
)
from toolsdb.target import Target

from .conftest import Pg, run_cli

POLL_LIMIT = 60  # seconds a bounded poll may wait before the test fails (not a timing assertion)


# -- helpers -------------------------------------------------------------------


def poll(probe: Callable[[], object], what: str, limit: float = POLL_LIMIT) -> object:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def slot_names(pg: Pg) -> list[str]:
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        return [r[0] for r in conn.execute("select slot_name from pg_replication_slots order by 1")]


def replayed(pg: Pg, replica: Replica, dbname: str) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with (
        psycopg.connect(pg.conninfo(dbname), autocommit=True) as primary,
        psycopg.connect(replica.conninfo(dbname), autocommit=True) as standby,
    ):
        lsn = current_lsn(primary)
        assert wait_for_replay(standby, lsn, timeout=POLL_LIMIT), f"the replica did not replay up to {lsn}"


def streaming_row(pg: Pg, slot: str) -> dict | None:
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        rows = [r for r in replication_status(conn) if r["application_name"] == slot]
    return rows[0] if rows and rows[0]["state"] == "streaming" else None


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"toolsdb {' '.join(result.args[1:])} should succeed but exited {result.returncode}: {result.stderr}"
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *facts: str) -> str:
    assert result.returncode != 0, f"the command should fail but exited 0; stdout: {result.stdout}"
    assert "Traceback" not in result.stderr + result.stdout, f"the command printed a traceback: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr should be exactly one line, it is {len(lines)}: {result.stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    for fact in facts:
        assert fact in lines[0], f"the error line should mention {fact!r}: {lines[0]}"
    return lines[0]


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def replica(pg: Pg, tmp_path: Path) -> Iterator[Replica]:
    """A running replica of the test server in tmp_path/replica; always removed afterwards."""
    made = Replica(pg.server, root=tmp_path / "replica")
    try:
        made.create()
        yield made
    finally:
        made.remove()
        assert SLOT not in slot_names(pg), "the replica's slot survived its removal"


@pytest.fixture
def seeded(pg: Pg, db: str) -> str:
    """The fresh migrated database with the demo data of seeds/."""
    engine.seed(Target(pg.conninfo(db), "test"))
    return db


# -- building it ---------------------------------------------------------------


def test_create_makes_a_streaming_hot_standby_of_the_primary(pg: Pg, replica: Replica) -> None:
    info = replica.info()
    assert info is not None, "create should leave the replica running"
    primary = pg.server.info()
    assert info.port != primary.port and info.socket_dir != primary.socket_dir
    assert (replica.server.data / "standby.signal").exists(), "pg_basebackup -R should write standby.signal"
    with psycopg.connect(replica.conninfo("postgres"), autocommit=True) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is True
        assert conn.execute("show hot_standby").fetchone()[0] == "on"
    row = poll(lambda: streaming_row(pg, SLOT), "the replica to stream from the primary")
    assert row["slot_name"] == SLOT, row
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        slots = {s["slot_name"]: s for s in replication_slots(conn)}
    assert slots[SLOT]["slot_type"] == "physical" and slots[SLOT]["active"] is True, slots


def test_a_write_on_the_primary_is_read_on_the_replica(pg: Pg, db: str, replica: Replica) -> None:
    with psycopg.connect(replica.conninfo(db)) as standby:
        before = standby.execute("select count(*) from toolsdb.users").fetchone()[0]
    pg.psql(db, "-f", str(paths.seeds_dir() / "10_identity.sql"))
    with psycopg.connect(pg.conninfo(db), autocommit=True) as primary:
        primary.execute(
            "insert into toolsdb.users (username, email, display_name) values (%s, %s, %s)",
            ("replicated", "replicated@example.com", "Written on the primary"),
        )
        lsn = current_lsn(primary)
    with psycopg.connect(replica.conninfo(db), autocommit=True) as standby:
        assert wait_for_replay(standby, lsn, timeout=POLL_LIMIT), f"the replica did not replay up to {lsn}"
        names = [r[0] for r in standby.execute("select username from toolsdb.users order by username")]
    assert before == 0, "a fresh clone of the template has no users"
    assert names == ["alice", "bob", "carol", "replicated", "toolsdb-bot"], names


def test_reporting_views_work_on_the_replica(pg: Pg, seeded: str, replica: Replica) -> None:
    """Two reporting views, repeatable/82_work_views.sql's project_health and 50_runtime.sql's
    queue_depth (plus active_tasks), give the primary's answers on the replica."""
    queries = {
        "project_health": "select * from toolsdb.project_health order by slug",
        "active_tasks": "select task_id, project_slug, title, status from toolsdb.active_tasks order by task_id",
        # queue_depth splits open rows by now(): compare what does not depend on the instant.
        "queue_depth": "select queue_name, ready + leased + retrying, dead from toolsdb.queue_depth order by 1",
    }
    replayed(pg, replica, seeded)
    with (
        psycopg.connect(pg.conninfo(seeded)) as primary,
        psycopg.connect(replica.conninfo(seeded)) as standby,
    ):
        for name, query in queries.items():
            expected = primary.execute(query).fetchall()
            got = standby.execute(query).fetchall()
            assert got == expected, f"{name} differs on the replica"
        assert primary.execute("select count(*) from toolsdb.project_health").fetchone()[0] > 0, (
            "the seeds should give project_health rows to compare"
        )
        assert primary.execute(queries["queue_depth"]).fetchall() == [("events", 8, 0), ("notifications", 1, 1)], (
            "the seeds' eight unprocessed events, pending notification and dead letter should be compared"
        )


def test_a_write_on_the_replica_fails_with_read_only_sql_transaction(pg: Pg, db: str, replica: Replica) -> None:
    with (
        psycopg.connect(replica.conninfo(db)) as standby,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as caught,
    ):
        standby.execute(
            "insert into toolsdb.users (username, email, display_name) values ('nope', 'nope@example.com', 'No')"
        )
    assert caught.value.sqlstate == "25006"


# -- monitoring ----------------------------------------------------------------


def test_replication_status_and_standby_lag_report_sane_numbers(pg: Pg, db: str, replica: Replica) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as primary:
        primary.execute("create table lag_probe (n int)")
        primary.execute("insert into lag_probe select generate_series(1, 1000)")
    replayed(pg, replica, db)
    row = poll(lambda: streaming_row(pg, SLOT), "the replica to stream from the primary")
    for key in ("sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"):
        assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", row[key] or ""), (key, row)
    assert isinstance(row["bytes_behind"], int) and row["bytes_behind"] >= 0, row
    for key in ("write_lag", "flush_lag", "replay_lag"):
        assert row[key] is None or row[key] >= 0, (key, row)
    assert row["client_addr"] is None, "the replica connects over the primary's Unix socket"

    with psycopg.connect(replica.conninfo(db), autocommit=True) as standby:
        assert standby.execute("select count(*) from lag_probe").fetchone()[0] == 1000
        lag = poll(
            lambda: (found := standby_lag(standby))["receiver_status"] == "streaming" and found,
            "the WAL receiver to stream",
        )
    assert lag["in_recovery"] is True
    assert lag["replay_bytes_pending"] >= 0 and lag["lag_seconds"] >= 0, lag
    assert lag["last_replay_at"] is not None and lag["seconds_since_replay"] is not None, lag
    with psycopg.connect(pg.conninfo(db), autocommit=True) as primary:
        on_primary = standby_lag(primary)
    assert on_primary["in_recovery"] is False and on_primary["lag_seconds"] is None, on_primary

    status = replica.status()
    assert status["running"] and status["slot_exists"] and status["slot_active"], status
    assert status["bytes_behind"] is not None and status["bytes_behind"] >= 0, status
    assert status["lag_seconds"] is not None and status["lag_seconds"] >= 0, status


# -- mistakes, failures, removal -----------------------------------------------


def test_create_twice_says_so_in_one_line_and_keeps_the_replica(pg: Pg, replica: Replica, tmp_path: Path) -> None:
    with pytest.raises(ToolsdbError) as caught:
        replica.create()
    message = caught.value.format_message()
    assert "exists already" in message and str(replica.root) in message and "\n" not in message
    assert replica.info() is not None, "a refused create must not touch the running replica"

    # Another folder but the same slot on the same primary: refused, nothing left behind.
    other = Replica(pg.server, root=tmp_path / "other")
    with pytest.raises(ToolsdbError, match=f"replication slot {SLOT} already"):
        other.create()
    assert not other.root.exists()
    assert slot_names(pg) == [SLOT]
    poll(lambda: streaming_row(pg, SLOT), "the first replica to keep streaming")


def test_a_failed_create_leaves_no_folder_and_no_slot(pg: Pg, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        failing = Replica(pg.server, root=tmp_path / "replica")
        with pytest.raises(ToolsdbError) as caught:
            failing.create(tcp=True, port=port)
    message = caught.value.format_message()
    assert message.startswith("replica create failed") and "nothing was kept" in message, message
    assert not failing.root.exists(), "a failed create must not leave a half-made folder"
    assert slot_names(pg) == [], "a failed create must not leave its replication slot behind"


def test_remove_stops_the_replica_deletes_its_folder_and_drops_the_slot(pg: Pg, replica: Replica) -> None:
    assert replica.info() is not None and slot_names(pg) == [SLOT]
    assert replica.remove() == (True, True)
    assert not replica.root.exists()
    assert slot_names(pg) == [], "remove should leave pg_replication_slots empty"
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is False
    assert replica.info() is None
    assert replica.remove() == (False, False), "removing again has nothing left to do"


def test_replica_commands_refuse_a_server_other_than_the_embedded_one(tmp_path: Path) -> None:
    elsewhere = "postgresql://nobody@127.0.0.1:1/nothing"
    result = run_cli("replica", "create", cwd=tmp_path, env={"DATABASE_URL": elsewhere})
    assert_one_error_line(result, "embedded server only", "DATABASE_URL")
    result = run_cli("replica", "status", "--database", elsewhere, cwd=tmp_path)
    assert_one_error_line(result, "embedded server only", "--database")
    assert not (tmp_path / ".toolsdb").exists(), "a refused command must not start an embedded server"


# -- the command line, end to end ---------------------------------------------


def test_replica_commands_end_to_end(tmp_path: Path) -> None:
    """create, status, url, a second create, remove --force: on an embedded server in tmp_path/.toolsdb
    (which `replica create` does not create: only the set-up commands do)."""
    try:
        result = run_cli("replica", "create", cwd=tmp_path)
        assert_one_error_line(result, "no database", "make migrate")  # a replica of nothing: no server is made
        assert not (tmp_path / ".toolsdb").exists()
        assert_ok(run_cli("server", "start", cwd=tmp_path))
        result = run_cli("replica", "status", cwd=tmp_path)
        assert_one_error_line(result, "no replica", "toolsdb replica create")

        created = run_cli("replica", "create", cwd=tmp_path, timeout=600)
        assert_ok(created)
        assert "created the replica" in created.stdout and SLOT in created.stdout, created.stdout

        again = run_cli("replica", "create", cwd=tmp_path)
        assert_one_error_line(again, "exists already", "toolsdb replica remove")

        url = run_cli("replica", "url", cwd=tmp_path)
        assert_ok(url)
        replica_url = url.stdout.strip()
        primary_url = run_cli("server", "url", cwd=tmp_path)
        assert_ok(primary_url)
        # Its own socket (under .toolsdb/replica, or in /tmp when that path is
        # too long for a socket) and port; pg_is_in_recovery() below proves it.
        assert replica_url.startswith("postgresql://") and replica_url != primary_url.stdout.strip(), replica_url

        with psycopg.connect(primary_url.stdout.strip(), autocommit=True) as primary:
            primary.execute("create table written_on_primary (note text)")
            primary.execute("insert into written_on_primary values ('hello, replica')")
            lsn = current_lsn(primary)
        with psycopg.connect(replica_url, autocommit=True) as standby:
            assert standby.execute("select pg_is_in_recovery()").fetchone()[0] is True
            assert wait_for_replay(standby, lsn, timeout=POLL_LIMIT)
            assert standby.execute("select note from written_on_primary").fetchone()[0] == "hello, replica"

        status = run_cli("replica", "status", cwd=tmp_path)
        assert_ok(status)
        for fact in ("running", "yes, pid", f"{SLOT} (active)", "lag bytes", "lag seconds"):
            assert fact in status.stdout, f"replica status should show {fact!r}: {status.stdout}"

        unconfirmed = run_cli("replica", "remove", cwd=tmp_path)
        assert_one_error_line(unconfirmed, "--force")

        removed = run_cli("replica", "remove", "--force", cwd=tmp_path)
        assert_ok(removed)
        assert "dropped slot" in removed.stdout, removed.stdout
        assert not (tmp_path / ".toolsdb" / "replica").exists()
        with psycopg.connect(primary_url.stdout.strip(), autocommit=True) as primary:
            assert primary.execute("select count(*) from pg_replication_slots").fetchone()[0] == 0
    finally:
        run_cli("replica", "remove", "--force", cwd=tmp_path)
        run_cli("server", "stop", cwd=tmp_path)

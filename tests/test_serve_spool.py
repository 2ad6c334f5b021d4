"""``toolsdb serve`` loses nothing when PostgreSQL goes away: events POSTed
while the server is stopped are spooled (200 once fsynced) and replayed in
order, exactly once, when it is back; a serve killed with SIGKILL in the middle
of a replay picks up where it was on restart, and the idempotency keys keep
each event stored once. A PostgreSQL server of the module's own, which the
tests stop and start."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from toolsdb import migrate as engine
from toolsdb.serve import Spool
from toolsdb.server import EmbeddedServer, embedded_bindir
from toolsdb.target import Target

from .servehelpers import Served, create_token, start_serve


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    pg = EmbeddedServer(root=tmp_path_factory.mktemp("spoolpg"), bindir=embedded_bindir())
    pg.start()
    try:
        engine.migrate(Target(pg.conninfo(), "test"))
        with psycopg.connect(pg.conninfo(), autocommit=True) as su:
            su.execute("insert into toolsdb.users (username, email) values ('ann', 'ann@example.com')")
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def token(server: EmbeddedServer) -> str:
    server.start()
    return create_token(server.url(), "--user", "ann")


def stored(server: EmbeddedServer, session: str) -> list[tuple[int, str]]:
    """(payload n, key) of the session's events, in event_id order."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        return [
            (int(n), key)
            for n, key in conn.execute(
                "select payload->>'n', idempotency_key from toolsdb.events where session_id = %s order by event_id",
                (session,),
            ).fetchall()
        ]


def post_many(served: Served, token: str, session: str, numbers: range) -> None:
    for n in numbers:
        status, body = served.post({"session_id": session, "hook_event_name": "PostToolUse", "n": n}, token)
        assert (status, body) == (200, b"{}"), f"event {n}: {status} {body!r}"


def test_events_sent_while_the_database_is_down_are_replayed_in_order_exactly_once(
    server: EmbeddedServer, token: str, tmp_path: Path
) -> None:
    served = start_serve(server.url(), tmp_path / "spool")
    try:
        post_many(served, token, "s-down", range(0, 5))
        server.stop()
        post_many(served, token, "s-down", range(5, 40))
        health = served.health()
        assert health["spool_events"] > 0, "with the database down, events wait in the spool"
        assert health["database"] == "down"
        lines = [json.loads(line) for f in sorted((tmp_path / "spool").glob("*.jsonl")) for line in f.open()]
        assert [r["key"].split(":")[0] for r in lines] == ["serve"] * len(lines)
        assert {r["user_id"] for r in lines} and all(r["received_at"] for r in lines)
        time.sleep(1)
        server.start()
        post_many(served, token, "s-down", range(40, 50))  # while replaying: behind the spool
        served.wait_spool_empty()
        assert served.health()["database"] == "up"
    finally:
        served.stop()
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        late = conn.execute(
            "select count(*) from toolsdb.events e join toolsdb.sessions s using (session_id) "
            "where e.session_id = 's-down' and (e.payload->>'n')::int between 5 and 39 "
            "and e.created_at < now() - interval '1 second' and e.created_at < s.last_activity_at"
        ).fetchone()
    assert late == (35,), "a replayed event keeps the time it was received as its created_at"
    events = stored(server, "s-down")
    assert [n for n, _ in events] == list(range(50)), "every event once, in the order they were received"
    assert len({key for _, key in events}) == 50


def test_a_serve_killed_during_replay_replays_the_rest_once_after_a_restart(
    server: EmbeddedServer, token: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    served = start_serve(server.url(), spool)
    total = 3000
    try:
        post_many(served, token, "s-kill", range(0, 1))  # the token is known: accepted while down
        server.stop()
        post_many(served, token, "s-kill", range(1, total))
    finally:
        served.stop(signal.SIGKILL)
    server.start()
    for _ in range(3):
        # Replay starts at once; kill it as soon as some but not all is in.
        served = start_serve(server.url(), spool)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (0 < len(stored(server, "s-kill")) < total):
            if not list(spool.glob("*.jsonl")):
                break
            time.sleep(0.005)
        served.stop(signal.SIGKILL)
        if list(spool.glob("*.jsonl")):
            break
    killed_at = len(stored(server, "s-kill"))
    served = start_serve(server.url(), spool)
    try:
        served.wait_spool_empty()
    finally:
        served.stop()
    events = stored(server, "s-kill")
    assert [n for n, _ in events] == list(range(total)), f"exactly once and in order (killed at {killed_at})"
    assert 0 < killed_at < total, f"the kill should land mid-replay ({killed_at} of {total} stored then)"


def test_an_unknown_token_while_the_database_is_down_is_refused_not_spooled(
    server: EmbeddedServer, token: str, tmp_path: Path
) -> None:
    served = start_serve(server.url(), tmp_path / "spool")
    try:
        server.stop()
        status, body = served.post({"session_id": "s-unknown", "hook_event_name": "Stop"}, token)
        assert status == 503 and "not seen recently" in json.loads(body)["error"]
        assert served.health()["spool_events"] == 0
    finally:
        served.stop()
        server.start()


def test_an_append_cut_short_leaves_no_half_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk that fills half-way through an append (injected: os.write writes
    # a few bytes, then fails as ENOSPC does): the next record starts a line.
    spool = Spool(tmp_path / "spool", "instance")
    try:
        with spool.lock:
            spool.append([{"key": "a"}])
        real_write = os.write

        def full_disk(fd: int, data: bytes) -> int:
            real_write(fd, bytes(data[:7]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", full_disk)
        with spool.lock, pytest.raises(OSError):
            spool.append([{"key": "b"}, {"key": "c"}])
        monkeypatch.undo()
        with spool.lock:
            spool.append([{"key": "d"}])
        (segment,) = spool.segments()
        assert [json.loads(line)["key"] for line in segment.read_text().splitlines()] == ["a", "d"]
        assert spool.events == 2
    finally:
        spool.close()

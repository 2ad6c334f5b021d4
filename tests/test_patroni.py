"""High availability, for real: a three-node Patroni cluster with etcd on
loopback (tests/patroni_cluster.py), synchronous replication, reached through
the multi-host URL with ``target_session_attrs=read-write``.

Opt-in: set TOOLSDB_TEST_PATRONI=1 (CI does, and installs Debian's patroni and
etcd-server); TOOLSDB_REQUIRE_PATRONI=1 makes a missing tool a failure.

The main test keeps the hook, ``toolsdb serve`` and ``toolsdb worker`` running
under load through a switchover and then through SIGKILL of the leader
(Patroni and PostgreSQL both), and checks that no acknowledged event,
notification or audit entry is lost, none is stored or delivered twice, and
the audit seal chain verifies on the new leader. It measures the write
outage of each (the longest gap between two acknowledged audited commits)
and how many events the serve spool absorbed, and writes them to
``$TOOLSDB_PATRONI_REPORT`` (JSON) when that is set.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from toolsdb import config as cfg

from . import patroni_cluster
from .conftest import clean_env, run_cli, toolsdb_exe
from .servehelpers import create_token, start_serve
from .workerhelpers import destination, stand_in

KEY = Fernet.generate_key().decode()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[patroni_cluster.Cluster]:
    wanted = os.environ.get("TOOLSDB_TEST_PATRONI") == "1" or os.environ.get("TOOLSDB_REQUIRE_PATRONI") == "1"
    if not wanted:
        pytest.skip("the Patroni cluster tests are opt-in: TOOLSDB_TEST_PATRONI=1")
    problem = patroni_cluster.missing()
    if problem:
        if os.environ.get("TOOLSDB_REQUIRE_PATRONI") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    running = patroni_cluster.create()
    try:
        running.start()
        yield running
    finally:
        running.stop()
        import shutil

        shutil.rmtree(running.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def migrated(cluster: patroni_cluster.Cluster) -> str:
    url = cluster.url()
    for command in ("migrate", "seed"):
        done = run_cli(command, "--database", url, timeout=300)
        assert done.returncode == 0, done.stderr
    return url


def test_migrate_seed_maintain_and_audit_verify_through_the_multi_host_url(migrated: str) -> None:
    again = run_cli("migrate", "--database", migrated)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr
    for args in (["maintain"], ["audit", "seal"], ["audit", "verify"]):
        done = run_cli(*args, "--database", migrated, timeout=300)
        assert done.returncode == 0, (args, done.stdout, done.stderr)


# ---------------------------------------------------------------------------------------------


@dataclass
class Load:
    """Writers running until stopped; what each had acknowledged."""

    url: str
    hook_env: dict[str, str]
    serve_post: object
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    serve_acked: list[int] = field(default_factory=list)
    serve_refused: list[tuple[int, int]] = field(default_factory=list)
    hook_acked: list[int] = field(default_factory=list)
    hook_failed: list[int] = field(default_factory=list)
    audit_acked: list[tuple[int, float]] = field(default_factory=list)
    audit_failed: int = 0

    def serve_loop(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            event = {"session_id": f"ha-serve-{n}", "hook_event_name": "Stop", "cwd": f"/ha/serve/{n}"}
            try:
                status, _ = self.serve_post(event, self.token, 30)
            except OSError:
                status = 0
            (self.serve_acked.append(n) if status == 200 else self.serve_refused.append((n, status)))
            time.sleep(0.05)

    def hook_loop(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            event = {"session_id": f"ha-hook-{n}", "hook_event_name": "Stop", "cwd": f"/ha/hook/{n}"}
            done = subprocess.run(
                [toolsdb_exe(), "hook", "--strict"],
                input=json.dumps(event).encode(),
                capture_output=True,
                env=self.hook_env,
                timeout=60,
            )
            (self.hook_acked if done.returncode == 0 else self.hook_failed).append(n)
            time.sleep(0.1)

    def audit_loop(self) -> None:
        n = 0
        conn = None
        while not self.stop.is_set():
            n += 1
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = psycopg.connect(self.url, autocommit=True)
                conn.execute("select toolsdb.audit_event('ha_probe', 'probe', %s)", (str(n),))
                self.audit_acked.append((n, time.monotonic()))
            except psycopg.Error:
                self.audit_failed += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(0.02)
        if conn is not None:
            conn.close()


def outage(acked: list[tuple[int, float]], start: float, end: float) -> float:
    """The longest gap between two acknowledged commits that begins in [start - 1 s, end)."""
    times = [t for _, t in acked]
    gaps = [(b - a) for a, b in itertools.pairwise(times) if start - 1 <= a < end]
    return max(gaps, default=0.0)


def spooled_total(served) -> int:
    status, body = served.get("/metrics")
    assert status == 200
    found = re.search(rb"^toolsdb_serve_events_spooled_total (\S+)$", body, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def test_hook_serve_and_worker_lose_nothing_through_a_switchover_and_a_leader_kill(
    cluster: patroni_cluster.Cluster, migrated: str, tmp_path: Path
) -> None:
    url = migrated
    with psycopg.connect(url, autocommit=True) as conn:
        alice = conn.execute(
            "insert into toolsdb.users (username, email) values ('ha-alice', 'ha@example.com') returning user_id"
        ).fetchone()[0]
    token = create_token(url, "--user", "ha-alice")
    switchover: dict[str, object] = {}
    kill: dict[str, object] = {}
    with stand_in() as slack:
        path = "/services/HA"
        with psycopg.connect(url, autocommit=True) as conn:
            destination(
                conn, "ha-slack", "slack", slack.url(path), alice, keys=cfg.KeyRing([KEY.encode()], cfg.KEY_ENV)
            )
        served = start_serve(url, tmp_path / "spool")
        worker = subprocess.Popen(
            [toolsdb_exe(), "worker", "-d", url, "--poll", "1"],
            env={**clean_env(), cfg.KEY_ENV: KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        load = Load(
            url,
            {**clean_env(), "DATABASE_URL": url, "TOOLSDB_USER_ID": str(alice), "TOOLSDB_HOOK_TRANSCRIPTS": "off",
             "TOOLSDB_HOOK_LOG": str(tmp_path / "hook.log")},
            served.post,
            token,
        )  # fmt: skip
        threads = [threading.Thread(target=f) for f in (load.serve_loop, load.hook_loop, load.audit_loop)]
        try:
            for thread in threads:
                thread.start()
            time.sleep(5)
            started = time.monotonic()
            old, new = cluster.switchover()
            switched = time.monotonic()
            time.sleep(8)
            switchover.update({"from": old.name, "to": new.name, "seconds_to_new_leader": round(switched - started, 2)})
            spooled_at_switchover = spooled_total(served)
            switchover["spool_absorbed_events"] = spooled_at_switchover
            killed_at = time.monotonic()
            dead = cluster.kill_leader()
            survivor = cluster.wait_new_leader(dead, 120)
            promoted = time.monotonic()
            time.sleep(8)
            kill.update(
                {"killed": dead.name, "new": survivor.name, "seconds_to_new_leader": round(promoted - killed_at, 2)}
            )
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(120)
        try:
            served.wait_spool_empty(180)
            kill["spool_absorbed_events"] = spooled_total(served) - spooled_at_switchover
            deadline = time.monotonic() + 180
            with psycopg.connect(url, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    routed = conn.execute(
                        "select count(*) filter (where processed_at is null) from toolsdb.events"
                        " where session_id like 'ha-%'"
                    ).fetchone()[0]
                    unsent = conn.execute(
                        "select count(*) from toolsdb.notifications where status <> 'sent' and session_id like 'ha-%'"
                    ).fetchone()[0]
                    if routed == 0 and unsent == 0:
                        break
                    time.sleep(0.5)
        finally:
            served.stop()
            worker.send_signal(15)
            _, worker_err = worker.communicate(timeout=60)
        bodies = [b["text"] for b in slack.bodies(path)]

    switchover["write_outage_seconds"] = round(outage(load.audit_acked, started, killed_at - 2), 2)
    kill["write_outage_seconds"] = round(outage(load.audit_acked, killed_at, promoted + 8), 2)
    figures = {
        "switchover": switchover,
        "kill": kill,
        "acknowledged": {"serve": len(load.serve_acked), "hook": len(load.hook_acked), "audit": len(load.audit_acked)},
        "not_acknowledged": {
            "serve": len(load.serve_refused),
            "hook": len(load.hook_failed),
            "audit": load.audit_failed,
        },
    }
    report = os.environ.get("TOOLSDB_PATRONI_REPORT")
    if report:
        Path(report).write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))

    with psycopg.connect(url, autocommit=True) as conn:
        stored = Counter(
            r[0] for r in conn.execute("select session_id from toolsdb.events where session_id like 'ha-%'")
        )
        audited = Counter(
            r[0] for r in conn.execute("select entity_id from toolsdb.audit_logs where action = 'ha_probe'")
        )
        notified = conn.execute(
            "select count(*), count(*) filter (where status = 'sent') from toolsdb.notifications"
            " where session_id like 'ha-%'"
        ).fetchone()
    lost_serve = [n for n in load.serve_acked if stored[f"ha-serve-{n}"] != 1]
    lost_hook = [n for n in load.hook_acked if stored[f"ha-hook-{n}"] != 1]
    lost_audit = [n for n, _ in load.audit_acked if audited[str(n)] != 1]
    assert lost_serve == [] and lost_hook == [] and lost_audit == [], (lost_serve, lost_hook, lost_audit)
    assert max(stored.values()) == 1 and max(audited.values()) == 1, "nothing stored twice"
    assert load.serve_refused == [], "serve answers 200 while the database is away (the spool)"
    assert notified[0] == notified[1] == sum(stored.values()), (notified, sum(stored.values()))
    duplicates = [text for text, count in Counter(bodies).items() if count > 1]
    assert duplicates == [] and len(bodies) == notified[0], (duplicates, len(bodies), notified)
    assert worker.returncode == 0 and "reconnected" in worker_err, worker_err
    for args in (["audit", "seal"], ["audit", "verify"]):
        done = run_cli(*args, "--database", url, timeout=300)
        assert done.returncode == 0, (args, done.stdout, done.stderr)

"""toolsdb worker (runner/toolsdb/worker.py, `toolsdb worker`, `toolsdb notify`)
against real PostgreSQL and loopback stand-ins for Slack, Discord, a webhook
(tests/workerhelpers.py: scripted 429 with Retry-After, 5xx, delays) and
SMTP (aiosmtpd): the default rules end to end through the CLI, retries and
Retry-After, dead letters and redrive, three workers side by side sending
each notification once, LISTEN wake-ups, and SIGTERM releasing leases.
"""

from __future__ import annotations

import email
import signal
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.types.json import Jsonb

from toolsdb import config as cfg
from toolsdb.worker import Worker, retry_after_seconds, smtp_settings

from .conftest import Pg, clean_env, run_cli, toolsdb_exe
from .dbhelpers import rows, scalar
from .queuehelpers import expire, seconds_from_now
from .workerhelpers import Reply, destination, smtp_stand_in, stand_in, wait_for

KEY = Fernet.generate_key().decode()


@pytest.fixture
def keyring(monkeypatch) -> cfg.KeyRing:
    monkeypatch.setenv(cfg.KEY_ENV, KEY)
    return cfg.KeyRing.load()


def env() -> dict[str, str]:
    return {cfg.KEY_ENV: KEY}


def add_user(conn: psycopg.Connection, name: str) -> uuid.UUID:
    return scalar(
        conn, "insert into toolsdb.users (username, email) values (%s, %s) returning user_id", (name, f"{name}@x.org")
    )


def ingest(conn: psycopg.Connection, session: str, kind: str, user_id: uuid.UUID | None = None, **fields: Any) -> int:
    payload = {"session_id": session, "hook_event_name": kind, "cwd": "/work/app", **fields}
    context = {"user_id": str(user_id)} if user_id else {}
    return scalar(conn, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(payload), Jsonb(context)))


def statuses(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return [
        (r["status"], r["attempts"])
        for r in rows(conn, "select status, attempts from toolsdb.notifications order by notification_id")
    ]


def run_once(pg: Pg, db: str, **kwargs: Any):
    return Worker(pg.conninfo(db), name="test-worker", **kwargs).run(once=True)


# ---------------------------------------------------------------------------
# Through the CLI, as the e2e setup uses it
# ---------------------------------------------------------------------------


def test_the_cli_sets_a_slack_destination_and_worker_once_delivers_the_default_rules(
    pg: Pg, db: str, su: psycopg.Connection
) -> None:
    alice = add_user(su, "alice")
    with stand_in() as slack:
        url = slack.url("/services/T000/B000/XXXX")
        done = run_cli(
            "notify", "destination", "set", "alice-slack", "--backend", "slack", "--url", url, "--user", "alice",
            "-d", pg.url(db), env=env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        listed = run_cli("notify", "destination", "list", "-d", pg.url(db), env=env())
        assert listed.returncode == 0 and "alice-slack" in listed.stdout and "alice" in listed.stdout, listed
        assert url not in listed.stdout and "127.0.0.1" not in listed.stdout, "The list never prints a URL."
        assert scalar(su, "select count(*) from toolsdb.config where value::text like '%127.0.0.1%'") == 0, (
            "The URL is stored encrypted only."
        )
        ingest(su, "cli1", "Notification", alice, notification_type="permission_prompt", message="May I run ls?")
        ingest(su, "cli1", "PreToolUse", alice, tool_name="Bash")
        ingest(su, "cli1", "Stop", alice, last_assistant_message="Done <!channel> & more")
        worked = run_cli("worker", "--once", "-d", pg.url(db), env=env(), timeout=60)
        assert worked.returncode == 0, worked.stderr
        assert "sent 2" in worked.stdout, worked.stdout
        texts = [b["text"] for b in slack.bodies("/services/T000/B000/XXXX")]
    assert texts == [
        "Claude needs your permission in /work/app: May I run ls?",
        "Claude finished its turn in /work/app. Done &lt;!channel&gt; &amp; more",
    ], texts
    assert statuses(su) == [("sent", 1), ("sent", 1)]
    rules = run_cli("notify", "rules", "-d", pg.url(db), env=env())
    assert rules.returncode == 0 and "permission_prompt" in rules.stdout and "idle_prompt" in rules.stdout
    # --user names a user as toolsdb token create does: username, email or id.
    by_email = run_cli(
        "notify", "destination", "set", "alice-hook", "--backend", "webhook", "--url", "https://h.example/a",
        "--user", "ALICE@x.org", "-d", pg.url(db), env=env(),
    )  # fmt: skip
    assert by_email.returncode == 0, by_email.stderr
    owner = "select user_id from toolsdb.notification_destinations where destination_name = 'alice-hook'"
    assert scalar(su, owner) == alice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "slack", "--url", "ftp://example.org/x"], "http:// or https://"),
        (["--backend", "email", "--url", "smtp://mail.example.org/"], "from= and to="),
        (["--backend", "slack", "--url", "https://h.example/x", "--user", "nobody"], "no user 'nobody'"),
        (["--backend", "pager", "--url", "https://h.example/x"], "Invalid value for '--backend'"),
    ],
)
def test_bad_destinations_are_one_line_errors(pg: Pg, db: str, args: list[str], message: str) -> None:
    done = run_cli("notify", "destination", "set", "x", *args, "-d", pg.url(db), env=env())
    assert done.returncode != 0 and message in done.stderr, done
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert "Traceback" not in done.stderr and len(errors) == 1 and message in errors[0], done.stderr


# ---------------------------------------------------------------------------
# Backends, retries, Retry-After, dead letters
# ---------------------------------------------------------------------------


def test_discord_429_retry_after_is_honoured_then_delivered(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    bob = add_user(su, "bob")
    with stand_in() as discord:
        destination(su, "bob-discord", "discord", discord.url("/api/webhooks/1/abc"), bob)
        discord.script("/api/webhooks/1/abc", Reply(429, {"Retry-After": "7"}, '{"retry_after": 7}'))
        discord.script("/api/webhooks/1/abc", Reply(429, {}, '{"message": "rate limited", "retry_after": 2.5}'))
        ingest(su, "d1", "Notification", bob, notification_type="idle_prompt", message="@everyone waiting")
        stats = run_once(pg, db)
        ids = [r["notification_id"] for r in rows(su, "select notification_id from toolsdb.notifications")]
        assert (stats.sent, stats.failed) == (0, 1) and statuses(su) == [("failed", 1)]
        assert 6 <= seconds_from_now(su, ids)[0] <= 7, "The Retry-After header (7 s) should set the next attempt."
        expire(su, ids)
        run_once(pg, db)
        assert 1.5 <= seconds_from_now(su, ids)[0] <= 2.5, "Discord's JSON retry_after (2.5 s) counts too."
        expire(su, ids)
        stats = run_once(pg, db)
        assert stats.sent == 1 and statuses(su) == [("sent", 3)]
        bodies = discord.bodies("/api/webhooks/1/abc")
    assert len(bodies) == 3 and bodies[-1] == {
        "content": "Claude is waiting for your input in /work/app: @everyone waiting",
        "allowed_mentions": {"parse": []},
    }, bodies[-1]
    assert "HTTP 429" in scalar(su, "select last_error from toolsdb.notifications")


def test_a_5xx_backs_off_then_a_dead_letter_and_redrive_delivers_it(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    with stand_in() as hook:
        destination(su, "default", "webhook", hook.url("/hook"))
        hook.script("/hook", *[Reply(500, body="upstream down")] * 3)
        event_id = ingest(su, "w1", "Stop")  # no user: the default destination
        run_once(pg, db)
        ids = [r["notification_id"] for r in rows(su, "select notification_id from toolsdb.notifications")]
        assert statuses(su) == [("failed", 1)] and 5 <= seconds_from_now(su, ids)[0] <= 10, "Backoff with jitter."
        for _ in range(2):
            expire(su, ids)
            run_once(pg, db)
        assert statuses(su) == [("dead", 3)], "After max_attempts (3) it is a dead letter."
        assert "HTTP 500 upstream down" in scalar(su, "select last_error from toolsdb.notifications")
        assert run_once(pg, db).sent == 0, "A dead letter is not tried again."
        assert scalar(su, "select toolsdb.redrive_notifications()") == 1
        assert run_once(pg, db).sent == 1 and statuses(su) == [("sent", 1)]
        bodies = hook.bodies("/hook")
    assert len(bodies) == 4
    assert bodies[-1]["event_id"] == event_id and bodies[-1]["notification_type"] == "task_complete", bodies[-1]
    assert bodies[-1]["payload"]["message"] == "Claude finished its turn in /work/app. ", bodies[-1]


def test_email_goes_over_smtp(pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing) -> None:
    carol = add_user(su, "carol")
    with smtp_stand_in() as (port, messages):
        destination(su, "carol-mail", "email", f"smtp://127.0.0.1:{port}/?from=toolsdb@x.org&to=carol@x.org", carol)
        ingest(su, "m1", "Notification", carol, notification_type="permission_prompt", message="Allow é ✓?")
        assert run_once(pg, db).sent == 1
        assert wait_for(lambda: len(messages) == 1, 5)
    envelope = messages[0]
    assert envelope.mail_from == "toolsdb@x.org" and envelope.rcpt_tos == ["carol@x.org"]
    mail = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert mail["Subject"].startswith("toolsdb permission: Claude needs your permission"), mail["Subject"]
    assert "Allow é ✓?" in mail.get_content()


def test_unreachable_or_missing_destinations_fail_with_one_line(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    dave = add_user(su, "dave")
    destination(su, "dave", "slack", "http://127.0.0.1:9/nothing-listens", dave)
    ingest(su, "u1", "Stop", dave)
    su.execute(
        "select toolsdb.insert_notification('u1', 'orphan', 'slack')"  # no destination, and no default
    )
    stats = run_once(pg, db, timeout=2)
    assert (stats.sent, stats.failed) == (0, 2)
    errors = [r["last_error"] for r in rows(su, "select last_error from toolsdb.notifications order by 1")]
    assert any("slack dave: ConnectError" in e for e in errors) and any(
        "no enabled destination 'default'" in e for e in errors
    ), errors
    assert all("\n" not in e and len(e) <= 500 for e in errors), errors


def test_retry_after_and_smtp_urls_parse() -> None:
    assert retry_after_seconds("120") == 120 and retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("-3") == 0
    parsed = smtp_settings("smtps://u%40x:p%2Fw@mail.x.org/?from=a@x.org&to=b@x.org,c@x.org&starttls=0")
    assert (parsed["user"], parsed["password"], parsed["port"], parsed["to"]) == (
        "u@x", "p/w", 465, ["b@x.org", "c@x.org"]
    )  # fmt: skip


# ---------------------------------------------------------------------------
# Several workers, LISTEN, SIGTERM (real processes)
# ---------------------------------------------------------------------------


def start_worker(pg: Pg, db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [toolsdb_exe(), "worker", "-d", pg.url(db), *args],
        env={**clean_env(), **env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


@pytest.mark.slow
def test_three_workers_woken_by_listen_send_each_notification_once(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    users = [add_user(su, f"user{n}") for n in range(3)]
    with stand_in(delay=0.01) as slack:
        for n, user in enumerate(users):
            destination(su, f"dest{n}", "slack", slack.url(f"/u{n}"), user)
        # A long poll: only LISTEN can wake them quickly.
        workers = [start_worker(pg, db, "--poll", "60", "--name", f"w{n}") for n in range(3)]
        try:
            time.sleep(1.5)  # started and listening
            started = time.monotonic()
            for n in range(60):
                ingest(su, f"s{n}", "Stop", users[n % 3], last_assistant_message=f"job {n}")
            assert wait_for(
                lambda: scalar(su, "select count(*) from toolsdb.notifications where status = 'sent'") == 60, 60
            ), statuses(su)
            elapsed = time.monotonic() - started
        finally:
            results = [stop(w) for w in workers]
        texts = [b["text"] for n in range(3) for b in slack.bodies(f"/u{n}")]
    assert all(code == 0 for code, _ in results), results
    counts = Counter(texts)
    assert len(counts) == 60 and set(counts.values()) == {1}, f"Each notification exactly once: {counts.most_common(3)}"
    assert elapsed < 30, f"LISTEN should wake the workers well before their 60 s poll: {elapsed:.1f} s"
    claimed_by = {r["claimed_by"] for r in rows(su, "select claimed_by from toolsdb.notifications")}
    assert len(claimed_by) >= 2, f"The work should be shared: {claimed_by}"


@pytest.mark.slow
def test_sigterm_finishes_the_send_in_flight_and_releases_the_rest(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    erin = add_user(su, "erin")
    with stand_in(delay=2.0) as slack:
        destination(su, "erin", "slack", slack.url("/slow"), erin)
        for n in range(5):
            ingest(su, f"t{n}", "Stop", erin)
        process = start_worker(pg, db, "--batch", "5", "--lease", "120")
        try:
            assert slack.first_request.wait(30), "The worker should have started sending."
        finally:
            code, err = stop(process)
    assert code == 0, err
    found = rows(
        su, "select status, attempts, claim_token, claimed_by from toolsdb.notifications order by notification_id"
    )
    assert [(r["status"], r["attempts"]) for r in found] == [("sent", 1)] + [("pending", 0)] * 4, found
    assert all(r["claim_token"] is None for r in found), "Released rows hold no claim."
    assert "released 4" in err, err


@pytest.mark.slow
def test_a_lost_connection_is_reconnected_and_nothing_is_lost(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    """A restart or a failover ends the worker's connections: it reconnects with
    backoff and goes on delivering (the first connection failing still ends it)."""
    fay = add_user(su, "fay")
    with stand_in() as slack:
        destination(su, "fay", "slack", slack.url("/fay"), fay)
        process = start_worker(pg, db, "--poll", "1")
        try:
            ingest(su, "r1", "Stop", fay, last_assistant_message="before")
            assert wait_for(lambda: len(slack.bodies("/fay")) == 1, 30), "delivered before the loss"
            killed = scalar(
                su,
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where application_name = 'toolsdb-worker' and datname = current_database()",
            )
            assert killed == 2, "the worker's two connections (work and LISTEN)"
            ingest(su, "r2", "Stop", fay, last_assistant_message="after")
            assert wait_for(lambda: len(slack.bodies("/fay")) == 2, 30), statuses(su)
            assert process.poll() is None, "the worker is still running"
        finally:
            code, err = stop(process)
    assert code == 0, err
    assert "reconnecting in 0.5 s" in err and "reconnected 1 time(s)" in err, err
    texts = [b["text"] for b in slack.bodies("/fay")]
    assert "before" in texts[0] and "after" in texts[1], texts


@pytest.mark.slow
def test_a_notification_sent_when_the_connection_is_lost_is_settled_after_reconnecting_not_sent_again(
    pg: Pg, db: str, su: psycopg.Connection, keyring: cfg.KeyRing
) -> None:
    """The connection ends (a failover) while the receiver answers: the worker
    keeps what it sent and settles it under its claim on the next connection,
    so the job does not come back when its lease (3 s here) runs out."""
    gus = add_user(su, "gus")
    with stand_in(delay=1.5) as slack:
        destination(su, "gus", "slack", slack.url("/gus"), gus)
        process = start_worker(pg, db, "--poll", "1", "--lease", "3")
        try:
            ingest(su, "u1", "Stop", gus, last_assistant_message="once")
            assert slack.first_request.wait(30), "the worker sent it"
            killed = scalar(
                su,
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where application_name = 'toolsdb-worker' and datname = current_database()",
            )
            assert killed == 2, "the worker's two connections (work and LISTEN)"
            assert wait_for(lambda: statuses(su) == [("sent", 1)], 30), statuses(su)
            time.sleep(5)  # past the lease: a job left unsettled would be claimed and sent again
        finally:
            code, err = stop(process)
    assert code == 0, err
    assert "reconnected 1 time(s)" in err, err
    assert len(slack.bodies("/gus")) == 1, slack.bodies("/gus")
    assert statuses(su) == [("sent", 1)]


def test_a_first_connection_that_fails_ends_the_worker_in_one_line(pg: Pg) -> None:
    done = subprocess.run(
        [toolsdb_exe(), "worker", "-d", pg.url("no_such_database_here")],
        env={**clean_env(), **env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "no_such_database_here" in done.stderr, done.stderr

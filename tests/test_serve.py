"""``toolsdb serve`` and ``toolsdb token`` against a real PostgreSQL and a real
server process: tokens decide who an event is recorded for, 401 and 400 store
nothing, the answer is ``{}``, concurrent requests share transactions, and the
health and metrics endpoints answer."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Pg, run_cli
from .dbhelpers import conninfo_as
from .servehelpers import Served, create_token, start_serve


@pytest.fixture(scope="module")
def served_db(pg: Pg, template: str) -> Iterator[str]:
    with pg.clone(f"serve_{id(pg)}", template) as name:
        with psycopg.connect(pg.conninfo(name), autocommit=True) as su:
            su.execute("insert into toolsdb.users (username, email) values ('ann', 'ann@example.com')")
            su.execute("insert into toolsdb.users (username, email) values ('bob', 'bob@example.com')")
            su.execute("insert into toolsdb.agents (name, agent_type) values ('claude-code', 'coding')")
            owner = su.execute("select user_id from toolsdb.users where username = 'ann'").fetchone()
            su.execute(
                "insert into toolsdb.projects (slug, name, owner_id) values ('shop', 'Shop', %s)",
                (owner[0],),  # type: ignore[index]
            )
        yield name


@pytest.fixture(scope="module")
def served(pg: Pg, served_db: str, tmp_path_factory) -> Iterator[Served]:
    server = start_serve(pg.url(served_db), tmp_path_factory.mktemp("spool"))
    try:
        yield server
    finally:
        server.stop()


def scalar(pg: Pg, db: str, sql: str, *params: object) -> object:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def hook(session: str, event: str = "PreToolUse", **fields: object) -> dict:
    return {"session_id": session, "hook_event_name": event, "cwd": str(Path(__file__).parent), **fields}


def test_a_post_is_stored_for_the_token_user_agent_and_project_and_answered_with_an_empty_object(
    pg: Pg, served_db: str, served: Served
) -> None:
    url = pg.url(served_db)
    token = create_token(url, "--user", "ann@example.com", "--agent", "claude-code", "--project", "shop")
    status, body = served.post(hook("s-identity", "SessionStart", source="startup"), token)
    assert (status, body) == (200, b"{}"), "a stored event is answered 200 with an empty JSON object"
    with psycopg.connect(pg.conninfo(served_db), autocommit=True) as conn:
        row = conn.execute(
            """
            select u.username, a.name, p.slug, s.git_branch is not null, e.idempotency_key like 'serve:%%'
            from toolsdb.sessions s join toolsdb.events e using (session_id)
            left join toolsdb.users u using (user_id) left join toolsdb.agents a using (agent_id)
            left join toolsdb.projects p using (project_id)
            where s.session_id = 's-identity'
            """
        ).fetchall()
    assert row == [("ann", "claude-code", "shop", True, True)], (
        "the token decides the user, agent and project; the branch comes from the payload's cwd"
    )


def test_no_token_a_wrong_one_or_a_revoked_one_is_401_and_stores_nothing(
    pg: Pg, served_db: str, served: Served
) -> None:
    url = pg.url(served_db)
    token = create_token(url, "--user", "bob")
    assert served.post(hook("s-401"), token)[0] == 200
    revoked = run_cli("token", "revoke", "--database", url, token[:12])
    assert revoked.returncode == 0, revoked.stderr
    for bad in (None, "", "tdb_" + "0" * 64, "nope", token):
        status, body = served.post(hook("s-401", "Stop"), bad)
        assert status == 401, f"token {bad!r} should be refused"
        assert list(json.loads(body)) == ["error"] and b"\n" not in body.strip()
    assert scalar(pg, served_db, "select count(*) from toolsdb.events where session_id = 's-401'") == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "a JSON object, not list"),
        (b'{"hook_event_name": "Stop"}', "no session_id"),
    ],
)
def test_a_bad_payload_is_400_with_one_line_and_stores_nothing(
    pg: Pg, served_db: str, served: Served, body: bytes, message: str
) -> None:
    token = create_token(pg.url(served_db), "--user", "bob")
    before = scalar(pg, served_db, "select count(*) from toolsdb.events")
    status, answer = served.post(body, token)
    assert status == 400
    assert message in json.loads(answer)["error"] and b"\n" not in answer
    assert scalar(pg, served_db, "select count(*) from toolsdb.events") == before


def test_a_nul_character_is_stored_replaced_as_the_command_hook_does(pg: Pg, served_db: str, served: Served) -> None:
    token = create_token(pg.url(served_db), "--user", "bob")
    assert served.post(hook("s-nul", tool_output="a\u0000b"), token) == (200, b"{}")
    assert scalar(pg, served_db, "select payload->>'tool_output' from toolsdb.events where session_id = 's-nul'") == (
        "a\ufffdb"
    )


def test_concurrent_requests_share_transactions_and_each_is_stored_once(pg: Pg, served_db: str, served: Served) -> None:
    token = create_token(pg.url(served_db), "--user", "ann")
    results: list[tuple[int, bytes]] = []

    def client(n: int) -> None:
        for i in range(20):
            results.append(served.post(hook(f"s-batch-{n}", n=i), token))

    before = metric_values(served)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count((200, b"{}")) == 320
    assert scalar(pg, served_db, "select count(*) from toolsdb.events where session_id like 's-batch-%%'") == 320
    after = metric_values(served)
    transactions = after["toolsdb_serve_transactions_total"] - before["toolsdb_serve_transactions_total"]
    events = after["toolsdb_serve_transaction_events_total"] - before["toolsdb_serve_transaction_events_total"]
    assert events == 320 and transactions < events, f"{transactions} transactions for {events} events: none batched"


def metric_values(served: Served) -> dict[str, float]:
    status, text = served.get("/metrics")
    assert status == 200
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            key = sample.name + (json.dumps(sample.labels, sort_keys=True) if sample.labels else "")
            values[key] = sample.value
    return values


def test_healthz_and_metrics(pg: Pg, served_db: str, served: Served) -> None:
    token = create_token(pg.url(served_db), "--user", "ann")
    assert served.post(hook("s-metrics", "Notification", notification_type="idle_prompt"), token)[0] == 200
    status, body = served.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    values = metric_values(served)
    assert values['toolsdb_serve_events_ingested_total{"event_type": "Notification"}'] >= 1
    assert values['toolsdb_serve_requests_total{"code": "200"}'] >= 1
    assert values["toolsdb_serve_request_seconds_count"] >= 1
    assert values["toolsdb_serve_spool_events"] == 0
    assert values['toolsdb_queue_ready{"queue": "events"}'] >= 1
    assert 'toolsdb_queue_oldest_ready_age_seconds{"queue": "notifications"}' in values
    assert values["toolsdb_serve_queue_stats_up"] == 1


def test_as_the_app_role_the_event_is_written_under_the_token_context(
    pg: Pg, served_db: str, app_login: str, tmp_path: Path
) -> None:
    token = create_token(pg.url(served_db), "--user", "ann", "--project", "shop")
    app_url = "postgresql:///" + served_db + "?" + conninfo_as(pg, served_db, app_login).replace(" ", "&")
    server = start_serve(app_url, tmp_path / "spool")
    try:
        assert server.post(hook("s-app"), token) == (200, b"{}")
    finally:
        server.stop()
    # Projects are row-level secured: the session found its project only
    # because the token's project was the transaction's context.
    assert (
        scalar(
            pg,
            served_db,
            "select p.slug from toolsdb.sessions s join toolsdb.projects p using (project_id) "
            "where s.session_id = 's-app'",
        )
        == "shop"
    )
    with psycopg.connect(conninfo_as(pg, served_db, app_login), autocommit=True) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("select token_hash from toolsdb.api_tokens")
        assert app.execute("select count(*) from toolsdb.events").fetchone() == (0,), (
            "without a session in its context the app role sees no event"
        )


def test_token_create_prints_only_the_token_and_list_shows_no_hash(pg: Pg, served_db: str) -> None:
    url = pg.url(served_db)
    token = create_token(url, "--user", "bob", "--name", "laptop")
    listed = run_cli("token", "list", "--database", url)
    assert listed.returncode == 0 and token[:12] in listed.stdout and "laptop" in listed.stdout
    assert token[12:] not in listed.stdout
    for argv, line in (
        (["create", "--user", "nobody"], "Error: no user 'nobody'"),
        (["create", "--user", "bob", "--project", "nope"], "Error: no project 'nope'"),
        (["revoke", "xyz"], "Error: 'xyz' is not a token id, a token prefix (tdb_ and 8 hex digits) or a token"),
    ):
        result = run_cli("token", *argv, "--database", url)
        assert (result.returncode, result.stderr.strip(), result.stdout) == (1, line, "")


def test_in_a_shared_transaction_a_bad_event_fails_alone(pg: Pg, served_db: str, served: Served) -> None:
    token = create_token(pg.url(served_db), "--user", "ann")
    results: dict[int, tuple[int, bytes]] = {}
    barrier = threading.Barrier(12)

    def client(n: int) -> None:
        # A session_id of 300 characters passes the server's checks; the
        # sessions table refuses it (session_id_is_valid).
        session = "x" * 300 if n == 5 else f"s-alone-{n}"
        barrier.wait()
        results[n] = served.post(hook(session), token)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.pop(5)[0] == 400
    assert set(results.values()) == {(200, b"{}")}
    assert scalar(pg, served_db, "select count(*) from toolsdb.events where session_id like 's-alone-%%'") == 11


def test_other_methods_and_paths(served: Served) -> None:
    assert served.get("/hooks")[0] == 405
    assert served.get("/nope")[0] == 404


def test_hook_ingest_takes_an_earlier_received_at_as_the_event_time(pg: Pg, served_db: str) -> None:
    with psycopg.connect(pg.conninfo(served_db), autocommit=True) as conn:

        def ingest(key: str, received: object) -> object:
            ctx = json.dumps({"idempotency_key": key, "received_at": received})
            conn.execute('select toolsdb.hook_ingest(\'{"session_id": "s-received"}\', %s::jsonb)', (ctx,))
            return conn.execute(
                "select created_at = %s::timestamptz from toolsdb.events where idempotency_key = %s",
                ("2026-01-02T03:04:05.5+00:00", key),
            ).fetchone()

        assert ingest("r-past", "2026-01-02T03:04:05.5+00:00") == (True,), "an earlier time is kept"
        assert ingest("r-future", "2999-01-01T00:00:00Z") == (False,), "a future one is cut to now()"
        assert conn.execute(
            "select created_at <= now() from toolsdb.events where idempotency_key = 'r-future'"
        ).fetchone() == (True,)
        for bad in ("yesterday", 5, "2026-01-02"):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="received_at is an ISO 8601 time"):
                ingest("r-bad", bad)


def test_tokens_are_audited_without_their_hash_and_hidden_from_readonly(
    pg: Pg, served_db: str, served: Served, readonly_login: str
) -> None:
    url = pg.url(served_db)
    token = create_token(url, "--user", "bob", "--name", "audited")
    assert run_cli("token", "revoke", "--database", url, token).returncode == 0
    with psycopg.connect(pg.conninfo(served_db), autocommit=True) as conn:
        token_id = conn.execute("select token_id from toolsdb.api_tokens where token_name = 'audited'").fetchone()
        logged = conn.execute(
            "select action, coalesce(new_values, old_values)->>'token_hash', new_values->>'revoked_at' is not null "
            "from toolsdb.audit_logs where entity_type like '%%api_tokens' and entity_id = %s::text "
            "order by audit_id",
            token_id,
        ).fetchall()
    # An update logs the columns it changed: the hash is never among them.
    assert [(action, hash_, revoked) for action, hash_, revoked in logged] == [
        ("insert", "[redacted]", False),
        ("update", None, True),
    ], f"creation and revocation are audited, never the hash: {logged}"
    digest = hashlib.sha256(token.encode()).hexdigest()
    in_log = "select count(*) from toolsdb.audit_logs where strpos(new_values::text, %s) > 0"
    assert scalar(pg, served_db, in_log, digest) == 0
    reader = psycopg.connect(conninfo_as(pg, served_db, readonly_login), autocommit=True)
    with reader, pytest.raises(psycopg.errors.InsufficientPrivilege):
        reader.execute("select token_prefix from toolsdb.api_tokens")


def test_an_expired_token_is_401(pg: Pg, served_db: str, served: Served) -> None:
    token = create_token(pg.url(served_db), "--user", "bob", "--name", "expiring")
    assert served.post(hook("s-expired"), token)[0] == 200
    with psycopg.connect(pg.conninfo(served_db), autocommit=True) as conn:
        conn.execute(
            "update toolsdb.api_tokens set expires_at = created_at + interval '1 microsecond' "
            "where token_name = 'expiring'"
        )
    assert served.post(hook("s-expired"), token)[0] == 401
    listed = run_cli("token", "list", "--all", "--database", pg.url(served_db))
    assert any("expiring" in line and line.endswith("expired") for line in listed.stdout.splitlines())


def test_sigterm_answers_what_is_in_flight_and_exits_0(pg: Pg, served_db: str, tmp_path: Path) -> None:
    token = create_token(pg.url(served_db), "--user", "bob")
    server = start_serve(pg.url(served_db), tmp_path / "spool")
    results: list[tuple[int, bytes]] = []

    def client(n: int) -> None:
        with contextlib.suppress(OSError):
            for i in range(200):
                results.append(server.post(hook(f"s-term-{n}", n=i), token))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while len(results) < 20:
        time.sleep(0.01)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 5  # the stderr reader may be a line behind
    while "toolsdb serve: stopped\n" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "toolsdb serve: stopped\n" in server.stderr
    answered = results.count((200, b"{}"))
    assert answered == len(results), "every answer before the stop is 200 {}"
    stored = scalar(pg, served_db, "select count(*) from toolsdb.events where session_id like 's-term-%%'")
    assert stored == answered, "every event answered 200 is stored, and only those"


def test_without_prepared_statements_as_behind_an_older_pooler(pg: Pg, served_db: str, tmp_path: Path) -> None:
    token = create_token(pg.url(served_db), "--user", "bob")
    server = start_serve(pg.url(served_db), tmp_path / "spool", "--no-prepared")
    try:
        for i in range(8):
            assert server.post(hook("s-unprepared", n=i), token) == (200, b"{}")
    finally:
        server.stop()
    assert scalar(pg, served_db, "select count(*) from toolsdb.events where session_id = 's-unprepared'") == 8


def test_the_command_hook_posts_session_start_to_serve(pg: Pg, served_db: str, served: Served, tmp_path: Path) -> None:
    """Claude Code sends SessionStart and Setup to command hooks only: ``toolsdb hook
    --post URL`` sends them to toolsdb serve with the token, as an http hook would."""
    import subprocess

    from .conftest import toolsdb_exe

    token = create_token(pg.url(served_db), "--user", "ann@example.com")
    log = tmp_path / "hook.log"
    start = json.dumps(hook("s-post", "SessionStart", source="startup"))
    env = {"PATH": "/usr/bin:/bin", "TOOLSDB_HOOK_LOG": str(log), "MY_TOKEN": token}
    posted = subprocess.run(
        [toolsdb_exe(), "hook", "--post", f"http://127.0.0.1:{served.port}/hooks", "--token-var", "MY_TOKEN"],
        input=start,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (posted.returncode, posted.stdout, posted.stderr) == (0, "", "")
    assert not log.exists(), "nothing failed"
    assert (
        scalar(
            pg,
            served_db,
            "select u.username from toolsdb.sessions s join toolsdb.users u using (user_id)"
            " where session_id = 's-post'",
        )
        == "ann"
    )
    # A wrong token: logged with the payload (the server's 401 named), nothing stored, exit 1 with --strict.
    env["MY_TOKEN"] = "tdb_" + "0" * 64
    refused = subprocess.run(
        [
            toolsdb_exe(),
            "hook",
            "--strict",
            "--post",
            f"http://127.0.0.1:{served.port}/hooks",
            "--token-var",
            "MY_TOKEN",
        ],
        input=json.dumps(hook("s-post-401", "SessionStart")),
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert refused.returncode == 1 and "answered 401" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert json.loads(log.read_text().splitlines()[-1])["payload"] == json.dumps(hook("s-post-401", "SessionStart"))
    assert scalar(pg, served_db, "select count(*) from toolsdb.events where session_id = 's-post-401'") == 0
    # No token variable: one line, before anything is sent.
    del env["MY_TOKEN"]
    unset = subprocess.run(
        [
            toolsdb_exe(),
            "hook",
            "--strict",
            "--post",
            f"http://127.0.0.1:{served.port}/hooks",
            "--token-var",
            "MY_TOKEN",
        ],
        input=start,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert unset.returncode == 1 and "MY_TOKEN is not set" in unset.stderr

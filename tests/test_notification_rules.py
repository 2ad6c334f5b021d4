"""Notification rules and destinations (schema/47_notification_rules.sql,
schema/44_notifications.sql) and the worker's SQL: route_events() with the
default rule set, globs and templates under hostile input, and the one-call
settlement settle_and_claim_notifications() with release_notifications();
the roles around them. On each PostgreSQL major of the suite.

Most tests run in ``tx`` (a transaction rolled back at the end); the role
tests commit in a fresh clone (``db``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .dbhelpers import Row, connect, expect_error, one, rows, scalar
from .queuehelpers import CHECK, DENIED, INVALID, LEASE_LOST, enqueue, expire, notification, seconds_from_now

FAKE_TOKEN = "gAAAAABfaketokenfaketoken=="
FAKE_KEY_ID = "0123456789ab"
FK = "23503"
RESTRICT = ("23001", "23503")  # on delete restrict: restrict_violation on PostgreSQL 18, foreign_key_violation before


def add_user(conn: psycopg.Connection, name: str) -> uuid.UUID:
    return scalar(
        conn,
        "insert into toolsdb.users (username, email) values (%s, %s) returning user_id",
        (name, f"{name}@example.com"),
    )


def add_destination(
    conn: psycopg.Connection, name: str, backend: str = "slack", user_id: uuid.UUID | None = None
) -> Row:
    key = f"notify.destination.{name.replace('-', '_')}"
    conn.execute("select toolsdb.config_set_secret(%s, %s, %s)", (key, FAKE_TOKEN, FAKE_KEY_ID))
    return one(
        conn, "select * from toolsdb.notification_destination_set(%s, %s, %s, %s)", (name, backend, key, user_id)
    )


def ingest(conn: psycopg.Connection, payload: dict[str, Any], user_id: uuid.UUID | None = None) -> int:
    context = {"user_id": str(user_id)} if user_id else {}
    return scalar(conn, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(payload), Jsonb(context)))


def route(conn: psycopg.Connection, batch: int = 100) -> tuple[int, int]:
    found = one(conn, "select * from toolsdb.route_events(%s, 'test-router')", (batch,))
    return found["events_routed"], found["notifications_queued"]


def queued(conn: psycopg.Connection) -> list[Row]:
    return rows(conn, "select * from toolsdb.notifications order by notification_id")


def notification_event(session: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": session, "hook_event_name": kind, "cwd": "/work/app", **fields}


# ---------------------------------------------------------------------------
# route_events and the default rules
# ---------------------------------------------------------------------------


def test_the_default_rules_notify_the_session_user_of_permission_idle_and_stop(tx: psycopg.Connection) -> None:
    alice = add_user(tx, "alice")
    add_destination(tx, "alice-slack", "slack", alice)
    add_destination(tx, "alice-mail", "email", alice)
    ingest(
        tx,
        notification_event(
            "r1",
            "Notification",
            notification_type="permission_prompt",
            message="Claude needs your permission to use Bash",
        ),
        alice,
    )
    ingest(
        tx,
        notification_event(
            "r1", "Notification", notification_type="idle_prompt", message="Claude is waiting for your input"
        ),
        alice,
    )
    ingest(tx, notification_event("r1", "Stop", last_assistant_message="All tests pass."), alice)

    assert route(tx) == (3, 6), "Three events, each for both of alice's destinations, should make six notifications."
    made = queued(tx)
    assert [(n["notification_type"], n["destination_name"], n["backend"]) for n in made] == [
        ("permission", "alice-mail", "email"),
        ("permission", "alice-slack", "slack"),
        ("idle", "alice-mail", "email"),
        ("idle", "alice-slack", "slack"),
        ("task_complete", "alice-mail", "email"),
        ("task_complete", "alice-slack", "slack"),
    ], made
    assert made[0]["payload"]["message"] == (
        "Claude needs your permission in /work/app: Claude needs your permission to use Bash"
    ), made[0]["payload"]
    assert made[4]["payload"]["message"] == "Claude finished its turn in /work/app. All tests pass.", made[4]
    assert all(n["status"] == "pending" and n["event_id"] is not None for n in made), made
    assert made[0]["payload"]["rule"] == "permission_prompt" and made[0]["payload"]["user"] == "alice", made[0]
    assert scalar(tx, "select count(*) from toolsdb.events where processed_at is null") == 0


def test_other_events_make_nothing_but_are_processed(tx: psycopg.Connection) -> None:
    alice = add_user(tx, "alice")
    add_destination(tx, "alice", "slack", alice)
    ingest(tx, notification_event("r2", "SessionStart"), alice)
    ingest(tx, notification_event("r2", "PreToolUse", tool_name="Bash", tool_input={"command": "ls"}), alice)
    ingest(tx, notification_event("r2", "Notification", notification_type="auth_success", message="ok"), alice)
    ingest(tx, notification_event("r2", "Notification", message="no type at all"), alice)
    assert route(tx) == (4, 0), "No default rule matches these events."
    assert queued(tx) == []
    assert scalar(tx, "select count(*) from toolsdb.events where processed_at is null") == 0, (
        "Events no rule matches are processed all the same."
    )
    assert route(tx) == (0, 0)


def test_routing_an_event_again_queues_nothing_new(tx: psycopg.Connection) -> None:
    alice = add_user(tx, "alice")
    add_destination(tx, "alice", "slack", alice)
    event_id = ingest(tx, notification_event("r3", "Stop"), alice)
    assert route(tx) == (1, 1)
    tx.execute("update toolsdb.events set processed_at = null, visible_at = now() - interval '1 second'")
    assert route(tx) == (1, 0), "The idempotency key of (rule, event, destination) should stop a duplicate."
    assert [n["idempotency_key"] for n in queued(tx)] == [f"rule:stop:event:{event_id}:to:alice"]


def test_without_a_user_destination_the_default_destination_else_nothing(tx: psycopg.Connection) -> None:
    bob = add_user(tx, "bob")  # no destination of his own
    ingest(tx, notification_event("r4a", "Stop"), bob)
    ingest(tx, notification_event("r4b", "Stop"))  # no user at all
    assert route(tx) == (2, 0), "With no default destination, nothing is queued."
    add_destination(tx, "default", "webhook")
    ingest(tx, notification_event("r4a", "Stop"), bob)
    ingest(tx, notification_event("r4b", "Stop"))
    assert route(tx) == (2, 2)
    assert {n["destination_name"] for n in queued(tx)} == {"default"}
    tx.execute("update toolsdb.notification_destinations set enabled = false where destination_name = 'default'")
    ingest(tx, notification_event("r4b", "Stop"))
    assert route(tx) == (1, 0), "A disabled destination receives nothing."


def test_a_rule_to_a_named_destination_with_globs_and_a_project(tx: psycopg.Connection) -> None:
    add_destination(tx, "ops", "discord")
    owner = add_user(tx, "owner")
    project = scalar(
        tx,
        "insert into toolsdb.projects (name, slug, owner_id) values ('api', 'api', %s) returning project_id",
        (owner,),
    )
    rule = one(
        tx,
        "select * from toolsdb.notification_rule_set(rule_name => 'risky-bash', match_event_type => 'PreToolUse', "
        "message_template => '{user} runs {tool_name} in {cwd} ({project})', notification_type => 'risky_tool', "
        "destination_name => 'ops', recipient => 'destination', match_tool_name => 'Ba?h', "
        "match_cwd => '/srv/*_api/*', match_project_id => %s)",
        (project,),
    )
    assert rule["recipient"] == "destination" and rule["enabled"], rule
    ingest(tx, {"session_id": "g1", "hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": "/srv/x_api/src"})
    assert route(tx) == (1, 0), "The session has no project yet."
    tx.execute("update toolsdb.sessions set project_id = %s where session_id = 'g1'", (project,))
    ingest(tx, {"session_id": "g1", "hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": "/srv/x_api/src"})
    ingest(tx, {"session_id": "g1", "hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": "/srv/xapi/src"})
    ingest(tx, {"session_id": "g1", "hook_event_name": "PreToolUse", "tool_name": "Bashh", "cwd": "/srv/x_api/s"})
    ingest(tx, {"session_id": "g2", "hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": "/srv/x_api/s"})
    assert route(tx) == (4, 1), (
        "Only the first of these matches: '_' in the glob is literal (xapi does not match *_api), ? is one "
        "character (Bashh does not match Ba?h), and session g2 has no project."
    )
    made = queued(tx)[0]
    assert (made["destination_name"], made["backend"], made["notification_type"]) == ("ops", "discord", "risky_tool")
    assert made["payload"]["message"] == " runs Bash in /srv/x_api/src (api)", made["payload"]


def test_templates_fill_known_placeholders_once_and_leave_the_rest(tx: psycopg.Connection) -> None:
    def render(template: str, values: dict[str, Any]) -> str:
        return scalar(tx, "select toolsdb_private.render_notification_template(%s, %s)", (template, Jsonb(values)))

    assert render("{a} and {b}", {"a": "x", "b": None}) == "x and ", "A null value renders as nothing."
    assert render("{message}!", {"message": "{message}{message}"}) == "{message}{message}!", (
        "A value is never scanned for placeholders."
    )
    assert render("{unknown} {Message} { message} {", {"message": "m"}) == "{unknown} {Message} { message} {"
    assert render("{message}", {"message": "x" * 10_000}) == "x" * 500, "A value is cut to 500 characters."
    assert len(render("{a}" * 600, {"a": "y" * 100})) == 3000, "A message is cut to 3000 characters."


def test_globs_are_linear_and_literal(tx: psycopg.Connection) -> None:
    def like(pattern: str) -> str:
        return scalar(tx, "select toolsdb_private.glob_to_like(%s)", (pattern,))

    assert like("a*b?c%d_e\\*f\\") == "a%b_c\\%d\\_e\\*f\\\\"
    assert scalar(tx, "select '100%' like toolsdb_private.glob_to_like('100%')") is True
    assert scalar(tx, "select '1000' like toolsdb_private.glob_to_like('100%')") is False
    started = time.monotonic()
    assert scalar(tx, "select repeat('a', 4096) like toolsdb_private.glob_to_like(repeat('*a', 400) || 'b')") is False
    assert time.monotonic() - started < 2, "A pathological glob should not take long."


def test_hostile_payload_values_cannot_break_routing(tx: psycopg.Connection) -> None:
    alice = add_user(tx, "alice")
    add_destination(tx, "alice", "slack", alice)
    tx.execute(
        "select toolsdb.notification_rule_set('everything', 'Notification', "
        "'{message}|{tool_name}|{cwd}|{notification_type}', match_cwd => '*')"
    )
    odd = "e\u0301\u200b\u202e\U0001f600<!channel>{cwd}\ud7ff\t\r\n'\"\\%_"
    ingest(
        tx,
        notification_event(
            "h1",
            "Notification",
            notification_type="permission_prompt",
            message="m" * 1_000_000,
            cwd="/" + "d" * 5000,
            tool_name=["not", "a", "string"],
        ),
        alice,
    )
    ingest(tx, notification_event("h1", "Notification", notification_type=odd, message=odd, cwd=odd), alice)
    ingest(tx, notification_event("h1", "Notification", notification_type={"an": "object"}, message=12), alice)
    started = time.monotonic()
    events, made = route(tx)
    assert time.monotonic() - started < 5
    assert events == 3 and made >= 4, (events, made)
    messages = [n["payload"]["message"] for n in queued(tx) if n["payload"]["rule"] == "everything"]
    assert messages[0] == f'{"m" * 500}|["not", "a", "string"]|/{"d" * 499}|permission_prompt', messages[0][:80]
    assert messages[1] == f"{odd}||{odd}|{odd}", "Odd unicode passes through unchanged, {cwd} in it too."
    assert messages[2] == '12||/work/app|{"an": "object"}', messages[2]


def test_bad_rules_and_destinations_are_named(tx: psycopg.Connection) -> None:
    def rule(**args: Any) -> None:
        base = {"rule_name": "r", "match_event_type": "Stop", "message_template": "t", **args}
        names = ", ".join(f"{k} => %s" for k in base)
        tx.execute(f"select toolsdb.notification_rule_set({names})", list(base.values()))

    expect_error(tx, CHECK, lambda: rule(recipient="destination"), "destination_matches_recipient")
    expect_error(tx, CHECK, lambda: rule(recipient="anyone"), "recipient_is_valid")
    expect_error(tx, CHECK, lambda: rule(rule_name="Bad Name"), "rule_name_is_valid")
    expect_error(tx, CHECK, lambda: rule(message_template="x" * 2001), "message_template_length_is_valid")
    expect_error(tx, CHECK, lambda: rule(notification_type="Not-Snake"), "notification_type_is_valid")
    expect_error(tx, CHECK, lambda: rule(max_attempts=0), "max_attempts_is_valid")
    expect_error(tx, FK, lambda: rule(destination_name="nowhere"), "notification_rules_destination_name_fkey")
    tx.execute("select toolsdb.config_set('notify.plain', '\"https://hooks.example/x\"')")
    expect_error(
        tx, INVALID, lambda: tx.execute("select toolsdb.notification_destination_set('p', 'slack', 'notify.plain')")
    )
    add_destination(tx, "used")
    rule(destination_name="used")
    expect_error(tx, RESTRICT, lambda: tx.execute("select toolsdb.notification_destination_delete('used')"))
    expect_error(tx, RESTRICT, lambda: tx.execute("select toolsdb.config_unset('notify.destination.used')"))
    assert scalar(tx, "select toolsdb.notification_rule_enable('r', false)") is True
    assert scalar(tx, "select toolsdb.notification_rule_enable('nope')") is False
    assert scalar(tx, "select toolsdb.notification_rule_delete('r')") is True
    assert scalar(tx, "select toolsdb.notification_destination_delete('used')") is True


# ---------------------------------------------------------------------------
# settle_and_claim_notifications, release_notifications
# ---------------------------------------------------------------------------


def settle_and_claim(conn: psycopg.Connection, **args: Any) -> list[Row]:
    casts = {
        "claim_token": "uuid",
        "sent_ids": "bigint[]",
        "failed_ids": "bigint[]",
        "errors": "text[]",
        "retry_after_seconds": "float8[]",
        "batch_size": "integer",
        "lease": "interval",
        "worker": "text",
    }
    names = ", ".join(f"{k} => %s::{casts[k]}" for k in args)
    return rows(conn, f"select * from toolsdb.settle_and_claim_notifications({names})", list(args.values()))


def test_one_call_acks_the_previous_job_and_claims_the_next(tx: psycopg.Connection) -> None:
    ids = [enqueue(tx, "sc1", payload={"n": n}) for n in range(3)]
    first = settle_and_claim(tx, batch_size=1, worker="w")
    assert [r["notification_id"] for r in first] == ids[:1] and first[0]["attempts"] == 1
    second = settle_and_claim(tx, claim_token=first[0]["claim_token"], sent_ids=ids[:1], batch_size=1)
    assert [r["notification_id"] for r in second] == ids[1:2]
    assert second[0]["claim_token"] != first[0]["claim_token"], "Each claim has its own token."
    assert notification(tx, ids[0])["status"] == "sent"
    assert settle_and_claim(tx, claim_token=second[0]["claim_token"], sent_ids=ids[1:2], batch_size=0) == [], (
        "batch_size 0 settles and claims nothing."
    )
    assert [notification(tx, i)["status"] for i in ids] == ["sent", "sent", "pending"]
    expect_error(tx, INVALID, lambda: settle_and_claim(tx, batch_size=10001))
    expect_error(tx, INVALID, lambda: settle_and_claim(tx, failed_ids=[ids[2]], errors=None))


def test_a_failure_with_retry_after_waits_that_long_instead_of_the_backoff(tx: psycopg.Connection) -> None:
    a, b = enqueue(tx, "sc2"), enqueue(tx, "sc2")
    claimed = settle_and_claim(tx, batch_size=2)
    token = claimed[0]["claim_token"]
    settle_and_claim(
        tx,
        claim_token=token,
        failed_ids=[a, b],
        errors=["HTTP 429", "HTTP 500"],
        retry_after_seconds=[120, None],
        batch_size=0,
    )
    waits = seconds_from_now(tx, [a, b])
    assert waits[0] == 120, f"Retry-After 120 s should set the next attempt exactly: {waits}"
    assert 5 <= waits[1] <= 10, f"Without it, the backoff (10 s base, jitter): {waits}"
    assert [notification(tx, i)["status"] for i in (a, b)] == ["failed", "failed"]
    assert notification(tx, a)["last_error"] == "HTTP 429"


def test_the_last_failure_makes_a_dead_letter_and_redrive_brings_it_back(tx: psycopg.Connection) -> None:
    n = enqueue(tx, "sc3", max_attempts=2)
    for attempt in (1, 2):
        claimed = settle_and_claim(tx, batch_size=1)
        assert claimed and claimed[0]["attempts"] == attempt
        settle_and_claim(tx, claim_token=claimed[0]["claim_token"], failed_ids=[n], errors=["HTTP 500"], batch_size=0)
        expire(tx, [n])
    assert notification(tx, n)["status"] == "dead"
    assert settle_and_claim(tx, batch_size=5) == [], "A dead letter is not claimed."
    assert scalar(tx, "select toolsdb.redrive_notifications(array[%s]::bigint[])", (n,)) == 1
    claimed = settle_and_claim(tx, batch_size=1)
    assert [r["notification_id"] for r in claimed] == [n] and claimed[0]["attempts"] == 1


def test_a_lost_lease_aborts_the_settlement_and_the_claim(tx: psycopg.Connection) -> None:
    a, b = enqueue(tx, "sc4"), enqueue(tx, "sc4")
    claimed = settle_and_claim(tx, batch_size=1)
    expire(tx, [a])
    expect_error(
        tx, LEASE_LOST, lambda: settle_and_claim(tx, claim_token=claimed[0]["claim_token"], sent_ids=[a], batch_size=1)
    )
    assert notification(tx, b)["status"] == "pending", "The claim of the failed call did not happen."


def test_release_gives_back_the_attempt(tx: psycopg.Connection) -> None:
    ids = [enqueue(tx, "sc5") for _ in range(3)]
    claimed = settle_and_claim(tx, batch_size=3)
    token = claimed[0]["claim_token"]
    assert scalar(tx, "select toolsdb.release_notifications(%s::bigint[], %s)", (ids[1:], token)) == 2
    assert scalar(tx, "select toolsdb.release_notifications(%s::bigint[], %s)", (ids[1:], token)) == 0, (
        "Rows the claim no longer holds are left alone."
    )
    for i in ids[1:]:
        row = notification(tx, i)
        assert (row["status"], row["attempts"], row["claim_token"]) == ("pending", 0, None), row
    assert notification(tx, ids[0])["status"] == "sending"
    again = settle_and_claim(tx, claim_token=token, sent_ids=ids[:1], batch_size=5)
    assert [r["notification_id"] for r in again] == ids[1:]


# ---------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------


def test_the_worker_role_routes_and_delivers_and_the_app_role_cannot(
    pg, db: str, su: psycopg.Connection, worker_login: str, app_login: str
) -> None:
    alice = add_user(su, "alice")
    add_destination(su, "alice", "slack", alice)
    ingest(su, notification_event("role1", "Stop"), alice)
    ingest(su, notification_event("role2", "Stop"), alice)
    with connect(pg, db, worker_login) as worker:
        assert route(worker) == (2, 2)
        claimed = settle_and_claim(worker, batch_size=1, worker="w")
        assert len(claimed) == 1
        secret = one(worker, "select * from toolsdb.notification_destination_secret('alice')")
        assert (secret["backend"], secret["secret_value"]) == ("slack", FAKE_TOKEN)
        assert (
            scalar(
                worker,
                "select toolsdb.release_notifications(%s::bigint[], %s)",
                ([claimed[0]["notification_id"]], claimed[0]["claim_token"]),
            )
            == 1
        )
        expect_error(worker, DENIED, lambda: worker.execute("select * from toolsdb.notification_rules"))
    with connect(pg, db, app_login, autocommit=False) as app:
        expect_error(app, DENIED, lambda: app.execute("select * from toolsdb.route_events()"))
        expect_error(app, DENIED, lambda: settle_and_claim(app, batch_size=1))
        expect_error(app, DENIED, lambda: app.execute("update toolsdb.notification_rules set enabled = false"))
        expect_error(
            app,
            DENIED,
            lambda: app.execute(
                "insert into toolsdb.notification_destinations values ('evil', 'webhook', 'notify.destination.alice')"
            ),
        )
        assert scalar(app, "select count(*) from toolsdb.notification_rules") == 3, "The app may read the rules."
        app.execute("select set_config('toolsdb.session_id', 'role1', true)")
        assert [n["session_id"] for n in rows(app, "select * from toolsdb.notifications")] == ["role1"], (
            "Row-level security: the application sees its session's notifications only."
        )

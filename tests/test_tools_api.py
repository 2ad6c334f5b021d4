"""The thin Python API of the agent tools (runner/toolsdb/tools.py) against a
real, migrated database on each PostgreSQL major: each method calls the SQL
function, commits on its own, and turns a refusal into one DatabaseError line
naming the SQLSTATE and the constraint.

Each test gets a fresh clone (``conn``, autocommit off): the API's methods
commit, so nothing is shared between tests.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from toolsdb.errors import ToolsdbError
from toolsdb.tools import AuditTrail, BugEscalation, DatabaseError, SchemaValidator, VisionCache, connect

from .conftest import SUPERUSER, Pg
from .dbhelpers import insert, scalar, unique

MODEL = "v1.0"


def image_hash(label: str = "img") -> str:
    return hashlib.sha256(unique(label).encode()).hexdigest()


def expect_refusal(call, sqlstate: str, constraint: str | None = None, *facts: str) -> DatabaseError:
    """The call raises DatabaseError with this SQLSTATE (and constraint), as one line naming both."""
    with pytest.raises(DatabaseError) as caught:
        call()
    error = caught.value
    message = error.format_message()
    assert error.sqlstate == sqlstate, f"expected SQLSTATE {sqlstate}, got {error.sqlstate}: {message}"
    assert error.constraint == constraint, f"expected constraint {constraint}, got {error.constraint}: {message}"
    assert "\n" not in str(error.message), f"the error should be one line: {error.message!r}"
    assert f"SQLSTATE {sqlstate}" in message, message
    for fact in (constraint, *facts) if constraint else facts:
        assert fact in message, f"the error should mention {fact!r}: {message}"
    return error


# ---------------------------------------------------------------------------
# Vision cache
# ---------------------------------------------------------------------------


def test_hash_image_is_the_sha256_hex_of_the_bytes():
    assert VisionCache.hash_image(b"demo image") == hashlib.sha256(b"demo image").hexdigest()
    assert len(VisionCache.hash_image(b"")) == 64


def test_store_then_get_returns_the_entry_with_the_default_ttl(conn: psycopg.Connection):
    cache = VisionCache(conn)
    key = image_hash()
    expires_at = cache.store(key, {"keywords": ["sunset"]}, 0.9, MODEL)
    entry = cache.get(key, MODEL)
    assert entry is not None
    assert entry["extracted_data"] == {"keywords": ["sunset"]}
    assert entry["confidence_score"] == 0.9
    assert entry["model_version"] == MODEL
    assert entry["expires_at"] == expires_at
    assert entry["expires_at"] - entry["created_at"] == timedelta(days=30), "the SQL default ttl is 30 days"


def test_store_accepts_a_timedelta_or_an_interval_as_ttl(conn: psycopg.Connection):
    cache = VisionCache(conn)
    for ttl, expected in ((timedelta(hours=1), timedelta(hours=1)), ("7 days", timedelta(days=7))):
        key = image_hash()
        cache.store(key, {}, 0.5, MODEL, ttl=ttl)
        entry = cache.get(key)
        assert entry is not None
        assert entry["expires_at"] - entry["created_at"] == expected


def test_get_is_none_on_a_miss_and_counts_hits(conn: psycopg.Connection):
    cache = VisionCache(conn)
    key = image_hash()
    assert cache.get(key) is None
    cache.store(key, {"text": "old"}, 0.4, "m-old")
    cache.store(key, {"text": "new"}, 0.8, "m-new")
    assert cache.get(key, "m-other") is None
    newest = cache.get(key)
    assert newest is not None and newest["model_version"] == "m-new", "without a version: the newest live entry"
    stats = {row["model_version"]: row for row in cache.stats()}
    assert stats["m-new"]["hits"] == 1 and stats["m-new"]["entries"] == 1
    assert stats["m-old"]["hits"] == 0


def test_purge_expired_removes_only_expired_entries(conn: psycopg.Connection):
    cache = VisionCache(conn)
    gone, kept = image_hash("gone"), image_hash("kept")
    cache.store(gone, {}, 0.5, MODEL, ttl=timedelta(milliseconds=1))
    cache.store(kept, {}, 0.5, MODEL)
    time.sleep(0.01)
    assert cache.get(gone) is None, "an expired entry is a miss"
    assert cache.purge_expired() == 1
    assert scalar(conn, "select count(*) from toolsdb.vision_cache where image_hash = %s", (gone,)) == 0
    assert cache.get(kept) is not None


@pytest.mark.parametrize(
    ("change", "sqlstate", "constraint"),
    [
        ({"confidence_score": 1.2}, "23514", "confidence_score_is_valid"),
        ({"image_hash": "a" * 129}, "23514", "image_hash_is_valid"),
        ({"image_hash": "semi;colon"}, "23514", "image_hash_is_valid"),
        ({"model_version": "has space"}, "23514", "model_version_is_valid"),
        ({"extracted_data": ["not", "an", "object"]}, "23514", "extracted_data_is_object"),
    ],
    ids=["confidence-1.2", "hash-63-chars", "hash-uppercase", "model-with-space", "data-not-object"],
)
def test_store_refuses_bad_input_naming_the_constraint(conn, change, sqlstate, constraint):
    args = {"image_hash": image_hash(), "extracted_data": {}, "confidence_score": 0.5, "model_version": MODEL, **change}
    expect_refusal(lambda: VisionCache(conn).store(**args), sqlstate, constraint, "vision_cache_store: ")
    assert scalar(conn, "select count(*) from toolsdb.vision_cache") == 0, "nothing was stored"


def test_store_refuses_a_ttl_that_is_not_positive(conn: psycopg.Connection):
    expect_refusal(
        lambda: VisionCache(conn).store(image_hash(), {}, 0.5, MODEL, ttl="0 days"),
        "22023",
        None,
        "ttl must be a positive interval",
    )
    expect_refusal(lambda: VisionCache(conn).store(image_hash(), {}, 0.5, MODEL, ttl="forever"), "22007", None)


# ---------------------------------------------------------------------------
# Audit trail
# ---------------------------------------------------------------------------


def test_record_event_with_user_is_read_back_with_its_actor(conn: psycopg.Connection):
    audit = AuditTrail(conn)
    entity = unique("project-")
    audit_id = audit.record_event(
        "permission_changed",
        "project",
        entity,
        old_value={"role": "read"},
        new_value={"role": "write"},
        details={"by": "test"},
        user="alice@example.com",
    )
    [event] = audit.get_events(entity_type="project", entity_id=entity)
    assert event["audit_id"] == audit_id
    assert event["action"] == "permission_changed"
    assert event["actor"] == "alice@example.com"
    assert event["old_values"] == {"role": "read"}
    assert event["new_values"] == {"role": "write"}
    assert event["details"] == {"by": "test"}


def test_record_event_without_user_logs_the_database_role_and_keeps_no_actor(conn: psycopg.Connection):
    audit = AuditTrail(conn)
    entity = unique("e")
    audit.record_event("config_updated", "config", entity, user="bob")
    audit.record_event("config_updated", "config", entity)
    newest, older = audit.get_events(entity_type="config", entity_id=entity)
    assert older["actor"] == "bob"
    assert newest["actor"] == SUPERUSER, "the actor setting lasts only for its own transaction"
    assert newest["details"] == {}, "details default to an empty object"


def test_record_event_converts_ids_to_text(conn: psycopg.Connection):
    audit = AuditTrail(conn)
    audit.record_event("thing_done", "thing", 42)
    assert [e["entity_id"] for e in audit.get_events(entity_type="thing", entity_id=42)] == ["42"]


def test_get_events_filters_orders_newest_first_and_limits(conn: psycopg.Connection):
    audit = AuditTrail(conn)
    entity = unique("t")
    first = audit.record_event("step_started", "task", entity)
    second = audit.record_event("step_finished", "task", entity)
    assert [e["audit_id"] for e in audit.get_events(entity_type="task", entity_id=entity)] == [second, first]
    assert [e["audit_id"] for e in audit.get_events(entity_id=entity, action="step_started")] == [first]
    assert [e["audit_id"] for e in audit.get_events(entity_id=entity, limit=1)] == [second]
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert audit.get_events(entity_id=entity, since=future) == []
    assert len(audit.get_events(entity_id=entity, since="2000-01-01T00:00:00Z")) == 2


def test_record_event_refuses_reserved_and_malformed_actions(conn: psycopg.Connection):
    audit = AuditTrail(conn)
    expect_refusal(lambda: audit.record_event("insert", "users", "x", user="mallory"), "42501", None, "reserved")
    expect_refusal(lambda: audit.record_event("Not Snake Case"), "23514", "audit_name_is_valid")
    expect_refusal(lambda: audit.record_event("odd_details", details=[1, 2]), "23514", "audit_object_is_object")
    assert audit.get_events(action="insert", entity_type="users", entity_id="x") == []


def test_get_events_refuses_a_negative_limit(conn: psycopg.Connection):
    expect_refusal(lambda: AuditTrail(conn).get_events(limit=-1), "2201W", None)


# ---------------------------------------------------------------------------
# Bug escalation
# ---------------------------------------------------------------------------


def test_report_bug_counts_occurrences_and_keeps_the_highest_impact(conn: psycopg.Connection):
    bugs = BugEscalation(conn)
    bug_id = unique("bug-")
    first = bugs.report_bug(bug_id, "TimeoutError", "took 6 s", "high")
    again = bugs.report_bug(bug_id, "TimeoutError", "took 9 s", "low")
    assert (first["frequency"], first["status"], first["user_impact"]) == (1, "pending", "high")
    assert (again["frequency"], again["user_impact"], again["error_message"]) == (2, "high", "took 9 s")
    assert bugs.report_bug(unique("bug-"), "E", "m")["user_impact"] == "medium", "the SQL default impact"


def test_report_bug_refuses_an_unknown_impact(conn: psycopg.Connection):
    bug_id = unique("bug-")
    expect_refusal(lambda: BugEscalation(conn).report_bug(bug_id, "E", "m", "huge"), "23514", "user_impact_is_valid")
    assert scalar(conn, "select count(*) from toolsdb.bug_escalations where bug_id = %s", (bug_id,)) == 0


def test_get_escalations_lists_open_bugs_in_priority_order(conn: psycopg.Connection):
    bugs = BugEscalation(conn)
    low, critical, acked = unique("low-"), unique("critical-"), unique("acked-")
    bugs.report_bug(low, "E", "m", "low")
    bugs.report_bug(critical, "E", "m", "critical")
    bugs.report_bug(acked, "E", "m", "medium")
    bugs.move(acked, "acknowledged")
    assert [b["bug_id"] for b in bugs.get_escalations()] == [critical, acked, low]
    assert [b["bug_id"] for b in bugs.get_escalations(status="acknowledged")] == [acked]
    assert [b["bug_id"] for b in bugs.get_escalations(limit=1)] == [critical]
    bugs.move(critical, "resolved")
    assert critical not in [b["bug_id"] for b in bugs.get_escalations()], "resolved bugs leave the queue"


def test_move_returns_the_previous_status_and_assigns(conn: psycopg.Connection):
    bugs = BugEscalation(conn)
    bug_id = unique("bug-")
    bugs.report_bug(bug_id, "E", "m")
    user = insert(conn, "users", username=unique("dev"), email=f"{unique('dev')}@example.com")
    conn.commit()
    assert bugs.move(bug_id, "acknowledged", user["user_id"]) == "pending"
    [row] = bugs.get_escalations()
    assert (row["status"], row["assigned_to"]) == ("acknowledged", user["user_id"])


def test_move_refuses_unknown_bugs_moves_off_the_lifecycle_and_unknown_users(conn: psycopg.Connection):
    bugs = BugEscalation(conn)
    bug_id = unique("bug-")
    bugs.report_bug(bug_id, "E", "m")
    bugs.move(bug_id, "resolved")
    expect_refusal(lambda: bugs.move(bug_id, "acknowledged"), "55000", None, "from resolved to acknowledged")
    expect_refusal(lambda: bugs.move(unique("nobody-"), "resolved"), "P0002", None, "not found")
    expect_refusal(
        lambda: bugs.move(bug_id, "pending", "00000000-0000-0000-0000-000000000000"),
        "23503",
        "bug_escalations_assigned_to_fkey",
    )
    expect_refusal(lambda: bugs.move(bug_id, "pending", "not-a-uuid"), "22P02", None)
    assert scalar(conn, "select status from toolsdb.bug_escalations where bug_id = %s", (bug_id,)) == "resolved"


# ---------------------------------------------------------------------------
# Transactions, connections
# ---------------------------------------------------------------------------


def test_each_call_commits_on_its_own(pg: Pg, db: str, conn: psycopg.Connection):
    bug_id = unique("bug-")
    BugEscalation(conn).report_bug(bug_id, "E", "m")
    with psycopg.connect(pg.conninfo(db)) as other:
        assert scalar(other, "select count(*) from toolsdb.bug_escalations where bug_id = %s", (bug_id,)) == 1


def test_inside_a_caller_transaction_a_failure_undoes_only_the_call(conn: psycopg.Connection):
    bugs = BugEscalation(conn)
    kept = unique("kept-")
    with conn.transaction():
        bugs.report_bug(kept, "E", "m")
        with pytest.raises(DatabaseError):
            bugs.report_bug(unique("bad-"), "E", "m", "huge")
        bugs.report_bug(kept, "E", "m")
    assert scalar(conn, "select frequency from toolsdb.bug_escalations where bug_id = %s", (kept,)) == 2


def test_connect_resolves_the_database_like_the_cli(pg: Pg, db: str, monkeypatch):
    with VisionCache.connect(pg.conninfo(db)) as cache:
        assert cache.stats() == []
    assert cache.conn.closed, "leaving the with block closes the connection"
    monkeypatch.setenv("DATABASE_URL", pg.conninfo(db))
    conn = connect()
    try:
        assert scalar(conn, "select current_database()") == db
        assert scalar(conn, "select current_setting('application_name')") == "toolsdb-tools"
    finally:
        conn.close()
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    with pytest.raises(ToolsdbError, match="DATABASE_URL is not a PostgreSQL URL"):
        BugEscalation.connect()


def test_a_lost_connection_is_one_clear_line(pg: Pg, db: str):
    with VisionCache.connect(pg.conninfo(db)) as cache:
        pid = cache.conn.info.backend_pid
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s, 5000)", (pid,))
        with pytest.raises(DatabaseError) as caught:
            cache.stats()
    message = caught.value.format_message()
    assert message.startswith("vision_cache_stats: ") and "\n" not in str(caught.value.message), message


# ---------------------------------------------------------------------------
# Schema validator (toolsdb.validator, written in parallel)
# ---------------------------------------------------------------------------


def test_schema_validator_returns_the_validator_report(conn: psycopg.Connection):
    pytest.importorskip("toolsdb.validator")
    script = "create table t (id bigint primary key);"
    report = SchemaValidator(conn).validate(script)
    assert set(report) >= {"valid", "statement_hash", "cached", "errors", "warnings", "findings"}
    assert report["statement_hash"] == hashlib.sha256(script.encode()).hexdigest()
    assert report["cached"] is False and isinstance(report["valid"], bool)
    assert report["errors"] == sum(1 for f in report["findings"] if f["severity"] == "error")
    again = SchemaValidator(conn).validate_create_statement(script)
    assert (again["statement_hash"], again["cached"]) == (report["statement_hash"], True), "stored by hash"
    assert SchemaValidator(conn).validate(script, refresh=True)["cached"] is False


def test_schema_validator_refuses_what_is_not_a_definition(conn: psycopg.Connection):
    pytest.importorskip("toolsdb.validator")
    with pytest.raises(ToolsdbError, match=r"refused: statement 1 \(line 1\): DROP TABLE is not a definition"):
        SchemaValidator(conn).validate("drop table toolsdb.users;")
    assert scalar(conn, "select to_regclass('toolsdb.users') is not null")

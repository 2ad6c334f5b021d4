"""The agent tools of seed 000 against a real, migrated database, on each
PostgreSQL major of the suite: the vision-analysis cache
(schema/50_vision_cache.sql), bug escalation (schema/35_bug_escalations.sql
and the view toolsdb.escalation_queue of repeatable/84_agent_tools_views.sql) and
versioned prompts (schema/51_prompt_versions.sql), with what the role
toolsdb_app may do with them (repeatable/99_grants.sql).

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back (``now()`` stays put
in it, so expiry and ageing are simulated by moving timestamps into the past
as the superuser). Tests of concurrency (threads on connections of their
own, started together by a barrier) commit, each in a fresh clone (``db``).
"""

from __future__ import annotations

import hashlib
import math
import threading
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import (
    Clone,
    Row,
    connect,
    connect_app,
    expect_error,
    one,
    rows,
    run_workers,
    scalar,
    unique,
)

CHECK = "23514"  # check_violation
UNIQUE = "23505"  # unique_violation
INVALID = "22023"  # invalid_parameter_value
WRONG_STATE = "55000"  # object_not_in_prerequisite_state
NOT_FOUND = "P0002"  # no_data_found
DENIED = "42501"  # insufficient_privilege
MODEL = "v1.0"

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def image_hash(label: str = "img") -> str:
    """A fresh SHA-256 in lowercase hex."""
    return hashlib.sha256(unique(label).encode()).hexdigest()


def store(
    conn: psycopg.Connection,
    hash_: str,
    data: Any = None,
    confidence: float = 0.9,
    model: str = MODEL,
    ttl: str | None = None,
) -> Any:
    data = {"text": "hello"} if data is None else data
    if ttl is None:
        return scalar(
            conn,
            "select toolsdb.vision_cache_store(%s, %s, %s::double precision, %s)",
            (hash_, Jsonb(data), confidence, model),
        )
    return scalar(
        conn,
        "select toolsdb.vision_cache_store(%s, %s, %s::double precision, %s, %s::interval)",
        (hash_, Jsonb(data), confidence, model, ttl),
    )


def get(conn: psycopg.Connection, hash_: str, model: str | None = None) -> list[Row]:
    return rows(conn, "select * from toolsdb.vision_cache_get(%s, %s::text)", (hash_, model))


def entries(conn: psycopg.Connection, hash_: str) -> list[Row]:
    return rows(conn, "select * from toolsdb.vision_cache where image_hash = %s order by model_version", (hash_,))


def pending_hits(conn: psycopg.Connection, hash_: str) -> int:
    return scalar(conn, "select count(*) from toolsdb.vision_cache_hits where image_hash = %s", (hash_,))


def expire_entry(conn: psycopg.Connection, hash_: str, model: str = MODEL) -> None:
    """Move an entry into the past (created_at too: CHECK expires_after_creation)."""
    conn.execute(
        "update toolsdb.vision_cache set created_at = now() - interval '2 hours', "
        "expires_at = now() - interval '1 hour' where image_hash = %s and model_version = %s",
        (hash_, model),
    )


def report(
    conn: psycopg.Connection,
    bug_id: str,
    impact: str = "medium",
    message: str = "it broke",
    kind: str = "CriticalError",
) -> Row:
    return one(conn, "select * from toolsdb.report_bug(%s, %s, %s, %s)", (bug_id, kind, message, impact))


def bug(conn: psycopg.Connection, bug_id: str) -> Row:
    return one(conn, "select * from toolsdb.bug_escalations where bug_id = %s", (bug_id,))


def move(conn: psycopg.Connection, bug_id: str, to_status: str) -> str:
    return scalar(conn, "select toolsdb.bug_escalation_move(%s, %s)", (bug_id, to_status))


def age_bug(conn: psycopg.Connection, bug_id: str, by: str = "1 hour") -> None:
    """Move first_seen_at and last_seen_at into the past (as the superuser)."""
    conn.execute(
        "update toolsdb.bug_escalations set first_seen_at = first_seen_at - %s::interval, "
        "last_seen_at = last_seen_at - %s::interval where bug_id = %s",
        (by, by, bug_id),
    )


def create_version(
    conn: psycopg.Connection, prompt_id: str, text: str = "You are helpful.", labels: list[str] | None = None
) -> int:
    return scalar(
        conn,
        "select toolsdb.prompt_create_version(%s, %s, '{}'::jsonb, %s::text[])",
        (prompt_id, text, labels or []),
    )


def activate(conn: psycopg.Connection, prompt_id: str, version: int) -> int | None:
    return conn.execute("select toolsdb.prompt_activate(%s, %s)", (prompt_id, version)).fetchone()[0]


def set_label(conn: psycopg.Connection, prompt_id: str, version: int, label: str) -> int | None:
    return conn.execute("select toolsdb.prompt_set_label(%s, %s, %s)", (prompt_id, version, label)).fetchone()[0]


def versions(conn: psycopg.Connection, prompt_id: str) -> list[Row]:
    return rows(conn, "select * from toolsdb.prompt_versions where prompt_id = %s order by version", (prompt_id,))


def prompt_get(conn: psycopg.Connection, prompt_id: str, label: str | None = None, version: int | None = None):
    return rows(conn, "select * from toolsdb.prompt_get(%s, %s::text, %s::integer)", (prompt_id, label, version))


def prompt_name(label: str = "prompt") -> str:
    return unique(f"{label}-").lower()


# ---------------------------------------------------------------------------
# Vision cache
# ---------------------------------------------------------------------------


def test_store_then_get_returns_the_entry(tx: psycopg.Connection) -> None:
    h = image_hash()
    expiry = store(tx, h, {"text": "old model"}, 0.7, "v1.0")
    assert expiry == scalar(tx, "select now() + interval '30 days'"), "The default TTL should be 30 days."
    # The v1.0 entry is an hour older than the v2.0 one.
    tx.execute(
        "update toolsdb.vision_cache set created_at = created_at - interval '1 hour' where image_hash = %s", (h,)
    )
    store(tx, h, {"text": "new model"}, 0.8, "v2.0", ttl="1 day")

    found = get(tx, h, "v1.0")
    assert len(found) == 1, "A live entry should be a hit."
    assert (found[0]["model_version"], found[0]["extracted_data"], found[0]["confidence_score"]) == (
        "v1.0",
        {"text": "old model"},
        0.7,
    )
    newest = get(tx, h)
    assert [r["model_version"] for r in newest] == ["v2.0"], "Without a model version, the newest live entry is hit."
    assert newest[0]["extracted_data"] == {"text": "new model"}
    assert get(tx, image_hash()) == [], "An unknown image should be a miss (no row)."
    assert get(tx, h, "v9") == [], "An unknown model version should be a miss."


def test_storing_again_replaces_the_entry_and_extends_its_expiry(tx: psycopg.Connection) -> None:
    h = image_hash()
    first = store(tx, h, {"a": 1}, 0.5, ttl="1 hour")
    tx.execute("update toolsdb.vision_cache set hit_count = 5 where image_hash = %s", (h,))
    second = store(tx, h, {"b": 2}, 0.8, ttl="2 days")
    assert second > first
    assert second == scalar(tx, "select now() + interval '2 days'")
    stored = entries(tx, h)
    assert len(stored) == 1, "There should be one entry per (image_hash, model_version)."
    assert stored[0]["extracted_data"] == {"b": 2}
    assert stored[0]["confidence_score"] == 0.8
    assert stored[0]["expires_at"] == second
    assert stored[0]["hit_count"] == 5, "Hit counts should survive a replacement."


def test_an_expired_entry_is_a_miss_and_is_purged(tx: psycopg.Connection) -> None:
    expired, live = image_hash("expired"), image_hash("live")
    store(tx, expired, ttl="1 second")
    store(tx, live)
    expire_entry(tx, expired)
    assert get(tx, expired) == [], "An expired entry should be a miss."
    assert get(tx, expired, MODEL) == [], "An expired entry should be a miss with its model version too."
    assert pending_hits(tx, expired) == 0, "A miss should count no hit."
    assert scalar(tx, "select toolsdb.vision_cache_purge_expired()") == 1
    assert entries(tx, expired) == [], "Purge should remove the expired entry."
    assert len(entries(tx, live)) == 1, "Purge should keep live entries."
    assert scalar(tx, "select toolsdb.vision_cache_purge_expired()") == 0


def test_each_get_appends_a_hit_and_flush_folds_them(tx: psycopg.Connection) -> None:
    hot, cold = image_hash("hot"), image_hash("cold")
    store(tx, hot)
    store(tx, cold)
    for _ in range(3):
        assert len(get(tx, hot)) == 1
    assert len(get(tx, cold, MODEL)) == 1
    get(tx, image_hash("missing"))
    assert (pending_hits(tx, hot), pending_hits(tx, cold)) == (3, 1), "Each get should append one hit row."
    assert entries(tx, hot)[0]["hit_count"] == 0, "A get should not touch the entry's row."

    assert scalar(tx, "select toolsdb.vision_cache_flush_hits()") == 4
    assert scalar(tx, "select count(*) from toolsdb.vision_cache_hits") == 0, "Flush should empty vision_cache_hits."
    now = scalar(tx, "select now()")
    assert (entries(tx, hot)[0]["hit_count"], entries(tx, hot)[0]["last_hit_at"]) == (3, now)
    assert (entries(tx, cold)[0]["hit_count"], entries(tx, cold)[0]["last_hit_at"]) == (1, now)
    assert scalar(tx, "select toolsdb.vision_cache_flush_hits()") == 0

    get(tx, hot)
    assert scalar(tx, "select toolsdb.vision_cache_flush_hits()") == 1
    assert entries(tx, hot)[0]["hit_count"] == 4, "A second flush should add to the folded count."


def test_stats_report_entries_live_expired_hits_and_ratio_per_model_version(tx: psycopg.Connection) -> None:
    model, quiet = unique("stats-"), unique("quiet-")
    a, b, c, d = (image_hash() for _ in range(4))
    store(tx, a, model=model)
    store(tx, b, model=model)
    store(tx, c, model=model)
    store(tx, d, model=quiet)
    expire_entry(tx, c, model)
    tx.execute("update toolsdb.vision_cache set hit_count = 4 where image_hash = %s", (a,))
    get(tx, a, model)
    get(tx, b, model)  # 4 folded + 2 pending hits on 3 entries of model

    stats = {
        r["model_version"]: r
        for r in rows(tx, "select * from toolsdb.vision_cache_stats() where model_version = any(%s)", ([model, quiet],))
    }
    assert {k: v for k, v in stats[model].items() if k != "hit_ratio"} == {
        "model_version": model,
        "entries": 3,
        "live": 2,
        "expired": 1,
        "hits": 6,
    }
    assert math.isclose(stats[model]["hit_ratio"], 6 / (6 + 3)), "hit_ratio should be hits / (hits + entries)."
    assert (stats[quiet]["entries"], stats[quiet]["hits"], stats[quiet]["hit_ratio"]) == (1, 0, 0.0)


def test_a_hot_key_get_takes_no_row_lock(pg: Pg, db: str, su: psycopg.Connection) -> None:
    h = image_hash("hot")
    store(su, h)
    with connect(pg, db, autocommit=False) as holder, connect(pg, db) as reader:
        assert len(get(holder, h)) == 1  # the transaction stays open
        reader.execute("set lock_timeout = '200ms'")
        for _ in range(20):
            assert len(get(reader, h)) == 1, "A reader should hit while another transaction holds a hit."
        holder.rollback()
    assert scalar(su, "select toolsdb.vision_cache_flush_hits()") == 20


def test_concurrent_gets_on_one_hash_all_count(pg: Pg, db: str, su: psycopg.Connection) -> None:
    h = image_hash("hot")
    store(su, h)

    def work(n: int, start: threading.Barrier) -> int:
        with connect(pg, db) as conn:
            conn.execute("set lock_timeout = '5s'")
            start.wait()
            return sum(len(get(conn, h)) for _ in range(50))

    assert run_workers(8, work) == [50] * 8, "Every get should hit."
    assert scalar(su, "select toolsdb.vision_cache_flush_hits()") == 400
    assert entries(su, h)[0]["hit_count"] == 400
    assert pending_hits(su, h) == 0


@pytest.mark.parametrize(
    ("hash_", "data", "confidence", "ttl", "sqlstate", "constraint"),
    [
        pytest.param(None, {"a": 1}, 1.2, None, CHECK, "confidence_score_is_valid", id="confidence-1.2"),
        pytest.param(None, {"a": 1}, -0.1, None, CHECK, "confidence_score_is_valid", id="confidence-negative"),
        pytest.param("a" * 129, {"a": 1}, 0.5, None, CHECK, "image_hash_is_valid", id="hash-129-chars"),
        pytest.param("has space", {"a": 1}, 0.5, None, CHECK, "image_hash_is_valid", id="hash-with-space"),
        pytest.param(None, [1, 2], 0.5, None, CHECK, "extracted_data_is_object", id="data-array"),
        pytest.param(None, {"a": 1}, 0.5, "0 seconds", INVALID, None, id="ttl-zero"),
        pytest.param(None, {"a": 1}, 0.5, "-1 hour", INVALID, None, id="ttl-negative"),
    ],
)
def test_bad_cache_input_is_refused_and_leaves_no_row(
    tx: psycopg.Connection,
    hash_: str | None,
    data: Any,
    confidence: float,
    ttl: str | None,
    sqlstate: str,
    constraint: str | None,
) -> None:
    h = hash_ or image_hash()
    expect_error(tx, sqlstate, lambda: store(tx, h, data, confidence, ttl=ttl), constraint)
    assert entries(tx, h) == []


# ---------------------------------------------------------------------------
# Bug escalation
# ---------------------------------------------------------------------------


def test_a_new_bug_is_pending_with_frequency_1(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    row = report(tx, bug_id, "high")
    assert (row["status"], row["frequency"], row["user_impact"], row["reopened_count"], row["resolved_at"]) == (
        "pending",
        1,
        "high",
        0,
        None,
    )
    assert row["first_seen_at"] == row["last_seen_at"] == scalar(tx, "select now()")


def test_reporting_again_counts_and_keeps_the_highest_impact(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id, "high")
    age_bug(tx, bug_id)
    before = bug(tx, bug_id)
    again = report(tx, bug_id, "low", message="it broke again")
    assert again["frequency"] == 2
    assert again["user_impact"] == "high", "A lower impact should not lower the bug's impact."
    assert again["last_seen_at"] > before["last_seen_at"]
    assert again["last_seen_at"] == scalar(tx, "select now()")
    assert again["first_seen_at"] == before["first_seen_at"]
    assert again["error_message"] == "it broke again"
    third = report(tx, bug_id, "critical")
    assert (third["frequency"], third["user_impact"]) == (3, "critical")


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_concurrent_reports_count_every_occurrence(pg: Pg, db: str, su: psycopg.Connection, existing: bool) -> None:
    bug_id = unique("bug-")
    base = 0
    if existing:
        report(su, bug_id)
        base = 1

    def work(n: int, start: threading.Barrier) -> None:
        with connect(pg, db) as conn:
            start.wait()
            report(conn, bug_id, "low" if n % 2 else "high")

    run_workers(10, work)
    row = bug(su, bug_id)
    assert row["frequency"] == base + 10, "Ten concurrent reports should add exactly ten."
    assert row["user_impact"] == "high"


def test_a_resolved_bug_reported_again_reopens(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id)
    assert move(tx, bug_id, "resolved") == "pending"
    assert bug(tx, bug_id)["resolved_at"] is not None
    row = report(tx, bug_id)
    assert (row["status"], row["reopened_count"], row["resolved_at"], row["frequency"]) == ("pending", 1, None, 2)
    report(tx, bug_id)
    assert bug(tx, bug_id)["reopened_count"] == 1, "Reporting an open bug should not count a reopening."


def test_lifecycle_moves_return_the_previous_status(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id)
    path = ["acknowledged", "pending", "resolved", "pending", "acknowledged", "resolved"]
    previous = "pending"
    for status in path:
        assert move(tx, bug_id, status) == previous, f"Moving to {status} should return {previous}."
        row = bug(tx, bug_id)
        assert row["status"] == status
        assert (row["resolved_at"] is not None) == (status == "resolved")
        previous = status


def test_a_move_outside_the_lifecycle_fails_and_changes_nothing(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id)
    move(tx, bug_id, "resolved")
    before = bug(tx, bug_id)
    error = expect_error(tx, WRONG_STATE, lambda: move(tx, bug_id, "acknowledged"))
    assert "resolved" in str(error) and "acknowledged" in str(error), "The error should name both states."
    assert bug(tx, bug_id) == before
    expect_error(
        tx,
        WRONG_STATE,
        lambda: tx.execute("update toolsdb.bug_escalations set status = 'acknowledged' where bug_id = %s", (bug_id,)),
    )
    assert bug(tx, bug_id) == before


def test_moving_an_unknown_bug_is_no_data_found(tx: psycopg.Connection) -> None:
    expect_error(tx, NOT_FOUND, lambda: move(tx, unique("nobug-"), "acknowledged"))


@pytest.mark.parametrize(
    ("impact", "frequency", "expected"),
    [
        ("low", 1, 0),
        ("medium", 1, 100),
        ("high", 1, 200),
        ("critical", 1, 300),
        ("medium", 2, 110),
        ("medium", 3, 115),
        ("high", 8, 230),
        ("high", 10, 233),
        ("critical", 1000, 399),
        ("low", 1000, 99),
        ("low", 2**20, 99),
    ],
)
def test_escalation_priority_is_impact_rank_then_log_frequency(
    tx: psycopg.Connection, impact: str, frequency: int, expected: int
) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id, impact)
    tx.execute("update toolsdb.bug_escalations set frequency = %s where bug_id = %s", (frequency, bug_id))
    assert bug(tx, bug_id)["escalation_priority"] == expected
    assert expected == 100 * ["low", "medium", "high", "critical"].index(impact) + min(
        99, math.floor(10 * math.log2(frequency))
    )


def test_the_escalation_queue_lists_open_bugs_in_priority_order(tx: psycopg.Connection) -> None:
    critical, frequent, older, newer, resolved = (unique(f"q{n}-") for n in range(5))
    report(tx, critical, "critical")
    report(tx, frequent, "high")
    tx.execute("update toolsdb.bug_escalations set frequency = 1000 where bug_id = %s", (frequent,))
    report(tx, older, "high")
    age_bug(tx, older)
    report(tx, newer, "high")
    report(tx, resolved, "critical")
    tx.execute("update toolsdb.bug_escalations set frequency = 50 where bug_id = %s", (resolved,))
    move(tx, resolved, "resolved")
    move(tx, newer, "acknowledged")
    mine = [critical, frequent, older, newer, resolved]
    queue = rows(tx, "select bug_id, escalation_priority, status from toolsdb.escalation_queue")
    listed = [r["bug_id"] for r in queue if r["bug_id"] in mine]
    assert listed == [critical, frequent, newer, older], "Open bugs by priority, then the most recently seen first."
    assert [r["escalation_priority"] for r in queue if r["bug_id"] in mine] == [300, 299, 200, 200]


def test_error_logs_point_to_their_bug_until_it_is_deleted(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id)
    error_id = scalar(tx, "select toolsdb.error_record('system', 'disk full')")
    tx.execute("update toolsdb.error_logs set bug_id = %s where error_id = %s", (bug_id, error_id))
    assert scalar(tx, "select bug_id from toolsdb.error_logs where error_id = %s", (error_id,)) == bug_id
    expect_error(
        tx,
        "23503",
        lambda: tx.execute("update toolsdb.error_logs set bug_id = 'no-such-bug' where error_id = %s", (error_id,)),
        "error_logs_bug_id_fkey",
    )
    tx.execute("delete from toolsdb.bug_escalations where bug_id = %s", (bug_id,))
    assert scalar(tx, "select bug_id from toolsdb.error_logs where error_id = %s", (error_id,)) is None


@pytest.mark.parametrize(
    ("bug_id", "impact", "constraint"),
    [
        pytest.param(None, "huge", "user_impact_is_valid", id="impact-huge"),
        pytest.param("", "medium", "bug_id_is_valid", id="bug-id-empty"),
        pytest.param("has space", "medium", "bug_id_is_valid", id="bug-id-space"),
    ],
)
def test_bad_bug_reports_are_refused_and_leave_no_row(
    tx: psycopg.Connection, bug_id: str | None, impact: str, constraint: str
) -> None:
    bug_id = unique("bug-") if bug_id is None else bug_id
    expect_error(tx, CHECK, lambda: report(tx, bug_id, impact), constraint)
    assert rows(tx, "select * from toolsdb.bug_escalations where bug_id = %s", (bug_id,)) == []


def test_a_bad_impact_on_a_known_bug_is_refused_and_changes_nothing(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    report(tx, bug_id, "high")
    before = bug(tx, bug_id)
    expect_error(tx, CHECK, lambda: report(tx, bug_id, "huge"), "user_impact_is_valid")
    assert bug(tx, bug_id) == before


def test_an_unknown_status_is_refused(tx: psycopg.Connection) -> None:
    bug_id = unique("bug-")
    expect_error(
        tx,
        CHECK,
        lambda: tx.execute(
            "insert into toolsdb.bug_escalations (bug_id, error_type, error_message, user_impact, status) "
            "values (%s, 'E', 'm', 'low', 'done')",
            (bug_id,),
        ),
        "status_is_valid",
    )
    report(tx, bug_id)
    # A move to an unknown status is refused by the lifecycle before the check.
    expect_error(tx, (WRONG_STATE, CHECK), lambda: move(tx, bug_id, "done"))
    assert bug(tx, bug_id)["status"] == "pending"


# ---------------------------------------------------------------------------
# Versioned prompts
# ---------------------------------------------------------------------------


def test_versions_are_numbered_per_prompt(tx: psycopg.Connection) -> None:
    first, second = prompt_name(), prompt_name()
    assert [create_version(tx, first, f"text {n}") for n in range(3)] == [1, 2, 3]
    assert create_version(tx, second) == 1
    assert create_version(tx, first) == 4
    assert scalar(tx, "select latest_version from toolsdb.prompts where prompt_id = %s", (first,)) == 4
    assert [v["version"] for v in versions(tx, second)] == [1]


def test_concurrent_creators_get_gapless_versions(pg: Pg, db: str, su: psycopg.Connection) -> None:
    prompt_id = prompt_name()

    def work(n: int, start: threading.Barrier) -> list[int]:
        with connect(pg, db) as conn:
            start.wait()
            return [create_version(conn, prompt_id, f"thread {n} version {k}") for k in range(5)]

    made = run_workers(8, work)
    assert sorted(v for mine in made for v in mine) == list(range(1, 41))
    assert [v["version"] for v in versions(su, prompt_id)] == list(range(1, 41))
    assert scalar(su, "select latest_version from toolsdb.prompts where prompt_id = %s", (prompt_id,)) == 40


def test_prompt_versions_are_immutable_but_labels_may_change(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    create_version(tx, prompt_id, "original")
    for change in ("prompt_text = 'changed'", "version = 7"):
        expect_error(
            tx,
            CHECK,
            lambda change=change: tx.execute(
                f"update toolsdb.prompt_versions set {change} where prompt_id = %s", (prompt_id,)
            ),
            "prompt_version_is_immutable",
        )
    tx.execute("update toolsdb.prompt_versions set labels = '{canary}' where prompt_id = %s", (prompt_id,))
    assert versions(tx, prompt_id)[0]["prompt_text"] == "original"
    assert versions(tx, prompt_id)[0]["labels"] == ["canary"]


def test_at_most_one_production_version_per_prompt(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    create_version(tx, prompt_id, labels=["production"])
    create_version(tx, prompt_id)
    expect_error(
        tx,
        UNIQUE,
        lambda: tx.execute(
            "update toolsdb.prompt_versions set labels = '{production}' where prompt_id = %s and version = 2",
            (prompt_id,),
        ),
        "prompt_versions_production_key",
    )
    expect_error(
        tx, UNIQUE, lambda: create_version(tx, prompt_id, labels=["production"]), "prompt_versions_production_key"
    )
    assert [v["is_active"] for v in versions(tx, prompt_id)] == [True, False]


def test_activate_moves_production_and_returns_the_previous_version(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    for n in range(3):
        create_version(tx, prompt_id, f"text {n}", labels=["reviewed"])
    assert activate(tx, prompt_id, 1) is None
    assert activate(tx, prompt_id, 3) == 1
    found = versions(tx, prompt_id)
    assert [v["is_active"] for v in found] == [False, False, True]
    assert [v["labels"] for v in found] == [["reviewed"], ["reviewed"], ["reviewed", "production"]]
    assert activate(tx, prompt_id, 3) == 3, "Activating the active version should change nothing."
    assert [v["is_active"] for v in versions(tx, prompt_id)] == [False, False, True]


def test_concurrent_activations_leave_exactly_one_active(pg: Pg, db: str, su: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    for n in range(3):
        create_version(su, prompt_id, f"text {n}")
    activate(su, prompt_id, 1)

    def work(n: int, start: threading.Barrier) -> int | None:
        with connect(pg, db) as conn:
            start.wait()
            return activate(conn, prompt_id, n + 2)

    previous = run_workers(2, work)
    active = [v["version"] for v in versions(su, prompt_id) if v["is_active"]]
    assert len(active) == 1, f"Exactly one version should be active, not {active}."
    assert sorted(previous) == sorted([1, 5 - active[0]]), "The later activation should see the earlier one's version."
    production = [v["version"] for v in versions(su, prompt_id) if "production" in v["labels"]]
    assert production == active, "is_active should mirror the production label."


def test_prompt_get_by_label_by_version_and_latest(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    for n in range(3):
        create_version(tx, prompt_id, f"text {n + 1}")
    activate(tx, prompt_id, 2)
    assert [r["version"] for r in prompt_get(tx, prompt_id, label="production")] == [2]
    assert [r["prompt_text"] for r in prompt_get(tx, prompt_id, version=1)] == ["text 1"]
    assert [r["version"] for r in prompt_get(tx, prompt_id)] == [3], "With neither, the latest version."
    assert [r["version"] for r in prompt_get(tx, prompt_id, label="production", version=2)] == [2]
    assert prompt_get(tx, prompt_id, label="production", version=3) == []
    assert prompt_get(tx, prompt_id, label="staging") == []
    assert prompt_get(tx, prompt_id, version=9) == []
    assert prompt_get(tx, prompt_name()) == []


def test_free_labels_move_between_versions(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    for n in range(3):
        create_version(tx, prompt_id, f"text {n}")
    activate(tx, prompt_id, 1)
    assert set_label(tx, prompt_id, 1, "staging") is None
    assert set_label(tx, prompt_id, 2, "staging") == 1
    assert set_label(tx, prompt_id, 3, "canary") is None
    assert [v["labels"] for v in versions(tx, prompt_id)] == [["production"], ["staging"], ["canary"]]
    assert [r["version"] for r in prompt_get(tx, prompt_id, label="staging")] == [2]
    assert [v["is_active"] for v in versions(tx, prompt_id)] == [True, False, False]


def test_label_moves_are_audited(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    create_version(tx, prompt_id, "one")
    create_version(tx, prompt_id, "two")
    set_label(tx, prompt_id, 1, "staging")
    set_label(tx, prompt_id, 2, "staging")
    set_label(tx, prompt_id, 2, "staging")  # no move: no event
    events = rows(
        tx,
        "select action, entity_type, entity_id, old_values, new_values from toolsdb.audit_logs "
        "where action = 'prompt_label_moved' and entity_id = %s order by audit_id",
        (prompt_id,),
    )
    assert len(events) == 2, f"Each move (and only a move) should write an event: {events}"
    assert events[1]["entity_type"] == "prompt"
    assert (events[1]["old_values"], events[1]["new_values"]) == (
        {"label": "staging", "version": 1},
        {"label": "staging", "version": 2},
    ), "The event should record the version that had the label before (old) and after (new)."
    assert (events[0]["old_values"], events[0]["new_values"]) == (
        {"label": "staging", "version": None},
        {"label": "staging", "version": 1},
    )


def test_label_updates_are_captured_by_the_audit_trigger(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    create_version(tx, prompt_id, "one")
    create_version(tx, prompt_id, "two")
    activate(tx, prompt_id, 1)
    activate(tx, prompt_id, 2)
    captured = rows(
        tx,
        "select entity_id::jsonb ->> 'version' as version, old_values -> 'labels' as old, "
        "new_values -> 'labels' as new from toolsdb.audit_logs "
        "where action = 'update' and entity_type = 'prompt_versions' and entity_id::jsonb ->> 'prompt_id' = %s "
        "order by audit_id",
        (prompt_id,),
    )
    assert captured == [
        {"version": "1", "old": [], "new": ["production"]},
        {"version": "1", "old": ["production"], "new": []},
        {"version": "2", "old": [], "new": ["production"]},
    ]


@pytest.mark.parametrize(
    ("prompt_id", "text", "labels", "constraint"),
    [
        pytest.param(None, "", [], "prompt_text_is_not_empty", id="text-empty"),
        pytest.param(None, "   ", [], "prompt_text_is_not_empty", id="text-blank"),
        pytest.param(None, "ok", ["Bad Label"], "labels_are_valid", id="label-bad"),
        pytest.param("Bad Id", "ok", [], "prompt_id_is_valid", id="prompt-id-bad"),
    ],
)
def test_bad_prompt_versions_are_refused_and_leave_no_row(
    tx: psycopg.Connection, prompt_id: str | None, text: str, labels: list[str], constraint: str
) -> None:
    prompt_id = prompt_id or prompt_name()
    expect_error(tx, CHECK, lambda: create_version(tx, prompt_id, text, labels), constraint)
    assert versions(tx, prompt_id) == []
    assert rows(tx, "select * from toolsdb.prompts where prompt_id = %s", (prompt_id,)) == []


@pytest.mark.parametrize("label", ["", "staging,production", "Bad Label"])
def test_a_malformed_label_is_refused(tx: psycopg.Connection, label: str) -> None:
    prompt_id = prompt_name()
    create_version(tx, prompt_id)
    expect_error(tx, CHECK, lambda: set_label(tx, prompt_id, 1, label), "labels_are_valid")
    expect_error(tx, CHECK, lambda: create_version(tx, prompt_id, labels=["staging", label]), "labels_are_valid")
    assert versions(tx, prompt_id)[0]["labels"] == []


def test_activating_a_missing_version_is_no_data_found(tx: psycopg.Connection) -> None:
    prompt_id = prompt_name()
    create_version(tx, prompt_id)
    expect_error(tx, NOT_FOUND, lambda: activate(tx, prompt_id, 2))
    expect_error(tx, NOT_FOUND, lambda: activate(tx, prompt_name(), 1))
    assert versions(tx, prompt_id)[0]["labels"] == []


# ---------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------


def test_the_app_uses_the_agent_tools(pg: Pg, committed: Clone, app_login: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        h = image_hash()
        store(app, h)
        assert len(get(app, h)) == 1
        assert rows(app, "select * from toolsdb.vision_cache_stats() where model_version = %s", (MODEL,))
        bug_id = unique("bug-")
        report(app, bug_id)
        assert move(app, bug_id, "acknowledged") == "pending"
        prompt_id = prompt_name()
        create_version(app, prompt_id)
        create_version(app, prompt_id)
        assert activate(app, prompt_id, 1) is None
        assert activate(app, prompt_id, 2) == 1
        assert [r["version"] for r in prompt_get(app, prompt_id, label="production")] == [2]


@pytest.mark.parametrize(
    "statement",
    [
        "select toolsdb.vision_cache_flush_hits()",
        "select toolsdb.vision_cache_purge_expired()",
        "update toolsdb.vision_cache_hits set hit_at = now()",
        "delete from toolsdb.vision_cache_hits",
    ],
)
def test_the_app_cannot_maintain_the_cache(pg: Pg, committed: Clone, app_login: str, statement: str) -> None:
    with connect_app(pg, committed.dbname, app_login) as app:
        expect_error(app, DENIED, lambda: app.execute(statement))

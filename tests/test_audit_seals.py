"""The audit log's seals (toolsdb.audit_seal) and their verification
(toolsdb.audit_verify), also under concurrent writers (docs/security.md).

Everything runs on each PostgreSQL major of the suite, connected as the
superuser ``postgres``. Isolation, kept cheap: tests that never need a
committed write run in ``tx``, a transaction that is always rolled back, on
one clone of the template per module and major holding one committed,
sealed entry (so the guards of toolsdb.audit_seals have a row to refuse to
touch); tests that need committed transactions get a fresh clone
(``conn``). Every statement that must fail runs in ``conn.transaction()``
(a savepoint inside ``tx``), so a failure never poisons the statements
after it.
"""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest

from .audithelpers import (
    covered_by,
    event,
    expect_first_problem,
    new_agent,
    rows,
    scalar,
    seal,
    sealed_clone,
    sealed_log,
    seals,
    set_context,
    strand,
    tamper,
    verify,
)
from .conftest import Pg

committed = pytest.fixture(sealed_clone, scope="module")


# ---------------------------------------------------------------------------
# Seals and verification
# ---------------------------------------------------------------------------


def test_seal_then_verify_is_clean(conn: psycopg.Connection) -> None:
    for _ in range(3):
        new_agent(conn)
    event(conn)
    sealed = seal(conn)
    assert sealed > 0, f"Sealing committed entries should write at least one seal row, but it wrote {sealed}."
    found = verify(conn)
    assert found == [], f"audit_verify right after sealing should report nothing, but it reports {found}."


def test_sealing_again_with_nothing_new_returns_zero(conn: psycopg.Connection) -> None:
    event(conn)
    assert seal(conn) > 0, "The first seal should write a seal row."
    count = len(seals(conn))
    again = seal(conn)
    assert (again, len(seals(conn))) == (0, count), (
        f"Sealing again with nothing new should return 0 and write nothing, but it returned {again} and there are "
        f"now {len(seals(conn))} seals instead of {count}."
    )


def test_seals_chain_their_hashes(conn: psycopg.Connection) -> None:
    sealed_log(conn)
    event(conn)
    strand(conn, "1 month")  # a second month in the same batch: two seal rows share one range
    assert seal(conn) == 2, "A batch with entries of two months should write two seal rows."
    chain = rows(
        conn,
        "select s.*, toolsdb_private.audit_seal_hash(s.previous_hash, s.period, s.first_transaction_id, "
        "s.end_transaction_id, s.row_count, s.rows_hash) as recomputed from toolsdb.audit_seals as s order by seal_id",
    )
    assert chain[0]["previous_hash"] is None, "The first seal should have no previous hash."
    for prior, seal_row in itertools.pairwise(chain):
        assert seal_row["previous_hash"] == prior["seal_hash"], (
            f"Seal {seal_row['seal_id']}'s previous_hash should be seal {prior['seal_id']}'s seal_hash."
        )
        assert seal_row["first_transaction_id"] in (prior["end_transaction_id"], prior["first_transaction_id"]), (
            f"Seal {seal_row['seal_id']} should start where the previous batch ended (or share its batch)."
        )
    assert all(s["recomputed"] == s["seal_hash"] for s in chain), "Every seal_hash should hash its own fields."
    assert verify(conn) == [], "The chained seals should verify."


def test_seals_cover_every_entry_under_concurrent_writers(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    """8 writers on connections of their own run 50 short transactions each (captured inserts and updates,
    explicit events) while two sealers call audit_seal() in a loop: the seals must end up covering every entry
    exactly once and verify. (Sealing with the snapshot's xmax instead of its xmin, or without the sealers' lock,
    makes this test fail.)"""
    writers, transactions, sealers = 8, 50, 2
    start = threading.Barrier(writers + sealers, timeout=60)
    writing = threading.Event()
    failures: list[BaseException] = []
    seal_calls = [0]

    def write(n: int) -> None:
        try:
            with psycopg.connect(pg.conninfo(db), autocommit=True) as c:
                start.wait()
                for i in range(transactions):
                    with c.transaction():
                        set_context(c, actor=f"writer-{n}", session_id=f"s{n}")
                        c.execute("insert into toolsdb.agents (name, agent_type) values (%s, 'coding')", (f"w{n}-{i}",))
                        if i % 5 == 0:
                            c.execute("update toolsdb.agents set description = 'busy' where name = %s", (f"w{n}-{i}",))
                            c.execute("select toolsdb.audit_event('writer_progress', 'writer', %s)", (f"{n}-{i}",))
        except BaseException as exc:
            failures.append(exc)
            start.abort()

    def sealer() -> None:
        try:
            with psycopg.connect(pg.conninfo(db), autocommit=True) as c:
                start.wait()
                while writing.is_set():
                    c.execute("select toolsdb.audit_seal()")
                    seal_calls[0] += 1
        except BaseException as exc:
            failures.append(exc)

    writing.set()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    sealing = [threading.Thread(target=sealer) for _ in range(sealers)]
    for thread in [*threads, *sealing]:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writing.clear()
    for thread in sealing:
        thread.join(timeout=120)
    assert failures == [], f"Writers and sealers should run without errors, but got {failures}."
    assert not any(t.is_alive() for t in [*threads, *sealing]), "Every thread should have finished."
    sealed_while_writing = len(seals(conn))
    conn.commit()
    seal(conn)

    expected = writers * transactions + writers * (transactions // 5) * 2
    total = scalar(conn, "select count(*) from toolsdb.audit_logs")
    assert total == expected, f"The writers should have left {expected} entries, but the log holds {total}."
    assert sealed_while_writing >= 2, (
        f"The sealers should have sealed several times while the writers wrote, but they ran {seal_calls[0]} times "
        f"and wrote {sealed_while_writing} seal rows."
    )
    found = verify(conn)
    assert found == [], f"audit_verify should pass after concurrent writes and seals, but it reports {found[:5]}."
    covered = scalar(
        conn,
        "select sum(row_count) from toolsdb.audit_seals as s "
        "where not exists (select from toolsdb.audit_prunes as p where p.period = s.period)",
    )
    assert covered == total, f"The seals should cover exactly every entry ({total}), but they count {covered}."
    not_once = scalar(
        conn,
        """
        select count(*) from toolsdb.audit_logs as l
        where 1 <> (
            select count(*) from toolsdb.audit_seals as s
            where l.transaction_id >= s.first_transaction_id and l.transaction_id < s.end_transaction_id
              and s.period = date_trunc('month', l.logged_at at time zone 'UTC')::date
        )
        """,
    )
    assert not_once == 0, f"Every entry should lie in exactly one seal, but {not_once} do not."


def test_verify_reports_a_changed_sealed_entry(conn: psycopg.Connection) -> None:
    last = sealed_log(conn)[-1]
    target = covered_by(conn, last)[0]
    tamper(conn)
    conn.execute("update toolsdb.audit_logs set actor = 'mallory' where audit_id = %s", (target["audit_id"],))
    expect_first_problem(conn, "sealed entries changed", last)


def test_verify_reports_a_deleted_sealed_entry(conn: psycopg.Connection) -> None:
    last = sealed_log(conn)[-1]
    target = covered_by(conn, last)[0]
    tamper(conn)
    conn.execute("delete from toolsdb.audit_logs where audit_id = %s", (target["audit_id"],))
    first = expect_first_problem(conn, "sealed entries missing", last)
    assert (first["sealed_rows"], first["found_rows"]) == (last["row_count"], last["row_count"] - 1), (
        f"The report should count {last['row_count']} sealed rows and one fewer found, but it reads {first}."
    )


@pytest.mark.parametrize(
    ("month", "problem"),
    [("0 days", "entries added to a sealed range"), ("1 month", "entries in a sealed range that no seal covers")],
    ids=["sealed month", "other month"],
)
def test_verify_reports_an_entry_added_to_a_sealed_range(conn: psycopg.Connection, month: str, problem: str) -> None:
    last = sealed_log(conn)[-1]
    target = covered_by(conn, last)[0]
    conn.execute(
        "insert into toolsdb.audit_logs (audit_id, action, transaction_id, logged_at) overriding system value "
        "values ((select max(audit_id) + 1000 from toolsdb.audit_logs), 'forged', %s, %s + %s::interval)",
        (target["transaction_id"], target["logged_at"], month),
    )
    expect_first_problem(conn, problem, last)


def test_verify_reports_a_tampered_seal(conn: psycopg.Connection) -> None:
    first_seal = sealed_log(conn)[0]
    tamper(conn)
    conn.execute(
        "update toolsdb.audit_seals set seal_hash = sha256('forged'::bytea) where seal_id = %s",
        (first_seal["seal_id"],),
    )
    expect_first_problem(conn, "seal hash does not match its fields", first_seal)


def test_verify_reports_a_deleted_seal(conn: psycopg.Connection) -> None:
    first_seal, second_seal = sealed_log(conn)[:2]
    tamper(conn)
    conn.execute("delete from toolsdb.audit_seals where seal_id = %s", (first_seal["seal_id"],))
    expect_first_problem(conn, "seal chain broken: previous_hash differs", second_seal)


def test_verify_ignores_entries_not_sealed_yet(conn: psycopg.Connection) -> None:
    sealed_log(conn)
    agent = new_agent(conn)
    conn.commit()
    assert verify(conn) == [], "Entries written after the last seal should not be flagged."
    tamper(conn)
    conn.execute("update toolsdb.audit_logs set actor = 'mallory' where entity_id = %s", (str(agent["agent_id"]),))
    found = verify(conn)
    assert found == [], f"Seals do not cover entries written after them, so changing one is not flagged: {found}."

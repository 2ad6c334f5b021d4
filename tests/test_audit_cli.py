"""`toolsdb audit seal|verify|maintain` on a real database: verify passes on a
seeded, sealed database and fails, naming the first bad range, on a tampered
one. Also: the audit log's read paths are indexed."""

from __future__ import annotations

import re

import psycopg
import pytest

from .conftest import ROOT, Pg, run_cli


@pytest.fixture
def seeded(pg: Pg, db: str) -> str:
    pg.psql(db, "-f", str(ROOT / "seeds" / "10_identity.sql"))
    return db


def test_verify_passes_on_a_seeded_and_sealed_database(pg: Pg, seeded: str) -> None:
    sealed = run_cli("audit", "seal", "--database", pg.url(seeded))
    assert sealed.returncode == 0, sealed.stderr
    assert re.fullmatch(r"sealed \d+ new range\(s\); newest seal \d+: [0-9a-f]{64}\n", sealed.stdout), sealed.stdout
    verified = run_cli("audit", "verify", "--database", pg.url(seeded))
    assert verified.returncode == 0, verified.stderr
    assert re.fullmatch(r"audit log intact: \d+ seal\(s\) cover \d+ entries; 0 not sealed yet\n", verified.stdout)


def test_verify_fails_on_a_tampered_database_and_names_the_first_bad_range(pg: Pg, seeded: str) -> None:
    assert run_cli("audit", "seal", "--database", pg.url(seeded)).returncode == 0
    with psycopg.connect(pg.conninfo(seeded)) as conn:
        seal = conn.execute(
            "select seal_id, to_char(period, 'YYYY-MM'), first_transaction_id::text, end_transaction_id::text"
            " from toolsdb.audit_seals order by seal_id limit 1"
        ).fetchone()
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            'update toolsdb.audit_logs set new_values = \'{"role": "admin"}\''
            " where audit_id = (select min(audit_id) from toolsdb.audit_logs)"
        )
    result = run_cli("audit", "verify", "--database", pg.url(seeded))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"Error: audit log tampered: first bad range is seal {seal[0]}, month {seal[1]}, "
        f"transactions {seal[2]}..{seal[3]}: sealed entries changed"
    )
    assert "sealed entries changed" in result.stdout, "the problems are listed as a table on stdout"


def test_maintain_creates_partitions_and_applies_retention(pg: Pg, db: str) -> None:
    result = run_cli("audit", "maintain", "--months-ahead", "6", "--database", pg.url(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "created 3 partition(s), dropped 0 partition(s) past retention\n"
    again = run_cli("audit", "maintain", "--months-ahead", "6", "--database", pg.url(db))
    assert again.stdout == "created 0 partition(s), dropped 0 partition(s) past retention\n"


def test_maintain_rejects_a_bad_retention_in_one_line(pg: Pg, db: str) -> None:
    result = run_cli("audit", "maintain", "--retention", "forever", "--database", pg.url(db))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: --retention 'forever': invalid input syntax for type interval: \"forever\""
    ]


@pytest.mark.parametrize(
    ("predicate", "index"),
    [
        ("entity_type = 'users' and entity_id = 'x'", "audit_logs_entity_type_entity_id_idx"),
        ("actor = 'alice'", "audit_logs_actor_idx"),
        ("session_id = 's1'", "audit_logs_session_id_idx"),
        ("transaction_id = '1000'::xid8", "audit_logs_pkey"),
    ],
)
def test_each_read_path_of_the_audit_log_is_indexed(conn: psycopg.Connection, predicate: str, index: str) -> None:
    # Few rows: forbid sequential scans to ask whether an index *can* serve it.
    conn.execute("set local enable_seqscan = off")
    plan = "\n".join(r[0] for r in conn.execute(f"explain select * from toolsdb.audit_logs where {predicate}"))
    # Each partition carries its own copy, named audit_logs_yYYYYmMM_<suffix>.
    suffix = index.removeprefix("audit_logs_")
    assert re.search(rf"(Index|Bitmap).* (on|using) audit_logs_(y\d{{4}}m\d{{2}}|default)_{suffix}", plan), plan
    assert "Seq Scan" not in plan, plan


def test_a_time_range_reads_one_partition_through_its_brin_index(conn: psycopg.Connection) -> None:
    # 50,000 entries spread over this month, in time order as a log grows.
    conn.execute(
        "insert into toolsdb.audit_logs (action, logged_at)"
        " select 'bench_event', date_trunc('month', now()) + g * interval '30 seconds'"
        " from generate_series(0, 49999) as g"
    )
    conn.execute("analyze toolsdb.audit_logs")
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "explain select * from toolsdb.audit_logs"
            " where logged_at >= date_trunc('month', now()) + interval '2 days'"
            " and logged_at < date_trunc('month', now()) + interval '2 days 1 hour'"
        )
    )
    assert re.search(r"Bitmap Index Scan on audit_logs_y\d{4}m\d{2}_logged_at_idx", plan), plan
    assert plan.count("Bitmap Heap Scan") == 1, f"partition pruning should leave one month: {plan}"

"""seeds/10_identity.sql against a real, migrated database, on each
PostgreSQL major of the suite: it loads the documented demo data, and
running it again changes nothing (values, updated_at and xmin), restores an
altered row in place and recreates a deleted link.

The count of the demo data runs in ``tx``, a transaction that is always
rolled back, on one clone per module and major loaded once with the seed
(``committed``, identityhelpers.seeded_clone); the re-runs commit and run
psql, so each gets a fresh clone of the migrated template (``conn``).
"""

from __future__ import annotations

import psycopg
import pytest

from .conftest import Pg
from .dbhelpers import scalar
from .identityhelpers import IDENTITY_SEED, IDENTITY_TABLES, agent_tools, load, seeded_clone, table_contents

committed = pytest.fixture(seeded_clone, scope="module")


# ---------------------------------------------------------------------------
# seeds/10_identity.sql
# ---------------------------------------------------------------------------


def test_identity_seed_loads_the_documented_demo_data(tx: psycopg.Connection) -> None:
    counts = {t: scalar(tx, f"select count(*) from toolsdb.{t}") for t in IDENTITY_TABLES}
    expected = {"users": 4, "projects": 2, "agents": 5, "mcp_servers": 2, "agent_mcp_servers": 5, "preferences": 5}
    assert counts == expected, f"The identity seed should load {expected} rows, but the tables hold {counts}."


def test_identity_seed_run_twice_changes_nothing(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    load(pg, db, IDENTITY_SEED)
    before = table_contents(conn)
    load(pg, db, IDENTITY_SEED)
    after = table_contents(conn)
    changed = {t: sorted(set(after[t]) ^ set(before[t])) for t in before if before[t] != after[t]}
    assert after == before, (
        f"A second run of the identity seed should leave every row identical (values, updated_at and xmin), "
        f"but these changed: {changed}."
    )


def test_identity_seed_restores_an_altered_row(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    load(pg, db, IDENTITY_SEED)
    identity = "select user_id, created_at from toolsdb.users where username = 'alice'"
    alice_before = conn.execute(identity).fetchone()
    conn.execute(
        """
        update toolsdb.users
        set role = 'user', display_name = 'Hacked', metadata = '{"team": "none"}', is_active = false
        where username = 'alice'
        """
    )
    conn.commit()
    before = table_contents(conn)
    load(pg, db, IDENTITY_SEED)
    after = table_contents(conn)
    alice = conn.execute(
        "select role, display_name, metadata, is_active from toolsdb.users where username = 'alice'"
    ).fetchone()
    assert alice == ("admin", "Alice Admin", {"team": "platform"}, True), (
        f"Re-running the identity seed should restore alice's seeded values, but she is now {alice}."
    )
    assert conn.execute(identity).fetchone() == alice_before, (
        "Re-running the identity seed should restore alice in place, keeping her user_id and created_at."
    )
    changed = [(t, row) for t in before for row in sorted(set(after[t]) - set(before[t]))]
    assert len(changed) == 1 and '"username": "alice"' in changed[0][1][1], (
        f"Re-running the identity seed should rewrite only the altered row, but it rewrote: {changed}."
    )
    audited = conn.execute(
        "select action, entity_type, new_values ->> 'display_name' from toolsdb.audit_logs"
        " where action <> 'insert' order by audit_id"
    ).fetchall()
    assert audited == [("update", "users", "Hacked"), ("update", "users", "Alice Admin")], (
        f"The audit log should hold the tampering and the restore, and nothing else: {audited}."
    )


def test_identity_seed_recreates_a_deleted_link(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    load(pg, db, IDENTITY_SEED)
    conn.execute(
        """
        delete from toolsdb.agent_mcp_servers
        where agent_id = (select agent_id from toolsdb.agents where name = 'codex')
        """
    )
    conn.commit()
    load(pg, db, IDENTITY_SEED)
    assert agent_tools(conn)["codex"] == (["filesystem"], 1), (
        "Re-running the identity seed should recreate codex's deleted link to filesystem."
    )

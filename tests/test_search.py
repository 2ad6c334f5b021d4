"""The JSONB and array queries the README documents use their GIN indexes once
a table holds enough rows that the planner would choose one (no seqscan ban)."""

from __future__ import annotations

import psycopg
import pytest


def plan(conn: psycopg.Connection, query: str) -> str:
    return "\n".join(row[0] for row in conn.execute(f"explain {query}"))


@pytest.fixture
def many_agents(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute(
        """
        insert into toolsdb.agents (name, agent_type, capabilities, tags)
        select 'agent-' || g, 'coding',
               jsonb_build_object('can_open_prs', g % 50 = 0, 'languages', jsonb_build_array('lang' || g % 97)),
               array['tag' || g % 200]
        from generate_series(1, 5000) as g
        """
    )
    conn.execute("select gin_clean_pending_list('toolsdb.agents_capabilities_idx')")
    conn.execute("select gin_clean_pending_list('toolsdb.agents_tags_idx')")
    conn.execute("analyze toolsdb.agents")
    return conn


def test_capabilities_containment_uses_its_gin_index(many_agents: psycopg.Connection) -> None:
    query = 'select name from toolsdb.agents where capabilities @> \'{"languages": ["lang7"]}\''
    assert "agents_capabilities_idx" in plan(many_agents, query), plan(many_agents, query)
    found = many_agents.execute(query).fetchall()
    assert len(found) == len([g for g in range(1, 5001) if g % 97 == 7]), "containment should find every match"


def test_tags_containment_uses_its_gin_index(many_agents: psycopg.Connection) -> None:
    query = "select name from toolsdb.agents where tags @> array['tag7']"
    assert "agents_tags_idx" in plan(many_agents, query), plan(many_agents, query)
    assert len(many_agents.execute(query).fetchall()) == 25


def test_preferences_containment_uses_its_gin_index(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        insert into toolsdb.users (username, email)
        select 'user' || g, 'user' || g || '@example.com' from generate_series(1, 3000) as g
        """
    )
    conn.execute(
        """
        insert into toolsdb.preferences (user_id, category, preferences)
        select u.user_id, 'ui_settings',
               jsonb_build_object('theme', case when u.username like '%7' then 'dark' else 'light' end)
        from toolsdb.users as u
        """
    )
    conn.execute("select gin_clean_pending_list('toolsdb.preferences_preferences_idx')")
    conn.execute("analyze toolsdb.preferences")
    query = 'select user_id from toolsdb.preferences where preferences @> \'{"theme": "dark"}\''
    assert "preferences_preferences_idx" in plan(conn, query), plan(conn, query)
    assert len(conn.execute(query).fetchall()) == 300

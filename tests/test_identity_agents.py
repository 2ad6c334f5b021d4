"""Agents and their MCP servers against a real, migrated database, on each
PostgreSQL major of the suite: toolsdb.agents (unique case-sensitive names,
tags through the GIN index, JSON settings), toolsdb.mcp_servers (transports
and their targets, URLs, env), toolsdb.agent_mcp_servers (the links, deleted
with either side) and the view toolsdb.agent_tools (the enabled servers of
each agent).

Isolation, kept cheap (a template clone costs ~0.2 s, so one per test would
not fit the runtime budget): most tests run in ``tx``, a transaction that is
always rolled back, on one clone per module and major loaded once with
seeds/10_identity.sql (``committed``, identityhelpers.seeded_clone), so they
see exactly the seed and leave nothing behind.

Every rejected statement runs inside ``conn.transaction()`` (a savepoint when a
transaction is already open), so a failure never poisons the statements after
it; the error must name the constraint (``diag.constraint_name``), its table and
carry an SQLSTATE of class 23 (integrity constraint violation).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors

from .dbhelpers import scalar
from .identityhelpers import (
    agent_tools,
    column,
    expect_violation,
    id_of,
    new_agent,
    new_link,
    new_server,
    seeded_clone,
)

committed = pytest.fixture(seeded_clone, scope="module")


# ---------------------------------------------------------------------------
# toolsdb.agents
# ---------------------------------------------------------------------------


def test_agents_name_is_unique(tx: psycopg.Connection) -> None:
    new_agent(tx, name="same-agent")
    expect_violation(tx, errors.UniqueViolation, "agents_name_key", "agents", lambda: new_agent(tx, name="same-agent"))


def test_agents_name_is_case_sensitive(tx: psycopg.Connection) -> None:
    assert new_agent(tx, name="Claude-Code")["name"] == "Claude-Code", (
        "Agent names are documented as case-sensitive: Claude-Code should coexist with the seeded claude-code."
    )


def test_agents_tags_containment_finds_the_tagged_agents(tx: psycopg.Connection) -> None:
    found = column(tx, "select name from toolsdb.agents where tags @> array['coding', 'mcp'] order by name")
    assert found == ["claude-code", "codex"], (
        f"tags @> array['coding', 'mcp'] should find exactly the seeded claude-code and codex, but found {found}."
    )


def test_agents_tags_containment_uses_the_gin_index(tx: psycopg.Connection) -> None:
    tx.execute("set local enable_seqscan = off")
    plan = "\n".join(column(tx, "explain select name from toolsdb.agents where tags @> array['mcp']"))
    assert "agents_tags_idx" in plan, f"tags @> array[...] should be answered through agents_tags_idx, but:\n{plan}"


@pytest.mark.parametrize("tags", [[""], ["ok", None], [f"t{i}" for i in range(65)]], ids=["empty", "null", "65"])
def test_agents_reject_invalid_tags(tx: psycopg.Connection, tags: list[str | None]) -> None:
    expect_violation(tx, errors.CheckViolation, "tags_are_valid", "agents", lambda: new_agent(tx, tags=tags))


@pytest.mark.parametrize("column_name", ["capabilities", "config"])
def test_agents_json_settings_must_be_objects(tx: psycopg.Connection, column_name: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        f"{column_name}_is_object",
        "agents",
        lambda: new_agent(tx, **{column_name: '["not", "an", "object"]'}),
    )


# ---------------------------------------------------------------------------
# toolsdb.mcp_servers
# ---------------------------------------------------------------------------


def test_mcp_servers_accept_each_transport_with_its_target(tx: psycopg.Connection) -> None:
    stdio = new_server(tx, transport="stdio", command="uvx", args=["mcp-server-git"])
    http = new_server(tx, transport="http", command=None, url="https://mcp.example.com/mcp")
    sse = new_server(tx, transport="sse", command=None, url="http://127.0.0.1:9000/sse")
    assert [stdio["transport"], http["transport"], sse["transport"]] == ["stdio", "http", "sse"], (
        "A stdio server with a command and http/sse servers with a url should all be accepted."
    )


@pytest.mark.parametrize(
    "values",
    [
        {"transport": "stdio", "command": None, "url": "https://mcp.example.com/mcp"},
        {"transport": "http", "command": "npx", "url": None},
        {"transport": "sse", "command": "npx", "url": None},
    ],
    ids=["stdio-without-command", "http-without-url", "sse-without-url"],
)
def test_mcp_servers_require_the_target_of_their_transport(tx: psycopg.Connection, values: dict) -> None:
    expect_violation(
        tx, errors.CheckViolation, "transport_target_is_given", "mcp_servers", lambda: new_server(tx, **values)
    )


@pytest.mark.parametrize("transport", ["websocket", "STDIO", ""])
def test_mcp_servers_reject_an_unknown_transport(tx: psycopg.Connection, transport: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "transport_is_valid",
        "mcp_servers",
        lambda: new_server(tx, transport=transport, url="https://mcp.example.com/mcp"),
    )


def test_mcp_servers_name_is_unique(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.UniqueViolation,
        "mcp_servers_name_key",
        "mcp_servers",
        lambda: new_server(tx, name="filesystem"),
    )


def test_mcp_servers_url_must_be_http_or_https(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "url_is_valid",
        "mcp_servers",
        lambda: new_server(tx, transport="http", command=None, url="ws://mcp.example.com/mcp"),
    )


def test_mcp_servers_env_rejects_a_number_value(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "env_values_are_strings",
        "mcp_servers",
        lambda: new_server(tx, env='{"PORT": 8080}'),
    )


def test_mcp_servers_env_rejects_an_array_of_strings_value(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "env_values_are_strings",
        "mcp_servers",
        lambda: new_server(tx, env='{"ARGS": ["--verbose"]}'),
    )


# ---------------------------------------------------------------------------
# toolsdb.agent_mcp_servers
# ---------------------------------------------------------------------------


def test_agent_mcp_servers_reject_a_duplicate_link(tx: psycopg.Connection) -> None:
    link = new_link(tx)
    expect_violation(
        tx,
        errors.UniqueViolation,
        "agent_mcp_servers_pkey",
        "agent_mcp_servers",
        lambda: new_link(tx, agent_id=link["agent_id"], mcp_server_id=link["mcp_server_id"]),
    )


def test_agent_mcp_servers_reject_a_link_to_a_missing_agent(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.ForeignKeyViolation,
        "agent_mcp_servers_agent_id_fkey",
        "agent_mcp_servers",
        lambda: new_link(tx, agent_id="00000000-0000-0000-0000-000000000000"),
    )


def _links_of(conn: psycopg.Connection, agent_id: Any = None, mcp_server_id: Any = None) -> int:
    return scalar(
        conn,
        "select count(*) from toolsdb.agent_mcp_servers where agent_id = %s or mcp_server_id = %s",
        (agent_id, mcp_server_id),
    )


def test_deleting_an_agent_deletes_its_links(tx: psycopg.Connection) -> None:
    agent_id = id_of(tx, "agents", "name", "claude-code")
    before = _links_of(tx, agent_id=agent_id)
    tx.execute("delete from toolsdb.agents where agent_id = %s", (agent_id,))
    after = _links_of(tx, agent_id=agent_id)
    assert (before, after) == (2, 0), (
        f"Deleting claude-code should cascade to its 2 links, but it had {before} and {after} remain."
    )
    servers = scalar(tx, "select count(*) from toolsdb.mcp_servers")
    assert servers == 2, f"Deleting an agent should not delete the MCP servers it used; {servers} remain of 2."


def test_deleting_an_mcp_server_deletes_its_links(tx: psycopg.Connection) -> None:
    server_id = id_of(tx, "mcp_servers", "name", "filesystem")
    before = _links_of(tx, mcp_server_id=server_id)
    tx.execute("delete from toolsdb.mcp_servers where mcp_server_id = %s", (server_id,))
    after = _links_of(tx, mcp_server_id=server_id)
    assert (before, after) == (3, 0), (
        f"Deleting the filesystem server should cascade to its 3 links, but it had {before} and {after} remain."
    )
    agents = scalar(tx, "select count(*) from toolsdb.agents")
    assert agents == 5, f"Deleting an MCP server should not delete the agents using it; {agents} remain of 5."


# ---------------------------------------------------------------------------
# View toolsdb.agent_tools
# ---------------------------------------------------------------------------


def test_agent_tools_lists_the_enabled_servers_of_each_agent_sorted(tx: psycopg.Connection) -> None:
    tools = agent_tools(tx)
    assert tools["claude-code"] == (["filesystem", "toolsdb-http"], 2), (
        f"claude-code should list its two enabled servers sorted by name, but the view shows {tools['claude-code']}."
    )
    assert tools["codex"] == (["filesystem"], 1), f"codex should list filesystem only, not {tools['codex']}."


def test_agent_tools_omits_a_disabled_link(tx: psycopg.Connection) -> None:
    link_enabled = scalar(
        tx,
        """
        select l.is_enabled from toolsdb.agent_mcp_servers as l
        join toolsdb.agents as a using (agent_id) join toolsdb.mcp_servers as s using (mcp_server_id)
        where a.name = 'gemini-cli' and s.name = 'filesystem'
        """,
    )
    assert link_enabled is False, "The seed should link gemini-cli to filesystem with is_enabled = false."
    assert agent_tools(tx)["gemini-cli"] == ([], 0), (
        "gemini-cli's only link is disabled, so the view should show it with no server and a count of 0."
    )


def test_agent_tools_omits_a_disabled_server(tx: psycopg.Connection) -> None:
    tx.execute("update toolsdb.mcp_servers set is_enabled = false where name = 'toolsdb-http'")
    tools = agent_tools(tx)
    assert tools["claude-code"] == (["filesystem"], 1), (
        f"With toolsdb-http disabled claude-code should list filesystem only, but the view shows "
        f"{tools['claude-code']}."
    )
    assert tools["pr-reviewer"] == ([], 0), (
        f"With its only server disabled pr-reviewer should show no server, but the view shows {tools['pr-reviewer']}."
    )


def test_agent_tools_shows_agents_without_links_with_an_empty_list(tx: psycopg.Connection) -> None:
    tools = agent_tools(tx)
    assert sorted(tools) == column(tx, "select name from toolsdb.agents order by name"), (
        "The view should have exactly one row per agent, including agents without any MCP server."
    )
    assert tools["local-coder"] == ([], 0), (
        f"local-coder has no link, so it should appear with an empty array (not null) and a count of 0, but the "
        f"view shows {tools['local-coder']}."
    )


def test_agent_tools_count_matches_the_listed_names(tx: psycopg.Connection) -> None:
    tx.execute(
        """
        update toolsdb.agent_mcp_servers set is_enabled = false
        where agent_id = (select agent_id from toolsdb.agents where name = 'claude-code')
          and mcp_server_id = (select mcp_server_id from toolsdb.mcp_servers where name = 'filesystem')
        """
    )
    new_link(tx, agent_id=id_of(tx, "agents", "name", "local-coder"))
    mismatched = {name: value for name, value in agent_tools(tx).items() if len(value[0]) != value[1]}
    assert mismatched == {}, f"mcp_server_count should equal the number of mcp_server_names, but: {mismatched}."

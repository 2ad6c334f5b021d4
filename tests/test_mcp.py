"""``toolsdb mcp``: the real console script as an MCP server on stdio, pointed
at a fresh migrated database through DATABASE_URL and driven by the SDK's own
client (stdio_client + ClientSession), on each PostgreSQL major.

Every refusal must be a tool result with isError and one clear line, and the
server must go on serving after it.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from .conftest import Pg, clean_env, toolsdb_exe
from .dbhelpers import scalar, unique

TOOLS = {
    "validate_schema",
    "vision_cache_lookup",
    "vision_cache_store",
    "audit_query",
    "audit_record",
    "bug_report",
    "bug_list",
}


@asynccontextmanager
async def mcp_session(database_url: str, cwd: Path) -> AsyncIterator[ClientSession]:
    """``toolsdb mcp`` as a subprocess (its stderr in cwd/stderr.log), initialized."""
    params = StdioServerParameters(
        command=toolsdb_exe(), args=["mcp"], env=clean_env(DATABASE_URL=database_url), cwd=str(cwd)
    )
    with open(cwd / "stderr.log", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


def run_session(database_url: str, cwd: Path, scenario: Callable[[ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        async with mcp_session(database_url, cwd) as session:
            with anyio.fail_after(60):
                await scenario(session)

    anyio.run(main)


@pytest.fixture
def url(pg: Pg, db: str) -> str:
    return pg.conninfo(db)


def text(result: CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], TextContent), f"expected text content: {result}"
    return result.content[0].text


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a call that must have succeeded."""
    assert not result.is_error, f"the call should succeed, it failed: {text(result)}"
    assert isinstance(result.structured_content, dict), f"expected a structured result: {result}"
    return result.structured_content


def tool_error(result: CallToolResult, *facts: str) -> str:
    """A call that must have failed as a tool error: one line naming the facts."""
    assert result.is_error, f"the call should be a tool error, it succeeded: {result.structured_content}"
    message = text(result)
    assert "\n" not in message, f"the error should be one line: {message!r}"
    assert "Traceback" not in message, message
    for fact in facts:
        assert fact in message, f"the error should mention {fact!r}: {message}"
    return message


def image_hash() -> str:
    return hashlib.sha256(unique("img").encode()).hexdigest()


# ---------------------------------------------------------------------------


def test_lists_the_tools_with_described_input_schemas(url: str, tmp_path: Path):
    async def scenario(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description, f"{tool.name} has no description"
            schema = tool.input_schema
            assert schema["type"] == "object"
            for name, prop in schema["properties"].items():
                assert prop.get("description"), f"{tool.name}.{name} has no description"
        store = tools["vision_cache_store"].input_schema
        assert set(store["required"]) == {"image_hash", "extracted_data", "confidence_score", "model_version"}
        assert (
            store["properties"]["confidence_score"]["minimum"],
            store["properties"]["confidence_score"]["maximum"],
        ) == (
            0,
            1,
        )
        assert store["properties"]["extracted_data"]["type"] == "object"
        impact = tools["bug_report"].input_schema["properties"]["user_impact"]
        assert impact["enum"] == ["low", "medium", "high", "critical"] and impact["default"] == "medium"
        listing = tools["bug_list"].input_schema["properties"]
        assert listing["status"]["anyOf"][0]["enum"] == ["pending", "acknowledged"]
        assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, 1000)
        assert tools["audit_query"].input_schema["properties"]["since"]["anyOf"][0]["format"] == "date-time"
        assert tools["validate_schema"].input_schema["required"] == ["sql"]
        assert tools["audit_query"].annotations and tools["audit_query"].annotations.read_only_hint

    run_session(url, tmp_path, scenario)


def test_vision_cache_store_then_lookup(url: str, tmp_path: Path):
    key = image_hash()

    async def scenario(session: ClientSession) -> None:
        assert ok(await session.call_tool("vision_cache_lookup", {"image_hash": key})) == {"hit": False, "entry": None}
        stored = ok(
            await session.call_tool(
                "vision_cache_store",
                {
                    "image_hash": key,
                    "extracted_data": {"keywords": ["sunset"]},
                    "confidence_score": 0.95,
                    "model_version": "v1.0",
                    "ttl": "7 days",
                },
            )
        )
        assert stored["image_hash"] == key and stored["model_version"] == "v1.0" and stored["expires_at"]
        found = ok(await session.call_tool("vision_cache_lookup", {"image_hash": key, "model_version": "v1.0"}))
        assert found["hit"] is True
        assert found["entry"]["extracted_data"] == {"keywords": ["sunset"]}
        assert found["entry"]["confidence_score"] == 0.95
        assert found["entry"]["expires_at"] == stored["expires_at"]
        other = ok(await session.call_tool("vision_cache_lookup", {"image_hash": key, "model_version": "v2"}))
        assert other["hit"] is False

    run_session(url, tmp_path, scenario)


def test_audit_record_then_query(url: str, tmp_path: Path):
    entity = unique("p")

    async def scenario(session: ClientSession) -> None:
        recorded = ok(
            await session.call_tool(
                "audit_record",
                {
                    "action": "permission_changed",
                    "entity_type": "project",
                    "entity_id": entity,
                    "details": {"granted": "write"},
                    "actor": "claude",
                },
            )
        )
        found = ok(await session.call_tool("audit_query", {"entity_type": "project", "entity_id": entity}))
        [event] = found["events"]
        assert event["audit_id"] == recorded["audit_id"]
        assert (event["action"], event["actor"], event["details"]) == (
            "permission_changed",
            "claude",
            {"granted": "write"},
        )
        later = ok(await session.call_tool("audit_query", {"entity_id": entity, "since": "2999-01-01T00:00:00Z"}))
        assert later["events"] == []

    run_session(url, tmp_path, scenario)


def test_bug_report_then_list(url: str, tmp_path: Path):
    minor, major = unique("minor-"), unique("major-")

    async def scenario(session: ClientSession) -> None:
        ok(await session.call_tool("bug_report", {"bug_id": minor, "error_type": "E", "error_message": "m"}))
        for _ in range(2):
            reported = ok(
                await session.call_tool(
                    "bug_report",
                    {
                        "bug_id": major,
                        "error_type": "CriticalError",
                        "error_message": "crash",
                        "user_impact": "critical",
                    },
                )
            )
        assert (reported["frequency"], reported["status"]) == (2, "pending")
        listed = ok(await session.call_tool("bug_list", {}))
        assert [(b["bug_id"], b["user_impact"]) for b in listed["bugs"]] == [(major, "critical"), (minor, "medium")]
        assert ok(await session.call_tool("bug_list", {"status": "acknowledged"}))["bugs"] == []
        assert [b["bug_id"] for b in ok(await session.call_tool("bug_list", {"limit": 1}))["bugs"]] == [major]

    run_session(url, tmp_path, scenario)


def test_concurrent_calls_share_the_connection_one_at_a_time(url: str, tmp_path: Path):
    bug_id = unique("busy-")
    report = {"bug_id": bug_id, "error_type": "E", "error_message": "m"}

    async def scenario(session: ClientSession) -> None:
        results: list[CallToolResult] = []

        async def call() -> None:
            results.append(await session.call_tool("bug_report", report))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(call)
        assert [text(r) for r in results if r.is_error] == []
        assert sorted(ok(r)["frequency"] for r in results) == list(range(1, 21))

    run_session(url, tmp_path, scenario)


def test_bad_arguments_are_tool_errors_and_the_server_goes_on(url: str, tmp_path: Path):
    async def scenario(session: ClientSession) -> None:
        store = {"image_hash": image_hash(), "extracted_data": {}, "model_version": "v1.0"}
        tool_error(
            await session.call_tool("vision_cache_store", {**store, "confidence_score": 1.2}),
            "vision_cache_store: invalid arguments",
            "confidence_score",
            "less than or equal to 1",
        )
        tool_error(await session.call_tool("vision_cache_store", store), "confidence_score", "Field required")
        tool_error(
            await session.call_tool(
                "bug_report", {"bug_id": "b", "error_type": "E", "error_message": "m", "user_impact": "huge"}
            ),
            "user_impact",
        )
        tool_error(await session.call_tool("bug_list", {"limit": 0}), "limit")
        tool_error(await session.call_tool("audit_query", {"since": "yesterday-ish"}), "since")
        tool_error(await session.call_tool("no_such_tool", {}), "no_such_tool")
        assert ok(await session.call_tool("bug_list", {})) == {"bugs": []}

    run_session(url, tmp_path, scenario)


def test_database_refusals_are_tool_errors_naming_the_constraint(url: str, tmp_path: Path):
    async def scenario(session: ClientSession) -> None:
        tool_error(
            await session.call_tool(
                "vision_cache_store",
                {"image_hash": "a b", "extracted_data": {}, "confidence_score": 0.5, "model_version": "v1.0"},
            ),
            "vision_cache_store: ",
            "SQLSTATE 23514",
            "image_hash_is_valid",
        )
        tool_error(
            await session.call_tool("audit_record", {"action": "insert", "entity_type": "users", "entity_id": "x"}),
            "SQLSTATE 42501",
            "reserved",
        )
        tool_error(
            await session.call_tool(
                "vision_cache_store",
                {
                    "image_hash": image_hash(),
                    "extracted_data": {},
                    "confidence_score": 0.5,
                    "model_version": "v1",
                    "ttl": "soon",
                },
            ),
            "SQLSTATE 22007",
        )
        assert ok(await session.call_tool("bug_list", {})) == {"bugs": []}

    run_session(url, tmp_path, scenario)
    with psycopg.connect(url) as conn:
        assert scalar(conn, "select count(*) from toolsdb.vision_cache") == 0, "nothing was stored"


def test_no_database_is_a_tool_error_and_the_server_stays_up(tmp_path: Path):
    async def scenario(session: ClientSession) -> None:
        tool_error(await session.call_tool("bug_list", {}), "cannot connect to")
        assert {t.name for t in (await session.list_tools()).tools} == TOOLS
        tool_error(await session.call_tool("audit_query", {}), "cannot connect to")

    run_session("host=127.0.0.1 port=1 dbname=none user=nobody connect_timeout=3", tmp_path, scenario)


def test_reconnects_after_the_connection_is_lost(pg: Pg, db: str, url: str, tmp_path: Path):
    async def scenario(session: ClientSession) -> None:
        ok(await session.call_tool("bug_list", {}))
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as admin:
            killed = admin.execute(
                "select count(pg_terminate_backend(pid, 5000)) from pg_stat_activity"
                " where datname = %s and application_name = 'toolsdb-mcp'",
                (db,),
            ).fetchone()
        assert killed == (1,), "the server should hold exactly one connection"
        tool_error(await session.call_tool("bug_list", {}), "escalation_queue: ")
        assert ok(await session.call_tool("bug_list", {})) == {"bugs": []}, "the next call reconnects"

    run_session(url, tmp_path, scenario)


def test_validate_schema_returns_the_validator_report(url: str, tmp_path: Path):
    pytest.importorskip("toolsdb.validator")
    script = "create table t (id bigint primary key);"

    async def scenario(session: ClientSession) -> None:
        report = ok(await session.call_tool("validate_schema", {"sql": script}))
        assert set(report) >= {"valid", "statement_hash", "cached", "errors", "warnings", "findings"}
        assert report["statement_hash"] == hashlib.sha256(script.encode()).hexdigest()
        assert isinstance(report["valid"], bool) and report["cached"] is False
        for finding in report["findings"]:
            assert finding["severity"] in ("error", "warning") and finding["rule"] and finding["message"]
        assert ok(await session.call_tool("validate_schema", {"sql": script}))["cached"] is True
        assert ok(await session.call_tool("validate_schema", {"sql": script, "refresh": True}))["cached"] is False
        tool_error(await session.call_tool("validate_schema", {"sql": ""}), "validate_schema: invalid arguments", "sql")
        tool_error(await session.call_tool("validate_schema", {"sql": "drop table toolsdb.users;"}), "refused", "DROP")
        broken = ok(await session.call_tool("validate_schema", {"sql": "create tabel t (id int);"}))
        assert broken["valid"] is False and broken["findings"][0]["rule"] == "syntax"

    run_session(url, tmp_path, scenario)


def test_stdout_carries_nothing_but_the_protocol(url: str, tmp_path: Path):
    """stdin at EOF at once: the server starts, serves nothing, exits 0, and wrote nothing to stdout."""
    done = subprocess.run(
        [toolsdb_exe(), "mcp"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=clean_env(DATABASE_URL=url),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_a_malformed_database_url_stops_it_with_one_line(tmp_path: Path):
    done = subprocess.run(
        [toolsdb_exe(), "mcp"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=clean_env(DATABASE_URL="mysql://localhost/db"),
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Error: DATABASE_URL is not a PostgreSQL URL: 'mysql://localhost/db' (expected postgresql://user@host:port/dbname)"
    ]

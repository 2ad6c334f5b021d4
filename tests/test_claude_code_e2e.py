"""The real Claude Code client, end to end, with nothing leaving the machine.

The npm package ``@anthropic-ai/claude-code`` (the version .ci/run pins) runs
one non-interactive turn with a tool call (``claude -p``) against a stand-in
for the Anthropic Messages API on 127.0.0.1 (tests/claude_standin.py), inside
a network namespace that has only loopback (``unshare --net``). The scenario
(tests/claude_e2e_driver.py) runs once per module, on the PostgreSQL 18 leg
only (the hook's SQL is tested on both legs by test_hook_*.py; what this
module adds is the client), and the tests check what it left in the database:

* the command-hook run: the settings ``toolsdb claude-settings --type
  command`` writes (a hand-written file calling ``toolsdb hook`` until that
  command is merged) store the session with its cwd, transcript path and
  user, and its events from SessionStart to SessionEnd;
* the http-hook run: through ``toolsdb serve`` with a token from ``toolsdb
  token create``, the session is the token's user's;
* ``toolsdb worker --once`` delivers the Stop notification to the stand-in
  Slack registered by ``toolsdb notify destination set``.

Where claude is: TOOLSDB_CLAUDE_BIN, else the folder .ci/run installs it in
(``${XDG_CACHE_HOME:-~/.cache}/toolsdb-ci/claude-code``). Without claude or
without ``unshare --net`` (root, or unprivileged user namespaces) the module
is skipped with the reason, unless TOOLSDB_REQUIRE_CLAUDE=1 (CI) makes it fail.
The parts that need a toolsdb command not on this branch are skipped with
its name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from .claude_standin import COMMAND, FINAL_TEXT, MARKER
from .conftest import ROOT, Pg
from .dbhelpers import Row, one, rows
from .hookhelpers import hook_env

CLAUDE_ENV = "TOOLSDB_CLAUDE_BIN"
REQUIRE_ENV = "TOOLSDB_REQUIRE_CLAUDE"
DRIVER_BUDGET = 90  # seconds the driver's steps may take in all (two claude turns, serve, worker)
DRIVER_TIMEOUT = 110  # then it has this long to stop toolsdb serve and print its result
# Events each run must have stored (more may fire: PostToolBatch, ...).
COMMAND_EVENTS = {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"}
# Claude Code sends SessionStart to command hooks only (2.1.x: "HTTP hooks are
# not supported for SessionStart"): the http settings run `toolsdb hook --post`
# there, so the http run stores the same events, all through toolsdb serve.
HTTP_EVENTS = COMMAND_EVENTS
# A new network namespace (root in CI; elsewhere, as root of a user namespace).
UNSHARE = ["unshare", "--net", "--"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net", "--"]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "toolsdb-ci" / "claude-code"


def claude_bin() -> str | None:
    named = os.environ.get(CLAUDE_ENV)
    if named:
        return named
    cached = cache_dir() / "node_modules" / ".bin" / "claude"
    return str(cached) if cached.exists() else None


def unavailable(message: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1: the Claude Code end-to-end test is required here)")
    pytest.skip(message)


def check_prerequisites() -> str:
    """The claude binary to run; skips (or fails under TOOLSDB_REQUIRE_CLAUDE=1) without it or unshare."""
    claude = claude_bin()
    if claude is None:
        unavailable(
            f"Claude Code is not installed: set {CLAUDE_ENV} to its `claude`, or run "
            f".ci/install-claude-code (installs the pinned version into {cache_dir()})"
        )
    assert claude is not None
    try:
        version = subprocess.run([claude, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"{CLAUDE_ENV}={claude} does not run: {exc}")
    if version.returncode != 0:
        unavailable(f"`{claude} --version` exited {version.returncode}: {version.stderr.strip()[-500:]}")
    if shutil.which("unshare") is None:
        unavailable("`unshare` (util-linux) is not installed: the test runs in a network namespace")
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        unavailable(f"`unshare --net` is not allowed here (root or user namespaces needed): {probe.stderr.strip()}")
    return claude


def missing_at_collection() -> str | None:
    """Why the module cannot run, known without running anything (no server is
    started for a module skipped this way); None when it may."""
    if os.environ.get(REQUIRE_ENV) == "1":
        return None  # the fixture fails with the reason instead
    if claude_bin() is None:
        return (
            f"Claude Code is not installed: set {CLAUDE_ENV} to its `claude`, or run "
            f".ci/install-claude-code (installs the pinned version into {cache_dir()})"
        )
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed: the test runs in a network namespace"
    return None


_MISSING = missing_at_collection()
pytestmark = [
    pytest.mark.parametrize("pg", [pytest.param("18", id="pg18")], indirect=True),
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]


class Scenario:
    """The driver's JSON result and the database it wrote to."""

    def __init__(self, result: dict, conn: psycopg.Connection, users: dict, raw: str) -> None:
        self.result = result
        self.conn = conn
        self.users = users
        self.raw = raw

    def explain(self, run: str | None = None) -> str:
        """Everything that helps read a failure: errors, claude's output, the stand-ins' logs, the hook log."""
        parts = [f"driver errors: {self.result.get('errors')}", f"skipped: {self.result.get('skipped')}"]
        if run and run in self.result["runs"]:
            data = self.result["runs"][run]
            parts += [
                f"claude ({run}) exit {data.get('code')}, settings {data.get('settings_source')}",
                f"claude stdout: {data.get('stdout')}",
                f"claude stderr: {data.get('stderr')}",
                "Messages stand-in log:\n  " + "\n  ".join(data.get("messages_log") or ["(no request)"]),
            ]
        parts += [
            "Slack stand-in log:\n  " + "\n  ".join(self.result.get("slack_log") or ["(no request)"]),
            f"steps: {json.dumps(self.result.get('steps'))[-3000:]}",
            f"toolsdb serve: {self.result.get('serve')}",
            f"hook log: {self.result.get('hook_log') or '(empty)'}",
        ]
        return "\n".join(parts)

    def run(self, name: str) -> dict:
        if name not in self.result["runs"]:
            reason = self.result["skipped"].get(name)
            if reason:
                pytest.skip(f"the {name}-hook run was skipped: {reason}")
            pytest.fail(f"the {name}-hook run did not happen\n{self.explain()}")
        data = self.result["runs"][name]
        assert data.get("code") == 0, f"claude failed in the {name}-hook run\n{self.explain(name)}"
        assert data.get("session_id"), f"claude's JSON output has no session_id\n{self.explain(name)}"
        return data

    def session(self, name: str) -> Row:
        data = self.run(name)
        found = rows(self.conn, "select * from toolsdb.sessions where session_id = %s", (data["session_id"],))
        assert found, f"no session {data['session_id']} in the database\n{self.explain(name)}"
        return found[0]

    def events(self, session_id: str) -> list[Row]:
        return rows(
            self.conn,
            "select event_id, event_type, payload, idempotency_key from toolsdb.events"
            " where session_id = %s order by event_id",
            (session_id,),
        )


@pytest.fixture(scope="module")
def scenario(pg: Pg, committed, tmp_path_factory) -> Iterator[Scenario]:
    claude = check_prerequisites()
    work = tmp_path_factory.mktemp("claude-e2e")
    work.chmod(0o755)
    with psycopg.connect(pg.conninfo(committed.dbname), autocommit=True) as conn:
        users = {
            role: {
                "username": f"e2e-{role}",
                "user_id": str(
                    one(
                        conn,
                        "insert into toolsdb.users (username, email) values (%s, %s) returning user_id",
                        (f"e2e-{role}", f"e2e-{role}@example.com"),
                    )["user_id"]
                ),
            }
            for role in ("command", "http")
        }
    spec = {
        "claude": claude,
        "toolsdb": str(Path(sys.executable).parent / "toolsdb"),
        "database_url": pg.url(committed.dbname),
        "workdir": str(work),
        "users": users,
        "env": hook_env(),
        "claude_timeout": 45,
        "budget": DRIVER_BUDGET,
    }
    spec_file = work / "spec.json"
    spec_file.write_text(json.dumps(spec))
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*UNSHARE, sys.executable, "-m", "tests.claude_e2e_driver", str(spec_file)],
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT,
            cwd=str(ROOT),
            env=hook_env(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the scenario did not finish within {DRIVER_TIMEOUT} s: {exc.stdout!r} {exc.stderr!r}")
    assert done.returncode == 0, f"the driver exited {done.returncode}: {done.stderr[-4000:]}"
    try:
        result = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"the driver printed no JSON: {done.stdout[-2000:]!r} {done.stderr[-4000:]}")
    (work / "result.json").write_text(done.stdout)  # kept under --basetemp, to read by hand
    result["seconds"] = round(time.monotonic() - started, 1)
    with psycopg.connect(pg.conninfo(committed.dbname), autocommit=True) as conn:
        yield Scenario(result, conn, users, done.stdout)


def test_the_scenario_runs_in_a_namespace_with_only_loopback(scenario: Scenario) -> None:
    assert scenario.result["interfaces"] == ["lo"], scenario.explain()
    assert scenario.result["claude_version"].split()[0][:1].isdigit(), scenario.result["claude_version"]


def test_claude_runs_a_whole_turn_with_a_tool_call_against_the_standin(scenario: Scenario) -> None:
    data = scenario.run("command")
    output = data["output"]
    assert output.get("is_error") is False, scenario.explain("command")
    assert output.get("result") == FINAL_TEXT, scenario.explain("command")
    kinds = [line.rsplit("-> ", 1)[-1] for line in data["messages_log"]]
    assert "tool_use" in kinds and "final" in kinds, scenario.explain("command")
    assert kinds.index("tool_use") < kinds.index("final"), scenario.explain("command")


def test_the_command_hook_stores_the_session_and_its_events(scenario: Scenario) -> None:
    data = scenario.run("command")
    session = scenario.session("command")
    why = scenario.explain("command")
    assert session["cwd"] == data["cwd"], why
    assert session["transcript_path"], why
    assert session["transcript_path"].endswith(f"{data['session_id']}.jsonl"), why
    assert str(session["user_id"]) == scenario.users["command"]["user_id"], why
    assert session["ended_at"] is not None, why
    events = scenario.events(data["session_id"])
    kinds = [event["event_type"] for event in events]
    assert set(kinds) >= COMMAND_EVENTS, f"events stored: {kinds}\n{why}"
    assert kinds[0] == "SessionStart" and kinds[-1] == "SessionEnd", f"events stored: {kinds}\n{why}"
    assert_tool_events(events, why)
    assert not scenario.result["hook_log"], f"toolsdb hook logged failures\n{why}"


def assert_tool_events(events: list[Row], why: str) -> None:
    """PreToolUse and PostToolUse of the stand-in's Bash call, with its command and output."""
    pre = [e["payload"] for e in events if e["event_type"] == "PreToolUse"]
    post = [e["payload"] for e in events if e["event_type"] == "PostToolUse"]
    assert [p.get("tool_name") for p in pre] == ["Bash"], why
    assert pre[0]["tool_input"]["command"] == COMMAND, why
    assert [p.get("tool_name") for p in post] == ["Bash"], why
    assert MARKER in json.dumps(post[0].get("tool_response")), why


def test_the_http_hook_through_serve_stores_the_session_as_the_tokens_user(scenario: Scenario) -> None:
    data = scenario.run("http")
    session = scenario.session("http")
    why = scenario.explain("http")
    assert str(session["user_id"]) == scenario.users["http"]["user_id"], why
    assert session["cwd"] == data["cwd"], why
    assert session["transcript_path"].endswith(f"{data['session_id']}.jsonl"), why
    events = scenario.events(data["session_id"])
    kinds = [event["event_type"] for event in events]
    assert set(kinds) >= HTTP_EVENTS, f"events stored: {kinds}\n{why}"
    assert kinds[0] == "SessionStart" and kinds[-1] == "SessionEnd", f"events stored: {kinds}\n{why}"
    keys = [event["idempotency_key"] or "" for event in events]
    assert all(key.startswith("serve:") for key in keys), f"every event came through toolsdb serve: {keys}\n{why}"
    assert_tool_events(events, why)
    failed = [line for line in data["stderr"].splitlines() if "hook" in line.lower() and "fail" in line.lower()]
    assert not failed, f"claude reported failed hooks: {failed}\n{why}"


@pytest.mark.parametrize("name", ["command", "http"])
def test_each_run_imports_the_sessions_transcript_with_its_usage(scenario: Scenario, name: str) -> None:
    """On Stop and SessionEnd the real client's transcript is imported: directly by
    `toolsdb hook`, or sent by `toolsdb hook --post` to serve's POST /transcripts."""
    data = scenario.run(name)
    why = scenario.explain(name)
    messages = rows(
        scenario.conn,
        "select kind, role, content, tool_calls, model from toolsdb.messages"
        " where session_id = %s and source_uuid is not null order by occurred_at, position",
        (data["session_id"],),
    )
    kinds = [m["kind"] for m in messages]
    assert kinds[:1] == ["prompt"] and "tool_use" in kinds and "tool_result" in kinds, f"{kinds}\n{why}"
    tool_use = next(m for m in messages if m["kind"] == "tool_use")
    assert tool_use["tool_calls"][0]["input"]["command"] == COMMAND, why
    assert any(m["kind"] == "text" and FINAL_TEXT in m["content"] for m in messages), f"{messages}\n{why}"
    usage = rows(
        scenario.conn,
        "select input_tokens, output_tokens, model_name from toolsdb.api_usage where session_id = %s",
        (data["session_id"],),
    )
    assert len(usage) >= 2 and all(u["input_tokens"] == 12 and u["output_tokens"] == 8 for u in usage), (
        f"{usage}\n{why}"
    )
    session = scenario.session(name)
    assert session["message_count"] == len(
        rows(scenario.conn, "select 1 from toolsdb.messages where session_id = %s", (data["session_id"],))
    ), why


def test_the_worker_delivers_the_stop_notification_to_slack(scenario: Scenario) -> None:
    for step in ("notify", "worker"):
        if step in scenario.result["skipped"]:
            pytest.skip(f"{step}: {scenario.result['skipped'][step]}")
    ran = [name for name in ("command", "http") if name in scenario.result["runs"]]
    why = scenario.explain()
    assert "worker" in scenario.result["steps"], why
    bodies = scenario.result["slack_bodies"]
    for name in ran:
        session_id = scenario.run(name)["session_id"]
        sent = rows(
            scenario.conn,
            "select n.notification_id, n.status, n.backend, n.event_id, e.event_type from toolsdb.notifications as n "
            "left join toolsdb.events as e using (event_id) where n.session_id = %s order by n.notification_id",
            (session_id,),
        )
        stop = [n for n in sent if n["event_type"] == "Stop"]
        assert stop, f"no notification for the Stop event of the {name} run: {sent}\n{why}"
        assert all(n["status"] == "sent" and n["backend"] == "slack" for n in stop), f"{sent}\n{why}"
    assert len(bodies) >= len(ran), f"the stand-in Slack got {len(bodies)} bodies: {bodies}\n{why}"
    for body in bodies:
        assert isinstance(json.loads(body), dict), f"a Slack body that is not a JSON object: {body!r}"

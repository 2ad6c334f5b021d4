"""``toolsdb hook`` (runner/toolsdb/hook.py, launcher.py, libpq.py and the
click command in cli.py) when something fails: the failure logged with the
payload, exit 0 (1 with --strict) and nothing stored; and its command line
(--help, options before or after the command).

The command runs as Claude Code runs it: the installed console script in a
subprocess, one JSON payload on stdin, in an environment the test controls
(no PG* variables, no terminal variables unless a test sets them, the
failure log in the test's folder), with the payload's cwd in a temporary
folder holding a fake ``.git``; payloads follow the Claude Code hooks
reference (tests/hookhelpers.py). The tests share one clone of the migrated
template per module and major (conftest.py's ``committed``), tell their rows
apart by session id, and read it through an autocommit superuser connection
(``su``).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from .conftest import Pg, run_cli, toolsdb_exe
from .hookhelpers import (
    UNREACHABLE_URL,
    Hook,
    assert_stored,
    events_of,
    hook_env,
    hook_runner,
    module_su,
    new_session_id,
    payload,
    totals,
)

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)


# ---------------------------------------------------------------------------
# 3. Failures: logged with the payload, exit 0 (1 with --strict), nothing stored
# ---------------------------------------------------------------------------


VALID = json.dumps(payload("Stop", "failure-session", "/work/app", stop_hook_active=False))

FAILURES = [
    pytest.param('{"session_id": "failure-session", "hook_event_name": ', {}, True, "not JSON", id="malformed-json"),
    pytest.param("", {}, True, "not JSON", id="empty-stdin"),
    pytest.param(json.dumps([json.loads(VALID)]), {}, True, "not list", id="json-array"),
    pytest.param('"Stop"', {}, True, "not str", id="json-string"),
    pytest.param(
        json.dumps({"hook_event_name": "Stop", "cwd": "/work/app"}), {}, True, "no session_id", id="no-session-id"
    ),
    pytest.param(json.dumps({"session_id": 42, "hook_event_name": "Stop"}), {}, True, "no session_id", id="number-id"),
    pytest.param(VALID, {"DATABASE_URL": UNREACHABLE_URL}, True, "cannot connect", id="unreachable-database"),
    pytest.param(VALID, {}, False, "holds no embedded server", id="toolsdb-home-without-a-server"),
    pytest.param(VALID, {"TOOLSDB_HOOK_CONNECT_TIMEOUT": "soon"}, True, "TOOLSDB_HOOK_CONNECT_TIMEOUT", id="timeout"),
    pytest.param(VALID, {"TOOLSDB_HOOK_TIMEOUT": "soon"}, True, "TOOLSDB_HOOK_TIMEOUT must be", id="budget-word"),
    pytest.param(VALID, {"TOOLSDB_HOOK_TIMEOUT": "0"}, True, "above 0", id="budget-zero"),
    pytest.param(VALID, {"TOOLSDB_HOOK_TIMEOUT": "nan"}, True, "TOOLSDB_HOOK_TIMEOUT must be", id="budget-nan"),
    pytest.param(VALID, {"TOOLSDB_HOOK_TIMEOUT": "601"}, True, "at most 600", id="budget-too-long"),
]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize(("raw", "env", "database", "fragment"), FAILURES)
def test_a_failure_is_logged_with_the_payload_and_stores_nothing(
    hook: Hook,
    su: psycopg.Connection,
    tmp_path: Path,
    raw: str,
    env: dict[str, str],
    database: bool,
    fragment: str,
    strict: bool,
) -> None:
    if not database:
        (tmp_path / "no-server").mkdir()
        env = {**env, "TOOLSDB_HOME": str(tmp_path / "no-server")}
    before = totals(su)
    result = hook.run(raw, *(["hook", "--strict"] if strict else ["hook"]), env=env, database=database)

    assert result.code == (1 if strict else 0), result.stderr
    assert result.stdout == ""
    if strict:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert result.stderr == ""
    logged = hook.log_lines()
    assert len(logged) == 1, f"one line should be logged: {logged}"
    assert set(logged[0]) == {"at", "error", "payload"}
    assert fragment in logged[0]["error"]
    assert logged[0]["payload"] == raw
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", logged[0]["at"])
    assert totals(su) == before, "a failed call should store nothing"


def test_an_unreachable_database_fails_fast(hook: Hook) -> None:
    result = hook.run(VALID, env={"DATABASE_URL": UNREACHABLE_URL})
    assert result.code == 0
    assert result.seconds < 10, f"the hook took {result.seconds:.1f} s on a closed port"
    assert "cannot connect" in hook.log_lines()[0]["error"]


def test_each_failure_appends_one_line(hook: Hook, su: psycopg.Connection) -> None:
    hook.run("not json")
    hook.run("[]")
    session_id = new_session_id()
    result = hook.run(payload("Stop", session_id, "/work/app"))
    assert result.code == 0 and result.stdout == "" and result.stderr == ""
    assert [line["payload"] for line in hook.log_lines()] == ["not json", "[]"]
    assert len(events_of(su, session_id)) == 1


def test_the_embedded_server_is_found_through_toolsdb_home(hook: Hook, pg: Pg) -> None:
    """TOOLSDB_HOME pointing at a running server's folder: the hook connects to
    its database "toolsdb" (here a bare one, without the schema)."""
    result = hook.run(VALID, "hook", "--strict", env={"TOOLSDB_HOME": str(pg.server.root)}, database=False)
    assert result.code == 1
    error = hook.log_lines()[0]["error"]
    assert "cannot connect" not in error and "not running" not in error, error
    assert "SQLSTATE" in error and "toolsdb" in error, error


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["hook", "--strcit"], id="misspelt-option"),
        pytest.param(["hook", "--log-file"], id="option-without-value"),
        pytest.param(["hook", "extra"], id="extra-argument"),
    ],
)
def test_a_mistyped_hook_command_never_exits_2(tmp_path: Path, argv: list[str]) -> None:
    """Exit status 2 makes Claude Code block the tool call (PreToolUse) and
    feed stderr to the model: toolsdb hook promises never to exit 2."""
    done = subprocess.run(
        [toolsdb_exe(), *argv],
        input=json.dumps(payload("PreToolUse", new_session_id(), "/work/app", tool_name="Bash")).encode(),
        capture_output=True,
        cwd=str(tmp_path),
        env=hook_env(TOOLSDB_HOOK_LOG=str(tmp_path / "hook.log"), DATABASE_URL=UNREACHABLE_URL),
        timeout=60,
    )
    assert done.returncode != 2, f"toolsdb {' '.join(argv)} exited 2: {done.stderr.decode()}"


def test_an_unwritable_log_is_reported_on_stderr(hook: Hook, tmp_path: Path) -> None:
    for strict in (False, True):
        argv = ["hook", "--log-file", str(tmp_path)] + (["--strict"] if strict else [])
        result = hook.run("not json", *argv)
        assert result.code == (1 if strict else 0)
        assert result.stdout == ""
        assert "not JSON" in result.stderr and "not writable" in result.stderr, result.stderr


def test_where_failures_are_logged(hook: Hook, tmp_path: Path) -> None:
    # --log-file wins over TOOLSDB_HOOK_LOG.
    chosen = tmp_path / "chosen" / "failures.log"
    hook.run("not json", "hook", "--log-file", str(chosen))
    assert not hook.log.exists()
    assert json.loads(chosen.read_text())["payload"] == "not json"
    hook.run("still not json", "hook", f"--log-file={chosen}")
    assert len(chosen.read_text().splitlines()) == 2
    # Without either: $XDG_STATE_HOME/toolsdb/hook.log.
    state = tmp_path / "state"
    done = subprocess.run(
        [toolsdb_exe(), "hook"],
        input=b"not json",
        capture_output=True,
        cwd=str(hook.folder),
        env=hook_env(XDG_STATE_HOME=str(state), DATABASE_URL=hook.url),
        timeout=60,
    )
    assert done.returncode == 0
    assert json.loads((state / "toolsdb" / "hook.log").read_text())["payload"] == "not json"


# ---------------------------------------------------------------------------
# 4. The command line: --help, options before or after the command
# ---------------------------------------------------------------------------


def test_hook_help() -> None:
    result = run_cli("hook", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "hook" in result.stdout
    for option in ("--strict", "--log-file", "--database"):
        assert option in result.stdout, option
    assert "Store one agent hook payload" in result.stdout
    assert "hook" in run_cli("--help").stdout


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["-d", "{url}", "hook"], id="global-d"),
        pytest.param(["--database", "{url}", "-v", "hook", "--strict"], id="global-database"),
        pytest.param(["hook", "-d", "{url}"], id="command-d"),
        pytest.param(["hook", "--database={url}", "--strict"], id="command-database="),
        pytest.param(["-d{url}", "hook"], id="attached-d-click-path"),
    ],
)
def test_the_database_option_before_or_after_hook(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, argv: list[str]
) -> None:
    session_id = new_session_id()
    event = payload("UserPromptSubmit", session_id, tmp_path, prompt="hi")
    # The option wins over DATABASE_URL (here a closed port).
    result = hook.run(event, *[a.format(url=hook.url) for a in argv], env={"DATABASE_URL": UNREACHABLE_URL})
    assert_stored(result, hook.log)
    assert [e["payload"] for e in events_of(su, session_id)] == [event]


def test_the_click_command_fails_like_the_fast_path(hook: Hook) -> None:
    """``-dURL`` (attached) is left to click: same exit codes and log."""
    lenient = hook.run("not json", f"-d{hook.url}", "hook")
    strict = hook.run("not json", f"-d{hook.url}", "hook", "--strict")
    assert (lenient.code, lenient.stdout, lenient.stderr) == (0, "", "")
    assert strict.code == 1 and strict.stderr.startswith("Error: ") and "not JSON" in strict.stderr
    assert len(hook.log_lines()) == 2


def test_libpq_variables_pick_the_database(hook: Hook, su: psycopg.Connection, pg: Pg) -> None:
    session_id = new_session_id()
    event = payload("Stop", session_id, "/work/app", stop_hook_active=False)
    pg_vars = {"PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": "postgres", "PGDATABASE": hook.db}
    assert_stored(hook.run(event, env=pg_vars, database=False), hook.log)
    assert len(events_of(su, session_id)) == 1

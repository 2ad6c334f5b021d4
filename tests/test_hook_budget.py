"""``toolsdb hook``'s one time budget (TOOLSDB_HOOK_TIMEOUT, default 2 s):
whatever the server, a proxy in front of it or the agent's stdin does, the
hook returns within the budget, the payload goes to its log with a one-line
reason, and the exit status is 0 (1 with --strict).

The servers that misbehave are a small TCP proxy on 127.0.0.1 in front of the
test server (tests/hookhelpers.py's StallingProxy): one that completes
start-up and then stalls, one that accepts and never answers, one that loses
a reply, one that refuses the ``options`` start-up parameter as PgBouncer
does. Stdin left open is a pipe the test never closes. Every wait is bounded
by a subprocess timeout of ten times the budget or more: no test asserts how
long anything took.
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from toolsdb.server import SUPERUSER

from .conftest import Pg, toolsdb_exe
from .hookhelpers import (
    Hook,
    StallingProxy,
    assert_stored,
    events_of,
    hook_runner,
    module_su,
    new_session_id,
    payload,
    totals,
)

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)

# The budget the tests give the hook, in seconds: long enough for a loaded
# machine to reach the stall it is testing; and how long a test waits for it.
BUDGET = "3"
PATIENCE = 60


def socket_path(pg: Pg) -> str:
    return f"{pg.host}/.s.PGSQL.{pg.port}"


@pytest.fixture
def proxy_factory(pg: Pg) -> Iterator:
    proxies: list[StallingProxy] = []

    def make(after: int, drop: str = "requests", refuse_options: bool = False) -> StallingProxy:
        proxies.append(StallingProxy(socket_path(pg), after, drop, refuse_options))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def hook_backends(su: psycopg.Connection, dbname: str) -> list[str]:
    """States of the hook's server processes on ``dbname``."""
    return [
        row[0]
        for row in su.execute(
            "select coalesce(state, '') from pg_stat_activity where datname = %s and application_name = 'toolsdb-hook'",
            (dbname,),
        ).fetchall()
    ]


def assert_logged(hook: Hook, result, raw: str, strict: bool, *fragments: str) -> dict:
    """The hook returned with 0 (1 with --strict), nothing on stdout, and one
    log line holding ``raw`` and every fragment; returns that line."""
    assert result.code == (1 if strict else 0), result.stderr
    assert result.stdout == ""
    if strict:
        assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    else:
        assert result.stderr == "", result.stderr
    lines = hook.log_lines()
    assert len(lines) == 1, lines
    assert lines[0]["payload"] == raw
    for fragment in fragments:
        assert fragment in lines[0]["error"], lines[0]["error"]
    return lines[0]


# ---------------------------------------------------------------------------
# The server or a proxy stalls
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_a_proxy_that_stalls_after_start_up_costs_the_budget_not_the_event(
    hook: Hook, su: psycopg.Connection, proxy_factory, tmp_path: Path, strict: bool
) -> None:
    """Start-up completes, then the first request is never forwarded: the
    server's statement_timeout cannot help, only the hook's own clock. The
    default budget (2 s): no TOOLSDB_HOOK_TIMEOUT here."""
    proxy = proxy_factory(after=1)
    raw = json.dumps(payload("PreToolUse", new_session_id(), tmp_path, tool_name="Bash"))
    before = totals(su)
    argv = ["hook", "--strict"] if strict else ["hook"]
    result = hook.run(raw, *argv, env={"DATABASE_URL": proxy.url(hook.db, SUPERUSER)}, timeout=PATIENCE)
    assert_logged(hook, result, raw, strict, "2 s budget", "TOOLSDB_HOOK_TIMEOUT")
    assert totals(su) == before


def test_a_listener_that_never_answers(hook: Hook, su: psycopg.Connection, proxy_factory, tmp_path: Path) -> None:
    proxy = proxy_factory(after=0)
    raw = json.dumps(payload("Stop", new_session_id(), tmp_path, stop_hook_active=False))
    env = {"DATABASE_URL": proxy.url(hook.db, SUPERUSER), "TOOLSDB_HOOK_TIMEOUT": BUDGET}
    result = hook.run(raw, env=env, timeout=PATIENCE)
    assert_logged(hook, result, raw, False, f"{BUDGET} s budget", "connecting")


def test_a_lost_reply_rolls_the_event_back(hook: Hook, su: psycopg.Connection, proxy_factory, tmp_path: Path) -> None:
    """The event's statement runs but its reply never arrives: the hook gives
    up, its transaction is left open behind the proxy, and the server ends it
    (idle_in_transaction_session_timeout, set local from the budget): nothing
    is stored, the payload is in the log, and no lock is held on."""
    proxy = proxy_factory(after=2, drop="replies")  # start-up; begin + settings; then the event
    session_id = new_session_id()
    raw = json.dumps(payload("UserPromptSubmit", session_id, tmp_path, prompt="hi"))
    env = {"DATABASE_URL": proxy.url(hook.db, SUPERUSER), "TOOLSDB_HOOK_TIMEOUT": BUDGET}
    result = hook.run(raw, env=env, timeout=PATIENCE)
    assert_logged(hook, result, raw, False, f"{BUDGET} s budget", "storing")
    for _ in range(300):  # the proxy holds the connection: the server must end it
        if not hook_backends(su, hook.db):
            break
        time.sleep(0.1)
    assert hook_backends(su, hook.db) == []
    assert events_of(su, session_id) == []


def test_a_reply_lost_after_the_commit_is_logged_as_maybe_stored(
    hook: Hook, su: psycopg.Connection, proxy_factory, tmp_path: Path
) -> None:
    """The race: the commit reaches the server, its reply does not reach the
    hook before the budget ends. The event is stored and logged; the log line
    says so, so that nobody replays it blindly (hook events carry no
    idempotency key)."""
    proxy = proxy_factory(after=3, drop="replies")  # start-up; begin + settings; the event; then commit
    session_id = new_session_id()
    raw = json.dumps(payload("Stop", session_id, tmp_path, stop_hook_active=False))
    env = {"DATABASE_URL": proxy.url(hook.db, SUPERUSER), "TOOLSDB_HOOK_TIMEOUT": BUDGET}
    result = hook.run(raw, env=env, timeout=PATIENCE)
    assert_logged(hook, result, raw, False, f"{BUDGET} s budget", "committing", "may be stored")
    assert [e["payload"] for e in events_of(su, session_id)] == [json.loads(raw)]


def test_a_pooler_that_refuses_start_up_options_stores_the_event(
    hook: Hook, su: psycopg.Connection, proxy_factory, tmp_path: Path
) -> None:
    """PgBouncer refuses the ``options`` start-up parameter: the hook's
    timeouts are set local in its transaction instead."""
    proxy = proxy_factory(after=10_000, refuse_options=True)
    session_id = new_session_id()
    event = payload("PreToolUse", session_id, tmp_path, tool_name="Bash")
    assert_stored(hook.run(event, env={"DATABASE_URL": proxy.url(hook.db, SUPERUSER)}, timeout=PATIENCE), hook.log)
    assert [e["payload"] for e in events_of(su, session_id)] == [event]


def test_a_locked_session_row_costs_the_budget_not_the_event(
    hook: Hook, su: psycopg.Connection, pg: Pg, tmp_path: Path
) -> None:
    """Another transaction holds the session's row: the hook's statement waits
    for the lock until its lock_timeout (set local from the budget) or the
    budget ends; the payload is logged, and nothing is stored once the lock is
    released (the hook's transaction never commits)."""
    session_id = new_session_id()
    hook.ingest(payload("SessionStart", session_id, tmp_path, source="startup"))
    raw = json.dumps(payload("Stop", session_id, tmp_path, stop_hook_active=False))
    with psycopg.connect(pg.conninfo(hook.db)) as locker:
        locker.execute("select 1 from toolsdb.sessions where session_id = %s for update", (session_id,))
        result = hook.run(raw, env={"TOOLSDB_HOOK_TIMEOUT": BUDGET}, timeout=PATIENCE)
        line = assert_logged(hook, result, raw, False)
        # Whichever of the set local timeouts fires first (under load the
        # statement's, which started earlier), the line names the budget.
        assert f"{BUDGET} s budget" in line["error"] and "storing the event" in line["error"], line["error"]
    for _ in range(300):
        if not hook_backends(su, hook.db):
            break
        time.sleep(0.1)
    assert hook_backends(su, hook.db) == []
    assert len(events_of(su, session_id)) == 1  # the SessionStart only


# ---------------------------------------------------------------------------
# Stdin left open
# ---------------------------------------------------------------------------


def run_with_open_stdin(hook: Hook, data: bytes, *argv: str, env: dict[str, str] | None = None):
    """Run the hook, write ``data`` on its stdin and never close it; return
    (exit code, stdout, stderr) once it exits (PATIENCE seconds at most)."""
    process = subprocess.Popen(
        [toolsdb_exe(), *(argv or ("hook",))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(hook.folder),
        env=hook.env({"TOOLSDB_HOOK_TIMEOUT": BUDGET, **(env or {})}),
    )
    try:
        process.stdin.write(data)
        process.stdin.flush()
        code = process.wait(timeout=PATIENCE)
        return code, process.stdout.read().decode(), process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()


def test_a_complete_payload_on_stdin_left_open_is_stored(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    session_id = new_session_id()
    event = payload("PreToolUse", session_id, tmp_path, tool_name="Bash", tool_input={"command": "ls"})
    # A long budget: the hook must not wait for it, nor for end of file.
    code, out, err = run_with_open_stdin(hook, json.dumps(event).encode() + b"\n", env={"TOOLSDB_HOOK_TIMEOUT": "20"})
    assert (code, out, err) == (0, "", "")
    assert not hook.log.exists(), hook.log.read_text()
    assert [e["payload"] for e in events_of(su, session_id)] == [event]


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_half_a_payload_on_stdin_left_open_is_logged(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, strict: bool
) -> None:
    raw = json.dumps(payload("PreToolUse", new_session_id(), tmp_path, tool_name="Bash"))
    half = raw[: len(raw) // 2]
    before = totals(su)
    code, out, err = run_with_open_stdin(hook, half.encode(), *(["hook", "--strict"] if strict else ["hook"]))
    assert code == (1 if strict else 0), err
    assert out == ""
    assert (err.startswith("Error: ") and "stdin" in err) if strict else err == "", err
    lines = hook.log_lines()
    assert len(lines) == 1 and lines[0]["payload"] == half
    assert "stdin" in lines[0]["error"] and f"{BUDGET} s budget" in lines[0]["error"], lines[0]["error"]
    assert totals(su) == before


def test_nothing_on_stdin_left_open_is_logged(hook: Hook) -> None:
    code, out, err = run_with_open_stdin(hook, b"")
    assert (code, out, err) == (0, "", "")
    lines = hook.log_lines()
    assert len(lines) == 1 and lines[0]["payload"] == "" and "stdin" in lines[0]["error"]


def test_stdin_that_never_ends_is_cut_short(hook: Hook, tmp_path: Path) -> None:
    """Stdin from /dev/zero: reading stops at 64 MiB and the log keeps the first
    64 kB, instead of gigabytes read within the budget and then written to the
    log. The budget is long (the read ends by size, not time), the hook's
    address space limited to 2 GiB so that a hook without the limit fails
    with MemoryError instead of filling the machine's memory."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run(
            [toolsdb_exe(), "hook"],
            stdin=zeros,
            capture_output=True,
            cwd=str(hook.folder),
            env=hook.env({"TOOLSDB_HOOK_TIMEOUT": "60"}),
            preexec_fn=limit_memory,
            timeout=120,
        )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    lines = hook.log_lines()
    assert len(lines) == 1
    assert "more than 64 MiB" in lines[0]["error"], lines[0]["error"]
    assert lines[0]["payload"] == "\x00" * (64 << 10)


# ---------------------------------------------------------------------------
# The budget's variable
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"TOOLSDB_HOOK_TIMEOUT": "7.5"}, id="decimal-budget"),
        pytest.param({"TOOLSDB_HOOK_TIMEOUT": " 10 "}, id="spaces"),
        pytest.param({"TOOLSDB_HOOK_CONNECT_TIMEOUT": "10"}, id="old-name"),
        pytest.param({"TOOLSDB_HOOK_TIMEOUT": "10", "TOOLSDB_HOOK_CONNECT_TIMEOUT": "soon"}, id="new-name-wins"),
    ],
)
def test_the_budget_variable(hook: Hook, su: psycopg.Connection, tmp_path: Path, env: dict[str, str]) -> None:
    session_id = new_session_id()
    hook.ingest(payload("Stop", session_id, tmp_path), env=env)
    assert len(events_of(su, session_id)) == 1
